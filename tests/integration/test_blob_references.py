"""Blob references (issue 9, item 6), against a real `covey server` with real SDK clients:
an envelope declares its blobs (`blob_ids`), the relay records blob → conversation when
the message commits, and only that conversation's participants (and the uploader) may
download a blob: anyone else gets the unknown blob's 404, byte for byte. The client
fetches only blobs its message's envelope declared, and the relay purges blobs that
nothing references."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from covey.client import Client, ClientCore, ServerError
from covey.protocol.attachments import encrypt_attachment
from covey.protocol.content import AttachmentRef
from covey.protocol.ids import new_blob_id
from covey.server.storage.engine import create_engine
from tests.support.devices import eventually, receive
from tests.support.safety import People, band_issuer, people, trust_band_issuer

__all__ = ["band_issuer", "people", "trust_band_issuer"]

pytestmark = [pytest.mark.timeout(300)]

IMAGE = b"\x89PNG generated test image, shapes and noise only" * 30


def _get(server: Any, client: Client, blob_id: str) -> httpx.Response:
    token = client._api.token
    with httpx.Client(base_url=server.url, timeout=30) as http:
        return http.get(f"/v1/blobs/{blob_id}", headers={"Authorization": f"Bearer {token}"})


def _answer(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    """Everything a stranger sees of a refusal, minus the date and the request's own id."""
    headers = {k: v for k, v in response.headers.items()
               if k.lower() not in ("date", "x-request-id")}
    return response.status_code, response.content, headers


async def _count(server: Any, sql: str) -> int:
    engine = create_engine(server.database_url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(text(sql)) or 0)
    finally:
        await engine.dispose()


async def _befriend(a: Client, b: Client) -> None:
    await b.accept_contact(await a.request_contact(b.user_id))


@pytest.fixture
def undeclaring(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Users in the set send envelopes without `blob_ids`, as an older client does."""
    users: set[str] = set()
    original = ClientCore._blob_ids

    def blob_ids(self: ClientCore, content: Any) -> list[str] | None:
        return None if self.user_id in users else original(self, content)

    monkeypatch.setattr(ClientCore, "_blob_ids", blob_ids)
    yield users


@pytest.fixture(params=["e2ee-only", "safeguarded"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COVEY_SAFETY_MODE", request.param)
    return str(request.param)


async def test_only_participants_of_a_declaring_conversation_download_a_blob(
        mode: str, people: People, covey_server: Any) -> None:
    ada, bea, cal, eve = [await people.adult(h) for h in ("ada", "bea", "cal", "eve")]
    await _befriend(ada, bea)
    blob, _key, _digest = encrypt_attachment(IMAGE)
    uploaded = await ada._api.upload_blob(blob)
    unknown = _get(covey_server, eve, new_blob_id())
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_blob"
    # Before any message declares it, only the uploader may read it.
    assert _get(covey_server, ada, uploaded.blob_id).content == blob
    assert _answer(_get(covey_server, bea, uploaded.blob_id)) == _answer(unknown)

    await ada.send_attachment(bea.user_id, IMAGE, name="shapes.png", mime="image/png")
    (shown,) = await receive(bea, 1)
    assert shown.blob_ids == (shown.attachments[0].blob_id,)
    assert (await bea.fetch_attachment(shown.attachments[0], shown)).data == IMAGE
    assert _get(covey_server, bea, shown.attachments[0].blob_id).status_code == 200
    # A stranger who knows the id gets exactly the unknown blob's answer: no oracle.
    assert _answer(_get(covey_server, eve, shown.attachments[0].blob_id)) == _answer(unknown)

    # A group: its current members may read what was declared in it; others may not.
    group = await ada.create_group("chess club", [bea.user_id, cal.user_id])
    await ada.send_attachment(group.group_id, IMAGE, name="board.png", mime="image/png")
    (in_group,) = await receive(cal, 1)
    group_blob = in_group.attachments[0].blob_id
    assert (await cal.download_attachment(in_group.attachments[0], in_group)) == IMAGE
    assert _answer(_get(covey_server, eve, group_blob)) == _answer(unknown)
    await ada.remove_member(group.group_id, cal.user_id)
    assert _answer(_get(covey_server, cal, group_blob)) == _answer(unknown)


async def test_a_sender_cannot_declare_a_blob_it_may_not_read(
        people: People, covey_server: Any) -> None:
    ada, bea = await people.adult("ada"), await people.adult("bea")
    eve, mal = await people.adult("eve"), await people.adult("mal")
    await _befriend(ada, bea)
    await _befriend(eve, mal)
    await ada.send_attachment(bea.user_id, IMAGE, name="a.png", mime="image/png")
    (shown,) = await receive(bea, 1)
    stolen = shown.attachments[0]
    # Eve learnt the id (and even the key): declaring it to her friend would give both
    # of them access, so the relay refuses it as it refuses an unknown blob.
    for blob_id in (stolen.blob_id, new_blob_id()):
        ref = AttachmentRef(**{**stolen.model_dump(), "blob_id": blob_id})
        with pytest.raises(ServerError) as refused:
            await eve._send(mal.user_id, text="look", attachments=(ref,))
        assert (refused.value.status, refused.value.code) == (404, "unknown_blob")
        assert refused.value.details == {"field": "blob_ids", "index": 0, "blob_id": blob_id}
    assert _get(covey_server, mal, stolen.blob_id).status_code == 404
    # A received blob may be forwarded: its recipient may read it.
    await _befriend(bea, mal)
    await bea._send(mal.user_id, text="forwarded", attachments=(stolen,))
    (forwarded,) = await receive(mal, 1)
    assert (await mal.fetch_attachment(forwarded.attachments[0], forwarded)).data == IMAGE


async def test_the_client_fetches_only_blobs_its_envelope_declared(
        people: People, covey_server: Any, undeclaring: set[str]) -> None:
    ada, bea, mal = (await people.adult("ada"), await people.adult("bea"),
                     await people.adult("mal"))
    await _befriend(ada, bea)
    await _befriend(mal, bea)
    await ada.send_attachment(bea.user_id, IMAGE, name="a.png", mime="image/png")
    (from_ada,) = await receive(bea, 1)
    # Mal (a dishonest client) had the reference once and sends it to Bea undeclared:
    # Bea may read that blob through Ada's conversation, but not as part of Mal's message.
    undeclaring.add(mal.user_id)
    await mal._send(bea.user_id, text="is this you?", attachments=from_ada.attachments)
    (from_mal,) = await receive(bea, 1)
    assert from_mal.blob_ids == ()
    got = await bea.fetch_attachment(from_mal.attachments[0], from_mal)
    assert (got.status, got.data, got.label) == ("missing", None, "could not be verified")
    assert "did not declare" in got.detail
    # Her report of it still verifies; its attachment is missing, as she was shown.
    receipt = await bea.report(from_mal, "other")
    assert receipt.reported_message_verified
    assert [a.status for a in receipt.items[-1].attachments] == ["missing"]


async def test_an_envelope_without_blob_ids(
        mode: str, people: People, covey_server: Any, undeclaring: set[str]) -> None:
    """An older client declares nothing. End to end, its attachments are then not
    downloadable by the recipients (the relay cannot see them): shown as missing. In
    safeguarded mode the relay reads the references in the safety copy and records
    those, so the attachment works."""
    ada, bea = await people.adult("ada"), await people.unverified("bea")
    await _befriend(ada, bea)
    undeclaring.add(ada.user_id)
    await ada.send_attachment(bea.user_id, IMAGE, name="old.png", mime="image/png")
    (shown,) = await receive(bea, 1)
    got = await bea.fetch_attachment(shown.attachments[0], shown)
    expected_status = "verified" if mode == "safeguarded" else "missing"
    assert got.status == expected_status
    assert _get(covey_server, bea, shown.attachments[0].blob_id).status_code == (
        200 if mode == "safeguarded" else 404)


async def test_a_safety_copy_must_declare_its_attachments(
        people: People, covey_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ada, kid = await people.adult("ada"), await people.child("kid")
    await _befriend(ada, kid)
    monkeypatch.setattr(ClientCore, "_blob_ids", lambda self, content: [])
    with pytest.raises(ServerError) as refused:
        await ada.send_attachment(kid.user_id, IMAGE, name="a.png", mime="image/png")
    assert (refused.value.status, refused.value.code) == (400, "attachment_not_declared")
    assert refused.value.details is not None
    assert refused.value.details["field"] == "blob_ids"


async def test_unreferenced_blobs_are_purged(
        people: People, covey_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    covey_server.restart(env={"COVEY_BLOB_UNREFERENCED_GRACE_S": "2",
                              "COVEY_BLOB_RETENTION_S": "3600"})
    ada, bea = await people.adult("ada"), await people.adult("bea")
    await _befriend(ada, bea)
    never_sent = await ada._api.upload_blob(encrypt_attachment(b"never sent")[0])
    await ada.send_attachment(bea.user_id, IMAGE, name="kept.png", mime="image/png")
    (shown,) = await receive(bea, 1)
    kept = shown.attachments[0].blob_id
    blobs = Path(covey_server.data_dir) / "blobs"
    assert (blobs / never_sent.blob_id).is_file()

    await eventually(lambda: not (blobs / never_sent.blob_id).exists(), within_s=30)
    assert _get(covey_server, ada, never_sent.blob_id).status_code == 404
    assert await _count(covey_server, "SELECT count(*) FROM blobs WHERE blob_id = "
                        f"'{never_sent.blob_id}'") == 0
    # Declared in a message within the retention: kept, and still readable.
    assert (await bea.fetch_attachment(shown.attachments[0], shown)).data == IMAGE
    assert (blobs / kept).is_file()

    # Past the retention after its newest reference, it goes too (quota freed).
    covey_server.restart(env={"COVEY_BLOB_UNREFERENCED_GRACE_S": "1",
                              "COVEY_BLOB_RETENTION_S": "1"})
    await eventually(lambda: not (blobs / kept).exists(), within_s=30)
    assert await _count(covey_server, "SELECT count(*) FROM blob_refs") == 0
