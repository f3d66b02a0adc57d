"""Reports are attributed only from verified evidence, against a real server: a forged
reported message naming an innocent user is stored as an unverified claim (no reported
user, priority 0, no console action against anyone), a flood of them stays at the bottom
of the queue and runs into the per-account and per-IP report limit, and the reporter's
age band comes from the age service (an issuer no longer trusted gives no band)."""

from __future__ import annotations

import asyncio
import copy
import secrets
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from covey.client import Client
from covey.client._reporting import build_report
from covey.moderation import ReportCategory
from covey.moderation.wire import ReportSubmission
from tests.integration._age import write_registry
from tests.integration._console import console_login, create_console_user
from tests.integration._safety import People, band_issuer, people, trust_band_issuer
from tests.integration.test_client_e2e import Devices, receive

__all__ = ["band_issuer", "people", "trust_band_issuer"]

pytestmark = pytest.mark.timeout(240)

GROOMING = ReportCategory.GROOMING_OR_ENTICEMENT


@pytest.fixture
async def devices(covey_server: Any, tmp_path: Path) -> Any:
    made = Devices(covey_server, tmp_path / "clients")
    made.tmp.mkdir()
    yield made
    await made.close_all()


def _post_report(server: Any, client: Client, report: dict[str, Any]) -> httpx.Response:
    assert client._api.token is not None
    return httpx.post(f"{server.url}/v1/reports", json={"report": report, "block": False},
                      headers={"Authorization": f"Bearer {client._api.token}"}, timeout=30,
                      trust_env=False)


def _forged(client: Client, genuine_id: str, n: int) -> dict[str, Any]:
    """The reporter's genuine history as context, plus a reported message the claimed
    sender never sent (a new id, later than the genuine lines, an abusive text)."""
    report = ReportSubmission(report=build_report(
        client.core.history(), client.user_id, genuine_id, GROOMING)).model_dump(
            mode="json")["report"]
    forged = copy.deepcopy(next(m for m in report["messages"]
                                if m["context"]["message_id"] == genuine_id))
    forged_id = f"forged-{n}-{secrets.token_hex(4)}"
    forged["content"]["message_id"] = forged_id
    forged["context"]["message_id"] = forged_id
    forged["content"]["text"] = "a message its claimed sender never wrote"
    forged["context"]["server_ts_ms"] += 1 + n
    report["messages"].append(forged)
    report["reported_message_id"] = forged_id
    return report


async def _rows(server: Any, sql: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = await asyncio.to_thread(server.rows, sql)
    return rows


async def test_a_forged_message_cannot_get_an_innocent_user_attributed_or_suspended(
        covey_server: Any, devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    genuine = await alice.send_text("bob", "see you at practice")
    await receive(bob, 1)
    await bob.flush()
    answer = _post_report(covey_server, bob, _forged(bob, genuine, 0))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["attribution"] == "unverified_claim" and body["priority"] == 0
    assert not body["reported_message_verified"]
    rows = await _rows(covey_server, "SELECT report_id, reported_user, priority, "
                       "reported_verified FROM reports")
    assert [r[1:] for r in rows] == [("", 0, 0)]
    report_id = rows[0][0]

    await asyncio.to_thread(create_console_user, covey_server, "mod", "moderator")
    http, csrf = await asyncio.to_thread(console_login, covey_server, "mod")
    try:
        queue = http.get("/console/")
        assert "unverified claim" in queue.text
        page = http.get(f"/console/reports/{report_id}")
        assert "unverified claim" in page.text and 'value="suspend"' not in page.text
        for action in ("suspend", "warn", "escalate"):
            refused = http.post(f"/console/reports/{report_id}/action",
                                data={"csrf": csrf, "action": action, "confirm": "yes",
                                      "reason": "the message is abusive"})
            assert refused.status_code == 303
            location = refused.headers["location"]
            assert location.endswith("?error=unverified_claim"), location
    finally:
        http.close()
    assert await _rows(covey_server, "SELECT user_id FROM suspensions") == []
    assert await _rows(covey_server, "SELECT user_id FROM warnings") == []
    assert await _rows(covey_server, "SELECT report_id FROM escalations") == []
    # alice is untouched: she can still send.
    await alice.send_text("bob", "still here")
    assert [m.text for m in await receive(bob, 1)] == ["still here"]


async def test_a_flood_of_forged_reports_stays_low_and_is_rate_limited(
        covey_server: Any, devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    carol = await devices.register("carol")
    genuine = await alice.send_text("bob", "you seem really mature for your age")
    await receive(bob, 1)
    await bob.flush()
    real = await bob.report(genuine, GROOMING)
    assert real.attribution == "verified" and real.priority == 2
    statuses = [_post_report(covey_server, bob, _forged(bob, genuine, n))
                for n in range(25)]
    codes = [a.status_code for a in statuses]
    created = codes.count(201)
    assert 0 < created < 25 and set(codes) == {201, 429}, codes
    limited = next(a for a in statuses if a.status_code == 429)
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    # The same IP is limited for another account too.
    other = _post_report(covey_server, carol, _forged(bob, genuine, 99))
    assert other.status_code == 429, other.text
    rows = await _rows(covey_server, "SELECT priority, reported_user FROM reports "
                       "ORDER BY priority DESC")
    assert rows[0] == (2, "alice")
    assert rows[1:] == [(0, "")] * created


async def test_the_reporters_band_comes_from_the_age_service(
        people: People, covey_server: Any, band_issuer: Any) -> None:
    adult, kid = await people.adult("ada"), await people.child("kid")
    request_id = await adult.request_contact(kid.user_id)
    await kid.accept_contact(request_id)
    first = await adult.send_text(kid.user_id, "do your parents check your phone?")
    second = await adult.send_text(kid.user_id, "add me on another app")
    got = [await kid.next_message(within_s=15) for _ in range(2)]
    assert [m.message_id for m in got] == [first, second]
    receipt = await kid.report(first, GROOMING)
    assert receipt.priority == 3  # child safety (2) + an under-16 reporter (1)
    # The operator stops trusting the issuer (and tells the server at once, SIGHUP):
    # bands it issued no longer count, though the band row is still in the database.
    write_registry(band_issuer.registry, [])
    try:
        assert covey_server.proc is not None
        covey_server.proc.send_signal(signal.SIGHUP)
        receipt = await kid.report(second, GROOMING)
    finally:
        write_registry(band_issuer.registry, [band_issuer.issuer.publish()])
    assert receipt.priority == 2
    rows = await _rows(covey_server, "SELECT reporter_band, priority FROM reports "
                       "ORDER BY priority DESC")
    assert rows == [("under-16", 3), ("unverified", 2)]
