"""Every franking attack a recipient must catch: a malicious sender holds a valid Olm or
Megolm session and tries to deliver content it cannot be reported for."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from covey.client._core import ClientCore
from covey.client._events import IncomingMessage, MessageDropped
from covey.crypto import VerifiedDevice
from covey.errors import CryptoError
from covey.protocol import (
    AttachmentRef,
    FrankingContext,
    FrankingKey,
    MessageContent,
    b64decode,
    b64encode,
    commit,
    decrypt_attachment,
    encrypt_attachment,
    new_message_id,
    pad,
)
from covey.protocol.attachments import NONCE_BYTES
from covey.protocol.wire import (
    DeviceKeys,
    GroupCiphertext,
    KeyBundle,
    RecipientCiphertext,
    SendEnvelope,
    SignedKey,
)
from tests.unit._salamander import two_key_ciphertext
from tests.unit.test_client_harness import FakeServer


@pytest.fixture
def server(tmp_path: Path) -> FakeServer:
    return FakeServer(tmp_path)


def _content(conversation_id: str, text: str, message_id: str | None = None,
             fk: FrankingKey | None = None, **kw: object) -> MessageContent:
    return MessageContent(kind=kw.pop("kind", "text"), message_id=message_id or new_message_id(),  # type: ignore[arg-type]
                          conversation_id=conversation_id, sent_at_ms=1, text=text,
                          franking_key=(fk or FrankingKey.generate()).to_b64(), **kw)  # type: ignore[arg-type]


def _ctx(sender: ClientCore, conversation_id: str, participants: list[str]) -> FrankingContext:
    return FrankingContext(conversation_id, sender.user_id, sender.device_id, tuple(participants))


def _olm_forgery(server: FakeServer, sender: ClientCore, recipient: ClientCore,
                 committed: MessageContent, encrypted: MessageContent,
                 envelope_message_id: str | None = None,
                 envelope_conversation: str | None = None) -> list[object]:
    """Commit to one content, Olm-encrypt another, relay it honestly, and receive it."""
    conversation = envelope_conversation or committed.conversation_id
    participants = server.participants(conversation)
    commitment = commit(committed.fk(), committed.committed_part(),
                        _ctx(sender, conversation, participants))
    device = next(d for d in sender.known_devices(recipient.user_id) or []
                  if d.device_id == recipient.device_id)
    message = sender._olm_encrypt(device, pad(encrypted.to_bytes()))
    envelope = SendEnvelope(
        message_id=envelope_message_id or committed.message_id, conversation_id=conversation,
        commitment=commitment.to_b64(),
        recipients=[RecipientCiphertext(user_id=recipient.user_id, device_id=recipient.device_id,
                                        olm_type=message.olm_type, body=message.body)])  # type: ignore[arg-type]
    server.accept(sender, envelope)
    return server.deliver(recipient)  # type: ignore[return-value]


def _dropped(events: list[object]) -> list[str]:
    assert not any(isinstance(e, IncomingMessage) for e in events), events
    return [e.reason for e in events if isinstance(e, MessageDropped)]


@pytest.fixture
def pair(server: FakeServer) -> tuple[ClientCore, ClientCore]:
    alice, bob = server.new_device("alice"), server.new_device("bob")
    server.send(alice, "bob", "hello")  # a real, valid Olm session in both directions
    server.deliver(bob)
    return alice, bob


def test_altered_plaintext_does_not_open_the_commitment(server: FakeServer, pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    committed = _content("dm:alice:bob", "see you at five")
    sent = committed.model_copy(update={"text": "something abusive"})
    assert _dropped(_olm_forgery(server, alice, bob, committed, sent)) == ["commitment_mismatch"]
    # The conversation goes on: the forgery did not break the session.
    server.send(alice, "bob", "legit")
    assert [e.text for e in server.deliver(bob) if isinstance(e, IncomingMessage)] == ["legit"]


def test_swapped_franking_key_does_not_open(server: FakeServer, pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    committed = _content("dm:alice:bob", "same text")
    sent = committed.model_copy(update={"franking_key": FrankingKey.generate().to_b64()})
    assert _dropped(_olm_forgery(server, alice, bob, committed, sent)) == ["commitment_mismatch"]


def test_commitment_over_other_context_does_not_open(server: FakeServer, pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    content = _content("dm:alice:bob", "hi")
    # Committed with a lie about the participants: the recipient uses the relay's list.
    bad = commit(content.fk(), content.committed_part(),
                 _ctx(alice, "dm:alice:bob", ["alice", "bob", "mallory"]))
    device = alice.known_devices("bob")[0]  # type: ignore[index]
    message = alice._olm_encrypt(device, pad(content.to_bytes()))
    server.accept(alice, SendEnvelope(
        message_id=content.message_id, conversation_id="dm:alice:bob", commitment=bad.to_b64(),
        recipients=[RecipientCiphertext(user_id="bob", device_id=bob.device_id,
                                        olm_type=message.olm_type, body=message.body)]))  # type: ignore[arg-type]
    assert _dropped(server.deliver(bob)) == ["commitment_mismatch"]


def test_wrong_message_id_is_dropped(server: FakeServer, pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    content = _content("dm:alice:bob", "replayed under a new id")
    events = _olm_forgery(server, alice, bob, content, content,
                          envelope_message_id=new_message_id())
    assert _dropped(events) == ["message_id_mismatch"]


def test_wrong_conversation_is_dropped(server: FakeServer, pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    server.new_device("carol")
    content = _content("dm:alice:carol", "meant for another chat")
    events = _olm_forgery(server, alice, bob, content, content,
                          envelope_conversation="dm:alice:bob")
    assert _dropped(events) == ["conversation_mismatch"]


def test_malformed_plaintext_is_dropped(server: FakeServer, pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    device = alice.known_devices("bob")[0]  # type: ignore[index]
    message = alice._olm_encrypt(device, b"not padded json")
    content = _content("dm:alice:bob", "x")
    commitment = commit(content.fk(), content.committed_part(),
                        _ctx(alice, "dm:alice:bob", ["alice", "bob"]))
    server.accept(alice, SendEnvelope(
        message_id=content.message_id, conversation_id="dm:alice:bob",
        commitment=commitment.to_b64(),
        recipients=[RecipientCiphertext(user_id="bob", device_id=bob.device_id,
                                        olm_type=message.olm_type, body=message.body)]))  # type: ignore[arg-type]
    assert _dropped(server.deliver(bob)) == ["malformed"]


def test_tampered_ciphertext_is_undecryptable(server: FakeServer, pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    server.send(alice, "bob", "tamper with me")
    (delivery,) = server.take(bob)
    assert delivery.body is not None
    body = bytearray(b64decode(delivery.body))
    body[-5] ^= 1
    tampered = delivery.model_copy(update={"body": b64encode(bytes(body))})
    assert _dropped(server.receive(bob, [tampered])) == ["undecryptable"]


def test_forged_megolm_message_is_dropped(server: FakeServer) -> None:
    alice, bob = server.new_device("alice"), server.new_device("bob")
    gid = server.create_group("g", "alice", ["bob"]).group_id
    server.send(alice, gid, "real")
    server.deliver(bob)
    committed = _content(gid, "harmless")
    sent = committed.model_copy(update={"text": "harmful"})
    commitment = commit(committed.fk(), committed.committed_part(),
                        _ctx(alice, gid, ["alice", "bob"]))
    from covey.crypto import OutboundGroupSession
    state = alice.store.get("megolm_out", gid)
    assert state is not None
    session = OutboundGroupSession.from_pickle(state["pickle"], alice.store.pickle_key)
    server.accept(alice, SendEnvelope(
        message_id=committed.message_id, conversation_id=gid, commitment=commitment.to_b64(),
        recipients=[RecipientCiphertext(user_id="bob", device_id=bob.device_id)],
        group=GroupCiphertext(session_id=session.session_id,
                              body=session.encrypt(pad(sent.to_bytes()))),
        group_epoch=0))
    assert _dropped(server.deliver(bob)) == ["commitment_mismatch"]


def test_megolm_session_from_another_sender_is_refused(server: FakeServer) -> None:
    alice, bob, carol = (server.new_device(u) for u in ("alice", "bob", "carol"))
    gid = server.create_group("g", "alice", ["bob", "carol"]).group_id
    server.send(alice, gid, "real")
    server.deliver(bob)
    message = next(d for d in server.take(carol) if d.group is not None)
    # The relay claims carol sent alice's Megolm message: the session is alice's.
    relabelled = message.model_copy(update={"sender_user": "carol",
                                            "sender_device": carol.device_id,
                                            "message_id": new_message_id()})
    assert _dropped(server.receive(bob, [relabelled])) == ["room_key_mismatch"]


def test_swapped_attachment_ciphertext_fails_the_hash_check() -> None:
    blob, key, digest = encrypt_attachment(b"a holiday photo")
    assert decrypt_attachment(blob, AttachmentRef(blob_id="blob_" + "a" * 20, key=key,
                                                  sha256=digest, size=15)) == b"a holiday photo"
    ref = AttachmentRef(blob_id="blob_" + "a" * 20, key=key, sha256=digest, size=15)
    other_blob, _, _ = encrypt_attachment(b"something else entirely")
    with pytest.raises(CryptoError) as info:
        decrypt_attachment(other_blob, ref)
    assert info.value.code == "attachment_hash_mismatch"
    # A committed size that is not the plaintext's (here one byte more) is refused too.
    off_by_one = AttachmentRef(**{**ref.model_dump(), "size": 16})
    with pytest.raises(CryptoError) as info:
        decrypt_attachment(blob, off_by_one)
    assert info.value.code == "attachment_size_mismatch"
    # Invisible salamander: one blob valid under two keys. The franked hash pins the blob
    # and the franked key pins which plaintext it opens to, so only the committed one works.
    aad = b"covey/attachment/v1"
    key1, key2, nonce = os.urandom(32), os.urandom(32), os.urandom(NONCE_BYTES)
    salamander = nonce + two_key_ciphertext(key1, key2, nonce, aad)
    ref1 = AttachmentRef(blob_id="blob_" + "b" * 20, key=b64encode(key1),
                         sha256=hashlib.sha256(salamander).hexdigest(),
                         size=len(salamander) - NONCE_BYTES - 16)
    assert decrypt_attachment(salamander, ref1)
    with pytest.raises(CryptoError):
        decrypt_attachment(salamander[:-1] + bytes([salamander[-1] ^ 1]), ref1)


def test_bundle_with_bad_signatures_is_refused(server: FakeServer) -> None:
    alice, bob = server.new_device("alice"), server.new_device("bob")
    alice.update_device_list(server.device_list("bob"))
    alice.update_device_list(server.device_list("alice"))
    (bundle,) = server.claim(alice.devices_needing_sessions("dm:alice:bob")[:1]).bundles
    otk = bundle.one_time_key
    other = server.claim([alice.devices_needing_sessions("dm:alice:bob")[0]]).bundles[0]
    forged_otk = SignedKey(key_id=otk.key_id, key=other.one_time_key.key, signature=otk.signature)
    refusals = alice.add_bundles([KeyBundle(device=bundle.device, one_time_key=forged_otk,
                                            fallback=False)])
    assert refusals and "not signed" in refusals[0]
    # A bundle claiming bob's device with someone else's keys (an impostor device).
    mallory = server.new_device("mallory")
    impostor = DeviceKeys(user_id="bob", device_id=bob.device_id,
                          identity_key=mallory.device_keys().identity_key,
                          signing_key=mallory.device_keys().signing_key,
                          signature=mallory.device_keys().signature)
    refusals = alice.add_bundles([KeyBundle(device=impostor, one_time_key=otk, fallback=False)])
    assert refusals and "not signed by its own key" in refusals[0]
    assert alice.devices_needing_sessions("dm:alice:bob")  # still no session
    # The real bundle works.
    assert alice.add_bundles([bundle]) == []
    assert not alice.devices_needing_sessions("dm:alice:bob")


def test_device_list_with_bad_or_changed_keys_is_refused(server: FakeServer) -> None:
    alice, bob = server.new_device("alice"), server.new_device("bob")
    good = server.device_list("bob")
    keys = good.devices[0]
    tampered = keys.model_copy(update={"identity_key": alice.device_keys().identity_key})
    problems = alice.update_device_list(good.model_copy(update={"devices": [tampered]}))
    assert problems and alice.known_devices("bob") == []
    assert alice.update_device_list(good) == []
    assert [d.device_id for d in alice.known_devices("bob") or []] == [bob.device_id]
    # Same device id, new (validly self-signed) keys: the pinned keys win.
    mallory = server.new_device("mallory")
    from covey.protocol.wire import device_signing_bytes
    mk = mallory.device_keys()
    statement = device_signing_bytes("bob", bob.device_id, mk.identity_key, mk.signing_key)
    swapped = DeviceKeys(user_id="bob", device_id=bob.device_id, identity_key=mk.identity_key,
                         signing_key=mk.signing_key,
                         signature=mallory._account.sign(statement).b64)
    problems = alice.update_device_list(good.model_copy(update={"devices": [swapped]}))
    assert problems and "changed its keys" in problems[0]
    assert all(isinstance(d, VerifiedDevice) for d in alice.known_devices("bob") or [])


def test_garbage_ciphertext_is_dropped_and_does_not_wedge(server: FakeServer, pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    server.send(alice, "bob", "real one")
    (delivery,) = server.take(bob)
    for olm_type, body in ((0, "AAAA"), (1, "AAAA"), (0, b64encode(b"\x03" * 90))):
        garbage = delivery.model_copy(update={"olm_type": olm_type, "body": body,
                                              "message_id": new_message_id()})
        assert len(_dropped(server.receive(bob, [garbage]))) == 1
    assert [e.text for e in server.receive(bob, [delivery])  # type: ignore[union-attr]
            if isinstance(e, IncomingMessage)] == ["real one"]
