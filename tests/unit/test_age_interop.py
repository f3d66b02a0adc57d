"""Interoperability: credentials from issuers that are not Covey's, and holders that are
not Covey's wallet, verify with Covey's `Verifier` once their issuer is trusted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anoncreds
import pytest

from covey.age import (
    AgeBand,
    IssuerUntrusted,
    NoMatchingCredential,
    TrustRegistry,
    Verifier,
    Wallet,
    to_dateint,
)
from tests.support.age_fixtures import RawIssuer, born_years_ago, raw_issuer, registry_for


@pytest.fixture(scope="module")
def school() -> RawIssuer:
    return raw_issuer()


def covey_wallet_holding(school: RawIssuer, birthdate_dateint: int) -> Wallet:
    wallet = Wallet.create()
    bundle = school.offer()
    request = wallet.request_credential(bundle)
    wallet.store_credential(school.issue(bundle["offer"], request["request"], birthdate_dateint))
    return wallet


def test_foreign_issuer_credential_verifies_once_trusted(school: RawIssuer) -> None:
    child = covey_wallet_holding(school, to_dateint(born_years_ago(12)))
    status_lists = {school.rev_reg_def_id: school.status_list.to_dict()}

    untrusting = Verifier(TrustRegistry())
    with pytest.raises(Exception):  # noqa: B017 - an empty registry cannot even challenge
        untrusting.challenge(AgeBand.UNDER_16)

    registry = registry_for(school.entry())
    verifier = Verifier(registry)
    submission = child.present(verifier.challenge(AgeBand.UNDER_16), status_lists=status_lists,
                               tails_dir=school.tails_dir)
    result = verifier.verify(submission)
    assert result.band is AgeBand.UNDER_16
    assert result.issuer_id == school.issuer_id

    # Distrusted again: refused.
    submission = child.present(verifier.challenge(AgeBand.UNDER_16), status_lists=status_lists,
                               tails_dir=school.tails_dir)
    registry.distrust(school.cred_def_id)
    with pytest.raises(IssuerUntrusted):
        verifier.verify(submission)


def test_holder_built_on_anoncreds_alone_verifies(school: RawIssuer) -> None:
    """A third-party wallet: only the anoncreds library and Covey's challenge JSON."""
    registry = registry_for(school.entry())
    verifier = Verifier(registry)
    challenge = verifier.challenge(AgeBand.SIXTEEN_PLUS).to_json()

    link_secret = anoncreds.create_link_secret()
    bundle = school.offer()
    request, metadata = anoncreds.CredentialRequest.create(
        "some entropy", None, school.cred_def, link_secret, "main", bundle["offer"])
    issued = school.issue(bundle["offer"], request.to_dict(), to_dateint(born_years_ago(45)))
    credential = anoncreds.Credential.load(issued["credential"]).process(
        metadata, link_secret, school.cred_def, school.rev_reg_def)

    # The third-party wallet answers the AnonCreds request carried in the challenge.
    request_json: dict[str, Any] = challenge["presentation_request"]
    assert request_json["nonce"] == challenge["nonce"]
    status_list = school.status_list
    rev_state = anoncreds.CredentialRevocationState.create(
        school.rev_reg_def, status_list, credential.rev_reg_index,
        str(Path(school.tails_dir) / school.rev_reg_def.tails_hash))
    present = anoncreds.PresentCredentials()
    present.add_predicates(credential, "birthdate",
                           timestamp=status_list.to_dict()["timestamp"], rev_state=rev_state)
    presentation = anoncreds.Presentation.create(
        request_json, present, {}, link_secret, {school.schema_id: school.schema},
        {school.cred_def_id: school.cred_def})

    result = verifier.verify({"nonce": challenge["nonce"],
                              "presentation": presentation.to_dict()})
    assert result.band is AgeBand.SIXTEEN_PLUS


@pytest.fixture(scope="module")
def non_revocable(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A minimal foreign issuer without revocation support."""
    issuer_id = "https://eid.example"
    schema_id, cred_def_id = f"{issuer_id}/schema", f"{issuer_id}/cred-def"
    schema = anoncreds.Schema.create("eid-age", "2", issuer_id, ["birthdate_dateint"])
    cred_def, cred_def_private, key_proof = anoncreds.CredentialDefinition.create(
        schema_id, schema, issuer_id, "eid", "CL", support_revocation=False)
    return {"entry": {"issuer_id": issuer_id, "schema_id": schema_id,
                      "schema": schema.to_dict(), "cred_def_id": cred_def_id,
                      "cred_def": cred_def.to_dict(), "revocation": None},
            "cred_def": cred_def, "cred_def_private": cred_def_private,
            "key_proof": key_proof}


@pytest.mark.slow  # one more credential definition: 1-12 s of safe-prime search
def test_non_revocable_foreign_credential_verifies(non_revocable: dict[str, Any]) -> None:
    entry = non_revocable["entry"]
    offer = anoncreds.CredentialOffer.create(entry["schema_id"], entry["cred_def_id"],
                                             non_revocable["key_proof"])
    wallet = Wallet.create()
    request = wallet.request_credential({"offer": offer.to_dict(), "issuer": entry})
    credential = anoncreds.Credential.create(
        non_revocable["cred_def"], non_revocable["cred_def_private"], offer,
        request["request"], {"birthdate_dateint": str(to_dateint(born_years_ago(20)))})
    wallet.store_credential({"request_nonce": request["request"]["nonce"],
                             "credential": credential.to_dict()})

    verifier = Verifier(registry_for(entry))
    result = verifier.verify(wallet.present(verifier.challenge(AgeBand.SIXTEEN_PLUS)))
    assert result.band is AgeBand.SIXTEEN_PLUS
    with pytest.raises(NoMatchingCredential):
        Wallet.create().present(verifier.challenge(AgeBand.SIXTEEN_PLUS))
