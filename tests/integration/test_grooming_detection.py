"""Grooming detection against a real `covey server` (SQLite and PostgreSQL), real clients and
real age proofs. Safeguarded mode: the server scores every safety copy through the scan
queue, and by threshold notices the child (an SDK event), alerts the guardian (category
and code, no content) and reports to moderators with verified, highlighted evidence; the
same behaviour does not alert twice. Peers weigh less than adults; adult-to-adult chats
are never scanned. On-device mode: the child's client scores, nothing reaches the server,
and an operator's lexicon update reaches the client as signed rules.

Conversations written for the tests; nothing sexual."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client, GuardianAlert, SafetyNotice
from covey.protocol.ids import dm_conversation_id
from tests.integration._console import console_login, create_console_user
from tests.integration.test_client_chat import _CLI, _read_until, _type
from tests.support import safety as _safety
from tests.support.age import PASSPHRASE, wait_for
from tests.support.safety import People

band_issuer = _safety.band_issuer
trust_band_issuer = _safety.trust_band_issuer
people = _safety.people

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

# Each line is one message from the adult; the comments say what the scorer sees.
OFF_PLATFORM = "add me on snap, my username is mal_22"  # off_platform: below notice alone
SECRECY = "don't tell your parents about this, it's our secret"  # + secrecy: guardian
PROBE = "are you home alone right now? send me a pic"  # + supervision, photo: report


@pytest.fixture
def fast_scans(monkeypatch: pytest.MonkeyPatch) -> None:
    """Request before `people`: quick sweeps, so waits are short."""
    monkeypatch.setenv("COVEY_SCAN_SWEEP_INTERVAL_S", "0.2")


async def _rows(server: Any, sql: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = await asyncio.to_thread(server.rows, sql)
    return rows


async def _contacts(adult: Client, child: Client) -> None:
    request_id = await adult.request_contact(child.user_id)
    await child.accept_contact(request_id)


async def _link(child: Client, guardian: Client) -> None:
    link = await child.propose_guardian_link(guardian.user_id, role="guardian")
    await guardian.accept_guardian_link(link.link_id)


async def _next(client: Client, kind: type[Any], within_s: float = 20) -> Any:
    async def first() -> Any:
        async for event in client.events():
            if isinstance(event, kind):
                return event
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(first(), within_s)


async def _none(client: Client, kind: type[Any], within_s: float = 2.0) -> None:
    with pytest.raises(TimeoutError):
        found = await _next(client, kind, within_s)
        pytest.fail(f"unexpected {found!r}")


async def _send(sender: Client, child: Client, *texts: str) -> list[str]:
    ids = []
    for text in texts:
        ids.append(await sender.send_text(child.user_id, text))
        assert (await child.next_message(20)).text == text
    return ids


async def _drained(server: Any) -> None:
    async def empty() -> bool:
        return await _rows(server, "SELECT count(*) FROM scan_jobs") == [(0,)]

    await wait_for(empty)


async def test_safeguarded_grooming_notices_the_child_alerts_the_guardian_and_reports(
        fast_scans: None, people: People, covey_server: Any) -> None:
    gina, kid = await people.adult("gina"), await people.child("kid")
    mallory = await people.adult("mallory")
    await _link(kid, gina)
    await _contacts(mallory, kid)
    assert (await _next(gina, GuardianAlert)).kind == "contact_accepted"

    first, second = await _send(mallory, kid, OFF_PLATFORM, SECRECY)
    # The notice: an SDK event on the child's device, naming the behaviours and the
    # message to block and report, in plain words with a help link.
    notice: SafetyNotice = await _next(kid, SafetyNotice)
    assert not notice.on_device and notice.detector == "grooming"
    assert set(notice.behaviours) == {"off_platform", "secrecy"}
    assert notice.key.message_id == second and notice.sender_user == "mallory"
    assert "another app" in notice.text and "secret" in notice.text
    assert notice.help_url.startswith("https://")
    # The guardian alert: the category and behaviour codes, never content.
    alert: GuardianAlert = await _next(gina, GuardianAlert)
    assert (alert.kind, alert.child, alert.detector, alert.category) == (
        "high_risk_detection", "kid", "grooming", "grooming_or_enticement")
    assert alert.code is not None and "secrecy" in alert.code
    assert alert.conversation_id == dm_conversation_id("kid", "mallory")
    for word in ("snap", "mal_22", "parents", "secret ", first, second):
        assert word not in repr(alert)
    await _drained(covey_server)
    assert await _rows(covey_server, "SELECT count(*) FROM reports") == [(0,)]
    # Only the child is told: the sender sees no notice.
    await _none(mallory, SafetyNotice, 1.0)

    (third,) = await _send(mallory, kid, PROBE)

    async def reported() -> list[tuple[Any, ...]]:
        return await _rows(covey_server, "SELECT report_id, reporter, reported_user, "
                           "reported_verified, category FROM reports")

    ((report_id, reporter, reported_user, verified, category),) = await wait_for(reported)
    assert (reporter, reported_user, bool(verified), category) == (
        "covey-safety", "mallory", True, "grooming_or_enticement")
    escalated: SafetyNotice = await _next(kid, SafetyNotice)
    assert escalated.key.message_id == third
    await _next(gina, GuardianAlert)

    # The moderator sees all three messages verified, the signals highlighted.
    await asyncio.to_thread(create_console_user, covey_server, "mod", "moderator")
    http, _ = await asyncio.to_thread(console_login, covey_server, "mod")
    try:
        page = (await asyncio.to_thread(http.get, f"/console/reports/{report_id}")).text
    finally:
        http.close()
    assert "3 of 3 messages verified" in page
    assert '<mark class="signal" title="off_platform' in page
    assert '<mark class="signal" title="secrecy' in page
    assert "reached the report threshold" in page

    # Cool-down: the same behaviour again alerts nobody.
    await _send(mallory, kid, OFF_PLATFORM)
    await _drained(covey_server)
    await _none(kid, SafetyNotice, 2.0)
    assert len(await _rows(covey_server, "SELECT report_id FROM reports")) == 1
    # What the server keeps between messages: numbers and ids, never text.
    ((state,),) = await _rows(covey_server, "SELECT state FROM detector_states")
    for word in ("snap", "mal_22", "parents", "secret ", "alone"):
        assert word not in state
    # The notice's one tap: a verified report of the message, and a block.
    receipt = await kid.block_and_report(escalated)
    assert (receipt.attribution, receipt.blocked, receipt.reported_message_verified) == (
        "verified", True, True)
    assert "mallory" in await kid.blocked()


async def test_peers_weigh_less_and_adults_are_never_scanned(
        fast_scans: None, people: People, covey_server: Any) -> None:
    kid, pal = await people.child("kid"), await people.child("pal")
    ada, bob = await people.adult("ada"), await people.adult("bob")
    await _contacts(pal, kid)
    await _contacts(ada, bob)
    # The same words from another child: scanned, but below every threshold.
    await _send(pal, kid, OFF_PLATFORM, SECRECY, PROBE)
    await _drained(covey_server)
    await _none(kid, SafetyNotice, 2.0)
    peers = dm_conversation_id("kid", "pal")
    assert await _rows(covey_server, "SELECT conversation_id FROM detector_states") == [
        (peers,)]
    assert await _rows(covey_server, "SELECT count(*) FROM reports") == [(0,)]
    # Between two adults: end-to-end encrypted, no safety copy, nothing scanned or kept.
    await _send(ada, bob, OFF_PLATFORM, SECRECY, PROBE)
    adults = dm_conversation_id("ada", "bob")
    for table in ("safety_copies", "scan_jobs", "detector_states"):
        assert await _rows(covey_server, f"SELECT count(*) FROM {table} WHERE "
                           f"conversation_id = '{adults}'") == [(0,)]
    await _none(bob, SafetyNotice, 1.0)


async def test_covey_chat_shows_the_notice_with_its_block_and_report(
        fast_scans: None, people: People, covey_server: Any, tmp_path: Path) -> None:
    kid, mallory = await people.child("kid"), await people.adult("mallory")
    await _contacts(mallory, kid)
    # The child's own device, now in the terminal chat.
    people.clients.remove(kid)
    await kid.close()
    chat = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CLI, "chat", "--store", str(tmp_path / "kid.db"),
        "--to", "mallory", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COVEY_PASSPHRASE": PASSPHRASE, "COLUMNS": "200"})
    try:
        await _read_until(chat, "■ safeguarded", 60)
        for text in (OFF_PLATFORM, SECRECY):
            await mallory.send_text("kid", text)
        shown = await _read_until(chat, "block and report:", 60)
        assert "safety notice (mallory):" in shown and "another app" in shown
        assert "/block-report 2 grooming_or_enticement" in shown
        assert "help: https://" in shown
        await _type(chat, "/quit")
        assert await asyncio.wait_for(chat.wait(), 20) == 0
    finally:
        if chat.returncode is None:
            chat.kill()
            await chat.wait()


@pytest.fixture
def on_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Request before `people`: mode on-device, grooming with an operator lexicon dir."""
    lexicons = tmp_path / "lexicons"
    lexicons.mkdir()
    monkeypatch.setenv("COVEY_SAFETY_MODE", "on-device")
    monkeypatch.setenv("COVEY_SAFETY_DETECTORS",
                       json.dumps({"grooming": {"lexicons": str(lexicons)}}))
    return lexicons


async def test_on_device_the_childs_client_scores_and_nothing_reaches_the_server(
        on_device: Path, people: People, covey_server: Any) -> None:
    gina, kid = await people.adult("gina"), await people.child("kid")
    mallory, trent = await people.adult("mallory"), await people.adult("trent")
    await _link(kid, gina)
    await _contacts(mallory, kid)
    await _contacts(trent, kid)
    await _send(mallory, kid, OFF_PLATFORM, SECRECY)
    notice: SafetyNotice = await _next(kid, SafetyNotice)
    assert notice.on_device and set(notice.behaviours) == {"off_platform", "secrecy"}
    await _send(mallory, kid, PROBE)
    assert (await _next(kid, SafetyNotice)).on_device
    # Nothing left the device: no copy, no scan, no state, no report, no guardian alert.
    for table in ("safety_copies", "scan_jobs", "detector_states", "reports"):
        assert await _rows(covey_server, f"SELECT count(*) FROM {table}") == [(0,)], table
    assert [a.kind for a in await gina.guardian_alerts()] == ["contact_accepted"] * 2

    # A word the shipped lexicons do not know is no off-platform request yet...
    version = kid.safety_rules_version
    kid.rules_refresh_s = 0.0  # check for new rules on every message
    await _send(trent, kid, "hop over to blorbchat with me", "keep it our secret ok")
    await _none(kid, SafetyNotice, 2.0)
    # ... until the operator adds it: the signed rules reach the child's client.
    (on_device / "en.toml").write_text(
        'language = "en"\n[behaviours.off_platform]\nphrases = ["hop over to blorbchat"]\n',
        encoding="utf-8")
    (message_id,) = await _send(trent, kid, "hop over to blorbchat with me")
    updated: SafetyNotice = await _next(kid, SafetyNotice)
    assert updated.key.message_id == message_id and "off_platform" in updated.behaviours
    assert kid.safety_rules_version not in (None, version)
    assert await _rows(covey_server, "SELECT count(*) FROM reports") == [(0,)]
