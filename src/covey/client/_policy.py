"""What the client believes about each conversation's protection, and why it believes it.

The server's policy-signing key is pinned on first use (trust on first use, like the
device keys); every conversation policy and the safety service's key must verify under
it. A policy is what the client shows ("end-to-end encrypted" / "safeguarded: ...") and
decides whether each message carries a safety copy. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from covey.errors import CryptoError
from covey.protocol._encoding import b64decode
from covey.protocol.safety_copy import SafetyServicePublicKey
from covey.protocol.wire import (
    ConversationPolicyBody,
    OnDeviceRules,
    PolicyStatement,
    SafetyKeys,
)
from covey.safety.detectors import rules_version
from covey.safety.policy import (
    on_device_rules_bytes,
    policy_statement_bytes,
    safety_keys_statement_bytes,
)

# A stored policy is used for sending this long; the server refuses a send made under a
# stale one (`safety_copy_missing` / `safety_copy_not_expected`) and the client refreshes.
POLICY_TTL_MS = 5 * 60 * 1000


class PolicyKeyChanged(CryptoError):
    """The server's policy-signing key is not the one pinned for it."""

    code = "policy_key_changed"


def _verify(public_b64: str, signature_b64: str, message: bytes, what: str) -> None:
    try:
        key = Ed25519PublicKey.from_public_bytes(b64decode(public_b64, field="key"))
        key.verify(b64decode(signature_b64, field="signature"), message)
    except (InvalidSignature, ValueError) as exc:
        raise CryptoError(f"the server's {what} signature does not verify",
                          code="bad_policy_signature") from exc


def check_safety_keys(keys: SafetyKeys, pinned_signing_key: str | None) -> None:
    """Raise unless `keys` is signed by the pinned key (or, on first use, by itself)."""
    if pinned_signing_key is not None and pinned_signing_key != keys.policy_signing_key:
        raise PolicyKeyChanged("the server's policy-signing key changed since this device "
                               "first saw it; refusing to trust it")
    public = SafetyServicePublicKey.from_b64(keys.safety_service_key)
    if public.key_id() != keys.safety_service_key_id:
        raise CryptoError("the safety service key id does not match its key",
                          code="bad_policy_signature")
    _verify(keys.policy_signing_key, keys.signature, safety_keys_statement_bytes(
        keys.safety_service_key, keys.safety_service_key_id, keys.mode), "safety key")


def check_on_device_rules(rules: OnDeviceRules, signing_key: str) -> None:
    if rules_version(rules.detectors) != rules.version:
        raise CryptoError("the on-device rules' version does not match their content",
                          code="bad_policy_signature")
    _verify(signing_key, rules.signature,
            on_device_rules_bytes(rules.mode, rules.version, rules.detectors),
            "on-device rules")


def check_statement(statement: PolicyStatement, signing_key: str) -> None:
    _verify(signing_key, statement.signature, policy_statement_bytes(
        statement.conversation_id, statement.epoch, statement.issued_at_ms,
        statement.policy.model_dump(mode="json")), "conversation policy")


@dataclass(frozen=True)
class KnownPolicy:
    """A verified policy as stored: when it arrived and for which group epoch."""

    statement: PolicyStatement
    received_ms: int

    @property
    def policy(self) -> ConversationPolicyBody:
        return self.statement.policy

    def usable(self, now_ms: int, epoch: int) -> bool:
        return (self.statement.epoch == epoch
                and 0 <= now_ms - self.received_ms < POLICY_TTL_MS)
