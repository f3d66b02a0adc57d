"""Known-image matching acting on a match, on a real server with real clients and real age
proofs (generated images only): a banked image sent to a child is withheld before
delivery (the child sees `withheld`, the sender is not told), a prioritised report is
filed with verified evidence and the match, the escalation's CyberTipline file record
carries the PDQ hash and validates, the console shows the match without the image until
asked; a non-matching image is delivered, an adult-to-adult E2EE conversation is left
alone, and a person's own report of an image runs the same matching and is counted."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import xmlschema
from PIL import ImageOps

from covey.client import IMAGE_REVIEW_CODE, Client, SafetyWarning
from covey.moderation import cybertip_schema
from covey.protocol.attachments import AttachmentStatus, encrypt_attachment
from covey.protocol.content import AttachmentRef
from covey.safety.images import hash_image
from covey.server.storage import Repository, create_engine
from covey.server.storage.banks import BankStorage, NewEntry
from tests.support.console import console_login, create_console_user, csrf_of
from tests.support.safety import People, band_issuer, people, trust_band_issuer
from tests.unit._pdq_images import jpeg, png, scene

__all__ = ["band_issuer", "people", "trust_band_issuer"]

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

BANKED_SEED = 7


@pytest.fixture(autouse=True)
def _fast_bank_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set before the server starts: a bank added by the test is matchable in 0.2 s."""
    monkeypatch.setenv("COVEY_HASH_BANK_POLL_INTERVAL_S", "0.2")


async def _bank(server: Any, name: str, images: list[bytes], meta: dict[str, Any]) -> None:
    """Create a bank and hash images into it, straight in the server's database (as
    `covey bank add-image` does), then give the server's poll time to load it."""
    engine = create_engine(server.database_url)
    repo = Repository(engine)
    repo.start()
    try:
        banks = BankStorage(repo)
        await banks.create_bank(name, int(time.time() * 1000))
        await banks.add_entries(name, [NewEntry(hash_image(i).pdq.value, meta, "test")
                                       for i in images], int(time.time() * 1000))
    finally:
        await repo.close()
    await asyncio.sleep(1.0)


async def _rows(server: Any, sql: str) -> list[tuple[Any, ...]]:
    return await asyncio.to_thread(server.rows, sql)


async def _wait_rows(server: Any, sql: str, count: int = 1,
                     within_s: float = 30) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + within_s
    while True:
        rows = await _rows(server, sql)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


async def _befriend(adult: Client, child: Client) -> None:
    request_id = await adult.request_contact(child.user_id)
    await child.accept_contact(request_id)


async def test_known_image_withheld_from_child_reported_and_escalated(
        people: People, covey_server: Any) -> None:
    banked = scene(BANKED_SEED)
    await _bank(covey_server, "known-test", [png(banked)],
                {"text": "test list entry 7", "source": "generated"})
    adult, kid = await people.adult("ada"), await people.child("kid")
    gina = await people.adult("gina")
    link = await kid.propose_guardian_link(gina.user_id, role="guardian")
    await gina.accept_guardian_link(link.link_id)
    await _befriend(adult, kid)

    await adult.send_text(kid.user_id, "hi, want to see something?")
    await kid.next_message(within_s=20)
    await kid.send_text(adult.user_id, "ok")
    await adult.next_message(within_s=20)
    # A mirrored, JPEG re-compressed copy of the banked image.
    await adult.send_attachment(kid.user_id, jpeg(ImageOps.mirror(banked)), name="pic.jpg",
                                text="look")
    got = await kid.next_message(within_s=20)
    assert got.text == "look" and len(got.attachments) == 1
    ref = got.attachments[0]
    download = await kid.fetch_attachment(ref)
    assert download.status is AttachmentStatus.WITHHELD and download.withheld
    assert download.data is None and "withheld for your safety" in download.detail
    # The sender is not told: their own blob still downloads and verifies.
    assert (await adult.fetch_attachment(ref)).verified

    # The match, its report (prioritised above every person's report) and verified evidence.
    matches = await _wait_rows(covey_server, "SELECT bank, distance, withheld, child_present,"
                               " report_id, origin, entry_meta FROM image_matches "
                               "WHERE report_id IS NOT NULL")
    assert len(matches) == 1
    bank, distance, withheld, child_present, report_id, origin, meta = matches[0]
    assert bank == "known-test" and 0 <= distance <= 31 and origin == "relay"
    assert bool(withheld) and bool(child_present)
    assert json.loads(meta)["text"] == "test list entry 7"
    report = await _rows(covey_server, "SELECT category, priority, reported_verified, "
                         f"reported_user, reporter FROM reports WHERE report_id = '{report_id}'")
    assert [(c, int(p), bool(v), u, r) for c, p, v, u, r in report] == [
        ("child_sexual_exploitation_imagery", 4, True, adult.user_id, "covey-safety")]

    # The child's guardian is alerted, without content.
    deadline = time.monotonic() + 20
    while not [a for a in await gina.guardian_alerts() if a.kind == "high_risk_detection"]:
        assert time.monotonic() < deadline, "no guardian alert"
        await asyncio.sleep(0.3)
    (alert,) = [a for a in await gina.guardian_alerts() if a.kind == "high_risk_detection"]
    assert alert.child == kid.user_id and alert.code == "pdq.known_image"

    # The console: the match's bank, entry and distance; the image only when asked.
    create_console_user(covey_server, "mod", "moderator")
    http, _ = await asyncio.to_thread(console_login, covey_server, "mod")
    try:
        queue = await asyncio.to_thread(http.get, "/console/")
        first = queue.text.split("<tr>")[2]  # the first report row, after the header
        assert report_id in first and "known image" in first and "P0" in first
        page = await asyncio.to_thread(http.get, f"/console/reports/{report_id}")
        assert page.status_code == 200
        assert "Known-image match" in page.text and "known-test" in page.text
        assert f"{distance} / 256" in page.text and "test list entry 7" in page.text
        # The message and the one the child received before it, both verified.
        assert "2 of 2 messages verified" in page.text
        assert "hi, want to see something?" in page.text
        assert "<img" not in page.text  # never rendered unless the moderator asks
        csrf = csrf_of(page.text)
        # Escalation before anyone looked: a hash-only match.
        done = await asyncio.to_thread(http.post, f"/console/reports/{report_id}/action",
                                       data={"action": "escalate", "csrf": csrf,
                                             "confirm": "yes", "reason": "known image"})
        assert done.status_code == 303 and done.headers["location"].endswith("escalated")
        record = await asyncio.to_thread(
            http.get, f"/console/reports/{report_id}/files/cybertip-file-1.xml")
        assert record.status_code == 200
        xml = record.text
        xmlschema.XMLSchema(cybertip_schema()).validate(xml)
        pdq = (await _rows(covey_server, "SELECT query_pdq, plaintext_sha256 FROM "
                           "image_matches"))[0]
        assert f'<originalFileHash hashType="PDQ">{pdq[0]}</originalFileHash>' in xml
        assert f'<originalFileHash hashType="SHA256">{pdq[1]}</originalFileHash>' in xml
        assert "<fileViewedByEsp>false</fileViewedByEsp>" in xml
        assert "<value>known-test</value>" in xml and "test list entry 7" in xml
        tip = await asyncio.to_thread(
            http.get, f"/console/reports/{report_id}/files/cybertip-report.xml")
        assert "<victim>" in tip.text  # the child recipient, from the age proof

        # Asked for: shown blurred, audited, recorded as viewed.
        blob_id = ref.blob_id
        shown = await asyncio.to_thread(http.post, f"/console/reports/{report_id}/matched-image",
                                        data={"csrf": csrf, "blob_id": blob_id})
        assert shown.status_code == 200
        assert 'class="matched"' in shown.text and "data:image/jpeg;base64," in shown.text
        audit = await _rows(covey_server, "SELECT action FROM audit_log WHERE "
                            "action = 'view_matched_image'")
        assert audit == [("view_matched_image",)]
        reads = await _rows(covey_server, "SELECT count(*) FROM safety_copy_reads WHERE "
                            "reader = 'image-match-report'")
        assert reads == [(1,)]  # the preceding message read for the report, logged
        viewed = await _rows(covey_server, "SELECT viewed_ms FROM image_matches")
        assert viewed[0][0] is not None

        # The child's one-tap block-and-report: the same matching runs on the report.
        receipt = await kid.report(got, "child_sexual_exploitation_imagery", block=True)
        assert receipt.report_id
        own = await _wait_rows(covey_server, "SELECT origin, bank FROM image_matches WHERE "
                               f"report_id = '{receipt.report_id}'")
        assert own == [("user_report", "known-test")]
        counts = (await asyncio.to_thread(http.get, "/console/transparency.json")).json()
        assert counts["image_matches"]["total"] == 2
        assert counts["image_matches"]["by_origin"] == {"relay": 1, "user_report": 1}
        assert counts["image_matches"]["by_bank"] == {"known-test": 2}
    finally:
        http.close()


async def test_other_images_and_e2ee_conversations_pass(people: People,
                                                        covey_server: Any) -> None:
    banked = scene(BANKED_SEED)
    await _bank(covey_server, "known-test", [png(banked)], {"text": "entry"})
    adult, kid = await people.adult("ada"), await people.child("kid")
    other = await people.adult("bob")
    await _befriend(adult, kid)

    # A generated image the bank does not hold reaches the child.
    unrelated = png(scene(BANKED_SEED + 100))
    await adult.send_attachment(kid.user_id, unrelated, name="fine.png")
    got = await kid.next_message(within_s=20)
    fetched = await kid.fetch_attachment(got.attachments[0])
    assert fetched.verified and fetched.data == unrelated

    # A send repeated with the same envelope (a client retrying after a lost answer) is
    # matched and reported once.
    blob, key, digest = encrypt_attachment(png(banked))
    uploaded = await adult._api.upload_blob(blob)
    ref = AttachmentRef(blob_id=uploaded.blob_id, key=key, sha256=digest,
                        size=len(png(banked)), mime="image/png", name="again.png")
    entry = adult.core.prepare(kid.user_id, attachments=(ref,))
    adult.core.store.delete("outbox", entry.entry_id)  # sent by hand, twice
    first = await adult._api.send(entry.envelopes[-1])
    again = await adult._api.send(entry.envelopes[-1])
    assert again.duplicate and again.server_ts_ms == first.server_ts_ms
    rows = await _wait_rows(covey_server, "SELECT blob_id, report_id FROM image_matches "
                            "WHERE report_id IS NOT NULL")
    assert [r[0] for r in rows] == [uploaded.blob_id]
    assert (await kid.fetch_attachment((await kid.next_message(within_s=20)).attachments[0])
            ).withheld
    await asyncio.sleep(1.0)
    assert await _rows(covey_server, "SELECT count(*) FROM image_matches") == [(1,)]
    assert await _rows(covey_server, "SELECT count(*) FROM reports") == [(1,)]

    # Adult to adult is end-to-end encrypted: no safety copy, nothing matched, delivered.
    known = png(banked)
    await adult.send_attachment(other.user_id, known, name="e2ee.png")
    received = await other.next_message(within_s=20)
    fetched = await other.fetch_attachment(received.attachments[0])
    assert fetched.verified and fetched.data == known
    assert await _rows(covey_server, "SELECT count(*) FROM image_matches") == [(1,)]

    # Only when a participant reports it does the server see it, and then it matches.
    receipt = await other.report(received, "child_sexual_exploitation_imagery")
    rows = await _wait_rows(covey_server, "SELECT origin, report_id FROM image_matches "
                            "WHERE origin = 'user_report'")
    assert rows == [("user_report", receipt.report_id)]


@pytest.fixture
def _on_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVEY_SAFETY_MODE", "on-device")


async def _warning(client: Client, within_s: float = 20) -> SafetyWarning:
    async def first() -> SafetyWarning:
        async for event in client.events():
            if isinstance(event, SafetyWarning):
                return event
        raise AssertionError("event stream ended")

    return await asyncio.wait_for(first(), within_s)


async def test_on_device_nothing_leaves_the_device_until_the_child_reports(
        _on_device: None, people: People, covey_server: Any) -> None:
    banked = scene(BANKED_SEED)
    await _bank(covey_server, "known-test", [png(banked)], {"text": "entry"})
    adult, kid = await people.adult("ada"), await people.child("kid")
    await _befriend(adult, kid)
    await adult.send_attachment(kid.user_id, png(banked), name="pic.png")
    got = await kid.next_message(within_s=20)
    # The child's client blurs the image and offers block-and-report.
    warning = await _warning(kid)
    assert warning.code == IMAGE_REVIEW_CODE and warning.message_id == got.message_id
    assert "block and report" in warning.text
    # The server saw neither the image nor a hash of it: no copy, no match, delivered.
    assert (await kid.fetch_attachment(got.attachments[0])).verified
    assert await _rows(covey_server, "SELECT count(*) FROM safety_copies") == [(0,)]
    assert await _rows(covey_server, "SELECT count(*) FROM image_matches") == [(0,)]
    # The child's report reveals it, and the server matches it then.
    receipt = await kid.report(got, "child_sexual_exploitation_imagery", block=True)
    rows = await _wait_rows(covey_server, "SELECT origin, bank, report_id FROM image_matches")
    assert rows == [("user_report", "known-test", receipt.report_id)]
