"""The age challenge: a single-use AnonCreds presentation request for one band.

The verifier makes it, the wallet answers it. Both derive the AnonCreds request from
the same fields, so what the wallet proves is exactly what the verifier checks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from covey.age.bands import AgeBand, Predicate
from covey.errors import InvalidInput

PREDICATE_REFERENT = "birthdate"
REQUEST_NAME = "covey-age"
# AnonCreds nonces are decimal strings of 80 bits (`anoncreds.generate_nonce()`).
_NONCE_BYTES = 10
_NONCE_LABEL = b"covey/age-nonce/v1"


def normalize_origin(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower case, default ports dropped: what a
    challenge names as its verifier and a wallet compares with its own server."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"not an http(s) origin: {url!r}")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    port = "" if parts.port in (None, default) else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}"


def derive_nonce(origin: str, account: str, seed: bytes) -> str:
    """The presentation nonce bound to a verifier and an account: 80 bits of
    HMAC-SHA256(seed, label ‖ origin ‖ account), as a decimal string.

    The seed is fresh randomness per challenge (so nonces stay unpredictable and single
    use); a wallet given origin, account and seed recomputes the nonce, so a challenge
    relayed from another account or another verifier is recognised."""
    message = b"\x00".join((_NONCE_LABEL, origin.encode(), account.encode()))
    digest = hmac.new(seed, message, hashlib.sha256).digest()
    return str(int.from_bytes(digest[:_NONCE_BYTES], "big"))


def new_nonce_seed() -> bytes:
    return secrets.token_bytes(32)


@dataclass(frozen=True)
class AgeChallenge:
    """What the verifier asks: prove `predicate` with a credential from `cred_def_ids`."""

    nonce: str
    band: AgeBand
    predicate: Predicate
    cred_def_ids: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    horizon_days: int
    # The binding (docs/age-assurance.md): who asks, for which account, and the seed the
    # nonce was derived from. Empty in challenges not bound (a bare `Verifier`).
    origin: str = ""
    account: str = ""
    nonce_seed: str = ""

    def binding_holds(self) -> bool:
        """Whether the nonce recomputes from origin, account and seed."""
        if not (self.origin and self.account and self.nonce_seed):
            return False
        try:
            seed = base64.b64decode(self.nonce_seed, validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(derive_nonce(self.origin, self.account, seed),
                                   self.nonce)

    def presentation_request(self) -> dict[str, Any]:
        """The AnonCreds presentation request (legacy format)."""
        predicate = self.predicate.to_request()
        predicate["restrictions"] = [{"cred_def_id": c} for c in self.cred_def_ids]
        return {
            "name": REQUEST_NAME,
            "version": "1.0",
            "nonce": self.nonce,
            "requested_attributes": {},
            "requested_predicates": {PREDICATE_REFERENT: predicate},
            # The holder proves against the status list current when it answers; the
            # verifier then insists on its own current list (see Verifier.verify).
            "non_revoked": {"to": int(self.expires_at.timestamp())},
        }

    def to_json(self) -> dict[str, Any]:
        """What the client receives."""
        return {
            "nonce": self.nonce,
            "band": self.band.value,
            "predicate": {"attribute": self.predicate.attribute,
                          "p_type": self.predicate.p_type,
                          "p_value": self.predicate.p_value},
            "cred_def_ids": list(self.cred_def_ids),
            "issued_at": self.issued_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "horizon_days": self.horizon_days,
            "origin": self.origin,
            "account": self.account,
            "nonce_seed": self.nonce_seed,
            # Verbatim AnonCreds request for wallets that are not Covey's; Covey's wallet
            # and verifier rebuild it from the fields above.
            "presentation_request": self.presentation_request(),
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> AgeChallenge:
        try:
            predicate = value["predicate"]
            return cls(
                nonce=str(value["nonce"]),
                band=AgeBand(value["band"]),
                predicate=Predicate(str(predicate["p_type"]), int(predicate["p_value"]),
                                    str(predicate["attribute"])),
                cred_def_ids=tuple(str(c) for c in value["cred_def_ids"]),
                issued_at=datetime.fromisoformat(value["issued_at"]).astimezone(UTC),
                expires_at=datetime.fromisoformat(value["expires_at"]).astimezone(UTC),
                horizon_days=int(value["horizon_days"]),
                origin=str(value.get("origin") or ""),
                account=str(value.get("account") or ""),
                nonce_seed=str(value.get("nonce_seed") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not an age challenge: {exc}") from exc
