"""The scan queue against a real server: a message whose process dies between its commit
and its scan is scanned (and reported) after the restart, and a detection whose report
cannot be filed stays queued, is retried with backoff, is logged at WARNING and shown on
the moderation console until it is filed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from covey.client import Client
from covey.server.storage.engine import create_engine
from tests.integration._age import wait_for
from tests.integration._console import console_login, create_console_user
from tests.integration._safety import People, band_issuer, people, trust_band_issuer

__all__ = ["band_issuer", "people", "trust_band_issuer"]

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

PHRASES = "# test phrase list\n[high, category=grooming_or_enticement] meet me alone\n"
FLAGGED = "let's meet me alone after school"


@pytest.fixture
def _phrase_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "phrases.txt"
    path.write_text(PHRASES)
    monkeypatch.setenv("COVEY_SAFETY_PHRASE_LIST", str(path))
    # The phrase list alone (not the default grooming scorer too).
    monkeypatch.setenv("COVEY_SAFETY_DETECTORS", "{}")
    # Quick sweeps and retries, so the test waits seconds, not minutes.
    monkeypatch.setenv("COVEY_SCAN_LEASE_S", "1")
    monkeypatch.setenv("COVEY_SCAN_SWEEP_INTERVAL_S", "0.2")
    monkeypatch.setenv("COVEY_SCAN_RETRY_BASE_S", "0.5")
    monkeypatch.setenv("COVEY_SCAN_RETRY_MAX_S", "1")
    return path


async def _rows(server: Any, sql: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = await asyncio.to_thread(server.rows, sql)
    return rows


async def _execute(server: Any, *statements: str) -> None:
    engine = create_engine(server.database_url)
    try:
        async with engine.begin() as conn:
            for sql in statements:
                await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def _flagged_message(adult: Client, kid: Client) -> str:
    request_id = await adult.request_contact(kid.user_id)
    await kid.accept_contact(request_id)
    message_id = await adult.send_text(kid.user_id, FLAGGED)
    assert (await kid.next_message(within_s=15)).text == FLAGGED
    return message_id


def _fail_report_inserts(server: Any) -> list[str]:
    """A real storage failure: the database itself refuses new reports."""
    if server.database_url.startswith("sqlite"):
        return ["CREATE TRIGGER fail_reports BEFORE INSERT ON reports BEGIN "
                "SELECT RAISE(ABORT, 'reports are refused for this test'); END"]
    return ["CREATE FUNCTION fail_reports() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'reports are refused for this test'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER fail_reports BEFORE INSERT ON reports "
            "FOR EACH ROW EXECUTE FUNCTION fail_reports()"]


def _allow_report_inserts(server: Any) -> list[str]:
    if server.database_url.startswith("sqlite"):
        return ["DROP TRIGGER fail_reports"]
    return ["DROP TRIGGER fail_reports ON reports", "DROP FUNCTION fail_reports()"]


@pytest.fixture
def _held_scans(monkeypatch: pytest.MonkeyPatch) -> None:
    """Request before `covey_server`: fresh scans wait 10 minutes (a test-only setting)."""
    monkeypatch.setenv("COVEY_SCAN_DELAY_S", "600")


async def test_a_message_committed_before_a_crash_is_scanned_after_the_restart(
        _phrase_list: Path, _held_scans: None, people: People, covey_server: Any) -> None:
    adult, kid = await people.adult("ada"), await people.child("kid")
    message_id = await _flagged_message(adult, kid)
    jobs = await _rows(covey_server, "SELECT message_id, attempts FROM scan_jobs")
    assert jobs == [(message_id, 0)]
    assert await _rows(covey_server, "SELECT report_id FROM reports") == []
    covey_server.kill()  # between the commit and the scan
    covey_server.start({"COVEY_SCAN_DELAY_S": "0"})

    async def reported() -> list[tuple[Any, ...]]:
        return await _rows(covey_server, "SELECT reporter, reported_user, reported_verified "
                           "FROM reports")

    rows = await wait_for(reported)
    assert [(r[0], r[1], bool(r[2])) for r in rows] == [("covey-safety", "ada", True)]

    async def drained() -> bool:
        return await _rows(covey_server, "SELECT count(*) FROM scan_jobs") == [(0,)]

    await wait_for(drained)
    reads = await _rows(covey_server, "SELECT reader, message_id FROM safety_copy_reads "
                        "WHERE reader = 'detectors'")
    assert reads == [("detectors", message_id)]


async def test_a_detection_whose_report_fails_is_retried_and_shown_to_operators(
        _phrase_list: Path, people: People, covey_server: Any) -> None:
    await _execute(covey_server, *_fail_report_inserts(covey_server))
    adult, kid = await people.adult("ada"), await people.child("kid")
    message_id = await _flagged_message(adult, kid)

    async def retried() -> list[tuple[Any, ...]]:
        rows = await _rows(covey_server, "SELECT message_id, attempts, last_error FROM "
                           "scan_jobs WHERE attempts >= 2")
        return rows

    (job,) = await wait_for(retried)
    assert job[0] == message_id and "phrase_list" in job[2]
    # The server logs at WARNING and above: the reason is in the log.
    assert f"detection report for message {message_id}" in covey_server.log()
    assert "could not be filed (attempt 2" in covey_server.log()
    assert await _rows(covey_server, "SELECT report_id FROM reports") == []

    await asyncio.to_thread(create_console_user, covey_server, "mod", "moderator")
    http, _ = await asyncio.to_thread(console_login, covey_server, "mod")
    try:
        page = http.get("/console/")
        assert 'id="detection-backlog"' in page.text and message_id in page.text
        await _execute(covey_server, *_allow_report_inserts(covey_server))

        async def reported() -> list[tuple[Any, ...]]:
            return await _rows(covey_server, "SELECT reporter, reported_user FROM reports")

        assert await wait_for(reported) == [("covey-safety", "ada")]

        async def drained() -> bool:
            return await _rows(covey_server, "SELECT count(*) FROM scan_jobs") == [(0,)]

        await wait_for(drained)
        assert 'id="detection-backlog"' not in http.get("/console/").text
    finally:
        http.close()
