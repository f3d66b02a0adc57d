"""Guardians (docs/safety-policy.md#guardians): an under-16 account links up to four
verified 16+ accounts as guardians, both sides consenting. Guardians get safety alerts
about the child (a report filed, a contact accepted, a high-risk detection) made of ids
and codes only, never message content; while the child is under 16, removing a link
needs the guardian's consent.

Refusals never tell an account another account's age band: the band of the account being
asked is checked when *it* answers, not when it is asked."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from covey.age import AgeBand
from covey.errors import Conflict, Forbidden, InvalidInput, NotFound
from covey.protocol.ids import CONVERSATION_ID_PATTERN, USER_ID_PATTERN
from covey.protocol.wire import (
    MAX_GUARDIANS,
    GuardianAlert,
    GuardianAlertFrame,
    GuardianAlertList,
    GuardianLink,
    GuardianLinkFrame,
    GuardianLinkList,
    GuardianRemoval,
    ProposeGuardianLink,
)
from covey.server.fanout import DeviceAddress, Fanout, PushFrame
from covey.server.services._common import Principal, now_ms
from covey.server.services.accounts import DeviceDirectory
from covey.server.services.age import AgeService
from covey.server.services.safety_events import (
    ContactAccepted,
    DetectionRaised,
    ReportFiled,
    SafetyEvent,
    SafetyEvents,
)
from covey.server.storage.guardians import AlertRow, GuardianStorage, LinkRow
from covey.server.storage.repository import Repository

MAX_PENDING_PROPOSALS = 8  # proposals one account may have waiting for an answer

_CODE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")
_USER = re.compile(USER_ID_PATTERN)
_CONVERSATION = re.compile(f"^(?:{CONVERSATION_ID_PATTERN})$")


# --- pure rules ----------------------------------------------------------------------


def still_protected(band: AgeBand) -> bool:
    """A linked child keeps its guardians' protection (alerts, consent to remove) until it
    proves 16+: a band that lapsed to unverified is not proof of having grown up."""
    return band is not AgeBand.SIXTEEN_PLUS


def removal_outcome(*, by_guardian: bool, status: str,
                    child_band: AgeBand) -> Literal["removed", "removal_requested"]:
    """What removing a link does: a proposal is withdrawn or declined by either side; the
    guardian may always step down; the child needs the guardian's consent until 16+."""
    if status == "pending" or by_guardian or not still_protected(child_band):
        return "removed"
    return "removal_requested"


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """One alert before it has an id and a time: the only facts an alert can hold."""

    guardian: str
    child: str
    kind: Literal["report_filed", "contact_accepted", "high_risk_detection",
                  "removal_requested"]
    category: str | None = None
    other_user: str | None = None
    conversation_id: str | None = None
    detector: str | None = None
    code: str | None = None
    severity: str | None = None


def _code(value: str) -> str:
    """Codes come from the server's own vocabulary; anything else is shown as unknown."""
    return value if _CODE.match(value) else "unknown"


def alert_candidates(event: SafetyEvent) -> tuple[str, ...]:
    """The accounts whose guardians an event may concern."""
    if isinstance(event, ReportFiled):
        return (event.reporter,)
    if isinstance(event, ContactAccepted):
        return (event.requester, event.accepter)
    if isinstance(event, DetectionRaised) and event.alert_guardians:
        return tuple(dict.fromkeys(event.participants))
    return ()


def alert_drafts(event: SafetyEvent,
                 guardians: Mapping[str, Sequence[str]]) -> list[AlertDraft]:
    """Alerts for `event`, given each still-protected linked child's guardians.

    A guardian who is the other party (the reported account, the new contact, a member of
    the flagged conversation) is not told: a guardian who is the threat must not learn
    that the child reported or that a detector flagged them."""
    drafts: list[AlertDraft] = []
    if isinstance(event, ReportFiled):
        for guardian in guardians.get(event.reporter, ()):
            if guardian not in (event.reported_user, event.claimed_user):
                drafts.append(AlertDraft(guardian, event.reporter, "report_filed",
                                         category=_code(event.category)))
    elif isinstance(event, ContactAccepted):
        for child, other in ((event.requester, event.accepter),
                             (event.accepter, event.requester)):
            for guardian in guardians.get(child, ()):
                if guardian != other and _USER.match(other):
                    drafts.append(AlertDraft(guardian, child, "contact_accepted",
                                             other_user=other))
    elif isinstance(event, DetectionRaised) and event.alert_guardians:
        members = set(event.participants) | {event.sender_user}
        conversation = (event.conversation_id if _CONVERSATION.match(event.conversation_id)
                        else None)
        for child in dict.fromkeys(event.participants):
            for guardian in guardians.get(child, ()):
                if guardian not in members:
                    drafts.append(AlertDraft(
                        guardian, child, "high_risk_detection", conversation_id=conversation,
                        detector=_code(event.detector), code=_code(event.code),
                        severity=event.severity,
                        category=None if event.category is None else _code(event.category)))
    return drafts


def link_out(row: LinkRow) -> GuardianLink:
    return GuardianLink(link_id=row.link_id, child=row.child, guardian=row.guardian,
                        status=row.status,
                        proposed_by=row.proposed_by, created_at_ms=row.created_ms,
                        accepted_at_ms=row.accepted_ms,
                        removal_requested_at_ms=row.removal_requested_ms)


def alert_out(row: AlertRow) -> GuardianAlert:
    return GuardianAlert(
        alert_id=row.alert_id, guardian=row.guardian, child=row.child,
        kind=row.kind,
        created_at_ms=row.created_ms, acknowledged_at_ms=row.acknowledged_ms,
        category=row.category, other_user=row.other_user,
        conversation_id=row.conversation_id, detector=row.detector, code=row.code,
        severity=row.severity)


# --- the service ---------------------------------------------------------------------


class Visibility(Protocol):
    """The contact rules' answer to "may `viewer` find `target`?" (raises if not)."""

    async def check_visible(self, viewer: str, target: str) -> object: ...


class GuardianService:
    def __init__(self, repo: Repository, age: AgeService, directory: DeviceDirectory,
                 fanout: Fanout, events: SafetyEvents, visibility: Visibility) -> None:
        self._repo = repo
        self.storage = GuardianStorage(repo)
        self._age = age
        self._directory = directory
        self._fanout = fanout
        self._visibility = visibility
        events.subscribe(self.on_event)

    # --- links ---------------------------------------------------------------------------

    async def propose(self, principal: Principal, request: ProposeGuardianLink) -> GuardianLink:
        me, other = principal.user_id, request.user_id
        if other == me:
            raise InvalidInput("an account cannot be its own guardian", code="guardian_self",
                               details={"field": "user_id"})
        # Only the proposer's own band is checked now; the other account's when it answers.
        if request.role == "guardian":
            child, guardian = me, other
            await self._require_child(me)
            links = await self.storage.active_guardians([me])
            if len(links.get(me, ())) >= MAX_GUARDIANS:
                raise Conflict(f"an account can have at most {MAX_GUARDIANS} guardians",
                               code="too_many_guardians")
        else:
            child, guardian = other, me
            await self._require_guardian(me)
        existing = await self.storage.between(me, other)
        if existing is not None:  # both already know of each other: no oracle
            raise Conflict("you two already have a guardian link or proposal",
                           code="guardian_link_exists", details={"link_id": existing.link_id})
        # An account the contact rules hide (an under-16 the proposer is not a contact
        # of) gets the same answer as an unknown handle.
        try:
            if not await self._repo.user_exists(other):
                raise NotFound("no account with this handle")
            await self._visibility.check_visible(me, other)
        except NotFound:
            raise NotFound("no account with this handle", code="not_found") from None
        if await self.storage.blocked_either_way(me, other):
            raise Forbidden("you cannot link with this account",
                            code="guardian_link_not_permitted")
        row = LinkRow(link_id="gl_" + secrets.token_urlsafe(16).rstrip("="), child=child,
                      guardian=guardian, status="pending", proposed_by=me,
                      created_ms=now_ms(), accepted_ms=None, removal_requested_ms=None)
        link = link_out(await self.storage.create(row, max_pending=MAX_PENDING_PROPOSALS))
        frame = GuardianLinkFrame(link=link)  # the other side sees the proposal at once
        self._fanout.publish([(DeviceAddress(other, device), frame)
                              for device in await self._directory.devices(other)])
        return link

    async def accept(self, principal: Principal, link_id: str) -> GuardianLink:
        link = await self._party_view(principal, link_id)
        if link.status != "pending":
            raise Conflict("this link is not waiting to be accepted",
                           code="guardian_link_not_pending")
        if link.proposed_by == principal.user_id:
            raise Forbidden("the other account has to accept your proposal",
                            code="own_proposal")
        await self._require_child(link.child)
        await self._require_guardian(link.guardian)
        return link_out(await self.storage.activate(link_id, now_ms(),
                                                    max_guardians=MAX_GUARDIANS))

    async def remove(self, principal: Principal, link_id: str) -> GuardianRemoval:
        link = await self._party_view(principal, link_id)
        by_guardian = principal.user_id == link.guardian
        band = await self._age.band_of(link.child)
        outcome = removal_outcome(by_guardian=by_guardian, status=link.status, child_band=band)
        if outcome == "removed":
            await self.storage.remove(link_id, expect_status=(link.status,))
            return GuardianRemoval(link_id=link_id, outcome="removed")
        updated = await self.storage.request_removal(link_id, now_ms())
        if link.status == "active":
            await self._alert([AlertDraft(link.guardian, link.child, "removal_requested")])
        return GuardianRemoval(link_id=link_id, outcome="removal_requested",
                               link=link_out(updated))

    async def approve_removal(self, principal: Principal, link_id: str) -> GuardianRemoval:
        link = await self._party_view(principal, link_id)
        if principal.user_id != link.guardian:
            raise Forbidden("only the guardian can approve removing the link",
                            code="guardian_only")
        if link.status != "removal_requested":
            raise Conflict("the child has not asked to remove this link",
                           code="no_removal_requested")
        await self.storage.remove(link_id, expect_status=("removal_requested",))
        return GuardianRemoval(link_id=link_id, outcome="removed")

    async def links(self, principal: Principal) -> GuardianLinkList:
        return GuardianLinkList(links=[link_out(r)
                                       for r in await self.storage.links_of(principal.user_id)])

    async def _party_view(self, principal: Principal, link_id: str) -> LinkRow:
        link = await self.storage.get(link_id)
        if link is None or principal.user_id not in (link.child, link.guardian):
            # Same answer for "no such link" and "not yours": ids are not disclosed.
            raise NotFound("no such guardian link", code="unknown_guardian_link")
        return link

    async def _require_child(self, user_id: str) -> None:
        if await self._age.band_of(user_id) is not AgeBand.UNDER_16:
            raise Forbidden("only an account proven under 16 can have guardians",
                            code="child_must_be_under_16")

    async def _require_guardian(self, user_id: str) -> None:
        if await self._age.band_of(user_id) is not AgeBand.SIXTEEN_PLUS:
            raise Forbidden("a guardian must be an account proven 16 or over",
                            code="guardian_must_be_16_plus")

    # --- alerts --------------------------------------------------------------------------

    async def alerts(self, principal: Principal, *, unacknowledged: bool = False,
                     limit: int = 100) -> GuardianAlertList:
        """Alerts received as guardian, and those sent about this account as child (a
        child sees exactly what its guardians were told)."""
        rows = await self.storage.alerts_for(principal.user_id,
                                             unacknowledged=unacknowledged, limit=limit)
        return GuardianAlertList(alerts=[alert_out(r) for r in rows])

    async def acknowledge(self, principal: Principal, alert_ids: Sequence[str]) -> int:
        return await self.storage.acknowledge(principal.user_id, list(dict.fromkeys(alert_ids)),
                                              now_ms())

    async def on_event(self, event: SafetyEvent) -> None:
        """SafetyEvents subscriber: store and push the alerts an event calls for."""
        candidates = alert_candidates(event)
        if not candidates:
            return
        linked = await self.storage.active_guardians(candidates)
        protected = {child: guardians for child, guardians in linked.items()
                     if still_protected(await self._age.band_of(child))}
        await self._alert(alert_drafts(event, protected))

    async def _alert(self, drafts: Sequence[AlertDraft]) -> None:
        if not drafts:
            return
        at = now_ms()
        rows = [AlertRow(alert_id="ga_" + secrets.token_urlsafe(16).rstrip("="),
                         guardian=d.guardian, child=d.child, kind=d.kind, created_ms=at,
                         category=d.category, other_user=d.other_user,
                         conversation_id=d.conversation_id, detector=d.detector,
                         code=d.code, severity=d.severity) for d in drafts]
        await self.storage.add_alerts(rows)
        items: list[tuple[DeviceAddress, PushFrame]] = []
        for row in rows:
            frame = GuardianAlertFrame(alert=alert_out(row))
            for device_id in await self._directory.devices(row.guardian):
                items.append((DeviceAddress(row.guardian, device_id), frame))
        self._fanout.publish(items)


__all__ = ["AlertDraft", "GuardianService", "alert_drafts", "removal_outcome", "still_protected"]
