"""Contacts, contact requests, handle search, blocks and mutes, under the contact rules of
`covey.safety.policy` (every policy mode).

Refusals tell the actor only the coarse public code (`contact_not_permitted`,
`not_found`, ...): never that the other account is a child, unverified, or that the
actor hit a limit, so refusals are no oracle for finding children's handles."""

from __future__ import annotations

import secrets

from covey.age import AgeBand
from covey.errors import Conflict, Forbidden, InvalidInput, NotFound
from covey.protocol.wire import (
    ContactInfo,
    ContactList,
    ContactRequestFrame,
    ContactRequestInfo,
    ContactRequestList,
    SafetyNoticeBody,
    UserIdList,
    UserLookup,
)
from covey.safety.policy import (
    ContactAction,
    ContactCode,
    ContactRefused,
    contact_safety_notice,
    is_barred,
)
from covey.server.fanout import DeviceAddress, Fanout
from covey.server.services._common import Principal, now_ms
from covey.server.services.accounts import DeviceDirectory
from covey.server.services.policy import Charge, PolicyService
from covey.server.services.safety_events import ContactAccepted, SafetyEvents
from covey.server.storage.repository import Repository
from covey.server.storage.safety_repo import ContactRequestRow

MAX_PENDING_OUTGOING = 200


def _info(row: ContactRequestRow, requester_band: AgeBand | None = None,
          ) -> ContactRequestInfo:
    # A withheld request is, to its sender (the only one who sees it), pending.
    status = "pending" if row.status == "withheld" else row.status
    return ContactRequestInfo(request_id=row.request_id, requester=row.requester,
                              target=row.target, status=status,
                              created_ms=row.created_ms,
                              requester_band=None if requester_band is None
                              else requester_band.value)


class ContactService:
    def __init__(self, repo: Repository, policy: PolicyService, events: SafetyEvents,
                 directory: DeviceDirectory | None = None, fanout: Fanout | None = None,
                 ) -> None:
        self._repo = repo
        self._directory = directory
        self._fanout = fanout
        self._policy = policy
        self._store = policy.store
        self._events = events

    async def lookup(self, principal: Principal, handle: str,
                     charge: Charge | None = None) -> UserLookup:
        """Handle search. Under-16 accounts are found only by their contacts (and by
        other under-16 accounts); a refusal looks exactly like an unknown handle."""
        found = await self._policy.check_visible(principal.user_id, handle, charge=charge)
        return UserLookup(user_id=handle, contact=found.contacts)

    # --- requests ------------------------------------------------------------------------

    async def request(self, principal: Principal, target: str) -> ContactRequestInfo:
        """Ask `target` to be a contact. A request its sender must not know was refused (an
        unknown account, a child it may not ask, a block, a bar, a limit) is answered and
        listed for the sender like any other, and kept `withheld`: the target never sees
        it. Every request does the same work whatever becomes of it."""
        me = principal.user_id
        if target == me:
            raise InvalidInput("you cannot send yourself a contact request",
                               details={"field": "user_id"})
        reverse = await self._store.pending_between(target, me)
        exists = await self._store.user_exists(target)
        decision = await self._policy.decide(ContactAction.SEND_CONTACT_REQUEST, me, target,
                                             actor_party=await self._policy.requester(me))
        if reverse is not None and decision.code is not ContactCode.ALREADY_CONTACTS:
            # They already asked us: sending one back is accepting theirs.
            return await self.decide(principal, reverse.request_id, "accepted")
        if not decision.withheld:
            decision.raise_if_refused()
        outgoing = [r for r in await self._store.requests_of(me) if r.requester == me]
        if len(outgoing) >= MAX_PENDING_OUTGOING:
            raise Conflict(f"at most {MAX_PENDING_OUTGOING} contact requests may wait for an "
                           "answer; cancel some first", code="too_many_pending_requests")
        status = "pending" if exists and decision.allowed else "withheld"
        row = ContactRequestRow(
            request_id="cr_" + secrets.token_hex(12), requester=me, target=target,
            status=status, to_under_age=await self._policy.band(target) is AgeBand.UNDER_16,
            created_ms=now_ms(), decided_ms=None)
        stored = await self._store.create_request(row)
        if stored.status == "pending" and stored.request_id == row.request_id:
            await self._notify_request(stored)
        return _info(stored)

    async def requests(self, principal: Principal) -> ContactRequestList:
        me = principal.user_id
        rows = await self._store.requests_of(me)
        incoming = [r for r in rows if r.target == me]
        bands: dict[str, AgeBand] = {}
        if await self._policy.band(me) is AgeBand.UNDER_16:
            # A child sees who is asking as the server knows it, not as they say.
            bands = {r.requester: await self._policy.band(r.requester) for r in incoming}
        return ContactRequestList(
            incoming=[_info(r, bands.get(r.requester)) for r in incoming],
            outgoing=[_info(r) for r in rows if r.requester == me])

    async def decide(self, principal: Principal, request_id: str,
                     status: str) -> ContactRequestInfo:
        """accepted / declined (by the target) or cancelled (by the requester)."""
        row = await self._store.get_request(request_id)
        me = principal.user_id
        # A withheld request exists only for its sender.
        mine = row is not None and (me == row.requester or (
            me == row.target and row.status != "withheld"))
        if row is None or not mine:
            raise NotFound("no such contact request", code="unknown_contact_request")
        by = row.requester if status == "cancelled" else row.target
        if me != by:
            who = "the account that sent it" if status == "cancelled" else "its recipient"
            raise Forbidden(f"only {who} can mark this request {status}",
                            code="not_your_request")
        if row.status not in ("pending", "withheld"):
            raise Conflict(f"this request is already {row.status}",
                           code="request_not_pending", details={"status": row.status})
        if status == "accepted":
            await self._check_acceptable(row)
        now = now_ms()
        if not await self._store.decide_request(request_id, status, now, expect=row.status):
            raise Conflict("this request was answered meanwhile", code="request_not_pending")
        self._policy.forget(row.requester, row.target)
        if status == "accepted":
            await self._events.emit(ContactAccepted(row.requester, row.target, now))
        return ContactRequestInfo(request_id=row.request_id, requester=row.requester,
                                  target=row.target, status=status,
                                  created_ms=row.created_ms)

    async def _check_acceptable(self, row: ContactRequestRow) -> None:
        """Rules that hold even between contacts (blocks; unverified and under-16) and the
        bar are checked again at acceptance: things may have changed since the request."""
        decision = await self._policy.decide(ContactAction.OPEN_CONVERSATION, row.target,
                                             row.requester)
        if decision.code is not ContactCode.UNDER_AGE_NEEDS_CONTACT:
            decision.raise_if_refused()
        requester = await self._policy.party(row.requester)
        if await self._policy.band(row.target) is AgeBand.UNDER_16 \
                and is_barred(requester, self._policy.config):
            # Barred after asking: the request is void (and leaves the child's inbox).
            await self._store.decide_request(row.request_id, "withheld", now_ms())
            raise ContactRefused("you can't accept this request any more",
                                 code="request_withdrawn")

    async def _notify_request(self, row: ContactRequestRow) -> None:
        """Tell the target's devices a request is waiting (and who asks, as the server
        knows them, if the target is a child)."""
        if self._directory is None or self._fanout is None:
            return
        band = None
        if await self._policy.band(row.target) is AgeBand.UNDER_16:
            band = (await self._policy.band(row.requester)).value
        frame = ContactRequestFrame(request_id=row.request_id, requester=row.requester,
                                    requester_band=band)
        self._fanout.publish([(DeviceAddress(row.target, device), frame)
                              for device in await self._directory.devices(row.target)])

    # --- contacts ------------------------------------------------------------------------

    async def contacts(self, principal: Principal) -> ContactList:
        me = await self._policy.party(principal.user_id)
        found = []
        for user, since in sorted((await self._store.contacts_of(me.user_id)).items()):
            notice = contact_safety_notice(me, await self._policy.party(user),
                                           self._policy.config)
            found.append(ContactInfo(
                user_id=user, since_ms=since,
                safety_notice=None if notice is None else SafetyNoticeBody(
                    code=notice.code, text=notice.text)))
        return ContactList(contacts=found)

    async def remove(self, principal: Principal, user_id: str) -> None:
        if not await self._store.remove_contact(principal.user_id, user_id):
            raise NotFound(f"{user_id!r} is not one of your contacts", code="not_a_contact")
        self._policy.forget(principal.user_id, user_id)

    # --- blocks and mutes ----------------------------------------------------------------

    async def blocks(self, principal: Principal) -> UserIdList:
        return UserIdList(users=await self._store.blocks_of(principal.user_id))

    async def unblock(self, principal: Principal, user_id: str) -> None:
        if not await self._store.remove_block(principal.user_id, user_id):
            raise NotFound(f"you have not blocked {user_id!r}", code="not_blocked")
        self._policy.forget(principal.user_id, user_id)

    async def mutes(self, principal: Principal) -> UserIdList:
        return UserIdList(users=await self._store.mutes_of(principal.user_id))

    async def mute(self, principal: Principal, user_id: str, on: bool) -> None:
        """Like a block, a mute is taken for any handle, known or not, with the same
        answer and the same work: muting is no way to learn whether an account exists."""
        if user_id == principal.user_id:
            raise InvalidInput("you cannot mute yourself", details={"field": "user_id"})
        await self._store.set_mute(principal.user_id, user_id, on, now_ms())
