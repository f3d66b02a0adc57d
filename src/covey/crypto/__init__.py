"""A thin typed layer over vodozemac: device accounts, key checks, Olm and Megolm sessions.

Keys are distinct small types; secrets (pickle keys) have a redacted repr and are never
compared with `==` on raw bytes. No primitive here is home-made: vodozemac does Olm and
Megolm, the `cryptography` package the rest.
"""

from covey.crypto._account import DeviceAccount
from covey.crypto._keys import IdentityKey, OneTimeKey, PickleKey, Signature, SigningKey
from covey.crypto._sessions import (
    InboundGroupSession,
    OlmMessage,
    OlmSession,
    OutboundGroupSession,
)
from covey.crypto._verify import (
    VerifiedBundle,
    VerifiedDevice,
    verify_bundle,
    verify_device_keys,
)

__all__ = [
    "DeviceAccount",
    "IdentityKey",
    "InboundGroupSession",
    "OlmMessage",
    "OlmSession",
    "OneTimeKey",
    "OutboundGroupSession",
    "PickleKey",
    "Signature",
    "SigningKey",
    "VerifiedBundle",
    "VerifiedDevice",
    "verify_bundle",
    "verify_device_keys",
]
