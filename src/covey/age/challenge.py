"""The age challenge: a single-use AnonCreds presentation request for one band.

The verifier makes it, the wallet answers it. Both derive the AnonCreds request from
the same fields, so what the wallet proves is exactly what the verifier checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from covey.age.bands import AgeBand, Predicate
from covey.errors import InvalidInput

PREDICATE_REFERENT = "birthdate"
REQUEST_NAME = "covey-age"


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
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not an age challenge: {exc}") from exc
