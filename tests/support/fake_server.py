"""An in-memory stand-in for the relay, driving `ClientCore`s against each other.

It follows docs/protocol.md: exact recipient sets, group epochs, one franking tag per
recipient user (a test server key), per-device mailboxes delivered in order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from covey.age import AgeBand
from covey.client._core import (
    ClientCore,
    MissingSessions,
    NeedDeviceLists,
    NeedGroup,
    NeedPolicy,
    OutboxEntry,
)
from covey.client._events import Event
from covey.client._store import Store
from covey.protocol._encoding import b64encode
from covey.protocol.content import MessageContent
from covey.protocol.franking import TagContext, server_tag
from covey.protocol.ids import dm_participants, is_group_id, new_device_id
from covey.protocol.safety_copy import (
    SafetyCopyContext,
    SafetyServicePrivateKey,
    open_safety_copy,
)
from covey.protocol.secrets import FrankingCommitment, ServerFrankingKey
from covey.protocol.wire import (
    ClaimResponse,
    Delivery,
    DeviceList,
    DeviceRef,
    GroupInfo,
    GroupMember,
    KeyBundle,
    PolicyStatement,
    SafetyKeys,
    SendEnvelope,
    SendReceipt,
    SignedKey,
)
from covey.safety.policy import (
    ConversationPolicy,
    PolicyConfig,
    conversation_policy,
    safety_keys_statement_bytes,
)

TEST_SCRYPT_N = 2**10
PASSPHRASE = "correct horse battery staple"


class Refused(Exception):
    def __init__(self, code: str, details: dict[str, object] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.details = details or {}


@dataclass
class _DeviceState:
    user_id: str
    device_id: str
    keys: object
    one_time_keys: list[SignedKey] = field(default_factory=list)
    fallback: SignedKey | None = None


@dataclass
class FakeServer:
    tmp: Path
    server_key: ServerFrankingKey = field(default_factory=ServerFrankingKey.generate)
    devices: dict[tuple[str, str], _DeviceState] = field(default_factory=dict)
    mailboxes: dict[tuple[str, str], list[Delivery]] = field(default_factory=dict)
    groups: dict[str, GroupInfo] = field(default_factory=dict)
    accepted: dict[tuple[str, str, str], int] = field(default_factory=dict)
    clock: itertools.count[int] = field(default_factory=lambda: itertools.count(1_700_000_000_000))
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    rotate_after: int = 100
    _paths: itertools.count[int] = field(default_factory=lambda: itertools.count())
    # The safety policy: every user is 16+ unless a test says otherwise.
    bands: dict[str, AgeBand] = field(default_factory=dict)
    policy_config: PolicyConfig = field(default_factory=PolicyConfig)
    signing_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    safety_key: SafetyServicePrivateKey = field(default_factory=SafetyServicePrivateKey.generate)
    # What the safety service opened: (conversation, sender, content).
    safety_copies: list[tuple[str, str, MessageContent]] = field(default_factory=list)

    # --- devices ----------------------------------------------------------------------

    def new_device(self, user_id: str) -> ClientCore:
        path = self.tmp / f"{user_id}-{next(self._paths)}.db"
        store = Store.create(path, PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
        core = ClientCore.create(store, user_id, new_device_id(), rotate_after=self.rotate_after)
        state = _DeviceState(user_id, core.device_id, core.device_keys())
        self.devices[(user_id, core.device_id)] = state
        self.mailboxes[(user_id, core.device_id)] = []
        self.upload_keys(core)
        return core

    def upload_keys(self, core: ClientCore) -> None:
        state = self.devices[(core.user_id, core.device_id)]
        request = core.keys_to_upload(len(state.one_time_keys))
        if request is None:
            return
        state.one_time_keys.extend(request.one_time_keys)
        if request.fallback_key is not None:
            state.fallback = request.fallback_key
        core.keys_published()

    def remove_device(self, core: ClientCore) -> None:
        del self.devices[(core.user_id, core.device_id)]
        del self.mailboxes[(core.user_id, core.device_id)]

    def device_list(self, user_id: str) -> DeviceList:
        return DeviceList(user_id=user_id, devices=[
            s.keys for (u, _), s in self.devices.items() if u == user_id])  # type: ignore[misc]

    def claim(self, refs: list[DeviceRef]) -> ClaimResponse:
        bundles, missing = [], []
        for ref in refs:
            state = self.devices.get((ref.user_id, ref.device_id))
            if state is None:
                missing.append(ref)
                continue
            if state.one_time_keys:
                bundles.append(KeyBundle(device=state.keys, one_time_key=state.one_time_keys.pop(0),
                                         fallback=False))
            elif state.fallback is not None:
                bundles.append(KeyBundle(device=state.keys, one_time_key=state.fallback,
                                         fallback=True))
            else:
                missing.append(ref)
        return ClaimResponse(bundles=bundles, missing=missing)

    # --- groups ----------------------------------------------------------------------

    def create_group(self, name: str, admin: str, members: list[str]) -> GroupInfo:
        group_id = f"grp_test{len(self.groups):06d}"
        info = GroupInfo(group_id=group_id, name=name, epoch=0, members=[
            GroupMember(user_id=admin, role="admin"),
            *[GroupMember(user_id=m, role="member") for m in members if m != admin]])
        self.groups[group_id] = info
        return info

    def set_members(self, group_id: str, members: list[str]) -> GroupInfo:
        old = self.groups[group_id]
        admin = old.members[0].user_id
        info = GroupInfo(group_id=group_id, name=old.name, epoch=old.epoch + 1, members=[
            GroupMember(user_id=admin, role="admin"),
            *[GroupMember(user_id=m, role="member") for m in members if m != admin]])
        self.groups[group_id] = info
        return info

    # --- safety policy ----------------------------------------------------------------

    def policy(self, conversation_id: str) -> ConversationPolicy:
        return conversation_policy(
            {u: self.bands.get(u, AgeBand.SIXTEEN_PLUS)
             for u in self.participants(conversation_id)}, self.policy_config)

    def safety_keys(self) -> SafetyKeys:
        public = self.safety_key.public_key()
        mode = self.policy_config.mode.value
        signature = self.signing_key.sign(safety_keys_statement_bytes(
            public.to_b64(), public.key_id(), mode))
        return SafetyKeys(policy_signing_key=b64encode(self.signing_key.public_key()
                                                       .public_bytes_raw()),
                          safety_service_key=public.to_b64(),
                          safety_service_key_id=public.key_id(), mode=mode,
                          signature=b64encode(signature))

    def policy_statement(self, conversation_id: str) -> PolicyStatement:
        epoch = self.groups[conversation_id].epoch if is_group_id(conversation_id) else 0
        issued = next(self.clock)
        policy = self.policy(conversation_id)
        signature = self.signing_key.sign(policy.statement_bytes(conversation_id, epoch, issued))
        return PolicyStatement.model_validate({
            "conversation_id": conversation_id, "epoch": epoch, "issued_at_ms": issued,
            "policy": policy.to_json(), "signature": b64encode(signature)})

    def fetch_policy(self, core: ClientCore, conversation_id: str) -> None:
        core.pin_safety_keys(self.safety_keys())
        core.update_policy(self.policy_statement(conversation_id))

    # --- messages ---------------------------------------------------------------------

    def participants(self, conversation_id: str) -> list[str]:
        pair = dm_participants(conversation_id)
        if pair is not None:
            return sorted(pair)
        return sorted(m.user_id for m in self.groups[conversation_id].members)

    def accept(self, sender: ClientCore, envelope: SendEnvelope) -> SendReceipt:
        key = (sender.user_id, sender.device_id, envelope.message_id)
        if key in self.accepted:
            return SendReceipt(message_id=envelope.message_id, server_ts_ms=self.accepted[key],
                               duplicate=True)
        participants = self.participants(envelope.conversation_id)
        if (is_group_id(envelope.conversation_id)
                and envelope.group_epoch != self.groups[envelope.conversation_id].epoch):
            raise Refused("stale_group_epoch")
        policy = self.policy(envelope.conversation_id)
        if policy.safety_copy_required:
            content = open_safety_copy(envelope.safety_copy, SafetyCopyContext(
                envelope.message_id, envelope.conversation_id, sender.user_id,
                sender.device_id, tuple(participants),
                FrankingCommitment.from_b64(envelope.commitment)), self.safety_key)
            self.safety_copies.append((envelope.conversation_id, sender.user_id, content))
        elif envelope.safety_copy is not None:
            raise Refused("safety_copy_not_expected")
        expected = {(u, d) for (u, d) in self.devices if u in participants} - {
            (sender.user_id, sender.device_id)}
        given = {(r.user_id, r.device_id) for r in envelope.recipients}
        if expected != given:
            raise Refused("device_list_mismatch", {"missing": sorted(expected - given),
                                                   "extra": sorted(given - expected)})
        now = next(self.clock)
        self.accepted[key] = now
        commitment = FrankingCommitment.from_b64(envelope.commitment)
        for recipient in envelope.recipients:
            tag = server_tag(self.server_key, commitment, TagContext(
                sender.user_id, sender.device_id, recipient.user_id, envelope.conversation_id,
                now, envelope.message_id))
            self.mailboxes[(recipient.user_id, recipient.device_id)].append(Delivery(
                seq=next(self.seq), message_id=envelope.message_id,
                conversation_id=envelope.conversation_id, sender_user=sender.user_id,
                sender_device=sender.device_id, server_ts_ms=now,
                commitment=envelope.commitment, franking_tag=tag.to_b64(),
                participants=participants, olm_type=recipient.olm_type, body=recipient.body,
                group=envelope.group, blob_ids=envelope.blob_ids or []))
        return SendReceipt(message_id=envelope.message_id, server_ts_ms=now, duplicate=False)

    # --- drivers: what the transport does ----------------------------------------------

    def prepare(self, core: ClientCore, to: str, text: str = "", **kw: object) -> OutboxEntry:
        for _ in range(10):
            try:
                return core.prepare(to, text=text, **kw)  # type: ignore[arg-type]
            except NeedDeviceLists as need:
                for user in need.users:
                    core.update_device_list(self.device_list(user))
            except NeedGroup as need:
                core.update_group(self.groups[need.group_id])
            except NeedPolicy as need:
                self.fetch_policy(core, need.conversation_id)
            except MissingSessions:
                self.fetch_sessions(core, core.conversation_for(to))
        raise AssertionError("prepare did not converge")

    def fetch_sessions(self, core: ClientCore, conversation_id: str) -> None:
        refs = core.devices_needing_sessions(conversation_id)
        if refs:
            refused = core.add_bundles(self.claim(refs).bundles)
            assert not refused, refused

    def flush(self, core: ClientCore) -> list[Event]:
        """Send the whole outbox, refreshing and rebuilding on the protocol's 409s."""
        events: list[Event] = []
        for entry in core.outbox():
            for _ in range(5):
                try:
                    for envelope in entry.pending:
                        event = core.envelope_accepted(entry.entry_id,
                                                       self.accept(core, envelope))
                        if event is not None:
                            events.append(event)
                    break
                except Refused as refused:
                    if refused.code == "stale_group_epoch":
                        core.update_group(self.groups[entry.conversation_id])
                    for user in self.participants(entry.conversation_id):
                        core.update_device_list(self.device_list(user))
                    self.fetch_sessions(core, entry.conversation_id)
                    self.fetch_policy(core, entry.conversation_id)
                    entry = core.rebuild(entry.entry_id)
        return events

    def send(self, core: ClientCore, to: str, text: str = "", **kw: object) -> str:
        if is_group_id(to):
            core.update_group(self.groups[to])
        entry = self.prepare(core, to, text, **kw)
        self.fetch_sessions(core, entry.conversation_id)
        self.flush(core)
        return entry.entry_id

    def take(self, core: ClientCore) -> list[Delivery]:
        box = self.mailboxes[(core.user_id, core.device_id)]
        taken = list(box)
        box.clear()
        return taken

    def receive(self, core: ClientCore, deliveries: list[Delivery]) -> list[Event]:
        events: list[Event] = []
        for delivery in deliveries:
            needed = core.sender_device_needed(delivery)
            if needed is not None:
                core.update_device_list(self.device_list(needed))
            events.extend(core.receive(delivery))
        return events

    def deliver(self, core: ClientCore) -> list[Event]:
        return self.receive(core, self.take(core))
