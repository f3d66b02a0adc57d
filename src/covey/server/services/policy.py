"""The safety policy on the relay: gathers the facts `covey.safety.policy` decides on
(bands, contacts, blocks, under-16 flags, request counts), asks it, and enforces the
answer. Also signs each conversation's policy for its clients (Ed25519, key file outside
the database), so a client shows what the server really applies.

Bands and direct-conversation decisions are cached for a few seconds per process (the
send path asks on every message); this process forgets them at once when it changes
one of their inputs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from covey.age import AgeBand
from covey.protocol._encoding import b64encode
from covey.protocol.ids import dm_participants
from covey.protocol.safety_copy import SafetyServicePrivateKey
from covey.protocol.wire import OnDeviceRules, PolicyStatement, SafetyKeys
from covey.safety.detectors import DetectorSet, rules_version
from covey.safety.detectors.phrase_list import PhraseListFile
from covey.safety.policy import (
    ContactAction,
    ContactDecision,
    ConversationPolicy,
    Member,
    Party,
    PolicyConfig,
    PolicyMode,
    Relationship,
    conversation_policy,
    decide_contact,
    decide_group_join,
    is_barred,
    on_device_rules_bytes,
    safety_keys_statement_bytes,
    unknown_account,
)
from covey.server.services._common import load_or_create_secret_file, now_ms
from covey.server.services.age import AgeService
from covey.server.services.safety_events import ReportFiled, SafetyEvent, UserBlocked
from covey.server.storage.safety_repo import SafetyRepository
from covey.settings import Settings

log = logging.getLogger(__name__)

_BAND_TTL_S = 5.0
_DM_TTL_S = 5.0
_CACHE_MAX = 50_000


@dataclass(frozen=True)
class Reach:
    """One account as another may see it (`PolicyService.reach`)."""

    exists: bool
    visible: bool  # may be looked up: found by handle, its devices, keys and DM policy
    stranger: bool  # not oneself, a contact or a fellow group member (rate-limited)
    contacts: bool
    viewer: Party
    target: Party
    relationship: Relationship


# Takes `cost` tokens from the caller's lookup rate limit, or raises `RateLimited`.
Charge = Callable[[int], None]


def policy_config(settings: Settings) -> PolicyConfig:
    return PolicyConfig(mode=settings.safety_mode,  # type: ignore[arg-type]
                        age_threshold_years=settings.age_threshold_years,
                        minor_block_report_threshold=settings.minor_block_report_threshold,
                        minor_contact_request_limit=settings.minor_contact_request_limit)


class PolicyService:
    def __init__(self, settings: Settings, store: SafetyRepository, age: AgeService) -> None:
        self.settings = settings
        self.config = policy_config(settings)
        self.store = store
        self._age = age
        self._signing = Ed25519PrivateKey.from_private_bytes(load_or_create_secret_file(
            settings.resolved_policy_signing_key_file(),
            lambda: Ed25519PrivateKey.generate().private_bytes_raw()))
        self.safety_key = SafetyServicePrivateKey(load_or_create_secret_file(
            settings.resolved_safety_service_key_file(),
            lambda: SafetyServicePrivateKey.generate().raw))
        self._bands: dict[str, tuple[float, AgeBand]] = {}
        self._policies: dict[tuple[tuple[str, AgeBand], ...], ConversationPolicy] = {}
        self._dm_allowed: dict[tuple[str, str], float] = {}
        self._withheld: dict[tuple[str, tuple[str, ...]], tuple[float, list[str]]] = {}
        # The operator's phrase list, for handles (detection reads it through `detectors`).
        self.phrases = PhraseListFile(settings.safety_phrase_list)
        # The detectors: on safety copies here, or as signed rules for on-device clients.
        self.detectors = DetectorSet(settings.detector_config())

    # --- facts -----------------------------------------------------------------------

    async def band(self, user_id: str) -> AgeBand:
        hit = self._bands.get(user_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < _BAND_TTL_S:
            return hit[1]
        band = await self._age.band_of(user_id)
        if len(self._bands) > _CACHE_MAX:
            self._bands.clear()
        self._bands[user_id] = (now, band)
        return band

    def forget(self, *users: str) -> None:
        """Inputs about these users changed here (band, contacts, blocks): ask again."""
        for user in users:
            self._bands.pop(user, None)
        gone = set(users)
        for key in [k for k in self._dm_allowed if gone & set(k)]:
            self._dm_allowed.pop(key, None)
        for group_key in [k for k in self._withheld if gone & {k[0], *k[1]}]:
            self._withheld.pop(group_key, None)

    async def party(self, user_id: str) -> Party:
        band = await self.band(user_id)
        # Counted for children too (the policy ignores it for them): the same queries for
        # every account, so timing tells no band.
        flags = await self.store.flag_count(user_id)
        return Party(user_id, band, under_age_blocks_and_reports=flags)

    async def requester(self, user_id: str) -> Party:
        """The party with its recent requests to under-16 accounts (for requests)."""
        party = await self.party(user_id)
        since = now_ms() - self.settings.minor_contact_request_window_s * 1000
        recent = await self.store.requests_to_under_age_since(user_id, since)
        return Party(party.user_id, party.band, party.under_age_blocks_and_reports, recent)

    async def relationship(self, actor: str, target: str) -> Relationship:
        blocked_by_actor = target in await self.store.blocks_of(actor)
        blocked_by_target = actor in await self.store.blocks_of(target)
        # A withheld request looks pending to its sender, so it answers as one.
        pending = await self.store.pending_between(actor, target, withheld=True) is not None
        cooldown_since = now_ms() - self.settings.contact_request_cooldown_s * 1000
        declined = await self.store.declined_since(actor, target, cooldown_since)
        return Relationship(contacts=await self.store.are_contacts(actor, target),
                            actor_blocked_target=blocked_by_actor,
                            target_blocked_actor=blocked_by_target, request_pending=pending,
                            declined_recently=declined)

    async def reach(self, viewer: str, target: str) -> Reach:
        """What `viewer` may know of `target`, from the same queries whether the account
        exists, is a child, or neither: lookups answer a hidden account exactly as an
        unknown one, in what they say and in the work they do."""
        exists = await self.store.user_exists(target)
        viewer_party = await self.party(viewer)
        target_party = await self.party(target)
        rel = await self.relationship(viewer, target)
        grouped = await self.store.share_a_group(viewer, target)
        asked_viewer = await self.store.pending_between(target, viewer) is not None
        found = decide_contact(ContactAction.FIND_BY_HANDLE, viewer_party, target_party, rel,
                               self.config)
        # Oneself, contacts, fellow group members and whoever asked the viewer to be a
        # contact are visible whatever the rules on finding them by handle.
        visible = exists and (viewer == target or rel.contacts or grouped or asked_viewer
                              or found.allowed)
        return Reach(exists=exists, visible=visible,
                     stranger=not (viewer == target or rel.contacts or grouped),
                     contacts=rel.contacts, viewer=viewer_party, target=target_party,
                     relationship=rel)

    # --- decisions ---------------------------------------------------------------------

    async def decide(self, action: ContactAction, actor: str, target: str, *,
                     actor_party: Party | None = None) -> ContactDecision:
        decision = decide_contact(action, actor_party or await self.party(actor),
                                  await self.party(target),
                                  await self.relationship(actor, target), self.config)
        if not decision.allowed:
            log.info("policy refused %s %s -> %s: %s", action.value, actor, target,
                     decision.code.value)
        return decision

    async def check(self, action: ContactAction, actor: str, target: str) -> None:
        (await self.decide(action, actor, target)).raise_if_refused()

    async def check_direct(self, sender: str, conversation_id: str) -> None:
        """A direct message may only go where the contact rules let the sender reach."""
        pair = dm_participants(conversation_id)
        if pair is None:
            return
        other = pair[1] if pair[0] == sender else pair[0]
        key = (sender, other)
        seen = self._dm_allowed.get(key)
        if seen is not None and time.monotonic() - seen < _DM_TTL_S:
            return
        # Someone the sender may not see (unknown, or a child hidden from it) gets the one
        # answer for both; only then the rules for those it can see.
        found = await self.reach(sender, other)
        if not found.visible:
            raise unknown_account()
        decision = decide_contact(ContactAction.OPEN_CONVERSATION, found.viewer,
                                  found.target, found.relationship, self.config)
        if not decision.allowed:
            log.info("policy refused %s %s -> %s: %s", decision.action.value, sender, other,
                     decision.code.value)
        decision.raise_if_refused()
        if len(self._dm_allowed) > _CACHE_MAX:
            self._dm_allowed.clear()
        self._dm_allowed[key] = time.monotonic()

    async def check_visible(self, viewer: str, target: str, *,
                            charge: Charge | None = None) -> Reach:
        """Device lists and key bundles are how one reaches someone: visible to oneself,
        contacts, fellow group members, who asked the viewer, and whoever could find the
        account by handle; anyone else gets exactly an unknown account's 404.

        `charge(1)` is called (and may refuse, 429) for a target that is not oneself, a
        contact or a fellow group member, whether it exists or not: probing strangers is
        rate-limited, talking to one's own people is not."""
        found = await self.reach(viewer, target)
        if charge is not None and found.stranger:
            charge(1)
        if not found.visible:
            raise unknown_account()
        return found

    async def check_join(self, joiner: str, members: Iterable[str], *,
                         adder: str | None = None) -> None:
        """May `joiner` enter a group of `members`, added by `adder` or by invite link?"""
        others = [m for m in members if m != joiner]
        group_members = [Member(await self.party(m), await self.relationship(joiner, m))
                         for m in others]
        joiner_party = await self.party(joiner)
        if adder is None:
            decision = decide_group_join(joiner_party, group_members, self.config)
        else:
            decision = decide_group_join(
                joiner_party, group_members, self.config, adder=await self.party(adder),
                adder_relationship=await self.relationship(adder, joiner))
        if not decision.allowed:
            log.info("policy refused %s of %s: %s (%s)", decision.action.value, joiner,
                     decision.code.value, decision.subject)
        decision.raise_if_refused()

    async def withheld_in(self, viewer: str, members: Sequence[str]) -> list[str]:
        """Members of a group `viewer` may no longer exchange messages with: the
        co-membership rules (a child and an unverified account, a child and someone not
        its contact, blocks where a child is involved), asked again now, not only at
        join. Only groups with an under-16 member can have any. Cached a few seconds."""
        others = sorted(m for m in set(members) if m != viewer)
        key = (viewer, tuple(others))
        hit = self._withheld.get(key)
        if hit is not None and time.monotonic() - hit[0] < _DM_TTL_S:
            return hit[1]
        bands = {m: await self.band(m) for m in [viewer, *others]}
        withheld: list[str] = []
        if AgeBand.UNDER_16 in bands.values():
            me = await self.party(viewer)
            for other in others:
                if AgeBand.UNDER_16 not in (bands[viewer], bands[other]):
                    continue
                decision = decide_group_join(me, [Member(await self.party(other),
                                                         await self.relationship(viewer,
                                                                                 other))],
                                             self.config)
                if not decision.allowed:
                    withheld.append(other)
        if len(self._withheld) > _CACHE_MAX:
            self._withheld.clear()
        self._withheld[key] = (time.monotonic(), withheld)
        return withheld

    # --- conversation policy --------------------------------------------------------------

    async def for_participants(self, participants: Sequence[str]) -> ConversationPolicy:
        bands = tuple(sorted([(u, await self.band(u)) for u in set(participants)]))
        found = self._policies.get(bands)
        if found is None:
            found = conversation_policy(dict(bands), self.config)
            if len(self._policies) > _CACHE_MAX:
                self._policies.clear()
            self._policies[bands] = found
        return found

    async def statement(self, conversation_id: str, participants: Sequence[str],
                        epoch: int, viewer: str) -> PolicyStatement:
        """The policy signed for `viewer`: it names no participant but the viewer among
        those whose devices scan (who else is a child stays unsaid)."""
        policy = await self.for_participants(participants)
        policy = replace(policy, on_device_detection_users=(
            policy.on_device_detection_users & {viewer}))
        issued = now_ms()
        signature = self._signing.sign(policy.statement_bytes(conversation_id, epoch, issued))
        return PolicyStatement(conversation_id=conversation_id, epoch=epoch,
                               issued_at_ms=issued, policy=policy.to_json(),
                               signature=b64encode(signature))

    def keys(self) -> SafetyKeys:
        public = self.safety_key.public_key()
        signature = self._signing.sign(safety_keys_statement_bytes(
            public.to_b64(), public.key_id(), self.config.mode.value))
        return SafetyKeys(
            policy_signing_key=b64encode(self._signing.public_key().public_bytes(
                Encoding.Raw, PublicFormat.Raw)),
            safety_service_key=public.to_b64(), safety_service_key_id=public.key_id(),
            mode=self.config.mode.value, signature=b64encode(signature))

    def on_device_rules(self) -> OnDeviceRules:
        """The detector rules on-device clients scan with (none in other modes)."""
        rules: Mapping[str, str] = {}
        if self.config.mode is PolicyMode.ON_DEVICE:
            rules = self.detectors.rules().rules
        mode, version = self.config.mode.value, rules_version(rules)
        return OnDeviceRules(mode=mode, version=version, detectors=dict(rules),
                             signature=b64encode(self._signing.sign(
                                 on_device_rules_bytes(mode, version, rules))))

    # --- events --------------------------------------------------------------------------

    async def on_band_proven(self, user_id: str, band: AgeBand) -> None:
        """A proof of 16+ ends what says the account was once a child (docs/
        safety-policy.md, "Band history"); the retention job sweeps any left behind."""
        self.forget(user_id)
        if band is AgeBand.SIXTEEN_PLUS:
            await self.store.forget_under_age_history([user_id])

    async def on_event(self, event: SafetyEvent) -> None:
        """Under-16 accounts' blocks and reports count toward barring the other account."""
        if isinstance(event, UserBlocked):
            actor, target, kind = event.blocker, event.blocked, "block"
        elif isinstance(event, ReportFiled) and event.reported_user is not None:
            actor, target, kind = event.reporter, event.reported_user, "report"
        else:
            return
        self.forget(actor, target)
        if await self.band(actor) is AgeBand.UNDER_16:
            await self.store.add_flag(target, actor, kind, now_ms())
            if is_barred(await self.party(target), self.config):
                # A bar covers requests sent before it: they leave the children's inboxes.
                withheld = await self.store.withhold_requests_to_under_age(target)
                if withheld:
                    log.info("bar withheld %d pending requests to children", withheld)
