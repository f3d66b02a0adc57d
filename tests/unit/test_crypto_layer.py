"""covey.crypto: device accounts, signed keys, bundle checks, Olm and Megolm, pickles."""

from __future__ import annotations

import pytest

from covey.crypto import (
    DeviceAccount,
    IdentityKey,
    InboundGroupSession,
    OlmMessage,
    OlmSession,
    OutboundGroupSession,
    PickleKey,
    Signature,
    SigningKey,
    verify_bundle,
    verify_device_keys,
)
from covey.errors import CryptoError, InvalidInput
from covey.protocol.wire import KeyBundle, login_signing_bytes


def _bundle(account: DeviceAccount, fallback: bool = False) -> KeyBundle:
    key = account.generate_fallback_key() if fallback else account.generate_one_time_keys(1)[0]
    return KeyBundle(device=account.device_keys(), one_time_key=key, fallback=fallback)


def test_device_keys_are_self_signed() -> None:
    account = DeviceAccount.create("alice", "DEVICE01")
    keys = account.device_keys()
    device = verify_device_keys(keys)
    assert device.identity_key == account.identity_key
    assert device.signing_key == account.signing_key
    for field in ("user_id", "device_id"):
        forged = keys.model_copy(update={field: "mallory" if field == "user_id" else "DEVICE02"})
        with pytest.raises(CryptoError) as info:
            verify_device_keys(forged)
        assert info.value.code == "bad_signature"
    other = DeviceAccount.create("alice", "DEVICE01")
    with pytest.raises(CryptoError):
        verify_device_keys(keys.model_copy(update={"identity_key": other.identity_key.b64}))


def test_login_signature() -> None:
    account = DeviceAccount.create("alice", "DEVICE01")
    signature = account.sign_login("Y2hhbGxlbmdl")
    assert account.signing_key.verify(login_signing_bytes("alice", "DEVICE01", "Y2hhbGxlbmdl"),
                                      signature)
    assert not account.signing_key.verify(login_signing_bytes("alice", "DEVICE01", "b3RoZXI"),
                                          signature)


def test_one_time_and_fallback_keys_are_signed_and_verified() -> None:
    bob = DeviceAccount.create("bob", "BOBDEV01")
    keys = bob.generate_one_time_keys(5)
    assert len(keys) == 5 and len({k.key_id for k in keys}) == 5
    for fallback in (False, True):
        verified = verify_bundle(_bundle(bob, fallback))
        assert verified.fallback is fallback and verified.device.user_id == "bob"
    bob.mark_keys_as_published()
    assert bob.unpublished_one_time_keys() == [] and bob.unpublished_fallback_key() is None


def test_bundle_signature_checks_refuse_forgeries() -> None:
    bob = DeviceAccount.create("bob", "BOBDEV01")
    mallory = DeviceAccount.create("mallory", "MALDEV01")
    bundle = _bundle(bob)
    # The fallback flag is signed: a one-time key cannot be passed off as a fallback.
    with pytest.raises(CryptoError):
        verify_bundle(bundle.model_copy(update={"fallback": True}))
    # Someone else's key under bob's signature.
    swapped = bundle.one_time_key.model_copy(
        update={"key": mallory.generate_one_time_keys(1)[0].key})
    with pytest.raises(CryptoError):
        verify_bundle(bundle.model_copy(update={"one_time_key": swapped}))
    # A key signed by mallory, presented in bob's bundle.
    with pytest.raises(CryptoError):
        verify_bundle(bundle.model_copy(update={"one_time_key": _bundle(mallory).one_time_key}))
    # Pinned keys must match.
    with pytest.raises(CryptoError):
        verify_bundle(bundle, verify_device_keys(_bundle(mallory).device))


def test_olm_session_roundtrip_and_matching() -> None:
    alice = DeviceAccount.create("alice", "ALICEDV1")
    bob = DeviceAccount.create("bob", "BOBDEV01")
    outbound = alice.create_outbound_session(verify_bundle(_bundle(bob)))
    first = outbound.encrypt(b"hello")
    assert first.is_pre_key
    inbound, plaintext = bob.create_inbound_session(alice.identity_key, first.to_vodozemac())
    assert plaintext == b"hello" and inbound.session_id == outbound.session_id
    second = outbound.encrypt(b"again")
    assert inbound.matches(second) and inbound.decrypt(second) == b"again"
    reply = inbound.encrypt(b"reply")
    assert not reply.is_pre_key and outbound.decrypt(reply) == b"reply"
    with pytest.raises(CryptoError):
        inbound.decrypt(OlmMessage(1, reply.body))
    # The one-time key is consumed: the same pre-key message cannot start a second session.
    with pytest.raises(CryptoError):
        bob.create_inbound_session(alice.identity_key, first.to_vodozemac())


def test_pickles_roundtrip_and_need_the_key() -> None:
    key, wrong = PickleKey.generate(), PickleKey.generate()
    alice = DeviceAccount.create("alice", "ALICEDV1")
    bob = DeviceAccount.create("bob", "BOBDEV01")
    restored = DeviceAccount.from_pickle("alice", "ALICEDV1", alice.pickle(key), key)
    assert restored.identity_key == alice.identity_key
    with pytest.raises(CryptoError) as info:
        DeviceAccount.from_pickle("alice", "ALICEDV1", alice.pickle(key), wrong)
    assert info.value.code == "pickle_invalid"
    session = alice.create_outbound_session(verify_bundle(_bundle(bob)))
    again = OlmSession.from_pickle(session.pickle(key), key)
    assert again.session_id == session.session_id
    with pytest.raises(CryptoError):
        OlmSession.from_pickle(session.pickle(key), wrong)
    group = OutboundGroupSession()
    assert OutboundGroupSession.from_pickle(group.pickle(key), key).session_id == group.session_id


def test_megolm_roundtrip_and_ratchet() -> None:
    outbound = OutboundGroupSession()
    early = outbound.encrypt(b"before the key was shared")
    inbound = InboundGroupSession.from_session_key(outbound.session_key())
    assert inbound.session_id == outbound.session_id and inbound.first_known_index == 1
    with pytest.raises(CryptoError):
        inbound.decrypt(early)  # a later member cannot read earlier messages
    messages = [outbound.encrypt(f"m{i}".encode()) for i in range(4)]
    assert inbound.decrypt(messages[3]) == (b"m3", 4)
    assert inbound.decrypt(messages[1]) == (b"m1", 2)  # out of order is fine
    with pytest.raises(CryptoError):
        InboundGroupSession.from_session_key("not a key")


def test_secret_types_are_redacted_and_keys_are_distinct() -> None:
    key = PickleKey(b"k" * 32)
    assert "k" * 8 not in repr(key) and "redacted" in repr(key)
    assert key == PickleKey(b"k" * 32) and key != PickleKey(b"j" * 32)
    with pytest.raises(CryptoError):
        PickleKey(b"short")
    account = DeviceAccount.create("alice", "ALICEDV1")
    assert IdentityKey(account.identity_key.b64) != SigningKey(account.identity_key.b64)
    with pytest.raises(InvalidInput):
        IdentityKey("AAAA")
    with pytest.raises(InvalidInput):
        Signature("AAAA")
