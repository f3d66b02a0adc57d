"""The sans-I/O client core: device lists, key bundles and deliveries in; envelopes and
events out. It knows nothing of sockets: the transport fetches what `NeedDeviceLists`
or `devices_needing_sessions` asks for and sends what the outbox holds.

Every state change (ratchets, seen ids, history, outbox) is written to the encrypted
store in one transaction per operation, so a crash never leaves ratchets ahead of the
messages that advanced them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from covey.client._events import (
    Event,
    FrankingEvidence,
    IncomingMessage,
    MessageDropped,
    MessageSent,
    RoomKeyReceived,
    SendFailed,
)
from covey.client._policy import KnownPolicy, check_safety_keys, check_statement
from covey.client._store import Record, Store
from covey.crypto import (
    DeviceAccount,
    InboundGroupSession,
    OlmMessage,
    OlmSession,
    OutboundGroupSession,
    VerifiedDevice,
    verify_bundle,
    verify_device_keys,
)
from covey.errors import CoveyError, CryptoError, InvalidInput
from covey.protocol.content import AttachmentRef, MessageContent, RoomKey, pad, unpad
from covey.protocol.franking import FrankingContext, commit, opens
from covey.protocol.ids import (
    dm_conversation_id,
    dm_participants,
    is_group_id,
    new_message_id,
)
from covey.protocol.safety_copy import (
    SafetyCopyContext,
    SafetyServicePublicKey,
    seal_safety_copy,
)
from covey.protocol.secrets import FrankingCommitment, FrankingKey, FrankingTag
from covey.protocol.wire import (
    ConversationPolicyBody,
    Delivery,
    DeviceKeys,
    DeviceList,
    DeviceRef,
    GroupCiphertext,
    GroupInfo,
    KeyBundle,
    KeysUploadRequest,
    PolicyStatement,
    RecipientCiphertext,
    SafetyCopy,
    SafetyKeys,
    SendEnvelope,
    SendReceipt,
)

ContentKind = Literal["text", "attachment", "room_key"]
DEFAULT_ROTATE_AFTER = 100
MAX_SESSIONS_PER_DEVICE = 8

# Store record kinds.
_DEVICE = "device"
_DEVICES = "devices"
_PINS = "pins"
_OLM = "olm"
_GROUPS = "groups"
_MEGOLM_OUT = "megolm_out"
_MEGOLM_IN = "megolm_in"
_WAITING = "waiting_for_key"
_OUTBOX = "outbox"
_SEEN = "seen"
_HISTORY = "history"
_INBOX = "inbox"
_POLICY = "policy"
_SAFETY_KEYS = "safety_keys"
_DECLARED_BLOBS = "declared_blobs"  # blob ids an envelope declared (ours or received)


class ClientError(CoveyError):
    """A client-side problem: unknown conversation, missing keys, refused send."""

    code = "client_error"


class NeedDeviceLists(ClientError):
    """The core needs these users' device lists before it can go on."""

    code = "need_device_lists"

    def __init__(self, users: list[str]) -> None:
        super().__init__(f"device lists needed for {', '.join(users)}")
        self.users = users


class NeedGroup(ClientError):
    code = "need_group"

    def __init__(self, group_id: str) -> None:
        super().__init__(f"group {group_id} is not known to this device")
        self.group_id = group_id


class MissingSessions(ClientError):
    """No Olm session (and no claimable key) for these devices."""

    code = "missing_sessions"

    def __init__(self, devices: list[DeviceRef]) -> None:
        names = ", ".join(f"{d.user_id}/{d.device_id}" for d in devices)
        super().__init__(f"no Olm session with {names}")
        self.devices = devices


class NeedPolicy(ClientError):
    """The conversation's signed policy (and the server's safety keys) must be fetched."""

    code = "need_policy"

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"need the policy of {conversation_id}")
        self.conversation_id = conversation_id


@dataclass(frozen=True)
class OutboxEntry:
    """One message waiting for the server: its envelopes are sent in order, verbatim."""

    entry_id: str
    conversation_id: str
    content: MessageContent
    envelopes: tuple[SendEnvelope, ...]
    next_index: int

    @property
    def pending(self) -> tuple[SendEnvelope, ...]:
        return self.envelopes[self.next_index:]

    def to_record(self) -> Record:
        return {
            "entry_id": self.entry_id,
            "conversation_id": self.conversation_id,
            "content": self.content.model_dump(mode="json"),
            "envelopes": [e.model_dump(mode="json", exclude_none=True) for e in self.envelopes],
            "next_index": self.next_index,
        }

    @classmethod
    def from_record(cls, record: Record) -> OutboxEntry:
        return cls(
            entry_id=record["entry_id"],
            conversation_id=record["conversation_id"],
            content=MessageContent.model_validate(record["content"]),
            envelopes=tuple(SendEnvelope.model_validate(e) for e in record["envelopes"]),
            next_index=int(record["next_index"]),
        )


def inbox_key(conversation_id: str, sender_user: str, message_id: str) -> str:
    """The store key of a received message (history and unread inbox)."""
    return f"{conversation_id}|{sender_user}|{message_id}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Drop(Exception):
    """Internal control flow: a delivery to report as dropped; never escapes the core."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ClientCore:
    """One device's protocol state machine over an encrypted `Store`."""

    def __init__(self, store: Store, account: DeviceAccount, *,
                 rotate_after: int = DEFAULT_ROTATE_AFTER,
                 clock: Callable[[], int] = _now_ms) -> None:
        if rotate_after < 1:
            raise InvalidInput("rotate_after must be at least 1")
        self.store = store
        self._account = account
        self.rotate_after = rotate_after
        self._clock = clock

    # --- lifecycle -------------------------------------------------------------------

    @classmethod
    def create(cls, store: Store, user_id: str, device_id: str, server_url: str = "", *,
               account: DeviceAccount | None = None, **options: Any) -> ClientCore:
        """A new device: fresh account (or `account`, made before the store was ready)
        with a fallback key, saved to the store."""
        if account is None:
            account = DeviceAccount.create(user_id, device_id)
        account.generate_fallback_key()
        core = cls(store, account, **options)
        with store.transaction():
            store.put(_DEVICE, "self", {"user_id": user_id, "device_id": device_id,
                                        "server_url": server_url, "registered": False,
                                        "account": account.pickle(store.pickle_key)})
        return core

    @classmethod
    def load(cls, store: Store, **options: Any) -> ClientCore:
        """Resume a device from its store."""
        record = store.get(_DEVICE, "self")
        if record is None:
            raise ClientError("the store holds no device", code="store_empty")
        account = DeviceAccount.from_pickle(record["user_id"], record["device_id"],
                                            record["account"], store.pickle_key)
        return cls(store, account, **options)

    @property
    def user_id(self) -> str:
        return self._account.user_id

    @property
    def device_id(self) -> str:
        return self._account.device_id

    def _device_record(self) -> Record:
        record = self.store.get(_DEVICE, "self")
        assert record is not None
        return record

    @property
    def server_url(self) -> str:
        return str(self._device_record()["server_url"])

    @property
    def registered(self) -> bool:
        return bool(self._device_record()["registered"])

    def mark_registered(self) -> None:
        with self.store.transaction():
            record = self._device_record()
            record["registered"] = True
            self.store.put(_DEVICE, "self", record)

    def _save_account(self) -> None:
        record = self._device_record()
        record["account"] = self._account.pickle(self.store.pickle_key)
        self.store.put(_DEVICE, "self", record)

    def _reload_account(self) -> None:
        record = self._device_record()
        self._account = DeviceAccount.from_pickle(self.user_id, self.device_id,
                                                  record["account"], self.store.pickle_key)

    # --- own keys ----------------------------------------------------------------------

    def device_keys(self) -> DeviceKeys:
        return self._account.device_keys()

    def sign_login(self, challenge: str) -> str:
        return self._account.sign_login(challenge).b64

    @property
    def one_time_key_target(self) -> int:
        # Half of what the account can hold, so keys still on the server are never
        # discarded locally when new ones are generated (Matrix's rule).
        return self._account.max_one_time_keys // 2

    def keys_to_upload(self, server_count: int) -> KeysUploadRequest | None:
        """Signed one-time keys to bring the server up to the target, plus the fallback
        key if it was never published. None when nothing is needed."""
        with self.store.transaction():
            unpublished = self._account.unpublished_one_time_keys()
            missing = self.one_time_key_target - server_count - len(unpublished)
            if missing > 0:
                unpublished = self._account.generate_one_time_keys(missing)
            self._save_account()
        fallback = self._account.unpublished_fallback_key()
        if not unpublished and fallback is None:
            return None
        return KeysUploadRequest(one_time_keys=unpublished[:100], fallback_key=fallback)

    def keys_published(self) -> None:
        with self.store.transaction():
            self._account.mark_keys_as_published()
            self._save_account()

    # --- device lists and groups --------------------------------------------------------

    def update_device_list(self, device_list: DeviceList) -> list[str]:
        """Cache a user's devices that carry valid self-signatures.

        A device id is pinned to the keys it first showed (trust on first use); a device
        whose keys change or do not verify is left out and reported in the result."""
        problems: list[str] = []
        kept: list[Record] = []
        with self.store.transaction():
            for keys in device_list.devices:
                name = f"{keys.user_id}/{keys.device_id}"
                if keys.user_id != device_list.user_id:
                    problems.append(f"{name} is listed under {device_list.user_id}")
                    continue
                try:
                    device = verify_device_keys(keys)
                except CryptoError as exc:
                    problems.append(exc.message)
                    continue
                pin_key = f"{keys.user_id}|{keys.device_id}"
                pin = self.store.get(_PINS, pin_key)
                if pin is None:
                    self.store.put(_PINS, pin_key, {"identity_key": device.identity_key.b64,
                                                    "signing_key": device.signing_key.b64})
                elif (pin["identity_key"] != device.identity_key.b64
                      or pin["signing_key"] != device.signing_key.b64):
                    problems.append(f"{name} changed its keys; refused")
                    continue
                if keys.user_id == self.user_id and keys.device_id == self.device_id and (
                        device.identity_key != self._account.identity_key):
                    problems.append("the server lists this device with other keys")
                    continue
                kept.append(keys.model_dump(mode="json"))
            self.store.put(_DEVICES, device_list.user_id,
                           {"user_id": device_list.user_id, "devices": kept,
                            "fetched_at_ms": self._clock()})
        return problems

    def known_device_ids(self, user_id: str) -> set[str] | None:
        """The device ids last fetched for `user_id`; None when never fetched."""
        record = self.store.get(_DEVICES, user_id)
        return None if record is None else {str(d["device_id"]) for d in record["devices"]}

    def known_devices(self, user_id: str) -> list[VerifiedDevice] | None:
        record = self.store.get(_DEVICES, user_id)
        if record is None:
            return None
        return [verify_device_keys(DeviceKeys.model_validate(d)) for d in record["devices"]]

    def _device(self, user_id: str, device_id: str) -> VerifiedDevice | None:
        for device in self.known_devices(user_id) or []:
            if device.device_id == device_id:
                return device
        return None

    def update_group(self, info: GroupInfo) -> None:
        """Cache a group's membership; an older epoch never replaces a newer one."""
        with self.store.transaction():
            cached = self.store.get(_GROUPS, info.group_id)
            if cached is not None and cached["epoch"] > info.epoch:
                return
            self.store.put(_GROUPS, info.group_id, info.model_dump(mode="json"))

    def forget_group(self, group_id: str) -> None:
        with self.store.transaction():
            self.store.delete(_GROUPS, group_id)
            self.store.delete(_MEGOLM_OUT, group_id)

    def group(self, group_id: str) -> GroupInfo | None:
        record = self.store.get(_GROUPS, group_id)
        return None if record is None else GroupInfo.model_validate(record)

    def groups(self) -> list[GroupInfo]:
        return [GroupInfo.model_validate(r) for r in self.store.items(_GROUPS)]

    # --- conversations and targets ------------------------------------------------------

    def conversation_for(self, to: str) -> str:
        """A group id or `dm:` id as given; a user id becomes the 1:1 conversation."""
        if is_group_id(to) or dm_participants(to) is not None:
            return to
        return dm_conversation_id(self.user_id, to)

    def participants(self, conversation_id: str) -> list[str]:
        pair = dm_participants(conversation_id)
        if pair is not None:
            if self.user_id not in pair:
                raise ClientError(f"{conversation_id} is not this user's conversation")
            return sorted(pair)
        if not is_group_id(conversation_id):
            raise ClientError(f"unknown conversation {conversation_id}")
        info = self.group(conversation_id)
        if info is None:
            raise NeedGroup(conversation_id)
        return sorted({m.user_id for m in info.members})

    def targets(self, conversation_id: str) -> list[VerifiedDevice]:
        """Exactly the devices a message must reach: every device of every participant
        except this one. Raises `NeedDeviceLists` for participants not yet cached."""
        users = self.participants(conversation_id)
        missing = [u for u in users if self.known_devices(u) is None]
        if missing:
            raise NeedDeviceLists(missing)
        devices: list[VerifiedDevice] = []
        info = self.group(conversation_id) if is_group_id(conversation_id) else None
        # Members the contact rules keep from this account in the group get nothing of
        # ours, not even the group key (the server refuses a send that includes them).
        withheld = set(info.withheld) if info is not None else set()
        for user in users:
            if user in withheld:
                continue
            for device in self.known_devices(user) or []:
                if not (device.user_id == self.user_id and device.device_id == self.device_id):
                    devices.append(device)
        return devices

    def devices_needing_sessions(self, conversation_id: str) -> list[DeviceRef]:
        """Target devices with no Olm session yet: the transport claims their bundles."""
        return [DeviceRef(user_id=d.user_id, device_id=d.device_id)
                for d in self.targets(conversation_id)
                if not self._sessions(d.user_id, d.device_id)]

    # --- Olm sessions -------------------------------------------------------------------

    def _sessions(self, user_id: str, device_id: str) -> list[Record]:
        record = self.store.get(_OLM, f"{user_id}|{device_id}")
        return [] if record is None else list(record["sessions"])

    def _save_session(self, user_id: str, device_id: str, session: OlmSession) -> None:
        """Save a session as the most recently used one for its device."""
        others = [s for s in self._sessions(user_id, device_id)
                  if s["session_id"] != session.session_id]
        entry = {"session_id": session.session_id,
                 "pickle": session.pickle(self.store.pickle_key),
                 "used_ns": time.time_ns()}
        sessions = sorted([entry, *others], key=lambda s: -int(s["used_ns"]))
        self.store.put(_OLM, f"{user_id}|{device_id}",
                       {"sessions": sessions[:MAX_SESSIONS_PER_DEVICE]})

    def add_bundles(self, bundles: list[KeyBundle]) -> list[str]:
        """Start Olm sessions from claimed bundles after checking their signatures
        against the pinned device keys. Returns the refusals, one line each."""
        refused: list[str] = []
        with self.store.transaction():
            for bundle in bundles:
                name = f"{bundle.device.user_id}/{bundle.device.device_id}"
                expected = self._device(bundle.device.user_id, bundle.device.device_id)
                if expected is None:
                    refused.append(f"{name} is not in its user's verified device list")
                    continue
                try:
                    verified = verify_bundle(bundle, expected)
                except CryptoError as exc:
                    refused.append(exc.message)
                    continue
                if self._sessions(expected.user_id, expected.device_id):
                    continue
                session = self._account.create_outbound_session(verified)
                self._save_session(expected.user_id, expected.device_id, session)
        return refused

    def _olm_encrypt(self, device: VerifiedDevice, plaintext: bytes) -> OlmMessage:
        sessions = self._sessions(device.user_id, device.device_id)
        if not sessions:
            raise MissingSessions([DeviceRef(user_id=device.user_id,
                                             device_id=device.device_id)])
        session = OlmSession.from_pickle(sessions[0]["pickle"], self.store.pickle_key)
        message = session.encrypt(plaintext)
        self._save_session(device.user_id, device.device_id, session)
        return message

    def _olm_decrypt(self, device: VerifiedDevice, message: OlmMessage) -> bytes:
        for entry in self._sessions(device.user_id, device.device_id):
            session = OlmSession.from_pickle(entry["pickle"], self.store.pickle_key)
            if message.is_pre_key and not session.matches(message):
                continue
            try:
                plaintext = session.decrypt(message)
            except CryptoError:
                continue
            self._save_session(device.user_id, device.device_id, session)
            return plaintext
        if not message.is_pre_key:
            raise _Drop("undecryptable", "no Olm session with the sender decrypts this message")
        try:
            session, plaintext = self._account.create_inbound_session(device.identity_key,
                                                                      message.to_vodozemac())
        except CryptoError as exc:
            raise _Drop("undecryptable", exc.message) from exc
        self._save_account()
        self._save_session(device.user_id, device.device_id, session)
        return plaintext

    # --- sending --------------------------------------------------------------------------

    def _content(self, conversation_id: str, *, kind: ContentKind, text: str = "",
                 attachments: tuple[AttachmentRef, ...] = (), room_key: RoomKey | None = None,
                 message_id: str | None = None) -> MessageContent:
        return MessageContent(
            kind=kind,
            message_id=message_id or new_message_id(),
            conversation_id=conversation_id,
            sent_at_ms=self._clock(),
            text=text,
            attachments=attachments,
            room_key=room_key,
            franking_key=FrankingKey.generate().to_b64(),
        )

    def _context(self, conversation_id: str) -> FrankingContext:
        return FrankingContext(conversation_id, self.user_id, self.device_id,
                               tuple(self.participants(conversation_id)))

    def _olm_envelope(self, content: MessageContent, devices: list[VerifiedDevice],
                      policy: ConversationPolicyBody,
                      group_epoch: int | None = None) -> SendEnvelope:
        commitment = commit(content.fk(), content.committed_part(),
                            self._context(content.conversation_id))
        plaintext = pad(content.to_bytes())
        recipients = []
        for device in devices:
            message = self._olm_encrypt(device, plaintext)
            recipients.append(RecipientCiphertext(user_id=device.user_id,
                                                  device_id=device.device_id,
                                                  olm_type=message.olm_type,
                                                  body=message.body))
        return SendEnvelope(message_id=content.message_id,
                            conversation_id=content.conversation_id,
                            commitment=commitment.to_b64(), recipients=recipients,
                            group_epoch=group_epoch,
                            safety_copy=self._safety_copy(content, commitment, policy),
                            blob_ids=self._blob_ids(content))

    def _group_envelopes(self, content: MessageContent,
                         policy: ConversationPolicyBody) -> list[SendEnvelope]:
        """[room key share if the Megolm session rotates, the Megolm message]."""
        group_id = content.conversation_id
        info = self.group(group_id)
        if info is None:
            raise NeedGroup(group_id)
        devices = self.targets(group_id)
        device_set = sorted(f"{d.user_id}/{d.device_id}/{d.identity_key.b64}" for d in devices)
        state = self.store.get(_MEGOLM_OUT, group_id)
        envelopes: list[SendEnvelope] = []
        # A session whose key went to the safety service (safeguarded) ends when the group
        # becomes end-to-end: the server must not be able to read what follows.
        if (state is None or state["epoch"] != info.epoch or state["devices"] != device_set
                or state["count"] >= self.rotate_after
                or (state.get("copied", False) and not policy.safety_copy_required)):
            session = OutboundGroupSession()
            room_key = RoomKey(group_id=group_id, session_id=session.session_id,
                               session_key=session.session_key(), epoch=info.epoch)
            share = self._content(group_id, kind="room_key", room_key=room_key)
            envelopes.append(self._olm_envelope(share, devices, policy, info.epoch))
            state = {"epoch": info.epoch, "devices": device_set, "count": 0,
                     "copied": policy.safety_copy_required}
        else:
            session = OutboundGroupSession.from_pickle(state["pickle"], self.store.pickle_key)
        commitment = commit(content.fk(), content.committed_part(), self._context(group_id))
        body = session.encrypt(pad(content.to_bytes()))
        state["count"] = int(state["count"]) + 1
        state["pickle"] = session.pickle(self.store.pickle_key)
        state["session_id"] = session.session_id
        self.store.put(_MEGOLM_OUT, group_id, state)
        envelopes.append(SendEnvelope(
            message_id=content.message_id, conversation_id=group_id,
            commitment=commitment.to_b64(),
            recipients=[RecipientCiphertext(user_id=d.user_id, device_id=d.device_id)
                        for d in devices],
            group=GroupCiphertext(session_id=session.session_id, body=body),
            group_epoch=info.epoch,
            safety_copy=self._safety_copy(content, commitment, policy),
            blob_ids=self._blob_ids(content)))
        return envelopes

    def _blob_ids(self, content: MessageContent) -> list[str]:
        """What the envelope declares: every blob its attachments reference. The relay
        lets the conversation's participants download exactly these."""
        return list(dict.fromkeys(ref.blob_id for ref in content.attachments))

    def blob_declared(self, blob_id: str) -> bool:
        """Whether an envelope we sent or received declared this blob: the client
        fetches no other (a reference to anything else is shown as missing)."""
        return self.store.get(_DECLARED_BLOBS, blob_id) is not None

    def _declare_blobs(self, conversation_id: str, blob_ids: list[str]) -> None:
        for blob_id in blob_ids:
            known = self.store.get(_DECLARED_BLOBS, blob_id)
            conversations = sorted({conversation_id, *(known or {}).get("conversations", [])})
            self.store.put(_DECLARED_BLOBS, blob_id, {"conversations": conversations})

    def _build(self, content: MessageContent) -> tuple[SendEnvelope, ...]:
        policy = self.send_policy(content.conversation_id)
        if is_group_id(content.conversation_id):
            return tuple(self._group_envelopes(content, policy))
        return (self._olm_envelope(content, self.targets(content.conversation_id), policy),)

    # --- conversation policy and safety copies ------------------------------------------

    def safety_keys(self) -> SafetyKeys | None:
        record = self.store.get(_SAFETY_KEYS, "server")
        return None if record is None else SafetyKeys.model_validate(record)

    def pin_safety_keys(self, keys: SafetyKeys) -> None:
        """Accept the server's keys: the signing key is pinned on first use and must
        never change; the safety service key may rotate under it."""
        known = self.safety_keys()
        check_safety_keys(keys, None if known is None else known.policy_signing_key)
        self.store.put(_SAFETY_KEYS, "server", keys.model_dump(mode="json"))

    def update_policy(self, statement: PolicyStatement) -> KnownPolicy:
        """Store a conversation's policy after checking the server's signature."""
        keys = self.safety_keys()
        if keys is None:
            raise ClientError("fetch the server's safety keys first", code="need_safety_keys")
        check_statement(statement, keys.policy_signing_key)
        self.participants(statement.conversation_id)  # ours, and a group we know
        known = KnownPolicy(statement, self._clock())
        self.store.put(_POLICY, statement.conversation_id,
                       {"statement": statement.model_dump(mode="json"),
                        "received_ms": known.received_ms})
        return known

    def known_policy(self, conversation_id: str) -> KnownPolicy | None:
        record = self.store.get(_POLICY, conversation_id)
        if record is None:
            return None
        return KnownPolicy(PolicyStatement.model_validate(record["statement"]),
                           int(record["received_ms"]))

    def _epoch(self, conversation_id: str) -> int:
        if not is_group_id(conversation_id):
            return 0
        info = self.group(conversation_id)
        if info is None:
            raise NeedGroup(conversation_id)
        return info.epoch

    def send_policy(self, conversation_id: str) -> ConversationPolicyBody:
        """The policy a message is built under; `NeedPolicy` when none is fresh."""
        known = self.known_policy(conversation_id)
        if known is None or self.safety_keys() is None or not known.usable(
                self._clock(), self._epoch(conversation_id)):
            raise NeedPolicy(conversation_id)
        return known.policy

    def _safety_copy(self, content: MessageContent, commitment: FrankingCommitment,
                     policy: ConversationPolicyBody) -> SafetyCopy | None:
        if not policy.safety_copy_required:
            return None
        keys = self.safety_keys()
        if keys is None:
            raise NeedPolicy(content.conversation_id)
        context = SafetyCopyContext(
            message_id=content.message_id, conversation_id=content.conversation_id,
            sender_user=self.user_id, sender_device=self.device_id,
            participants=tuple(self.participants(content.conversation_id)),
            commitment=commitment)
        return seal_safety_copy(content, context,
                                SafetyServicePublicKey.from_b64(keys.safety_service_key))

    def _history_record(self, content: MessageContent, commitment: str,
                        server_ts_ms: int) -> Record:
        context = self._context(content.conversation_id)
        return {"direction": "out", "content": content.model_dump(mode="json"),
                "commitment": commitment, "tag": None, "context": context.to_json(),
                "recipient_user": None, "server_ts_ms": server_ts_ms,
                "blob_ids": self._blob_ids(content)}

    def _sent_key(self, conversation_id: str, message_id: str) -> str:
        return f"{conversation_id}|{self.user_id}|{message_id}"

    def prepare(self, to: str, *, text: str = "",
                attachments: tuple[AttachmentRef, ...] = ()) -> OutboxEntry:
        """Encrypt a text or attachment message and put it in the outbox.

        Raises `NeedDeviceLists`, `NeedGroup` or `MissingSessions` (nothing is written)
        when the transport must fetch something first."""
        conversation_id = self.conversation_for(to)
        kind: ContentKind = "attachment" if attachments else "text"
        content = self._content(conversation_id, kind=kind, text=text, attachments=attachments)
        try:
            with self.store.transaction():
                envelopes = self._build(content)
                self._declare_blobs(conversation_id, envelopes[-1].blob_ids or [])
                entry = OutboxEntry(content.message_id, conversation_id, content, envelopes, 0)
                self.store.put(_OUTBOX, entry.entry_id, entry.to_record())
                self.store.put(_HISTORY, self._sent_key(conversation_id, content.message_id),
                               self._history_record(content, envelopes[-1].commitment, 0))
        except BaseException:
            self._reload_account()
            raise
        return entry

    def outbox(self) -> list[OutboxEntry]:
        return [OutboxEntry.from_record(r) for r in self.store.items(_OUTBOX)]

    def rebuild(self, entry_id: str) -> OutboxEntry:
        """Encrypt an outbox message again for the current devices and group epoch,
        after the server refused it (device list mismatch, stale epoch). It keeps its
        message id and franking key: the server never accepted the refused envelope."""
        record = self.store.get(_OUTBOX, entry_id)
        if record is None:
            raise ClientError(f"{entry_id} is not in the outbox", code="not_in_outbox")
        entry = OutboxEntry.from_record(record)
        try:
            with self.store.transaction():
                envelopes = self._build(entry.content)
                rebuilt = OutboxEntry(entry_id, entry.conversation_id, entry.content,
                                      envelopes, 0)
                self.store.put(_OUTBOX, entry_id, rebuilt.to_record())
                self.store.put(_HISTORY, self._sent_key(entry.conversation_id, entry_id),
                               self._history_record(entry.content, envelopes[-1].commitment, 0))
        except BaseException:
            self._reload_account()
            raise
        return rebuilt

    def envelope_accepted(self, entry_id: str, receipt: SendReceipt) -> MessageSent | None:
        """The server accepted the entry's next envelope. Returns `MessageSent` when the
        entry's last envelope (the message itself) went through."""
        with self.store.transaction():
            record = self.store.get(_OUTBOX, entry_id)
            if record is None:
                return None
            entry = OutboxEntry.from_record(record)
            if entry.next_index >= len(entry.envelopes) or (
                    entry.envelopes[entry.next_index].message_id != receipt.message_id):
                return None
            if entry.next_index + 1 < len(entry.envelopes):
                record["next_index"] = entry.next_index + 1
                self.store.put(_OUTBOX, entry_id, record)
                return None
            self.store.delete(_OUTBOX, entry_id)
            history_key = self._sent_key(entry.conversation_id, entry_id)
            history = self.store.get(_HISTORY, history_key)
            if history is not None:
                history["server_ts_ms"] = receipt.server_ts_ms
                self.store.put(_HISTORY, history_key, history)
        return MessageSent(entry_id, entry.conversation_id, receipt.server_ts_ms,
                           receipt.duplicate)

    def envelope_refused(self, entry_id: str, code: str, detail: str) -> SendFailed | None:
        """The server refused the entry for good: drop it from the outbox."""
        with self.store.transaction():
            record = self.store.get(_OUTBOX, entry_id)
            if record is None:
                return None
            entry = OutboxEntry.from_record(record)
            self.store.delete(_OUTBOX, entry_id)
            if any(e.group is None and e.message_id != entry_id for e in entry.pending):
                # Its room key share never went out: the next message must rotate.
                self.store.delete(_MEGOLM_OUT, entry.conversation_id)
        return SendFailed(entry_id, entry.conversation_id, code, detail)

    # --- receiving ------------------------------------------------------------------------

    def sender_device_needed(self, delivery: Delivery) -> str | None:
        """The user whose device list must be fetched before this delivery can be
        decrypted (an Olm message from a device not yet known), or None."""
        if delivery.body is None:
            return None
        if self._device(delivery.sender_user, delivery.sender_device) is None:
            return str(delivery.sender_user)
        return None

    def receive(self, delivery: Delivery) -> list[Event]:
        """Decrypt and check one delivery; durable before it returns, so the transport
        may acknowledge it afterwards. Already-seen messages give no events."""
        seen_key = inbox_key(delivery.conversation_id, delivery.sender_user,
                             delivery.message_id)
        if self.store.has(_SEEN, seen_key):
            return []
        try:
            with self.store.transaction():
                self.store.put(_SEEN, seen_key, {"seq": delivery.seq})
                return self._receive(delivery)
        except BaseException:
            self._reload_account()
            raise

    def _dropped(self, delivery: Delivery, drop: _Drop) -> MessageDropped:
        return MessageDropped(drop.reason, drop.detail, delivery.message_id,
                              delivery.conversation_id, delivery.sender_user,
                              delivery.sender_device, delivery.seq)

    def _receive(self, delivery: Delivery) -> list[Event]:
        try:
            if delivery.group is not None:
                return self._receive_megolm(delivery)
            if delivery.body is None or delivery.olm_type is None:
                raise _Drop("malformed", "delivery carries no ciphertext")
            device = self._device(delivery.sender_user, delivery.sender_device)
            if device is None:
                raise _Drop("unknown_device", "the sender device is not in its verified list")
            plaintext = self._olm_decrypt(device, OlmMessage(delivery.olm_type, delivery.body))
            return self._accept(delivery, plaintext, via_olm=True)
        except _Drop as drop:
            return [self._dropped(delivery, drop)]
        except (CoveyError, ValueError) as exc:
            # Anything else malformed is dropped too, so one bad delivery can never wedge
            # the mailbox by failing again on every redelivery.
            return [self._dropped(delivery, _Drop("invalid", str(exc)))]

    def _receive_megolm(self, delivery: Delivery) -> list[Event]:
        assert delivery.group is not None
        session_id = delivery.group.session_id
        record = self.store.get(_MEGOLM_IN, session_id)
        if record is None:
            # The room key may still be on its way (or arrive out of order): park it.
            self.store.put(_WAITING, f"{session_id}|{delivery.sender_user}|{delivery.message_id}",
                           {"session_id": session_id,
                            "delivery": delivery.model_dump(mode="json")})
            index = self.store.get(_WAITING, f"index|{session_id}") or {"keys": []}
            index["keys"].append(f"{session_id}|{delivery.sender_user}|{delivery.message_id}")
            self.store.put(_WAITING, f"index|{session_id}", index)
            return []
        if (record["sender_user"] != delivery.sender_user
                or record["sender_device"] != delivery.sender_device
                or record["group_id"] != delivery.conversation_id):
            raise _Drop("room_key_mismatch",
                        "the Megolm session belongs to another sender or group")
        session = InboundGroupSession.from_pickle(record["pickle"], self.store.pickle_key)
        try:
            plaintext, _index = session.decrypt(delivery.group.body)
        except CryptoError as exc:
            raise _Drop("undecryptable", exc.message) from exc
        return self._accept(delivery, plaintext, via_olm=False)

    def _accept(self, delivery: Delivery, plaintext: bytes, *, via_olm: bool) -> list[Event]:
        try:
            content = MessageContent.from_bytes(unpad(plaintext))
        except InvalidInput as exc:
            raise _Drop("malformed", exc.message) from exc
        if content.message_id != delivery.message_id:
            raise _Drop("message_id_mismatch", "content and delivery message ids differ")
        if content.conversation_id != delivery.conversation_id:
            raise _Drop("conversation_mismatch", "content and delivery conversations differ")
        participants = sorted(set(delivery.participants))
        pair = dm_participants(delivery.conversation_id)
        if pair is not None and sorted(pair) != participants:
            raise _Drop("conversation_mismatch", "participants differ from the conversation")
        if self.user_id not in participants or delivery.sender_user not in participants:
            raise _Drop("not_a_participant", "sender or recipient is not a participant")
        context = FrankingContext(delivery.conversation_id, delivery.sender_user,
                                  delivery.sender_device, tuple(participants))
        commitment = FrankingCommitment.from_b64(delivery.commitment)
        try:
            fk = content.fk()
        except InvalidInput as exc:
            raise _Drop("malformed", "franking key is malformed") from exc
        if not opens(commitment, fk, content.committed_part(), context):
            raise _Drop("commitment_mismatch", "the message does not open its franking "
                                               "commitment")
        if content.kind == "room_key":
            return self._accept_room_key(delivery, content, via_olm=via_olm)
        evidence = FrankingEvidence(content, commitment,
                                    FrankingTag.from_b64(delivery.franking_tag), context,
                                    self.user_id, delivery.server_ts_ms)
        # Only attachments whose blob the envelope declared are ever fetched.
        declared = tuple(ref.blob_id for ref in content.attachments
                         if ref.blob_id in delivery.blob_ids)
        record = {"direction": "in", **evidence.to_record(), "blob_ids": list(declared)}
        key = inbox_key(delivery.conversation_id, delivery.sender_user, delivery.message_id)
        self._declare_blobs(delivery.conversation_id, list(declared))
        self.store.put(_HISTORY, key, record)
        self.store.put(_INBOX, key, {"key": key, **record})
        return [IncomingMessage.from_evidence(evidence, declared)]

    def _accept_room_key(self, delivery: Delivery, content: MessageContent, *,
                         via_olm: bool) -> list[Event]:
        room_key = content.room_key
        if not via_olm or room_key is None:
            raise _Drop("malformed", "room keys travel over Olm only")
        if room_key.group_id != delivery.conversation_id or not is_group_id(room_key.group_id):
            raise _Drop("conversation_mismatch", "room key for another group")
        try:
            session = InboundGroupSession.from_session_key(room_key.session_key)
        except CryptoError as exc:
            raise _Drop("malformed", exc.message) from exc
        if session.session_id != room_key.session_id:
            raise _Drop("malformed", "room key session id does not match its key")
        existing = self.store.get(_MEGOLM_IN, session.session_id)
        if existing is not None:
            if (existing["sender_user"], existing["sender_device"]) != (
                    delivery.sender_user, delivery.sender_device):
                raise _Drop("room_key_mismatch", "this Megolm session belongs to another device")
            return []
        self.store.put(_MEGOLM_IN, session.session_id, {
            "session_id": session.session_id, "group_id": room_key.group_id,
            "epoch": room_key.epoch,
            "sender_user": delivery.sender_user, "sender_device": delivery.sender_device,
            "pickle": session.pickle(self.store.pickle_key)})
        events: list[Event] = [RoomKeyReceived(room_key.group_id, session.session_id,
                                               delivery.sender_user, delivery.sender_device)]
        events.extend(self._release_waiting(session.session_id))
        return events

    def _release_waiting(self, session_id: str) -> list[Event]:
        """Decrypt the Megolm messages that arrived before their room key."""
        index = self.store.get(_WAITING, f"index|{session_id}")
        if index is None:
            return []
        events: list[Event] = []
        for key in index["keys"]:
            parked = self.store.get(_WAITING, key)
            self.store.delete(_WAITING, key)
            if parked is None:
                continue
            delivery = Delivery.model_validate(parked["delivery"])
            try:
                events.extend(self._receive_megolm(delivery))
            except _Drop as drop:
                events.append(self._dropped(delivery, drop))
        self.store.delete(_WAITING, f"index|{session_id}")
        return events

    # --- history and inbox ---------------------------------------------------------------

    def inbox(self) -> list[tuple[str, IncomingMessage]]:
        """Received messages the application has not consumed yet, oldest first."""
        return [(r["key"], IncomingMessage.from_evidence(FrankingEvidence.from_record(r),
                                                         tuple(r.get("blob_ids", ()))))
                for r in self.store.items(_INBOX)]

    def consumed(self, inbox_key: str) -> None:
        with self.store.transaction():
            self.store.delete(_INBOX, inbox_key)

    def history(self, conversation_id: str | None = None) -> list[Record]:
        """Every stored message record (sent and received), oldest first."""
        records = self.store.items(_HISTORY)
        if conversation_id is None:
            return records
        return [r for r in records if r["content"]["conversation_id"] == conversation_id]
