"""Olm (1:1) and Megolm (group) sessions: typed wrappers that never expose raw ratchets.

vodozemac does all the cryptography; this module only converts to and from wire forms
(`olm_type` + base64 body, Megolm base64) and turns its exceptions into `CryptoError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import vodozemac

from covey.crypto._keys import PickleKey
from covey.errors import CryptoError
from covey.protocol._encoding import b64decode, b64encode


def _unpickle_error(what: str) -> CryptoError:
    return CryptoError(f"{what} pickle does not open under this key", code="pickle_invalid")


@dataclass(frozen=True)
class OlmMessage:
    """An Olm ciphertext as it travels: type 0 (pre-key) or 1 (normal), base64 body."""

    olm_type: int
    body: str

    def to_vodozemac(self) -> vodozemac.AnyOlmMessage:
        if self.olm_type not in (0, 1):
            raise CryptoError("unknown Olm message type", code="undecryptable")
        try:
            return vodozemac.AnyOlmMessage.from_parts(
                self.olm_type, b64decode(self.body, field="olm body"))
        except (vodozemac.DecodeException, ValueError) as exc:
            raise CryptoError("malformed Olm message", code="undecryptable") from exc

    @property
    def is_pre_key(self) -> bool:
        return self.olm_type == 0


class OlmSession:
    """One Olm session with one peer device."""

    def __init__(self, session: vodozemac.Session) -> None:
        self._session = session

    @property
    def session_id(self) -> str:
        return str(self._session.session_id)

    def encrypt(self, plaintext: bytes) -> OlmMessage:
        message_type, ciphertext = self._session.encrypt(plaintext).to_parts()
        return OlmMessage(int(message_type), b64encode(bytes(ciphertext)))

    def decrypt(self, message: OlmMessage) -> bytes:
        try:
            return bytes(self._session.decrypt(message.to_vodozemac()))
        except (vodozemac.OlmDecryptionException, vodozemac.DecodeException, ValueError) as exc:
            raise CryptoError(f"Olm decryption failed: {exc}", code="undecryptable") from exc

    def matches(self, message: OlmMessage) -> bool:
        """True when a pre-key message belongs to this session (`session_matches`)."""
        if not message.is_pre_key:
            return False
        pre_key = message.to_vodozemac().to_pre_key()
        return pre_key is not None and bool(self._session.session_matches(pre_key))

    def pickle(self, key: PickleKey) -> str:
        return str(self._session.pickle(key.raw))

    @classmethod
    def from_pickle(cls, pickle: str, key: PickleKey) -> OlmSession:
        try:
            return cls(vodozemac.Session.from_pickle(pickle, key.raw))
        except (vodozemac.PickleException, ValueError) as exc:
            raise _unpickle_error("Olm session") from exc


class OutboundGroupSession:
    """This device's Megolm session for one group: it encrypts, members hold its key."""

    def __init__(self, session: vodozemac.GroupSession | None = None) -> None:
        self._session = session if session is not None else vodozemac.GroupSession()

    @property
    def session_id(self) -> str:
        return str(self._session.session_id)

    @property
    def message_index(self) -> int:
        return int(self._session.message_index)

    def session_key(self) -> str:
        """The current ratchet as base64: whoever holds it reads from this index on."""
        return str(self._session.session_key.to_base64())

    def encrypt(self, plaintext: bytes) -> str:
        return str(self._session.encrypt(plaintext).to_base64())

    def pickle(self, key: PickleKey) -> str:
        return str(self._session.pickle(key.raw))

    @classmethod
    def from_pickle(cls, pickle: str, key: PickleKey) -> OutboundGroupSession:
        try:
            return cls(vodozemac.GroupSession.from_pickle(pickle, key.raw))
        except (vodozemac.PickleException, ValueError) as exc:
            raise _unpickle_error("Megolm session") from exc


class InboundGroupSession:
    """A member's copy of another device's Megolm session."""

    def __init__(self, session: vodozemac.InboundGroupSession) -> None:
        self._session = session

    @classmethod
    def from_session_key(cls, session_key: str) -> InboundGroupSession:
        try:
            return cls(vodozemac.InboundGroupSession(vodozemac.SessionKey(session_key)))
        except (vodozemac.SessionKeyDecodeException, vodozemac.DecodeException,
                ValueError) as exc:
            raise CryptoError("malformed Megolm session key", code="bad_room_key") from exc

    @property
    def session_id(self) -> str:
        return str(self._session.session_id)

    @property
    def first_known_index(self) -> int:
        return int(self._session.first_known_index)

    def decrypt(self, body: str) -> tuple[bytes, int]:
        """Return (plaintext, message index)."""
        try:
            decrypted = self._session.decrypt(vodozemac.MegolmMessage.from_base64(body))
        except (vodozemac.MegolmDecryptionException, vodozemac.DecodeException,
                ValueError) as exc:
            raise CryptoError(f"Megolm decryption failed: {exc}", code="undecryptable") from exc
        return bytes(decrypted.plaintext), int(decrypted.message_index)

    def pickle(self, key: PickleKey) -> str:
        return str(self._session.pickle(key.raw))

    @classmethod
    def from_pickle(cls, pickle: str, key: PickleKey) -> InboundGroupSession:
        try:
            return cls(vodozemac.InboundGroupSession.from_pickle(pickle, key.raw))
        except (vodozemac.PickleException, ValueError) as exc:
            raise _unpickle_error("Megolm inbound session") from exc

