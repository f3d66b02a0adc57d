"""The age-aware safety policy: the one place it is evaluated. Pure, no I/O.

Given the operator's `PolicyConfig` and facts the server already holds (age bands,
contacts, blocks, how many under-16 accounts blocked or reported someone), it decides
how a conversation is protected and whether one account may reach another. Every
decision carries a stable machine code and a sentence a person can read.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from covey.age.bands import DEFAULT_THRESHOLD_YEARS, AgeBand
from covey.errors import Forbidden, InvalidInput, NotFound
from covey.protocol._encoding import canonical_json, labelled

DEFAULT_MINOR_BLOCK_REPORT_THRESHOLD = 3
DEFAULT_MINOR_CONTACT_REQUEST_LIMIT = 10


class PolicyMode(enum.StrEnum):
    """The operator's choice for conversations with an under-16 or unverified user."""

    SAFEGUARDED = "safeguarded"
    ON_DEVICE = "on-device"
    E2EE_ONLY = "e2ee-only"


@dataclass(frozen=True)
class PolicyConfig:
    """Operator settings the policy reads (the server builds it from `Settings`)."""

    mode: PolicyMode = PolicyMode.SAFEGUARDED
    age_threshold_years: int = DEFAULT_THRESHOLD_YEARS
    # Distinct under-16 accounts that blocked or reported an account before it may no
    # longer send contact requests to (or receive them from) under-16 accounts.
    minor_block_report_threshold: int = DEFAULT_MINOR_BLOCK_REPORT_THRESHOLD
    # Contact requests to under-16 accounts one account may send per rate window (the
    # server owns the window and counts; the policy compares).
    minor_contact_request_limit: int = DEFAULT_MINOR_CONTACT_REQUEST_LIMIT

    def __post_init__(self) -> None:
        if not isinstance(self.mode, PolicyMode):
            object.__setattr__(self, "mode", parse_mode(str(self.mode)))
        if not 1 <= self.age_threshold_years <= 30:
            raise InvalidInput("age_threshold_years must be between 1 and 30")
        if self.minor_block_report_threshold < 1:
            raise InvalidInput("minor_block_report_threshold must be at least 1")
        if self.minor_contact_request_limit < 0:
            raise InvalidInput("minor_contact_request_limit must not be negative")


def parse_mode(value: str) -> PolicyMode:
    try:
        return PolicyMode(value)
    except ValueError as exc:
        choices = ", ".join(mode.value for mode in PolicyMode)
        raise InvalidInput(f"unknown policy mode {value!r}; choose one of {choices}") from exc


# --- conversation protection ---------------------------------------------------------


class Protection(enum.StrEnum):
    """How a conversation is protected, as clients show it."""

    END_TO_END = "end-to-end"
    SAFEGUARDED = "safeguarded"
    ON_DEVICE_DETECTION = "on-device-detection"


@dataclass(frozen=True)
class ConversationPolicy:
    """What a conversation gets, and what every participant's client must show."""

    mode: PolicyMode
    protection: Protection
    code: str
    label: str  # the short banner every client shows, e.g. "end-to-end encrypted"
    reason: str  # the full sentence behind the banner
    safety_copy_required: bool  # every envelope carries a copy sealed to the safety service
    server_detection: bool  # the safety service scans the copies
    on_device_detection_users: frozenset[str]  # whose own clients run the detectors
    age_threshold_years: int

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "protection": self.protection.value,
            "code": self.code,
            "label": self.label,
            "reason": self.reason,
            "safety_copy_required": self.safety_copy_required,
            "server_detection": self.server_detection,
            "on_device_detection_users": sorted(self.on_device_detection_users),
            "age_threshold_years": self.age_threshold_years,
        }

    def statement_bytes(self, conversation_id: str, epoch: int, issued_at_ms: int) -> bytes:
        """What the server signs when it tells clients this conversation's policy."""
        return policy_statement_bytes(conversation_id, epoch, issued_at_ms, self.to_json())


def policy_statement_bytes(conversation_id: str, epoch: int, issued_at_ms: int,
                           policy: Mapping[str, Any]) -> bytes:
    """`covey/conversation-policy/v1 NUL JCS({conversation_id, epoch, issued_at_ms,
    policy})`: what the server signs (Ed25519) and every client verifies."""
    return labelled(
        "conversation-policy",
        {
            "conversation_id": conversation_id,
            "epoch": epoch,
            "issued_at_ms": issued_at_ms,
            "policy": dict(policy),
        },
    )


def on_device_rules_bytes(mode: str, version: str, detectors: Mapping[str, str]) -> bytes:
    """`covey/on-device-rules/v2 NUL JCS({mode, version, detectors})`, signed by the policy
    key (v2: generic detector rules; v1 carried a phrase list)."""
    return b"covey/on-device-rules/v2\x00" + canonical_json(
        {"mode": mode, "version": version, "detectors": dict(detectors)})


def safety_keys_statement_bytes(safety_key_b64: str, key_id: str, mode: str) -> bytes:
    """`covey/safety-service-key/v1 NUL JCS({x25519, key_id, mode})`: what the policy key
    signs about the key safety copies are sealed to."""
    return labelled("safety-service-key", {"x25519": safety_key_b64, "key_id": key_id,
                                           "mode": mode})


def needs_safeguarding(band: AgeBand) -> bool:
    """Under-16 and unverified users are the ones the policy protects."""
    return band is not AgeBand.SIXTEEN_PLUS


def conversation_policy(
    participants: Mapping[str, AgeBand], config: PolicyConfig
) -> ConversationPolicy:
    """Decide a conversation's protection from its participants' bands (user id -> band).

    The reason never says which participant triggered safeguarding: the banner must not
    become a way to find out who in a group is a child.
    """
    if not participants:
        raise InvalidInput("a conversation needs at least one participant")
    bands = {AgeBand(band) for band in participants.values()}
    protected = frozenset(user for user, band in participants.items()
                          if needs_safeguarding(AgeBand(band)))
    age = config.age_threshold_years
    if bands == {AgeBand.SIXTEEN_PLUS}:
        return ConversationPolicy(
            protection=Protection.END_TO_END,
            code="e2ee.all_verified_adult",
            label="end-to-end encrypted",
            reason=(f"end-to-end encrypted: every participant is verified {age} or over, so "
                    "only their devices can read this conversation"),
            safety_copy_required=False,
            server_detection=False,
            on_device_detection_users=frozenset(),
            mode=config.mode,
            age_threshold_years=age,
        )
    if config.mode is PolicyMode.SAFEGUARDED:
        return ConversationPolicy(
            protection=Protection.SAFEGUARDED,
            code="safeguarded.under_age_or_unverified",
            label="safeguarded",
            reason=(f"safeguarded: the safety service can read this conversation because a "
                    f"participant is under {age} or unverified"),
            safety_copy_required=True,
            server_detection=True,
            on_device_detection_users=frozenset(),
            mode=config.mode,
            age_threshold_years=age,
        )
    if config.mode is PolicyMode.ON_DEVICE:
        return ConversationPolicy(
            protection=Protection.ON_DEVICE_DETECTION,
            code="on_device.under_age_or_unverified",
            label="end-to-end encrypted, with on-device safety checks",
            reason=(f"end-to-end encrypted with on-device safety checks: a participant is "
                    f"under {age} or unverified, so their own device checks messages and "
                    "warns them; nothing leaves the device unless someone reports it"),
            safety_copy_required=False,
            server_detection=False,
            on_device_detection_users=protected,
            mode=config.mode,
            age_threshold_years=age,
        )
    return ConversationPolicy(
        protection=Protection.END_TO_END,
        code="e2ee_only.under_age_or_unverified",
        label="end-to-end encrypted",
        reason=(f"end-to-end encrypted: a participant is under {age} or unverified; "
                "nobody but the participants can read this conversation, and any "
                "participant can report a message"),
        safety_copy_required=False,
        server_detection=False,
        on_device_detection_users=frozenset(),
        mode=config.mode,
        age_threshold_years=age,
    )


# --- contact rules -------------------------------------------------------------------


class ContactAction(enum.StrEnum):
    OPEN_CONVERSATION = "open_conversation"
    SEND_CONTACT_REQUEST = "send_contact_request"
    FIND_BY_HANDLE = "find_by_handle"
    ADD_TO_GROUP = "add_to_group"
    JOIN_BY_INVITE = "join_by_invite"  # redeeming an invite link; checked against each member


class ContactCode(enum.StrEnum):
    """Precise decision codes, for logs, audits and tests. Not all are shown to the actor."""

    ALLOWED = "allowed"
    SELF = "self"
    BLOCKED_BY_TARGET = "blocked_by_target"
    ACTOR_BLOCKED_TARGET = "actor_blocked_target"
    UNVERIFIED_WITH_UNDER_AGE = "unverified_with_under_age"
    UNDER_AGE_NEEDS_CONTACT = "under_age_needs_accepted_contact"
    UNDER_AGE_NOT_DISCOVERABLE = "under_age_not_discoverable"
    BARRED_FROM_UNDER_AGE = "barred_from_under_age"
    UNDER_AGE_REQUEST_LIMIT = "under_age_request_limit"
    CONTACTS_ONLY = "target_accepts_contacts_only"
    ALREADY_CONTACTS = "already_contacts"
    REQUEST_PENDING = "request_pending"
    DECLINED_RECENTLY = "declined_recently"


# Refusals of a contact request whose cause the sender must not learn (that the target
# is a child, blocked them, or that they are barred or over a limit): the request is
# answered like any other and kept as `withheld`, which its target never sees.
WITHHELD_REQUEST_CODES = frozenset({
    ContactCode.BLOCKED_BY_TARGET, ContactCode.UNVERIFIED_WITH_UNDER_AGE,
    ContactCode.BARRED_FROM_UNDER_AGE, ContactCode.UNDER_AGE_REQUEST_LIMIT,
})


class PublicCode(enum.StrEnum):
    """What the actor is told. Deliberately coarse: a refusal must not reveal that the
    target is under age (a handle-by-handle oracle for finding children)."""

    ALLOWED = "allowed"
    NOT_FOUND = "not_found"
    CONTACT_REQUEST_REQUIRED = "contact_request_required"
    CONTACT_NOT_PERMITTED = "contact_not_permitted"
    UNBLOCK_FIRST = "unblock_first"
    ALREADY_CONTACTS = "already_contacts"
    REQUEST_PENDING = "request_pending"
    ASK_AGAIN_LATER = "ask_again_later"


_PUBLIC_REASONS: dict[PublicCode, str] = {
    PublicCode.ALLOWED: "allowed",
    PublicCode.NOT_FOUND: "no account with this handle",
    PublicCode.CONTACT_REQUEST_REQUIRED: (
        "this account accepts messages only from its contacts; send it a contact request"),
    PublicCode.CONTACT_NOT_PERMITTED: "you can't contact this account",
    PublicCode.UNBLOCK_FIRST: "you blocked this account; unblock it first",
    PublicCode.ALREADY_CONTACTS: "you are already contacts",
    PublicCode.REQUEST_PENDING: "you already sent this account a contact request",
    PublicCode.ASK_AGAIN_LATER: (
        "this account declined your last contact request; you can ask again later"),
}


@dataclass(frozen=True)
class Party:
    """One account as the policy sees it."""

    user_id: str
    band: AgeBand
    # Distinct under-16 accounts that have blocked or reported this account.
    under_age_blocks_and_reports: int = 0
    # Contact requests this account sent to under-16 accounts in the current rate window.
    recent_requests_to_under_age: int = 0
    # An account preference; it also gives refusals to reach a child a common cover.
    contacts_only: bool = False


@dataclass(frozen=True)
class Relationship:
    """Facts between an actor and a target, from the actor's side."""

    # A contact request between them was accepted (in either direction: a request the
    # child sent and the adult accepted was the child's own choice too).
    contacts: bool = False
    actor_blocked_target: bool = False
    target_blocked_actor: bool = False
    request_pending: bool = False  # the actor already has a pending request to the target
    # The target declined the actor's request within the cooldown (the server's setting).
    declined_recently: bool = False


NO_RELATIONSHIP = Relationship()


class ContactRefused(Forbidden):
    """Raised from a refused `ContactDecision`; carries only the public code."""

    code = "contact_not_permitted"


@dataclass(frozen=True)
class ContactDecision:
    action: ContactAction
    allowed: bool
    code: ContactCode
    reason: str  # precise, for operators and audit logs
    public_code: PublicCode
    public_reason: str  # safe to show the actor
    subject: str | None = None  # for group joins: the member that caused a refusal

    @property
    def withheld(self) -> bool:
        """A refused contact request the sender is not told about (see
        `WITHHELD_REQUEST_CODES`)."""
        return (self.action is ContactAction.SEND_CONTACT_REQUEST
                and self.code in WITHHELD_REQUEST_CODES)

    def raise_if_refused(self) -> None:
        if self.allowed:
            return
        if self.public_code is PublicCode.NOT_FOUND:
            # Exactly what an unknown handle gets: no details, nothing to tell them apart.
            raise unknown_account()
        status = 409 if self.public_code is PublicCode.ASK_AGAIN_LATER else None
        raise ContactRefused(self.public_reason, code=self.public_code.value, status=status,
                             details={"action": self.action.value})


def unknown_account() -> NotFound:
    """The one answer for an account that does not exist or that the caller may not see."""
    return NotFound(_PUBLIC_REASONS[PublicCode.NOT_FOUND], code=PublicCode.NOT_FOUND.value)


def is_under_age(party: Party) -> bool:
    return party.band is AgeBand.UNDER_16


def is_barred(party: Party, config: PolicyConfig) -> bool:
    """An account blocked or reported by enough under-16 accounts loses access to them."""
    return (not is_under_age(party)
            and party.under_age_blocks_and_reports >= config.minor_block_report_threshold)


def _decision(action: ContactAction, code: ContactCode, reason: str,
              public: PublicCode | None = None, subject: str | None = None) -> ContactDecision:
    allowed = code is ContactCode.ALLOWED
    if public is None:
        public = PublicCode.ALLOWED if allowed else PublicCode.CONTACT_NOT_PERMITTED
    if action is ContactAction.FIND_BY_HANDLE and not allowed:
        public = PublicCode.NOT_FOUND
    return ContactDecision(action, allowed, code, reason, public, _PUBLIC_REASONS[public],
                           subject)


def decide_contact(action: ContactAction, actor: Party, target: Party,
                   relationship: Relationship, config: PolicyConfig) -> ContactDecision:
    """May `actor` do `action` to `target`? Holds in every policy mode.

    For `ADD_TO_GROUP` this is the adder against the added account; `decide_group_join`
    also checks the newcomer against every member. For `JOIN_BY_INVITE` it is the joiner
    against one member.
    """
    if action is ContactAction.JOIN_BY_INVITE:
        return _membership(action, actor, target, relationship, config)
    age = config.age_threshold_years
    rel = relationship
    if actor.user_id == target.user_id:
        return _decision(action, ContactCode.SELF, "an account cannot contact itself")
    if rel.target_blocked_actor:
        return _decision(action, ContactCode.BLOCKED_BY_TARGET, "the target blocked the actor")
    if rel.actor_blocked_target and action is not ContactAction.FIND_BY_HANDLE:
        return _decision(action, ContactCode.ACTOR_BLOCKED_TARGET,
                         "the actor blocked the target", PublicCode.UNBLOCK_FIRST)
    under = [party for party in (actor, target) if is_under_age(party)]
    if len(under) == 1:
        child = under[0]
        other = target if child is actor else actor
        if other.band is AgeBand.UNVERIFIED:
            return _decision(action, ContactCode.UNVERIFIED_WITH_UNDER_AGE,
                             f"unverified accounts cannot contact accounts under {age}, "
                             "nor be contacted by them")
        return _adult_and_child(action, actor, target, child, other, rel, config)
    return _peers(action, actor, target, rel)


def _adult_and_child(action: ContactAction, actor: Party, target: Party, child: Party,
                     adult: Party, rel: Relationship, config: PolicyConfig) -> ContactDecision:
    age = config.age_threshold_years
    allowed = _decision(action, ContactCode.ALLOWED, "allowed")
    if action is ContactAction.FIND_BY_HANDLE:
        if target is child and not rel.contacts:
            return _decision(action, ContactCode.UNDER_AGE_NOT_DISCOVERABLE,
                             f"accounts under {age} are not discoverable by handle from "
                             f"accounts {age} or over unless already contacts")
        return allowed
    if action is ContactAction.SEND_CONTACT_REQUEST:
        if rel.contacts:
            return _decision(action, ContactCode.ALREADY_CONTACTS, "already contacts",
                             PublicCode.ALREADY_CONTACTS)
        if is_barred(adult, config):
            return _decision(action, ContactCode.BARRED_FROM_UNDER_AGE,
                             f"blocked or reported by {adult.under_age_blocks_and_reports} "
                             f"accounts under {age} (threshold "
                             f"{config.minor_block_report_threshold}): no new contacts under "
                             f"{age}")
        if rel.request_pending:
            return _decision(action, ContactCode.REQUEST_PENDING, "a request is pending",
                             PublicCode.REQUEST_PENDING)
        if rel.declined_recently:
            return _declined_recently(action)
        if actor is adult and (actor.recent_requests_to_under_age
                               >= config.minor_contact_request_limit):
            # Reported to the actor as a plain refusal: "rate limited" only for children's
            # handles would tell an adult which handles are children.
            return _decision(action, ContactCode.UNDER_AGE_REQUEST_LIMIT,
                             f"{actor.recent_requests_to_under_age} requests to accounts "
                             f"under {age} this window (limit "
                             f"{config.minor_contact_request_limit})")
        return allowed
    # OPEN_CONVERSATION, ADD_TO_GROUP: the child must have accepted this contact.
    if not rel.contacts:
        return _decision(action, ContactCode.UNDER_AGE_NEEDS_CONTACT,
                         f"an account {age} or over and an account under {age} need an "
                         "accepted contact request first",
                         PublicCode.CONTACT_REQUEST_REQUIRED)
    return allowed


def _declined_recently(action: ContactAction) -> ContactDecision:
    return _decision(action, ContactCode.DECLINED_RECENTLY,
                     "the target declined the actor's last request within the cooldown",
                     PublicCode.ASK_AGAIN_LATER)


def _peers(action: ContactAction, actor: Party, target: Party,
           rel: Relationship) -> ContactDecision:
    """Two accounts of which neither or both are under age."""
    if action is ContactAction.FIND_BY_HANDLE:
        return _decision(action, ContactCode.ALLOWED, "allowed")
    if action is ContactAction.SEND_CONTACT_REQUEST:
        if rel.contacts:
            return _decision(action, ContactCode.ALREADY_CONTACTS, "already contacts",
                             PublicCode.ALREADY_CONTACTS)
        if rel.request_pending:
            return _decision(action, ContactCode.REQUEST_PENDING, "a request is pending",
                             PublicCode.REQUEST_PENDING)
        if rel.declined_recently:
            return _declined_recently(action)
        return _decision(action, ContactCode.ALLOWED, "allowed")
    if is_under_age(target) and not rel.contacts:
        # Only accepted contacts message a child, another child included.
        return _decision(action, ContactCode.UNDER_AGE_NEEDS_CONTACT,
                         "an account under the age threshold is reached only by accepted "
                         "contacts", PublicCode.CONTACT_REQUEST_REQUIRED)
    if target.contacts_only and not rel.contacts:
        return _decision(action, ContactCode.CONTACTS_ONLY,
                         "the target accepts conversations only from contacts",
                         PublicCode.CONTACT_REQUEST_REQUIRED)
    return _decision(action, ContactCode.ALLOWED, "allowed")


def _membership(action: ContactAction, joiner: Party, member: Party, rel: Relationship,
                config: PolicyConfig) -> ContactDecision:
    """May `joiner` share a group with `member`? Only the child-protection rules apply:
    adults who block each other can still share a group (their clients hide each other)."""
    age = config.age_threshold_years
    subject = member.user_id
    if joiner.user_id == member.user_id:
        return _decision(action, ContactCode.ALLOWED, "allowed", subject=subject)
    under = [party for party in (joiner, member) if is_under_age(party)]
    if under and rel.target_blocked_actor:
        return _decision(action, ContactCode.BLOCKED_BY_TARGET,
                         "a member blocked the joiner", subject=subject)
    if under and rel.actor_blocked_target:
        return _decision(action, ContactCode.ACTOR_BLOCKED_TARGET,
                         "the joiner blocked a member", PublicCode.UNBLOCK_FIRST,
                         subject=subject)
    if len(under) == 1:
        other = member if under[0] is joiner else joiner
        if other.band is AgeBand.UNVERIFIED:
            return _decision(action, ContactCode.UNVERIFIED_WITH_UNDER_AGE,
                             f"unverified accounts cannot share a conversation with accounts "
                             f"under {age}", subject=subject)
    if under and not rel.contacts:
        return _decision(action, ContactCode.UNDER_AGE_NEEDS_CONTACT,
                         f"every member under {age} of a conversation and every other "
                         "member must be accepted contacts",
                         PublicCode.CONTACT_REQUEST_REQUIRED, subject=subject)
    return _decision(action, ContactCode.ALLOWED, "allowed", subject=subject)


@dataclass(frozen=True)
class Member:
    """A current group member and the joiner's relationship to them."""

    party: Party
    relationship: Relationship = NO_RELATIONSHIP


def decide_group_join(joiner: Party, members: Sequence[Member], config: PolicyConfig, *,
                      adder: Party | None = None,
                      adder_relationship: Relationship = NO_RELATIONSHIP) -> ContactDecision:
    """May `joiner` enter a group? Added by `adder` (`ADD_TO_GROUP`) or, without an adder,
    through an invite link (`JOIN_BY_INVITE`). An invite link is never a way around the
    contact rules: the joiner is checked against every member, as an add is."""
    action = ContactAction.JOIN_BY_INVITE if adder is None else ContactAction.ADD_TO_GROUP
    if adder is not None:
        first = decide_contact(ContactAction.ADD_TO_GROUP, adder, joiner, adder_relationship,
                               config)
        if not first.allowed:
            return first
    for member in sorted(members, key=lambda m: m.party.user_id):
        decision = _membership(action, joiner, member.party, member.relationship, config)
        if not decision.allowed:
            return decision
    return _decision(action, ContactCode.ALLOWED, "allowed")


# --- notices -------------------------------------------------------------------------


@dataclass(frozen=True)
class SafetyNotice:
    code: str
    text: str


def contact_safety_notice(viewer: Party, other: Party,
                          config: PolicyConfig) -> SafetyNotice | None:
    """The notice an under-age viewer sees next to a contact many children avoided."""
    if is_under_age(viewer) and is_barred(other, config):
        return SafetyNotice(
            code="contact_flagged_by_young_people",
            text=("Several young people have blocked or reported this account. You can "
                  "block or report it with one tap, and you don't have to reply."),
        )
    return None
