"""How an issuer learns a birth date before it signs one: the `BirthDateCheck` interface.

A bank, an eID scheme or a school plugs in here: `review` gets whatever evidence the
holder's client submitted (an OpenID Connect ID token, an eID assertion, a school
roster reference) and answers approved-with-a-date, pending, or rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Approved:
    """The check vouches for this birth date."""

    birth_date: date


@dataclass(frozen=True)
class Pending:
    """No decision yet (a human or an asynchronous check is still working)."""

    reason: str = "waiting for a decision"


@dataclass(frozen=True)
class Rejected:
    """The check will not vouch for this holder."""

    reason: str


CheckOutcome = Approved | Pending | Rejected


@runtime_checkable
class BirthDateCheck(Protocol):
    """Decides the birth date to sign, from the holder's evidence.

    Implementations must be idempotent: the issuer may call `review` again for a
    pending ticket. They should keep no copy of the evidence after deciding.
    """

    def review(self, evidence: Mapping[str, Any]) -> CheckOutcome: ...


class ManualApproval:
    """Every request waits until an operator calls `Issuer.approve` or `Issuer.reject`."""

    def review(self, evidence: Mapping[str, Any]) -> CheckOutcome:
        return Pending("waiting for an operator")
