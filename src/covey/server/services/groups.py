"""Groups: create, list, read, add and remove members. Every membership change bumps the
epoch (optimistically, so concurrent changes never both win) and tells member devices.
An unverified or under-16 account is never made a member by someone else: it is invited,
and joins only by accepting (or by redeeming an invite link itself)."""

from __future__ import annotations

import secrets
import time

from covey.age import AgeBand
from covey.errors import Conflict, Forbidden, InvalidInput, NotFound
from covey.protocol.ids import new_group_id
from covey.protocol.wire import (
    MAX_GROUP_MEMBERS,
    CreateGroupRequest,
    GroupChangedFrame,
    GroupInfo,
    GroupInvitation,
    GroupInvitationFrame,
    GroupInvitationList,
    GroupList,
    GroupMember,
    InviteResponse,
)
from covey.server.fanout import DeviceAddress, Fanout, PushFrame
from covey.server.services._common import Principal, now_ms, reject_nul, secret_hash
from covey.server.services.accounts import DeviceDirectory
from covey.server.services.policy import Charge, PolicyService
from covey.server.storage.repository import GroupInvitationRow, GroupRow, Repository

_GROUP_CACHE_TTL_S = 30.0
_RETRIES = 5
INVITE_TTL_S = 7 * 24 * 3600
# Accounts that others cannot make members: they are invited and must accept.
CONSENT_BANDS = frozenset({AgeBand.UNDER_16, AgeBand.UNVERIFIED})


def group_info(group: GroupRow, withheld: list[str] | None = None,
               invited: list[str] | None = None) -> GroupInfo:
    return GroupInfo(group_id=group.group_id, name=group.name, epoch=group.epoch,
                     members=[GroupMember(user_id=u, role="admin" if r == "admin" else "member")
                              for u, r in group.members.items()],
                     withheld=withheld or [], invited=invited or [])


def _invitation(row: GroupInvitationRow) -> GroupInvitation:
    return GroupInvitation(invitation_id=row.invitation_id, group_id=row.group_id,
                           group_name=row.group_name, invited_by=row.invited_by,
                           created_ms=row.created_ms, expires_ms=row.expires_ms)


class GroupService:
    def __init__(self, repo: Repository, directory: DeviceDirectory, fanout: Fanout,
                 policy: PolicyService) -> None:
        self._repo = repo
        self._policy = policy
        self._directory = directory
        self._fanout = fanout
        self._cache: dict[str, tuple[float, GroupRow]] = {}

    async def current(self, group_id: str) -> GroupRow | None:
        """The group as the message path sees it (cached; invalidated on change)."""
        hit = self._cache.get(group_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < _GROUP_CACHE_TTL_S:
            return hit[1]
        group = await self._repo.get_group(group_id)
        if group is not None:
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[group_id] = (now, group)
        return group

    async def _unseen(self, adder: str, users: list[str], charge: Charge | None,
                      ) -> list[str]:
        """Those of `users` the adder may not see: unknown or hidden from it, told apart
        by nothing (the same lookups for each, the same `unknown_user` answer)."""
        unseen = []
        for user in users:
            found = await self._policy.reach(adder, user)
            if charge is not None and found.stranger:
                charge(1)
            if not found.visible:
                unseen.append(user)
        return unseen

    async def create(self, principal: Principal, request: CreateGroupRequest,
                     charge: Charge | None = None) -> GroupInfo:
        reject_nul(request.name, field="name")
        others = [u for u in dict.fromkeys(request.members) if u != principal.user_id]
        if len(others) + 1 > MAX_GROUP_MEMBERS:
            raise InvalidInput(f"a group has at most {MAX_GROUP_MEMBERS} members")
        unknown = await self._unseen(principal.user_id, others, charge)
        if unknown:
            raise NotFound("unknown users", code="unknown_user", details={"users": unknown})
        # Each newcomer is checked against the creator and everyone added before them, as
        # if added one by one: a group is never a way around the contact rules.
        joined = [principal.user_id]
        invitees: list[str] = []
        for user in others:
            await self._policy.check_join(user, joined, adder=principal.user_id)
            if await self._needs_consent(user):
                invitees.append(user)  # invited; a member only once it accepts
            else:
                joined.append(user)
        members = {principal.user_id: "admin", **dict.fromkeys(joined[1:], "member")}
        group = await self._repo.create_group(new_group_id(), request.name, members, now_ms())
        await self._changed(group, notify_also=())  # members learn they were added
        for user in invitees:
            await self._invite(group, principal.user_id, user)
        return await self._view(principal, group)

    async def _needs_consent(self, user_id: str) -> bool:
        """Unverified and under-16 accounts (a lapsed child counts as under 16) join a
        group only by accepting an invitation: never silently added."""
        return await self._policy.band(user_id) in CONSENT_BANDS

    async def _invite(self, group: GroupRow, inviter: str, user_id: str) -> GroupInvitation:
        now = now_ms()
        row = await self._repo.invite_to_group(GroupInvitationRow(
            invitation_id=f"gi_{secrets.token_hex(12)}", group_id=group.group_id,
            group_name=group.name, user_id=user_id, invited_by=inviter, created_ms=now,
            expires_ms=now + INVITE_TTL_S * 1000), now)
        invitation = _invitation(row)
        frame = GroupInvitationFrame(invitation=invitation)
        self._fanout.publish([(DeviceAddress(user_id, device_id), frame)
                              for device_id in await self._directory.devices(user_id)])
        return invitation

    async def invitations(self, principal: Principal) -> GroupInvitationList:
        """The group invitations waiting for this account's answer."""
        rows = await self._repo.group_invitations_of(principal.user_id, now_ms())
        return GroupInvitationList(invitations=[_invitation(r) for r in rows])

    async def _own_invitation(self, principal: Principal,
                              invitation_id: str) -> GroupInvitationRow:
        row = await self._repo.group_invitation(invitation_id, now_ms())
        if row is None or row.user_id != principal.user_id:
            raise NotFound("no such group invitation (or it has expired)",
                           code="unknown_invitation")
        return row

    async def accept_invitation(self, principal: Principal, invitation_id: str) -> GroupInfo:
        """Join the group of an invitation addressed to this account. The contact rules
        are asked again now, as for an add: they may have changed since the invite."""
        invitation = await self._own_invitation(principal, invitation_id)
        for _ in range(_RETRIES):
            group = await self._repo.get_group(invitation.group_id)
            if group is None or invitation.invited_by not in group.members:
                await self._repo.delete_group_invitation(invitation_id)
                raise NotFound("this group invitation is no longer valid",
                               code="unknown_invitation")
            if principal.user_id in group.members:
                await self._repo.delete_group_invitation(invitation_id)
                return await self._view(principal, group)
            if len(group.members) >= MAX_GROUP_MEMBERS:
                raise InvalidInput(f"a group has at most {MAX_GROUP_MEMBERS} members")
            await self._policy.check_join(principal.user_id, group.members,
                                          adder=invitation.invited_by)
            changed = await self._change(group, add=(principal.user_id, "member"))
            if changed is not None:
                return changed
        raise Conflict("the group keeps changing, retry", code="group_changed")

    async def decline_invitation(self, principal: Principal, invitation_id: str) -> None:
        invitation = await self._own_invitation(principal, invitation_id)
        await self._repo.delete_group_invitation(invitation.invitation_id)

    async def _view(self, principal: Principal, group: GroupRow) -> GroupInfo:
        """The group as `principal` sees it, with the members it may not exchange
        messages with now."""
        # Only admins, who could add them anyway, see who is invited: an invitation says
        # "unverified or under 16", which other members have no business learning.
        invited = (await self._repo.invited_to_group(group.group_id, now_ms())
                   if group.members.get(principal.user_id) == "admin" else [])
        return group_info(group, await self._policy.withheld_in(principal.user_id,
                                                                list(group.members)), invited)

    async def list_for(self, principal: Principal) -> GroupList:
        return GroupList(groups=[await self._view(principal, g)
                                 for g in await self._repo.groups_of_user(principal.user_id)])

    async def get(self, principal: Principal, group_id: str) -> GroupInfo:
        group = await self._member_view(principal, group_id)
        return await self._view(principal, group)

    async def _member_view(self, principal: Principal, group_id: str) -> GroupRow:
        group = await self._repo.get_group(group_id)
        if group is None or principal.user_id not in group.members:
            # Same answer for "no such group" and "not yours": ids are not disclosed.
            raise NotFound("no such group", code="unknown_group")
        return group

    async def add_member(self, principal: Principal, group_id: str, user_id: str,
                         charge: Charge | None = None) -> GroupInfo:
        if await self._unseen(principal.user_id, [user_id], charge):
            raise NotFound(f"no user {user_id!r}", code="unknown_user")
        for _ in range(_RETRIES):
            group = await self._member_view(principal, group_id)
            if group.members[principal.user_id] != "admin":
                raise Forbidden("only an admin can add members", code="not_admin")
            if user_id in group.members:
                raise Conflict(f"{user_id!r} is already a member", code="already_member")
            if len(group.members) >= MAX_GROUP_MEMBERS:
                raise InvalidInput(f"a group has at most {MAX_GROUP_MEMBERS} members")
            await self._policy.check_join(user_id, group.members, adder=principal.user_id)
            if await self._needs_consent(user_id):
                await self._invite(group, principal.user_id, user_id)
                return await self._view(principal, group)
            changed = await self._change(group, add=(user_id, "member"))
            if changed is not None:
                return changed
        raise Conflict("the group keeps changing, retry", code="group_changed")

    async def create_invite(self, principal: Principal, group_id: str) -> InviteResponse:
        """An invite link (a bearer token, stored only as its hash) any admin can share."""
        group = await self._member_view(principal, group_id)
        if group.members[principal.user_id] != "admin":
            raise Forbidden("only an admin can create invite links", code="not_admin")
        token = secrets.token_urlsafe(32)
        now = now_ms()
        expires = now + INVITE_TTL_S * 1000
        await self._policy.store.add_invite(secret_hash(token), group_id, principal.user_id,
                                            now, expires)
        return InviteResponse(token=token, group_id=group_id, expires_ms=expires)

    async def join_by_invite(self, principal: Principal, token: str) -> GroupInfo:
        """Redeem an invite link: the joiner is checked against every member, exactly as
        an add would be, so a link never reaches someone an add could not."""
        invite = await self._policy.store.find_invite(secret_hash(token), now_ms())
        if invite is None:
            raise NotFound("this invite link is unknown or has expired", code="unknown_invite")
        for _ in range(_RETRIES):
            group = await self._repo.get_group(invite.group_id)
            if group is None or invite.created_by not in group.members:
                raise NotFound("this invite link is no longer valid", code="unknown_invite")
            if principal.user_id in group.members:
                return await self._view(principal, group)
            if len(group.members) >= MAX_GROUP_MEMBERS:
                raise InvalidInput(f"a group has at most {MAX_GROUP_MEMBERS} members")
            await self._policy.check_join(principal.user_id, group.members)
            changed = await self._change(group, add=(principal.user_id, "member"))
            if changed is not None:
                return changed
        raise Conflict("the group keeps changing, retry", code="group_changed")

    async def remove_member(self, principal: Principal, group_id: str,
                            user_id: str) -> GroupInfo:
        for _ in range(_RETRIES):
            group = await self._member_view(principal, group_id)
            if user_id != principal.user_id and group.members[principal.user_id] != "admin":
                raise Forbidden("only an admin can remove other members", code="not_admin")
            if user_id not in group.members:
                raise NotFound(f"{user_id!r} is not a member", code="not_a_member")
            changed = await self._change(group, remove=user_id)
            if changed is not None:
                return changed
        raise Conflict("the group keeps changing, retry", code="group_changed")

    async def _change(self, group: GroupRow, *, add: tuple[str, str] | None = None,
                      remove: str | None = None) -> GroupInfo | None:
        """Apply one membership change at the epoch `group` was read at and tell every
        device (a removed member too); None when the group changed meanwhile (retry)."""
        try:
            changed = await self._repo.change_membership(group.group_id, group.epoch,
                                                         add=add, remove=remove)
        except Conflict as exc:
            if exc.code == "group_changed":
                return None
            raise
        await self._changed(changed, notify_also=(remove,) if remove else ())
        return group_info(changed)

    async def notify_withheld(self, group_id: str, users: list[str]) -> None:
        """Tell these members' devices to read the group again: who they may exchange
        messages with in it has changed (`GroupInfo.withheld`)."""
        group = await self.current(group_id)
        if group is None:
            return
        frame = GroupChangedFrame(group_id=group_id, epoch=group.epoch)
        items: list[tuple[DeviceAddress, PushFrame]] = []
        for user in users:
            for device_id in await self._directory.devices(user):
                items.append((DeviceAddress(user, device_id), frame))
        self._fanout.publish(items)

    async def _changed(self, group: GroupRow, notify_also: tuple[str, ...]) -> None:
        self._cache[group.group_id] = (time.monotonic(), group)
        frame = GroupChangedFrame(group_id=group.group_id, epoch=group.epoch)
        items: list[tuple[DeviceAddress, PushFrame]] = []
        for user in [*group.members, *notify_also]:
            for device_id in await self._directory.devices(user):
                items.append((DeviceAddress(user, device_id), frame))
        self._fanout.publish(items)
