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
    ContactRequestInfo,
    ContactRequestList,
    SafetyNoticeBody,
    UserIdList,
    UserLookup,
)
from covey.safety.policy import ContactAction, ContactCode, contact_safety_notice
from covey.server.services._common import Principal, now_ms
from covey.server.services.policy import PolicyService
from covey.server.services.safety_events import ContactAccepted, SafetyEvents
from covey.server.storage.repository import Repository
from covey.server.storage.safety_repo import ContactRequestRow

MAX_PENDING_OUTGOING = 200


def _info(row: ContactRequestRow) -> ContactRequestInfo:
    return ContactRequestInfo(request_id=row.request_id, requester=row.requester,
                              target=row.target, status=row.status,
                              created_ms=row.created_ms)


class ContactService:
    def __init__(self, repo: Repository, policy: PolicyService, events: SafetyEvents) -> None:
        self._repo = repo
        self._policy = policy
        self._store = policy.store
        self._events = events

    async def _existing(self, user_id: str) -> None:
        if not await self._repo.user_exists(user_id):
            raise NotFound("no account with this handle", code="not_found")

    async def lookup(self, principal: Principal, handle: str) -> UserLookup:
        """Handle search. Under-16 accounts are found only by their contacts (and by
        other under-16 accounts); a refusal looks exactly like an unknown handle."""
        await self._existing(handle)
        if handle != principal.user_id:
            await self._policy.check(ContactAction.FIND_BY_HANDLE, principal.user_id, handle)
        return UserLookup(user_id=handle,
                          contact=await self._store.are_contacts(principal.user_id, handle))

    async def visible(self, principal: Principal, user_id: str) -> None:
        """404 `not_found`, exactly like an unknown handle, unless the caller may reach
        `user_id`'s devices (themselves, contacts, fellow group members, or by handle)."""
        await self._existing(user_id)
        await self._policy.check_visible(principal.user_id, user_id)

    # --- requests ------------------------------------------------------------------------

    async def request(self, principal: Principal, target: str) -> ContactRequestInfo:
        me = principal.user_id
        await self._existing(target)
        reverse = await self._store.pending_between(target, me)
        if reverse is not None:
            # They already asked us: sending one back is accepting theirs.
            return await self.decide(principal, reverse.request_id, "accepted")
        decision = await self._policy.decide(ContactAction.SEND_CONTACT_REQUEST, me, target,
                                             actor_party=await self._policy.requester(me))
        decision.raise_if_refused()
        outgoing = [r for r in await self._store.requests_of(me) if r.requester == me]
        if len(outgoing) >= MAX_PENDING_OUTGOING:
            raise Conflict(f"at most {MAX_PENDING_OUTGOING} contact requests may wait for an "
                           "answer; cancel some first", code="too_many_pending_requests")
        row = ContactRequestRow(
            request_id="cr_" + secrets.token_hex(12), requester=me, target=target,
            status="pending", to_under_age=await self._policy.band(target) is AgeBand.UNDER_16,
            created_ms=now_ms(), decided_ms=None)
        return _info(await self._store.create_request(row))

    async def requests(self, principal: Principal) -> ContactRequestList:
        rows = await self._store.requests_of(principal.user_id)
        return ContactRequestList(
            incoming=[_info(r) for r in rows if r.target == principal.user_id],
            outgoing=[_info(r) for r in rows if r.requester == principal.user_id])

    async def decide(self, principal: Principal, request_id: str,
                     status: str) -> ContactRequestInfo:
        """accepted / declined (by the target) or cancelled (by the requester)."""
        row = await self._store.get_request(request_id)
        mine = row is not None and principal.user_id in (row.requester, row.target)
        if row is None or not mine:
            raise NotFound("no such contact request", code="unknown_contact_request")
        by = row.requester if status == "cancelled" else row.target
        if principal.user_id != by:
            who = "the account that sent it" if status == "cancelled" else "its recipient"
            raise Forbidden(f"only {who} can mark this request {status}",
                            code="not_your_request")
        if row.status != "pending":
            raise Conflict(f"this request is already {row.status}",
                           code="request_not_pending", details={"status": row.status})
        if status == "accepted":
            # Rules that hold even between contacts (blocks; unverified and under-16)
            # are checked again now: things may have changed since the request.
            decision = await self._policy.decide(ContactAction.OPEN_CONVERSATION,
                                                 row.target, row.requester)
            if decision.code is not ContactCode.UNDER_AGE_NEEDS_CONTACT:
                decision.raise_if_refused()
        now = now_ms()
        if not await self._store.decide_request(request_id, status, now):
            raise Conflict("this request was answered meanwhile", code="request_not_pending")
        self._policy.forget(row.requester, row.target)
        if status == "accepted":
            await self._events.emit(ContactAccepted(row.requester, row.target, now))
        return ContactRequestInfo(request_id=row.request_id, requester=row.requester,
                                  target=row.target, status=status,
                                  created_ms=row.created_ms)

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
        if user_id == principal.user_id:
            raise InvalidInput("you cannot mute yourself", details={"field": "user_id"})
        if on:
            await self._existing(user_id)
        await self._store.set_mute(principal.user_id, user_id, on, now_ms())
