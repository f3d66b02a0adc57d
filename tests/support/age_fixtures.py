"""Shared material for the covey.age tests: one Covey issuer and one issuer built
directly on anoncreds per test session (credential definitions take seconds)."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anoncreds

from covey.age import (
    Approved,
    CheckOutcome,
    Issuer,
    Rejected,
    TrustRegistry,
    Verifier,
    Wallet,
    years_before,
)


class DeclaredBirthDate:
    """Test check: approves the `birth_date` in the evidence, rejects `"reject": true`."""

    def review(self, evidence: Mapping[str, Any]) -> CheckOutcome:
        if evidence.get("reject"):
            return Rejected("evidence refused")
        return Approved(date.fromisoformat(evidence["birth_date"]))


@functools.cache
def covey_issuer() -> Issuer:
    directory = Path(tempfile.mkdtemp(prefix="covey-age-issuer-")) / "issuer"
    return Issuer.create(directory, "did:web:bank.example", DeclaredBirthDate(), capacity=200)


def today() -> date:
    return datetime.now(UTC).date()


def born_years_ago(years: int, *, days: int = 0) -> date:
    """A birth date `years` years (plus `days` days) before today."""
    return years_before(today(), years) - timedelta(days=days)


def holder(issuer: Issuer, birth_date: date) -> tuple[Wallet, str]:
    """A wallet holding one credential for `birth_date`; returns it and the issuer's id."""
    wallet = Wallet.create()
    request = wallet.request_credential(issuer.offer())
    result = issuer.submit_request(request, {"birth_date": birth_date.isoformat()})
    assert result.status == "issued" and result.message and result.credential_id
    wallet.store_credential(result.message)
    return wallet, result.credential_id


def registry_for(*entries: Mapping[str, Any]) -> TrustRegistry:
    return TrustRegistry.from_entries(entries)


class FakeClock:
    """A clock that starts at the real time (status lists carry real timestamps)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def verifier_for(registry: TrustRegistry, **kwargs: Any) -> Verifier:
    return Verifier(registry, **kwargs)


@dataclass
class RawIssuer:
    """An AnonCreds issuer written straight on the library, as another vendor would."""

    issuer_id: str
    schema_id: str
    cred_def_id: str
    rev_reg_def_id: str
    schema: Any
    cred_def: Any
    cred_def_private: Any
    key_proof: Any
    rev_reg_def: Any
    rev_reg_def_private: Any
    status_list: Any
    tails_dir: Path
    next_index: int = 1

    def entry(self) -> dict[str, Any]:
        """What this issuer publishes, in the trust-registry shape."""
        return {
            "issuer_id": self.issuer_id,
            "schema_id": self.schema_id,
            "schema": self.schema.to_dict(),
            "cred_def_id": self.cred_def_id,
            "cred_def": self.cred_def.to_dict(),
            "revocation": {
                "rev_reg_def_id": self.rev_reg_def_id,
                "rev_reg_def": self.rev_reg_def.to_dict(),
                "status_list": self.status_list.to_dict(),
                "tails_hash": self.rev_reg_def.tails_hash,
            },
        }

    def offer(self) -> dict[str, Any]:
        offer = anoncreds.CredentialOffer.create(self.schema_id, self.cred_def_id,
                                                 self.key_proof)
        return {"offer": offer.to_dict(), "issuer": self.entry()}

    def issue(self, offer: Mapping[str, Any], request: Mapping[str, Any],
              birthdate_dateint: int) -> dict[str, Any]:
        config = anoncreds.CredentialRevocationConfig(
            self.rev_reg_def, self.rev_reg_def_private, self.status_list, self.next_index)
        self.next_index += 1
        credential = anoncreds.Credential.create(
            self.cred_def, self.cred_def_private, dict(offer), dict(request),
            {"birthdate_dateint": str(birthdate_dateint)}, None, config)
        return {"request_nonce": request["nonce"], "credential": credential.to_dict()}


@functools.cache
def raw_issuer() -> RawIssuer:
    tails_dir = Path(tempfile.mkdtemp(prefix="raw-anoncreds-tails-"))
    issuer_id = "https://school.example/issuer"
    schema_id = f"{issuer_id}/schema/age/1"
    cred_def_id = f"{issuer_id}/cred-def/age"
    rev_reg_def_id = f"{issuer_id}/rev-reg/age/1"
    schema = anoncreds.Schema.create("school-age", "1", issuer_id, ["birthdate_dateint"])
    cred_def, cred_def_private, key_proof = anoncreds.CredentialDefinition.create(
        schema_id, schema, issuer_id, "age", "CL", support_revocation=True)
    rev_reg_def, rev_reg_def_private = anoncreds.RevocationRegistryDefinition.create(
        cred_def_id, cred_def, issuer_id, "1", "CL_ACCUM", 20, tails_dir_path=str(tails_dir))
    status_list = anoncreds.RevocationStatusList.create(
        cred_def, rev_reg_def_id, rev_reg_def, rev_reg_def_private, issuer_id, True,
        int(datetime.now(UTC).timestamp()))
    return RawIssuer(issuer_id, schema_id, cred_def_id, rev_reg_def_id, schema, cred_def,
                     cred_def_private, key_proof, rev_reg_def, rev_reg_def_private,
                     status_list, tails_dir)
