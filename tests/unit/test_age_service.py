"""The issuer's HTTP service (`covey.age.service`) over a real issuer directory: the
offer → request → credential flow a wallet follows, pending tickets, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from covey.age import ManualApproval, Wallet
from covey.age.service import create_issuer_app, load_check
from covey.errors import InvalidInput
from tests.support.age_fixtures import DeclaredBirthDate, born_years_ago, covey_issuer


@pytest.fixture
def directory() -> Path:
    return covey_issuer().tails_path.parent.parent


def test_offer_request_credential_with_an_automatic_check(directory: Path) -> None:
    http = TestClient(create_issuer_app(directory, DeclaredBirthDate()))
    assert http.get("/v1/issuer").json()["issuer_id"] == "did:web:bank.example"
    wallet = Wallet.create()
    offer = http.post("/v1/offers").json()
    answer = http.post("/v1/requests", json={
        "request": wallet.request_credential(offer),
        "evidence": {"birth_date": born_years_ago(20).isoformat()}}).json()
    assert answer["status"] == "issued"
    held = wallet.store_credential(answer["message"])
    assert held.birthdate_dateint == int(born_years_ago(20).strftime("%Y%m%d"))
    tails = http.get(f"/v1/tails/{directory.joinpath('tails').iterdir().__next__().name}")
    assert tails.status_code == 200 and len(tails.content) > 0


def test_manual_approval_keeps_the_ticket_pending_until_an_operator_decides(
        directory: Path) -> None:
    http = TestClient(create_issuer_app(directory, ManualApproval()))
    wallet = Wallet.create()
    request = wallet.request_credential(http.post("/v1/offers").json())
    answer = http.post("/v1/requests", json={"request": request,
                                             "evidence": {"student_id": "S-1"}}).json()
    assert answer["status"] == "pending" and "message" not in answer
    ticket = answer["ticket_id"]
    assert http.get(f"/v1/requests/{ticket}").json()["status"] == "pending"
    covey_issuer().approve(ticket, born_years_ago(12))  # the operator, another object
    issued = http.get(f"/v1/requests/{ticket}").json()
    assert issued["status"] == "issued"
    wallet.store_credential(issued["message"])
    # Handed out once, then forgotten.
    assert http.get(f"/v1/requests/{ticket}").status_code == 404


def test_rejected_and_bad_requests_are_4xx_with_a_code(directory: Path) -> None:
    http = TestClient(create_issuer_app(directory, DeclaredBirthDate()))
    wallet = Wallet.create()
    request = wallet.request_credential(http.post("/v1/offers").json())
    refused = http.post("/v1/requests", json={"request": request, "evidence": {"reject": True}})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "issuance_rejected"
    # The offer was used up by that request.
    again = http.post("/v1/requests", json={"request": request, "evidence": {}})
    assert again.status_code == 400 and again.json()["error"]["code"] == "offer_unknown"
    for body in (b"{not json", b"[]", b'{"request": 1}', b'{"request": {}, "evidence": 2}'):
        response = http.post("/v1/requests", content=body)
        assert response.status_code == 400, body
    assert http.get("/v1/requests/nope").json()["error"]["code"] == "ticket_unknown"
    assert http.get("/v1/tails/not-the-hash").status_code == 404


def test_load_check() -> None:
    assert isinstance(load_check(None), ManualApproval)
    assert isinstance(load_check("tests.support.age_fixtures:DeclaredBirthDate"),
                      DeclaredBirthDate)
    with pytest.raises(InvalidInput):
        load_check("tests.support.age_fixtures")
    with pytest.raises(InvalidInput):
        load_check("tests.support.age_fixtures:today")
