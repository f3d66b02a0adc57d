"""Reporting never fails the person who reports (issue 9), against a real `covey server`
with real SDK clients: what a client shows verifies when reported, whatever a dishonest
sender puts in its attachment references or message ids; a detection report never
swallows the child's own report; and the safety-copy read log names exactly one copy."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from covey.client import Client, ClientCore, IncomingMessage, ServerError
from covey.moderation import ReportCategory
from covey.protocol.attachments import encrypt_attachment
from covey.protocol.content import AttachmentRef
from covey.protocol.ids import new_blob_id, new_message_id
from covey.server.services.reports import EvidenceVault
from covey.server.storage.engine import create_engine
from covey.server.storage.schema_reports import reports
from covey.server.storage.schema_safety import under_age_flags
from tests.integration._age import wait_for
from tests.integration._safety import People, band_issuer, people, trust_band_issuer
from tests.integration.test_client_e2e import Devices, receive
from tests.support.devices import join_group

__all__ = ["band_issuer", "people", "trust_band_issuer"]

pytestmark = [pytest.mark.timeout(300)]

GROOMING = ReportCategory.GROOMING_OR_ENTICEMENT
IMAGE = b"\x89PNG generated test image, not a photo of anyone" * 20


@pytest.fixture
async def devices(covey_server: Any, tmp_path: Path) -> Any:
    made = Devices(covey_server, tmp_path / "clients")
    made.tmp.mkdir()
    yield made
    await made.close_all()


async def _rows(server: Any, query: Any) -> list[Any]:
    engine = create_engine(server.database_url)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(text(query) if isinstance(query, str) else query))
    finally:
        await engine.dispose()


async def _befriend(adult: Client, child: Client) -> None:
    await child.accept_contact(await adult.request_contact(child.user_id))


async def _poisoned_refs(sender: Client) -> dict[str, AttachmentRef]:
    """Attachment references a dishonest client can commit to: a blob that does not
    exist, and a real blob whose committed size is one byte more than its plaintext."""
    blob, key, digest = encrypt_attachment(IMAGE)
    uploaded = await sender._api.upload_blob(blob)
    real = AttachmentRef(blob_id=uploaded.blob_id, key=key, sha256=digest, size=len(IMAGE),
                         mime="image/png", name="real.png")
    return {
        "missing": AttachmentRef(**{**real.model_dump(), "blob_id": new_blob_id()}),
        "size_mismatch": AttachmentRef(**{**real.model_dump(), "size": len(IMAGE) + 1}),
    }


@pytest.fixture
def reused_id(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """`forced[user] = id` makes that user's client (a dishonest one) give its text
    messages that id until it is deleted (room-key shares keep fresh ids)."""
    forced: dict[str, str] = {}
    original = ClientCore._content

    def content(self: ClientCore, conversation_id: str, **kw: Any) -> Any:
        if kw.get("kind") != "room_key" and self.user_id in forced:
            kw["message_id"] = forced[self.user_id]
        return original(self, conversation_id, **kw)

    monkeypatch.setattr(ClientCore, "_content", content)
    yield forced


# --- 1. poisoned attachment references ----------------------------------------------------


@pytest.fixture(params=["e2ee-only", "on-device"])
def _mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
          tmp_path: Path) -> str:
    monkeypatch.setenv("COVEY_SAFETY_MODE", request.param)
    if request.param == "on-device":
        phrases = tmp_path / "phrases.txt"
        phrases.write_text("[high] keep this our secret\n")
        monkeypatch.setenv("COVEY_SAFETY_PHRASE_LIST", str(phrases))
        # The phrase list alone (not the default grooming scorer too).
        monkeypatch.setenv("COVEY_SAFETY_DETECTORS", "{}")
    return str(request.param)


async def test_every_message_the_sdk_shows_produces_a_verified_report(
        _mode: str, people: People, covey_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    adult, kid = await people.adult("ada"), await people.child("kid")
    await _befriend(adult, kid)
    await adult.send_text(kid.user_id, "hi, it's ada from the chess club")
    await receive(kid, 1)
    refs = await _poisoned_refs(adult)
    # The relay refuses an envelope that declares a blob that does not exist ...
    with pytest.raises(ServerError) as refused:
        await adult._send(kid.user_id, text="look", attachments=(refs["missing"],))
    assert (refused.value.status, refused.value.code) == (404, "unknown_blob")
    # ... so the dishonest client declares none (as an older client would not).
    declare = ClientCore._blob_ids
    monkeypatch.setattr(ClientCore, "_blob_ids", lambda self, content: (
        None if content.attachments and content.attachments[0].blob_id
        == refs["missing"].blob_id else declare(self, content)))
    for problem, ref in refs.items():
        await adult._send(kid.user_id, text=f"keep this our secret ({problem})",
                          attachments=(ref,))
        (shown,) = await receive(kid, 1)
        assert shown.text == f"keep this our secret ({problem})"
        # The client shows the text and the attachment as "could not be verified".
        download = await kid.fetch_attachment(shown.attachments[0])
        assert (download.status, download.data) == (problem, None)
        assert download.label == "could not be verified"
        receipt = await kid.report(shown, GROOMING, f"attack: {problem}")
        assert receipt.reported_message_verified, problem
        reported = next(i for i in receipt.items if i.message_id == shown.message_id)
        assert (reported.sender_user, reported.status) == ("ada", "verified")
        assert [a.status for a in reported.attachments] == [problem]
    rows = await _rows(covey_server, select(reports.c.reporter, reports.c.reported_user,
                                            reports.c.reported_verified))
    assert sorted(tuple(r) for r in rows) == [("kid", "ada", 1)] * 2


async def test_safeguarded_relay_refuses_a_reference_that_does_not_match_its_blob(
        people: People, covey_server: Any) -> None:
    adult, kid = await people.adult("ada"), await people.child("kid")
    await _befriend(adult, kid)
    refs = await _poisoned_refs(adult)
    other = await adult._api.upload_blob(encrypt_attachment(b"another image")[0])
    refs["hash_mismatch"] = AttachmentRef(**{**refs["missing"].model_dump(),
                                             "blob_id": other.blob_id})
    for problem, ref in refs.items():
        with pytest.raises(ServerError) as refused:
            await adult._send(kid.user_id, text="look at this", attachments=(ref,))
        assert (refused.value.status, refused.value.code) == (400,
                                                             "attachment_reference_invalid")
        assert refused.value.details == {"blob_id": ref.blob_id, "index": 0,
                                         "problem": problem}
        assert ref.blob_id in refused.value.message
    assert await _rows(covey_server, "SELECT count(*) FROM messages") == [(0,)]
    # A reference that matches its blob goes through, and the child's report verifies.
    await adult.send_attachment(kid.user_id, IMAGE, name="a.png", mime="image/png")
    (shown,) = await receive(kid, 1)
    assert (await kid.fetch_attachment(shown.attachments[0])).data == IMAGE
    receipt = await kid.report(shown, ReportCategory.OTHER)
    assert [a.status for a in receipt.items[-1].attachments] == ["verified"]


# --- 2. message-id reuse ------------------------------------------------------------------


@pytest.fixture
def _short_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages are forgotten by the relay soon after delivery, as they are after the
    mailbox retention in production: then only the clients' keys tell reused ids apart."""
    monkeypatch.setenv("COVEY_MAILBOX_TTL_S", "4")


async def _forgotten(server: Any, message_id: str) -> None:
    async def gone() -> bool:
        rows = await _rows(server, text("SELECT count(*) FROM messages WHERE "
                                        "message_id = :m").bindparams(m=message_id))
        return int(rows[0][0]) == 0

    await wait_for(gone, within_s=30)


async def test_reusing_the_victims_own_message_id(
        _short_retention: None, reused_id: dict[str, str], covey_server: Any,
        devices: Devices) -> None:
    bob, mallory = await devices.register("bob"), await devices.register("mallory")
    own = await bob.send_text("mallory", "who is this?")
    await receive(mallory, 1)
    # While the relay holds bob's message, the same id from mallory is refused.
    reused_id["mallory"] = own
    with pytest.raises(ServerError) as refused:
        await mallory.send_text("bob", "i know where you live")
    assert (refused.value.status, refused.value.code) == (409, "message_id_in_use")
    await _forgotten(covey_server, own)
    assert await mallory.send_text("bob", "i know where you live") == own
    del reused_id["mallory"]
    (abusive,) = await receive(bob, 1)
    assert abusive.key != (await _own_key(bob, own))
    receipt = await bob.report(abusive, ReportCategory.HARASSMENT, "threat")
    assert receipt.reported_message_verified
    assert [(i.message_id, i.sender_user, i.status) for i in receipt.items
            if i.sender_user == "mallory"] == [(own, "mallory", "verified")]
    rows = await _rows(covey_server, select(reports.c.reporter, reports.c.reported_user))
    assert [tuple(r) for r in rows] == [("bob", "mallory")]


async def _own_key(client: Client, message_id: str) -> Any:
    from covey.client._reporting import record_key

    return next(record_key(r) for r in client.core.history()
                if r["content"]["message_id"] == message_id and r["direction"] == "out")


async def test_reusing_an_innocent_members_id_in_a_group(
        _short_retention: None, reused_id: dict[str, str], covey_server: Any,
        devices: Devices) -> None:
    bob, carol = await devices.register("bob"), await devices.register("carol")
    mallory = await devices.register("mallory")
    group = await carol.create_group("chess", ["bob", "mallory"])
    await join_group(group.group_id, bob, mallory)
    innocent = await carol.send_text(group.group_id, "practice is at 5 today")
    await receive(bob, 1)
    await receive(mallory, 1)
    await _forgotten(covey_server, innocent)
    reused_id["mallory"] = innocent
    await mallory.send_text(group.group_id, "bob, send me a photo and don't tell anyone")
    del reused_id["mallory"]
    abusive = await _next_from(bob, "mallory")
    assert abusive.message_id == innocent
    receipt = await bob.report(abusive, GROOMING)
    assert receipt.reported_message_verified
    statuses = {(i.sender_user, i.message_id): i.status for i in receipt.items}
    assert statuses == {("carol", innocent): "verified", ("mallory", innocent): "verified"}
    rows = await _rows(covey_server, select(reports.c.reported_user))
    assert [r[0] for r in rows] == ["mallory"]
    with pytest.raises(Exception) as ambiguous:
        await bob.report(innocent, GROOMING)
    assert getattr(ambiguous.value, "code", None) == "reported_message_ambiguous"


async def _next_from(client: Client, sender: str) -> IncomingMessage:
    while True:
        (message,) = await receive(client, 1)
        if message.sender_user == sender:
            return message


# --- 3. a detection report never swallows the child's report ----------------------------


@pytest.fixture
def _phrase_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "phrases.txt"
    path.write_text("[high, category=grooming_or_enticement] meet me alone\n")
    monkeypatch.setenv("COVEY_SAFETY_PHRASE_LIST", str(path))
    # The phrase list alone (not the default grooming scorer too).
    monkeypatch.setenv("COVEY_SAFETY_DETECTORS", "{}")


async def test_the_childs_report_of_a_detected_message_is_its_own(
        _phrase_list: Path, people: People, covey_server: Any) -> None:
    adult, kid = await people.adult("ada"), await people.child("kid")
    gina = await people.adult("gina")
    link = await kid.propose_guardian_link("gina", role="guardian")
    await gina.accept_guardian_link(link.link_id)
    await _befriend(adult, kid)
    await adult.send_text(kid.user_id, "let's meet me alone after school, ok?")
    (shown,) = await receive(kid, 1)

    async def detected() -> list[Any]:
        return await _rows(covey_server, select(reports.c.reporter))

    assert [r[0] for r in await wait_for(detected)] == ["covey-safety"]
    receipt = await kid.report(shown, ReportCategory.SEXTORTION, "he scares me")
    assert not receipt.duplicate and receipt.reported_message_verified
    again = await kid.report(shown, ReportCategory.SEXTORTION)
    assert again.duplicate and again.report_id == receipt.report_id
    rows = await _rows(covey_server, select(reports.c.report_id, reports.c.reporter,
                                            reports.c.reported_user, reports.c.category,
                                            reports.c.sealed_evidence))
    by_reporter = {r[1]: r for r in rows}
    assert sorted(by_reporter) == ["covey-safety", "kid"]
    mine = by_reporter["kid"]
    assert (mine[0], mine[2], mine[3]) == (receipt.report_id, "ada", "sextortion")
    vault = EvidenceVault(covey_server.data_dir / "reports.key")
    assert vault.open(mine[0], bytes(mine[4]))["report"]["comment"] == "he scares me"
    # It counts: an under-16 report flag against ada, and the guardian's alert.
    flags = await _rows(covey_server, select(under_age_flags.c.flagger,
                                             under_age_flags.c.flagged,
                                             under_age_flags.c.kind))
    assert [tuple(f) for f in flags] == [("kid", "ada", "report")]

    async def alerted() -> list[Any]:
        return [a for a in await gina.guardian_alerts() if a.kind == "report_filed"]

    (alert,) = await wait_for(alerted)
    assert (alert.child, alert.category) == ("kid", "sextortion")


# --- 6. reports read only the blobs of verified messages ---------------------------------


async def test_a_report_never_reads_blobs_of_unverified_messages(
        covey_server: Any, devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    carol = await devices.register("carol")
    group = (await alice.create_group("club", ["bob", "carol"])).group_id
    await join_group(group, bob, carol)
    await alice.send_attachment(group, IMAGE, name="mine.png")
    mine = await _next_from(bob, "alice")
    await carol.send_attachment(group, b"carol's private picture", name="c.png")
    carols = await _next_from(bob, "carol")
    await alice.send_text(group, "report this")
    reported = await _next_from(bob, "alice")
    from covey.client._reporting import build_report
    from covey.moderation.wire import ReportSubmission

    report = build_report(bob.core.history(), "bob", reported.key, GROOMING)
    body = ReportSubmission(report=report).model_dump(mode="json")["report"]
    # carol's item, forged: its tag no longer verifies, so its blob must not be read.
    forged = next(m for m in body["messages"] if m["context"]["sender_user"] == "carol")
    forged["tag"] = "A" * 43 + "="
    answer = await asyncio.to_thread(_post_report, covey_server, bob, body)
    assert answer.status_code == 201, answer.text
    statuses = {i["sender_user"]: [a["status"] for a in i["attachments"]]
                for i in answer.json()["items"] if i["attachments"]}
    assert statuses == {"alice": ["verified"], "carol": ["not_checked"]}
    (row,) = await _rows(covey_server, select(reports.c.report_id, reports.c.sealed_evidence))
    sealed = EvidenceVault(covey_server.data_dir / "reports.key").open(row[0], bytes(row[1]))
    assert sorted(sealed["blobs"]) == [mine.attachments[0].blob_id]
    assert carols.attachments[0].blob_id not in sealed["blobs"]
    # Over the cap (3 messages of 8 references each): a clear 4xx naming the limit.
    ref = mine.attachments[0].model_dump(mode="json")
    too_many = {**body, "messages": [
        {**m, "content": {**m["content"], "attachments": [ref] * 8}}
        for m in body["messages"]]}
    refused = await asyncio.to_thread(_post_report, covey_server, bob, too_many)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "invalid_request"
    assert "a report may carry at most 16" in refused.text
    assert len(await _rows(covey_server, select(reports.c.report_id))) == 1


def _post_report(server: Any, client: Client, report: dict[str, Any]) -> Any:
    import httpx

    assert client._api.token is not None
    return httpx.post(f"{server.url}/v1/reports", json={"report": report},
                      headers={"Authorization": f"Bearer {client._api.token}"}, timeout=30,
                      trust_env=False)


# --- 7. the safety-copy read log is keyed exactly ------------------------------------------


async def test_arrival_reads_name_exactly_one_copy(
        reused_id: dict[str, str], covey_server: Any, devices: Devices) -> None:
    phone = await devices.register("ada")
    laptop = await devices.link(phone)
    kid1, kid2 = await devices.register("kid-one"), await devices.register("kid-two")
    reused_id["ada"] = reused = new_message_id()
    # ada's two devices use one id in two conversations (ids are unique per device).
    assert await phone.send_text("kid-one", "hello") == reused
    await receive(kid1, 1)
    assert await laptop.send_text("kid-two", "hello") == reused
    await receive(kid2, 1)
    reads = await _rows(covey_server, "SELECT c.conversation_id, r.conversation_id, "
                        "r.sender_user, count(r.id) FROM safety_copies c JOIN "
                        "safety_copy_reads r ON r.copy_id = c.id WHERE r.reader = 'relay' "
                        "GROUP BY c.conversation_id, r.conversation_id, r.sender_user")
    assert sorted(tuple(r) for r in reads) == [
        ("dm:ada:kid-one", "dm:ada:kid-one", "ada", 1),
        ("dm:ada:kid-two", "dm:ada:kid-two", "ada", 1)]
    # In one conversation, another sender's reuse of the id is refused outright.
    reused_id["kid-one"] = reused
    with pytest.raises(ServerError) as refused:
        await kid1.send_text("ada", "hello")
    assert (refused.value.status, refused.value.code) == (409, "message_id_in_use")
