"""Checks on keys that come from the server: a peer's device keys and claimed bundles.

The server is not trusted with keys: every device must carry its own Ed25519
self-signature and every one-time key its device's signature, or it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from covey.crypto._keys import IdentityKey, OneTimeKey, Signature, SigningKey
from covey.errors import CryptoError, InvalidInput
from covey.protocol.wire import (
    DeviceKeys,
    KeyBundle,
    device_signing_bytes,
    one_time_key_signing_bytes,
)


@dataclass(frozen=True)
class VerifiedDevice:
    """A device whose keys carry a valid self-signature."""

    user_id: str
    device_id: str
    identity_key: IdentityKey
    signing_key: SigningKey


@dataclass(frozen=True)
class VerifiedBundle:
    """A claimed key bundle whose device and one-time key signatures both verified."""

    device: VerifiedDevice
    key_id: str
    one_time_key: OneTimeKey
    fallback: bool

    @property
    def identity_key(self) -> IdentityKey:
        return self.device.identity_key


def _bad(message: str) -> CryptoError:
    return CryptoError(message, code="bad_signature")


def verify_device_keys(keys: DeviceKeys) -> VerifiedDevice:
    """Check a device's self-signature; raise `CryptoError(bad_signature)` otherwise."""
    try:
        signing = SigningKey(keys.signing_key)
        identity = IdentityKey(keys.identity_key)
        signature = Signature(keys.signature)
    except InvalidInput as exc:
        raise _bad(f"device {keys.user_id}/{keys.device_id} has malformed keys") from exc
    statement = device_signing_bytes(keys.user_id, keys.device_id, keys.identity_key,
                                     keys.signing_key)
    if not signing.verify(statement, signature):
        raise _bad(f"device {keys.user_id}/{keys.device_id} is not signed by its own key")
    return VerifiedDevice(keys.user_id, keys.device_id, identity, signing)


def verify_bundle(bundle: KeyBundle, expected: VerifiedDevice | None = None) -> VerifiedBundle:
    """Check a claimed bundle: the device's self-signature and the one-time key signature.

    With `expected` (the device as first seen in its user's device list), the bundle must
    also carry exactly those keys, so the server cannot swap a device's identity.
    """
    device = verify_device_keys(bundle.device)
    if expected is not None and (
        device.user_id != expected.user_id
        or device.device_id != expected.device_id
        or device.identity_key != expected.identity_key
        or device.signing_key != expected.signing_key
    ):
        raise _bad(f"bundle for {device.user_id}/{device.device_id} carries different keys")
    otk = bundle.one_time_key
    try:
        signature = Signature(otk.signature)
        one_time_key = OneTimeKey(otk.key)
    except InvalidInput as exc:
        raise _bad("one-time key is malformed") from exc
    statement = one_time_key_signing_bytes(device.user_id, device.device_id, otk.key_id,
                                           otk.key, bundle.fallback)
    if not device.signing_key.verify(statement, signature):
        raise _bad(f"one-time key of {device.user_id}/{device.device_id} is not signed by it")
    return VerifiedBundle(device, otk.key_id, one_time_key, bundle.fallback)
