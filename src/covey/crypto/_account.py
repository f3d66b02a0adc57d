"""A device's vodozemac account: its identity, its signed statements and its key supply.

Every signature follows the labelled statements in `covey.protocol.wire`, so the server
and peers verify exactly the bytes signed here.
"""

from __future__ import annotations

import vodozemac

from covey.crypto._keys import IdentityKey, PickleKey, Signature, SigningKey
from covey.crypto._sessions import OlmSession
from covey.crypto._verify import VerifiedBundle
from covey.errors import CryptoError
from covey.protocol.wire import (
    DeviceKeys,
    SignedKey,
    device_signing_bytes,
    login_signing_bytes,
    one_time_key_signing_bytes,
)


class DeviceAccount:
    """One device's Olm account, bound to its user and device id."""

    def __init__(self, user_id: str, device_id: str, account: vodozemac.Account) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self._account = account

    @classmethod
    def create(cls, user_id: str, device_id: str) -> DeviceAccount:
        return cls(user_id, device_id, vodozemac.Account())

    # --- persistence ---------------------------------------------------------------

    def pickle(self, key: PickleKey) -> str:
        return str(self._account.pickle(key.raw))

    @classmethod
    def from_pickle(cls, user_id: str, device_id: str, pickle: str,
                    key: PickleKey) -> DeviceAccount:
        try:
            account = vodozemac.Account.from_pickle(pickle, key.raw)
        except (vodozemac.PickleException, ValueError) as exc:
            raise CryptoError("device account pickle does not open under this key",
                              code="pickle_invalid") from exc
        return cls(user_id, device_id, account)

    # --- identity and signatures -----------------------------------------------------

    @property
    def identity_key(self) -> IdentityKey:
        return IdentityKey(self._account.curve25519_key.to_base64())

    @property
    def signing_key(self) -> SigningKey:
        return SigningKey(self._account.ed25519_key.to_base64())

    def sign(self, message: bytes) -> Signature:
        return Signature(self._account.sign(message).to_base64())

    def device_keys(self) -> DeviceKeys:
        """This device's keys, self-signed per `device_signing_bytes`."""
        identity, signing = self.identity_key.b64, self.signing_key.b64
        signature = self.sign(device_signing_bytes(self.user_id, self.device_id, identity, signing))
        return DeviceKeys(user_id=self.user_id, device_id=self.device_id, identity_key=identity,
                          signing_key=signing, signature=signature.b64)

    def sign_login(self, challenge: str) -> Signature:
        return self.sign(login_signing_bytes(self.user_id, self.device_id, challenge))

    # --- one-time and fallback keys ---------------------------------------------------

    @property
    def max_one_time_keys(self) -> int:
        return int(self._account.max_number_of_one_time_keys)

    def _signed(self, key_id: str, key: vodozemac.Curve25519PublicKey, fallback: bool) -> SignedKey:
        b64 = key.to_base64()
        statement = one_time_key_signing_bytes(self.user_id, self.device_id, key_id, b64, fallback)
        return SignedKey(key_id=key_id, key=b64, signature=self.sign(statement).b64)

    def generate_one_time_keys(self, count: int) -> list[SignedKey]:
        """Generate `count` keys and return every unpublished one-time key, signed."""
        if count > 0:
            self._account.generate_one_time_keys(count)
        return self.unpublished_one_time_keys()

    def unpublished_one_time_keys(self) -> list[SignedKey]:
        keys = self._account.one_time_keys
        return [self._signed(key_id, keys[key_id], False) for key_id in sorted(keys)]

    def generate_fallback_key(self) -> SignedKey:
        self._account.generate_fallback_key()  # type: ignore[attr-defined]  # stub lags
        fallback = self.unpublished_fallback_key()
        assert fallback is not None
        return fallback

    def unpublished_fallback_key(self) -> SignedKey | None:
        fallback: dict[str, vodozemac.Curve25519PublicKey] = (
            self._account.fallback_key)  # type: ignore[attr-defined]  # stub lags
        for key_id, key in fallback.items():
            return self._signed(key_id, key, True)
        return None

    def mark_keys_as_published(self) -> None:
        self._account.mark_keys_as_published()

    # --- Olm sessions ------------------------------------------------------------------

    def create_outbound_session(self, bundle: VerifiedBundle) -> OlmSession:
        """A new Olm session to a peer device whose claimed bundle has been verified."""
        session = self._account.create_outbound_session(
            bundle.identity_key.to_vodozemac(), bundle.one_time_key.to_vodozemac())
        return OlmSession(session)

    def create_inbound_session(self, sender_identity: IdentityKey,
                               message: vodozemac.AnyOlmMessage) -> tuple[OlmSession, bytes]:
        """Accept a pre-key message; consumes the one-time key it used (save the account)."""
        pre_key = message.to_pre_key()
        if pre_key is None:
            raise CryptoError("not an Olm pre-key message", code="undecryptable")
        try:
            session, plaintext = self._account.create_inbound_session(
                sender_identity.to_vodozemac(), pre_key)
        except (vodozemac.SessionCreationException, vodozemac.KeyException,
                vodozemac.DecodeException, ValueError) as exc:
            raise CryptoError(f"cannot open Olm pre-key message: {exc}",
                              code="undecryptable") from exc
        return OlmSession(session), bytes(plaintext)

