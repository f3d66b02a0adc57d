"""Guardians against a real `covey server` (SQLite and PostgreSQL), with real age proofs:
linking needs both consents and the right bands, a child under 16 cannot remove a link
alone, and guardians are alerted to reports, accepted contacts and high-risk detections
with ids and codes only — never anything from a message."""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from covey.client import Client, GuardianAlert, ServerError
from covey.moderation import ReportCategory
from covey.protocol.ids import dm_conversation_id
from covey.server.storage.engine import create_engine
from covey.server.storage.schema_guardians import guardian_alerts, guardian_links
from tests.support import safety as _safety
from tests.support.age import PASSPHRASE, ShiftedClock, today, wait_for
from tests.support.safety import BandIssuer, People

# The banded-people fixtures, found by name.
band_issuer = _safety.band_issuer
trust_band_issuer = _safety.trust_band_issuer
people = _safety.people

pytestmark = pytest.mark.timeout(240)

GROOMING = ReportCategory.GROOMING_OR_ENTICEMENT


@pytest.fixture
def e2ee_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Request before `people`: conversations with children carry no safety copies (the
    guardian rules hold in every policy mode)."""
    monkeypatch.setenv("COVEY_SAFETY_MODE", "e2ee-only")


@pytest.fixture
def phrase_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Request before `people`: safeguarded mode with a high and a medium phrase."""
    path = tmp_path / "phrases.txt"
    path.write_text("# written for the test set\n"
                    "[high, category=meeting] meet me alone\n"
                    "[medium, category=secrecy] our little secret\n", encoding="utf-8")
    monkeypatch.setenv("COVEY_SAFETY_MODE", "safeguarded")
    monkeypatch.setenv("COVEY_SAFETY_PHRASE_LIST", str(path))
    # The phrase list alone (not the default grooming scorer too).
    monkeypatch.setenv("COVEY_SAFETY_DETECTORS", "{}")


# --- helpers -----------------------------------------------------------------------------


async def _refused(call: Any, status: int, code: str) -> ServerError:
    with pytest.raises(ServerError) as caught:
        await call
    assert (caught.value.status, caught.value.code) == (status, code), caught.value
    return caught.value


async def _link(child: Client, guardian: Client) -> str:
    link = await child.propose_guardian_link(guardian.user_id, role="guardian")
    await guardian.accept_guardian_link(link.link_id)
    return link.link_id


async def _contacts(adult: Client, child: Client) -> None:
    """`adult` asks, `child` accepts (the child's choice)."""
    request_id = await adult.request_contact(child.user_id)
    await child.accept_contact(request_id)


async def _next_alert(client: Client, within_s: float = 20) -> GuardianAlert:
    async def first() -> GuardianAlert:
        async for event in client.events():
            if isinstance(event, GuardianAlert):
                return event
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(first(), within_s)


async def _alerts(client: Client, kind: str, count: int = 1) -> list[GuardianAlert]:
    async def listed() -> list[GuardianAlert] | None:
        found = [a for a in await client.guardian_alerts() if a.kind == kind]
        return found if len(found) >= count else None

    found: list[GuardianAlert] = await wait_for(listed, 20)
    return found


async def _db(server: Any, query: Any) -> list[Any]:
    engine = create_engine(server.database_url)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(query))
    finally:
        await engine.dispose()


def _wallet_born(issuer: BandIssuer, birth: date) -> bytes:
    from covey.age import Wallet

    wallet = Wallet.create()
    result = issuer.issuer.submit_request(wallet.request_credential(issuer.issuer.offer()),
                                          {"birth_date": birth.isoformat()})
    assert result.message is not None
    wallet.store_credential(result.message)
    return wallet.to_bytes()


# --- links -------------------------------------------------------------------------------


async def test_linking_needs_both_consents(people: People) -> None:
    gina, kid = await people.adult("gina"), await people.child("kid")
    link = await kid.propose_guardian_link("gina", role="guardian")
    assert (link.child, link.guardian, link.status, link.proposed_by) == (
        "kid", "gina", "pending", "kid")
    # Both sides see the proposal; only the other side can accept it.
    assert [x.link_id for x in await gina.guardian_links()] == [link.link_id]
    assert [x.status for x in await kid.guardian_links()] == ["pending"]
    await _refused(kid.accept_guardian_link(link.link_id), 403, "own_proposal")
    await _refused(kid.propose_guardian_link("gina", role="guardian"), 409,
                   "guardian_link_exists")
    await _refused(gina.propose_guardian_link("kid", role="child"), 409,
                   "guardian_link_exists")
    stranger = await people.adult("stranger")
    await _refused(stranger.accept_guardian_link(link.link_id), 404, "unknown_guardian_link")
    await _refused(kid.propose_guardian_link("kid", role="guardian"), 400, "guardian_self")

    accepted = await gina.accept_guardian_link(link.link_id)
    assert accepted.status == "active" and accepted.accepted_at_ms is not None
    for side in (gina, kid):
        assert [(x.link_id, x.status) for x in await side.guardian_links()] == [
            (link.link_id, "active")]
    await _refused(gina.accept_guardian_link(link.link_id), 409, "guardian_link_not_pending")
    assert await stranger.guardian_links() == []


async def test_an_adult_offering_guardianship_must_be_able_to_find_the_child(
        e2ee_only: None, people: People) -> None:
    gina, kid = await people.adult("gina"), await people.child("kid")
    # Not yet a contact: the child is hidden, exactly like a handle nobody has.
    hidden = await _refused(gina.propose_guardian_link("kid", role="child"), 404, "not_found")
    unknown = await _refused(gina.propose_guardian_link("nobody-here", role="child"), 404,
                             "not_found")
    assert (hidden.message, hidden.details) == (unknown.message, unknown.details)

    await _contacts(gina, kid)
    offer = await gina.propose_guardian_link("kid", role="child")
    assert (offer.child, offer.guardian, offer.proposed_by) == ("kid", "gina", "gina")
    await _refused(gina.accept_guardian_link(offer.link_id), 403, "own_proposal")
    assert (await kid.accept_guardian_link(offer.link_id)).status == "active"


async def test_an_unverified_or_under_16_guardian_is_refused(people: People) -> None:
    kid, uma = await people.child("kid"), await people.unverified("uma")
    other_kid, gina = await people.child("other-kid"), await people.adult("gina")
    # The contact rules keep under-16 and unverified accounts apart entirely: to the
    # child, uma is a handle that does not exist.
    await _refused(kid.propose_guardian_link("uma", role="guardian"), 404, "not_found")
    # Asking reveals nothing about the asked account's band: the refusal comes when it
    # tries to accept, and it learns only its own band.
    to_kid = await kid.propose_guardian_link("other-kid", role="guardian")
    assert to_kid.status == "pending"
    await _refused(other_kid.accept_guardian_link(to_kid.link_id), 403,
                   "guardian_must_be_16_plus")
    # Nor can they offer to be anyone's guardian; and a 16+ or unverified account
    # cannot have guardians.
    await _refused(uma.propose_guardian_link("kid", role="child"), 403,
                   "guardian_must_be_16_plus")
    await _refused(gina.propose_guardian_link("uma", role="guardian"), 403,
                   "child_must_be_under_16")
    await _refused(uma.propose_guardian_link("gina", role="guardian"), 403,
                   "child_must_be_under_16")
    assert [x.status for x in await kid.guardian_links()] == ["pending"]
    # The child withdraws the proposal alone (nothing was ever linked).
    assert (await kid.remove_guardian_link(to_kid.link_id)).outcome == "removed"
    assert await kid.guardian_links() == [] and await other_kid.guardian_links() == []


async def test_the_child_cannot_remove_a_guardian_alone_only_with_its_consent(
        people: People, covey_server: Any) -> None:
    gina, kid = await people.adult("gina"), await people.child("kid")
    await gina.wait_connected()
    link_id = await _link(kid, gina)

    asked = await kid.remove_guardian_link(link_id)
    assert asked.outcome == "removal_requested"
    assert asked.link is not None and asked.link.status == "removal_requested"
    for side in (gina, kid):
        assert [x.status for x in await side.guardian_links()] == ["removal_requested"]
    # The guardian is told, live and in the list, with nothing but the fact.
    live = await _next_alert(gina)
    assert (live.kind, live.child, live.guardian) == ("removal_requested", "kid", "gina")
    assert [a.alert_id for a in await _alerts(gina, "removal_requested")] == [live.alert_id]
    # Asking again changes nothing; the child cannot approve its own request.
    assert (await kid.remove_guardian_link(link_id)).outcome == "removal_requested"
    await _refused(kid.approve_guardian_removal(link_id), 403, "guardian_only")
    assert len(await _db(covey_server, select(guardian_links.c.link_id))) == 1

    removed = await gina.approve_guardian_removal(link_id)
    assert removed.outcome == "removed"
    assert await kid.guardian_links() == [] and await gina.guardian_links() == []
    assert await _db(covey_server, select(guardian_alerts.c.alert_id)) == []
    await _refused(gina.approve_guardian_removal(link_id), 404, "unknown_guardian_link")

    # A guardian can always step down alone; approving needs a request first.
    again = await _link(kid, gina)
    await _refused(gina.approve_guardian_removal(again), 409, "no_removal_requested")
    assert (await gina.remove_guardian_link(again)).outcome == "removed"
    assert await kid.guardian_links() == []


async def test_at_most_four_guardians(people: People) -> None:
    kid = await people.child("kid")
    for n in range(4):
        await _link(kid, await people.adult(f"guardian{n}"))
    fifth = await people.adult("guardian4")
    await _refused(kid.propose_guardian_link("guardian4", role="guardian"), 409,
                   "too_many_guardians")
    assert len(await kid.guardian_links()) == 4 and await fifth.guardian_links() == []


async def test_a_child_who_proves_16_plus_removes_the_link_alone(
        people: People, band_issuer: BandIssuer, covey_server: Any) -> None:
    gina = await people.adult("gina")
    clock = ShiftedClock()
    # 16 in ten days: proves under-16 now (the 7-day horizon), 16+ twelve days later.
    birth = _sixteen_in(10)
    teen = await people._register("teen", _wallet_born(band_issuer, birth), age_clock=clock)
    assert (await teen.whoami()).age.band == "under-16"
    link_id = await _link(teen, gina)
    assert (await teen.remove_guardian_link(link_id)).outcome == "removal_requested"

    clock.offset = timedelta(days=12)
    covey_server.restart(env={"COVEY_AGE_CLOCK_OFFSET_S": str(12 * 86400)})
    assert (await teen.prove_age()).band == "16+"
    assert (await teen.remove_guardian_link(link_id)).outcome == "removed"
    assert await gina.guardian_links() == []


def _sixteen_in(days: int) -> date:
    """A birth date whose 16th birthday is `days` from today."""
    from covey.age import years_before

    return years_before(today(), 16) + timedelta(days=days)


# --- alerts ------------------------------------------------------------------------------


async def test_a_report_by_the_child_alerts_its_guardians(
        e2ee_only: None, people: People) -> None:
    gina, kid = await people.adult("gina"), await people.child("kid")
    bully = await people.child("bully")
    await gina.wait_connected()
    await kid.wait_connected()
    # Only accepted contacts message a child, another child too; accepted before the
    # guardian link, so the only alert is the report's.
    await _contacts(bully, kid)
    await _link(kid, gina)
    sent = await bully.send_text("kid", "nobody likes you")
    assert (await kid.next_message(20)).message_id == sent
    await kid.report(sent, ReportCategory.HARASSMENT)

    live = await _next_alert(gina)
    assert (live.kind, live.child, live.category) == ("report_filed", "kid", "harassment")
    assert (live.other_user, live.conversation_id, live.detector) == (None, None, None)
    # The child sees exactly what its guardian was told.
    assert [a.alert_id for a in await kid.guardian_alerts()] == [live.alert_id]
    # Acknowledging is the guardian's alone.
    assert await kid.acknowledge_guardian_alerts([live.alert_id]) == 0
    assert await gina.acknowledge_guardian_alerts([live.alert_id]) == 1
    assert await gina.guardian_alerts(unacknowledged=True) == []
    # A proposal that was never accepted alerts nobody.
    uma = await people.adult("uma")
    await uma.wait_connected()
    await kid.propose_guardian_link("uma", role="guardian")
    second = await bully.send_text("kid", "still nobody likes you")
    await kid.next_message(20)
    await kid.report(second, ReportCategory.HARASSMENT)
    await _alerts(gina, "report_filed", 2)
    assert await uma.guardian_alerts() == []


async def test_a_contact_accepted_alerts_the_childs_guardians(
        e2ee_only: None, people: People) -> None:
    gina, kid = await people.adult("gina"), await people.child("kid")
    coach = await people.adult("coach")
    await gina.wait_connected()
    await _link(kid, gina)
    await _contacts(coach, kid)
    live = await _next_alert(gina)
    assert (live.kind, live.child, live.other_user) == ("contact_accepted", "kid", "coach")
    assert [a.alert_id for a in await gina.guardian_alerts()] == [live.alert_id]
    # Contacts between adults alert nobody; the guardian's own contact with the child
    # is not reported back to that guardian.
    await _contacts(coach, gina)
    await _contacts(gina, kid)
    friend = await people.child("friend")
    await _contacts(friend, kid)
    others = [a.other_user for a in await _alerts(gina, "contact_accepted", 2)]
    assert sorted(others) == ["coach", "friend"]


async def test_a_high_risk_detection_alerts_the_guardians_of_the_child(
        phrase_list: None, people: People) -> None:
    gina, kid = await people.adult("gina"), await people.child("kid")
    mallory = await people.adult("mallory")
    await gina.wait_connected()
    await kid.wait_connected()
    await _link(kid, gina)
    await _contacts(mallory, kid)
    assert (await _next_alert(gina)).kind == "contact_accepted"
    # A medium signal raises no guardian alert; a high one does.
    await mallory.send_text("kid", "this is our little secret ok")
    await mallory.send_text("kid", "can you meet me alone after school")
    await kid.next_message(20)
    await kid.next_message(20)
    live = await _next_alert(gina)
    assert live.kind == "high_risk_detection" and live.child == "kid"
    assert (live.detector, live.code, live.severity) == (
        "phrase_list", "phrase_list.meeting", "high")
    assert live.conversation_id == dm_conversation_id("kid", "mallory")
    assert [a.kind for a in await gina.guardian_alerts()] == [
        "high_risk_detection", "contact_accepted"]


async def test_guardian_alerts_carry_no_content(phrase_list: None, people: People,
                                                covey_server: Any) -> None:
    """Every kind of alert, as listed, pushed live and stored, holds none of the text,
    attachments, keys, ids or commitments of the messages behind it."""
    gina, kid = await people.adult("gina"), await people.child("kid")
    mallory = await people.adult("mallory")
    await gina.wait_connected()
    await kid.wait_connected()
    await _link(kid, gina)
    await _contacts(mallory, kid)
    text = "can you meet me alone after school, bring the photo"
    first = await mallory.send_text("kid", text)
    picture = b"\x89PNG generated test picture " + bytes(range(256))
    second = await mallory.send_attachment("kid", picture, name="holiday-photo.png",
                                           mime="image/png", text="see this")
    received = [await kid.next_message(20), await kid.next_message(20)]
    assert [m.message_id for m in received] == [first, second]
    await kid.report(second, GROOMING, "he wants to meet me")
    kinds = ["contact_accepted", "high_risk_detection", "report_filed"]
    live = [await _next_alert(gina) for _ in kinds]
    assert sorted(a.kind for a in live) == sorted(kinds)
    listed = await gina.guardian_alerts()
    assert sorted(a.alert_id for a in listed) == sorted(a.alert_id for a in live)
    assert sorted(a.alert_id for a in await kid.guardian_alerts()) == sorted(
        a.alert_id for a in live)
    stored = await _db(covey_server, select(guardian_alerts))

    forbidden: set[str] = {text, "meet me alone", "see this", "he wants to meet me",
                           "holiday-photo", "image/png"}
    for message in received:
        evidence = message.evidence
        forbidden |= {message.message_id, evidence.commitment.to_b64(),
                      evidence.content.franking_key}
        if evidence.tag is not None:
            forbidden.add(evidence.tag.to_b64())
        for ref in message.attachments:
            forbidden |= {ref.blob_id, ref.key, ref.sha256}
    blob = json.dumps([[a.__dict__ for a in live], [a.__dict__ for a in listed],
                       [[str(v) for v in row] for row in stored]])
    for secret in forbidden:
        assert secret not in blob, f"an alert carries {secret!r}"
    assert picture.hex() not in blob


# --- the command line --------------------------------------------------------------------


def _covey(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "covey", "guardian", *args], capture_output=True, text=True,
        timeout=120, env={"COVEY_PASSPHRASE": PASSPHRASE, "COLUMNS": "200",
                          "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def test_covey_guardian_links_removes_and_lists_alerts(
        people: People, covey_server: Any, tmp_path: Path) -> None:
    gina, kid = await people.adult("gina"), await people.child("kid")
    for client in (gina, kid):
        await client.close()  # the command opens the same stores
    kid_store, gina_store = str(tmp_path / "kid.db"), str(tmp_path / "gina.db")
    run = functools.partial(asyncio.to_thread, _covey)

    assert "waiting for gina to accept" in await run("link", "gina", "--role", "guardian",
                                                     "--store", kid_store)
    (link_id,) = [r[0] for r in await _db(covey_server, select(guardian_links.c.link_id))]
    assert "waiting for you" in await run("list", "--store", gina_store)
    assert "gina is now a guardian of kid" in await run("accept", link_id,
                                                        "--store", gina_store)
    assert "requested" in await run("remove", link_id, "--store", kid_store)
    shown = await run("alerts", "--unread", "--ack", "--store", gina_store)
    assert "removal requested" in shown and "kid" in shown
    assert "no alerts" in await run("alerts", "--unread", "--store", gina_store)
    assert "removed" in await run("approve-removal", link_id, "--store", gina_store)
    assert "no guardian links" in await run("list", "--store", kid_store)
