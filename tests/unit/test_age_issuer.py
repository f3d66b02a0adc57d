"""The issuer: state on disk, the birth-date check, manual approval, offers, revocation."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from covey.age import (
    AgeBand,
    BirthDateCheck,
    CheckOutcome,
    CredentialRevoked,
    CredentialUnknown,
    IssuanceRejected,
    Issuer,
    ManualApproval,
    OfferUnknown,
    Pending,
    TicketUnknown,
    TrustRegistry,
    Verifier,
    Wallet,
)
from covey.errors import CoveyError
from tests.support.age_fixtures import DeclaredBirthDate, covey_issuer, holder


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return covey_issuer()


def reopen(issuer: Issuer, check: BirthDateCheck) -> Issuer:
    """The same issuer directory with another check (as after a restart)."""
    return Issuer(issuer.tails_path.parent.parent, check)


def test_state_directory_keeps_private_parts_private(issuer: Issuer) -> None:
    directory = issuer.tails_path.parent.parent
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(directory) == 0o700
    assert mode(directory / "private.json") == 0o600
    assert mode(directory / "ledger.json") == 0o600
    assert issuer.tails_path.is_file()
    public = json.loads((directory / "public.json").read_text())
    assert "cred_def_private" not in json.dumps(public)
    assert public == issuer.publish()


def test_publish_is_a_complete_trust_registry_entry(issuer: Issuer) -> None:
    entry = issuer.publish()
    assert entry["issuer_id"] == "did:web:bank.example"
    assert entry["schema"]["attrNames"] == ["birthdate_dateint"]
    for key in ("schema_id", "cred_def_id"):
        assert entry[key].startswith("did:web:bank.example/")
    revocation = entry["revocation"]
    assert revocation["rev_reg_def"]["revocDefType"] == "CL_ACCUM"
    assert revocation["status_list"]["revRegDefId"] == revocation["rev_reg_def_id"]
    # The issuer's file system layout does not leak into public material.
    assert revocation["rev_reg_def"]["value"]["tailsLocation"] == revocation["tails_hash"]
    assert "/tmp" not in json.dumps(entry)


def test_issued_credential_carries_the_approved_birth_date(issuer: Issuer) -> None:
    wallet, credential_id = holder(issuer, date(2001, 2, 3))
    (held,) = wallet.credentials()
    assert held.birthdate_dateint == 20010203
    assert held.rev_reg_id == issuer.rev_reg_def_id
    assert not issuer.is_revoked(credential_id)
    # The issuer keeps an index to revoke, not the birth date.
    ledger = (issuer.tails_path.parent.parent / "ledger.json").read_text()
    assert "20010203" not in ledger


def test_manual_approval_waits_for_an_operator(issuer: Issuer) -> None:
    manual = reopen(issuer, ManualApproval())
    wallet = Wallet.create()
    request = wallet.request_credential(manual.offer())
    submitted = manual.submit_request(request, {"document": "passport, seen at branch 12"})
    assert submitted.status == "pending" and submitted.message is None
    assert manual.collect(submitted.ticket_id).status == "pending"
    (ticket,) = [t for t in manual.pending() if t.ticket_id == submitted.ticket_id]
    assert ticket.evidence == {"document": "passport, seen at branch 12"}

    approved = manual.approve(submitted.ticket_id, date(1990, 6, 15))
    assert approved.status == "issued"
    assert submitted.ticket_id not in [t.ticket_id for t in manual.pending()]
    # The holder collects the credential once; then the issuer forgets it.
    collected = manual.collect(submitted.ticket_id)
    assert collected.message == approved.message
    with pytest.raises(TicketUnknown):
        manual.collect(submitted.ticket_id)
    assert collected.message is not None
    assert wallet.store_credential(collected.message).birthdate_dateint == 19900615
    assert "passport" not in (issuer.tails_path.parent.parent / "ledger.json").read_text()


def test_operator_rejection(issuer: Issuer) -> None:
    manual = reopen(issuer, ManualApproval())
    wallet = Wallet.create()
    submitted = manual.submit_request(wallet.request_credential(manual.offer()), {})
    manual.reject(submitted.ticket_id, "documents do not match")
    with pytest.raises(IssuanceRejected) as exc:
        manual.collect(submitted.ticket_id)
    assert exc.value.code == "issuance_rejected"


def test_check_rejection(issuer: Issuer) -> None:
    wallet = Wallet.create()
    with pytest.raises(IssuanceRejected):
        issuer.submit_request(wallet.request_credential(issuer.offer()), {"reject": True})


class Eventually:
    """A check that answers later (an asynchronous eID or bank callback)."""

    def __init__(self) -> None:
        self.answer: CheckOutcome = Pending("waiting for the bank")

    def review(self, evidence: Mapping[str, Any]) -> CheckOutcome:
        return self.answer


def test_pluggable_check_decides_on_collect(issuer: Issuer) -> None:
    check = Eventually()
    assert isinstance(check, BirthDateCheck)
    later = reopen(issuer, check)
    wallet = Wallet.create()
    submitted = later.submit_request(wallet.request_credential(later.offer()), {"token": "t"})
    assert later.collect(submitted.ticket_id).status == "pending"
    check.answer = DeclaredBirthDate().review({"birth_date": "2012-12-12"})
    result = later.collect(submitted.ticket_id)
    assert result.status == "issued" and result.message is not None
    assert wallet.store_credential(result.message).birthdate_dateint == 20121212


def test_offers_are_single_use(issuer: Issuer) -> None:
    wallet = Wallet.create()
    request = wallet.request_credential(issuer.offer())
    issuer.submit_request(request, {"birth_date": "2000-01-01"})
    with pytest.raises(OfferUnknown) as exc:
        issuer.submit_request(request, {"birth_date": "2000-01-01"})
    assert exc.value.code == "offer_unknown"
    forged = dict(request, offer_nonce="12345")
    with pytest.raises(OfferUnknown):
        issuer.submit_request(forged, {"birth_date": "2000-01-01"})


def test_malformed_request_is_rejected(issuer: Issuer) -> None:
    for bad in ({}, {"request": "x", "offer_nonce": "1"}, {"request": {"a": 1},
                                                          "offer_nonce": "1"}):
        with pytest.raises(CoveyError) as exc:
            issuer.submit_request(bad, {})
        assert 400 <= exc.value.status < 500


def test_revocation_updates_the_published_status_list(issuer: Issuer) -> None:
    _, credential_id = holder(issuer, date(1985, 1, 1))
    before = issuer.publish()["revocation"]["status_list"]
    after = issuer.revoke(credential_id)
    assert after["timestamp"] > before["timestamp"]
    assert issuer.publish()["revocation"]["status_list"] == after
    assert sum(after["revocationList"]) == sum(before["revocationList"]) + 1
    assert issuer.is_revoked(credential_id)
    assert issuer.revoke(credential_id) == after  # idempotent
    # Survives a restart.
    assert reopen(issuer, ManualApproval()).is_revoked(credential_id)
    with pytest.raises(CredentialUnknown):
        issuer.revoke("no-such-credential")


def test_wallet_refuses_a_credential_it_did_not_request(issuer: Issuer) -> None:
    alice = Wallet.create()
    bob = Wallet.create()
    request = alice.request_credential(issuer.offer())
    result = issuer.submit_request(request, {"birth_date": "2000-01-01"})
    assert result.message is not None
    with pytest.raises(CoveyError):
        bob.store_credential(result.message)


def test_cannot_create_over_an_existing_issuer(issuer: Issuer, tmp_path: Path) -> None:
    with pytest.raises(CoveyError):
        Issuer.create(issuer.tails_path.parent.parent, "did:web:other.example",
                      ManualApproval())


def test_two_issuer_objects_on_one_directory_never_share_an_index(issuer: Issuer) -> None:
    twin = reopen(issuer, DeclaredBirthDate())
    first, _ = holder(issuer, date(2000, 1, 1))
    second, _ = holder(twin, date(2000, 1, 1))
    third, _ = holder(issuer, date(2000, 1, 1))
    indexes = [w.credentials()[0].rev_reg_index for w in (first, second, third)]
    assert len(set(indexes)) == 3


def _full_copy(issuer: Issuer, directory: Path) -> Issuer:
    """A copy of the issuer (same keys) whose revocation registry is full."""
    shutil.copytree(issuer.tails_path.parent.parent, directory)
    ledger = json.loads((directory / "ledger.json").read_text())
    ledger["capacity"] = ledger["next_index"] - 1
    (directory / "ledger.json").write_text(json.dumps(ledger))
    return Issuer(directory, DeclaredBirthDate())


def _verify(wallet: Wallet, issuer: Issuer) -> AgeBand:
    registry = TrustRegistry.from_entries([issuer.publish()])
    verifier = Verifier(registry)
    submission = wallet.present(verifier.challenge(AgeBand.SIXTEEN_PLUS),
                                status_lists=registry.status_lists(),
                                tails_dir=issuer.tails_path.parent)
    return verifier.verify(submission).band


@pytest.mark.slow
def test_a_full_registry_is_followed_by_a_new_one(issuer: Issuer, tmp_path: Path) -> None:
    first_registry = issuer.rev_reg_def_id
    old_holder, old_id = holder(issuer, date(1990, 5, 5))  # before the copy: registry 1
    full = _full_copy(issuer, tmp_path / "issuer")
    capacity = json.loads((tmp_path / "issuer" / "ledger.json").read_text())["capacity"]

    wallet = Wallet.create()
    result = full.submit_request(wallet.request_credential(full.offer()),
                                 {"birth_date": "1991-01-01"})
    assert result.rev_reg_def_id == full.rev_reg_def_id != first_registry
    assert result.rev_reg_def_id.endswith("/revocation/2")
    held = wallet.store_credential(result.message or {})
    assert held.rev_reg_id == result.rev_reg_def_id and held.rev_reg_index == 1
    # The new registry holds `capacity` credentials too; the third one is in registry 3.
    later = [holder(full, date(1992, 2, 2)) for _ in range(capacity)]
    assert later[-2][0].credentials()[0].rev_reg_id == result.rev_reg_def_id
    assert later[-1][0].credentials()[0].rev_reg_id.endswith("/revocation/3")

    # Every registry is published, oldest first; `revocation` is the one issuing.
    entry = full.publish()
    listed = [r["rev_reg_def_id"] for r in entry["revocation_registries"]]
    assert listed == [first_registry, result.rev_reg_def_id,
                      later[-1][0].credentials()[0].rev_reg_id]
    assert entry["revocation"] == entry["revocation_registries"][-1]
    for registry in entry["revocation_registries"]:
        assert full.tails_file(registry["tails_hash"]) is not None
    assert full.tails_file("not-a-tails-hash") is None

    # Holders of every registry prove against the one trust-registry entry.
    for holder_wallet in (old_holder, wallet, later[-1][0]):
        assert _verify(holder_wallet, full) is AgeBand.SIXTEEN_PLUS

    # Revoking in an old registry changes that registry's status list only.
    before = full.publish()["revocation_registries"]
    status_list = full.revoke(old_id)
    assert status_list["revRegDefId"] == first_registry
    after = full.publish()["revocation_registries"]
    assert after[0]["status_list"] == status_list != before[0]["status_list"]
    assert after[1:] == before[1:]
    with pytest.raises(CredentialRevoked):
        _verify(old_holder, full)
    assert _verify(wallet, full) is AgeBand.SIXTEEN_PLUS
    # And it all survives a restart.
    assert reopen(full, ManualApproval()).is_revoked(old_id)
    assert reopen(full, ManualApproval()).publish() == full.publish()


def test_a_directory_from_before_rotation_still_works(issuer: Issuer, tmp_path: Path) -> None:
    """Directories written before registries rotated: one `rev_reg_def_private`, no
    registry per credential in the ledger."""
    old_holder, old_id = holder(issuer, date(1980, 3, 3))
    legacy = tmp_path / "legacy"
    full = _full_copy(issuer, legacy)
    private = json.loads((legacy / "private.json").read_text())
    (only,) = private.pop("rev_reg_def_privates").values()
    private["rev_reg_def_private"] = only
    (legacy / "private.json").write_text(json.dumps(private))
    ledger = json.loads((legacy / "ledger.json").read_text())
    for key in ("rev_reg_def_id", "tails_base_url"):
        ledger.pop(key)
    for record in ledger["credentials"].values():
        record.pop("rev_reg_def_id")
    (legacy / "ledger.json").write_text(json.dumps(ledger))

    full = Issuer(legacy, DeclaredBirthDate())
    newcomer, _ = holder(full, date(1999, 9, 9))
    assert newcomer.credentials()[0].rev_reg_id.endswith("/revocation/2")
    assert full.revoke(old_id)["revRegDefId"] == issuer.publish()["revocation"]["rev_reg_def_id"]
    with pytest.raises(CredentialRevoked):
        _verify(old_holder, full)
    assert _verify(newcomer, full) is AgeBand.SIXTEEN_PLUS
