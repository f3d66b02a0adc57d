"""Safeguarded conversations on a real server with real clients and real age proofs:
the policy each client is told (signed), safety copies checked against the franking
commitment (missing, falsified, another plaintext, another message: refused), copies kept
sealed and deleted after retention, detection raising a moderator report, and a
conversation that stops being safeguarded when everyone is 16+."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy import text

from covey.client import Client, ServerError
from covey.client._core import NeedPolicy
from covey.protocol._encoding import b64encode
from covey.protocol.content import MessageContent, pad
from covey.protocol.safety_copy import (
    SafetyCopyContext,
    SafetyServicePublicKey,
    hpke_info,
    seal_safety_copy,
)
from covey.protocol.secrets import FrankingCommitment
from covey.protocol.wire import SafetyCopy, SendEnvelope
from covey.server.storage.engine import create_engine
from tests.support.age import wait_for
from tests.support.safety import People, band_issuer, people, trust_band_issuer

__all__ = ["band_issuer", "people", "trust_band_issuer"]

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

PHRASES = "# test phrase list\n[high, category=grooming_or_enticement] meet me alone\n"


async def _befriend(adult: Client, child: Client) -> None:
    request_id = await adult.request_contact(child.user_id)
    await child.accept_contact(request_id)


async def _exchange(a: Client, b: Client, text: str) -> None:
    await a.send_text(b.user_id, text)
    got = await b.next_message(within_s=15)
    assert got.text == text


async def _copies(server: Any) -> int:
    return int((await _rows(server, "SELECT count(*) FROM safety_copies"))[0][0])


def _seal_unchecked(content: MessageContent, context: SafetyCopyContext,
                    public: SafetyServicePublicKey) -> SafetyCopy:
    """What a lying client would do: seal any content (the SDK refuses to)."""
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    sealed = suite.encrypt(pad(content.to_bytes()), X25519PublicKey.from_public_bytes(public.raw),
                           info=hpke_info(public, context))
    return SafetyCopy(key_id=public.key_id(), sealed=b64encode(sealed))


async def _envelope(client: Client, to: str, text: str) -> tuple[SendEnvelope,
                                                                   MessageContent]:
    """A correctly built envelope (with its safety copy, if the policy asks), not sent."""
    conversation = client.core.conversation_for(to)
    for _ in range(4):
        try:
            entry = client.core.prepare(to, text=text)
            break
        except NeedPolicy:
            await client.conversation_policy(to)
    else:
        raise AssertionError("could not prepare")
    client.core.store.delete("outbox", entry.entry_id)  # we send it by hand
    assert entry.conversation_id == conversation
    return entry.envelopes[-1], entry.content


async def test_adults_are_e2ee_and_leave_no_copies(people: People, covey_server: Any) -> None:
    alice, bob = await people.adult("alice"), await people.adult("bob")
    policy = await alice.conversation_policy("bob")
    assert policy.protection == "end-to-end" and policy.label == "end-to-end encrypted"
    assert not policy.safety_copy_required
    await _exchange(alice, bob, "hello bob")
    await _exchange(bob, alice, "hello alice")
    assert await _copies(covey_server) == 0


async def test_a_childs_conversation_is_safeguarded_and_copied(people: People,
                                                               covey_server: Any) -> None:
    adult, kid = await people.adult("ada"), await people.child("kid")
    await _befriend(adult, kid)
    for viewer, other in ((adult, kid), (kid, adult)):
        policy = await viewer.conversation_policy(other.user_id)
        assert policy.protection == "safeguarded"
        assert policy.label.startswith("safeguarded")
        assert "safety service can read" in policy.label + policy.reason
        assert "kid" not in policy.reason  # never names who triggered it
    await _exchange(adult, kid, "how was school?")
    await _exchange(kid, adult, "fine")
    assert await _copies(covey_server) == 2
    # The relay's opening of each copy is in the read log, with the copy, and so is the
    # detectors' scan of it (the grooming scorer reads every safety copy).
    async def logged() -> list[tuple[str, bool]] | None:
        reads = await _rows(covey_server, "SELECT r.reader, r.message_id = c.message_id "
                            "FROM safety_copy_reads r JOIN safety_copies c ON c.id = r.copy_id")
        found = sorted((str(r[0]), bool(r[1])) for r in reads)
        return found if len(found) >= 4 else None

    assert await wait_for(logged) == [("detectors", True)] * 2 + [("relay", True)] * 2
    # Stored sealed, as the client made it: the plaintext is not in the database file.
    if covey_server.database_url.startswith("sqlite"):
        database = Path(covey_server.database_url.split("///", 1)[1])
        stored = await asyncio.to_thread(database.read_bytes)
        assert b"how was school" not in stored


async def test_missing_falsified_and_mismatched_copies_are_refused(
        people: People, covey_server: Any) -> None:
    adult, kid = await people.adult("ada"), await people.child("kid")
    await _befriend(adult, kid)
    await _exchange(adult, kid, "first")  # sessions and policy are in place
    keys = adult.core.safety_keys()
    assert keys is not None
    public = SafetyServicePublicKey.from_b64(keys.safety_service_key)

    envelope, content = await _envelope(adult, "kid", "the real message")
    context = SafetyCopyContext(
        envelope.message_id, envelope.conversation_id, adult.user_id, adult.device_id,
        tuple(sorted([adult.user_id, kid.user_id])),
        FrankingCommitment.from_b64(envelope.commitment))

    async def refused(bad: SendEnvelope) -> ServerError:
        with pytest.raises(ServerError) as caught:
            await adult._api.send(bad)
        assert 400 <= caught.value.status < 500
        return caught.value

    # No copy at all.
    error = await refused(envelope.model_copy(update={"safety_copy": None}))
    assert error.code == "safety_copy_missing"
    # A copy of another plaintext under the same message id (it cannot open the commitment).
    other = content.model_copy(update={"text": "something harmless"})
    error = await refused(envelope.model_copy(
        update={"safety_copy": _seal_unchecked(other, context, public)}))
    assert error.code == "safety_copy_mismatch"
    # A copy made for another message, replayed onto this envelope.
    second, _ = await _envelope(adult, "kid", "another message")
    assert second.safety_copy is not None
    error = await refused(envelope.model_copy(update={"safety_copy": second.safety_copy}))
    assert error.code == "safety_copy_invalid"
    # A tampered copy (one bit flipped).
    assert envelope.safety_copy is not None
    sealed = bytearray(envelope.safety_copy.sealed.encode())
    sealed[60] = ord("A") if sealed[60] != ord("A") else ord("B")
    error = await refused(envelope.model_copy(update={"safety_copy": envelope.safety_copy
                                                      .model_copy(update={"sealed": bytes(
                                                          sealed).decode()})}))
    assert error.code == "safety_copy_invalid"
    assert await _copies(covey_server) == 1  # only "first"; nothing refused was kept
    # The honest envelope still goes through.
    receipt = await adult._api.send(envelope)
    assert not receipt.duplicate
    assert (await kid.next_message(within_s=15)).text == "the real message"
    assert await _copies(covey_server) == 2


async def test_an_adult_conversation_refuses_a_copy(people: People) -> None:
    alice, bob = await people.adult("alice"), await people.adult("bob")
    await _exchange(alice, bob, "hi")
    envelope, content = await _envelope(alice, "bob", "no copy expected")
    keys = alice.core.safety_keys()
    assert keys is not None
    context = SafetyCopyContext(
        envelope.message_id, envelope.conversation_id, alice.user_id, alice.device_id,
        tuple(sorted(["alice", "bob"])), FrankingCommitment.from_b64(envelope.commitment))
    copy = seal_safety_copy(content, context,
                            SafetyServicePublicKey.from_b64(keys.safety_service_key))
    with pytest.raises(ServerError) as caught:
        await alice._api.send(envelope.model_copy(update={"safety_copy": copy}))
    assert caught.value.code == "safety_copy_not_expected"


@pytest.fixture
def _short_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVEY_SAFETY_COPY_RETENTION_S", "2")
    monkeypatch.setenv("COVEY_SAFETY_COPY_PURGE_INTERVAL_S", "0.5")


async def test_retention_deletes_copies(_short_retention: None, people: People,
                                        covey_server: Any) -> None:
    adult, kid = await people.adult("ada"), await people.child("kid")
    await _befriend(adult, kid)
    await _exchange(kid, adult, "a message that must not outlive retention")
    assert await _copies(covey_server) == 1

    async def gone() -> bool:
        return await _copies(covey_server) == 0

    await wait_for(gone, within_s=20)


async def test_the_purge_also_removes_expired_invites_and_old_answered_requests(
        _short_retention: None, people: People, covey_server: Any) -> None:
    adult, other, kid = (await people.adult("ada"), await people.adult("bea"),
                         await people.child("kid"))
    await kid.decline_contact(await adult.request_contact(kid.user_id))
    pending = await adult.request_contact(other.user_id)
    invite = await adult.create_invite((await adult.create_group("club", [])).group_id)
    # Time passes (in the database): the link expires, the answer is a month old.
    await _execute(covey_server, "UPDATE group_invites SET expires_ms = 1")
    await _execute(covey_server, "UPDATE contact_requests SET decided_ms = 1 "
                                 "WHERE status <> 'pending'")

    async def purged() -> bool:
        left = await _rows(covey_server, "SELECT (SELECT count(*) FROM group_invites), "
                           "(SELECT count(*) FROM contact_requests)")
        return tuple(left[0]) == (0, 1)

    await wait_for(purged, within_s=20)
    # A pending request is kept; the expired link is gone.
    assert (await other.contact_requests()).incoming[0].request_id == pending
    with pytest.raises(ServerError) as caught:
        await other.join_invite(invite.token)
    assert caught.value.code == "unknown_invite"


@pytest.fixture
def _phrase_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "phrases.txt"
    path.write_text(PHRASES)
    monkeypatch.setenv("COVEY_SAFETY_PHRASE_LIST", str(path))
    # The phrase list alone (not the default grooming scorer too).
    monkeypatch.setenv("COVEY_SAFETY_DETECTORS", "{}")
    return path


async def test_a_phrase_hit_raises_a_verified_moderator_report(
        _phrase_list: Path, people: People, covey_server: Any) -> None:
    adult, kid = await people.adult("ada"), await people.child("kid")
    await _befriend(adult, kid)
    await _exchange(adult, kid, "what's your favourite book?")
    await _exchange(adult, kid, "Let's MEET me alone after school, ok?")

    async def reported() -> list[tuple[Any, ...]]:
        return await _rows(covey_server, "SELECT reporter, reported_user, category, "
                           "verified_count, total_count FROM reports")

    rows = await wait_for(reported)
    assert rows == [("covey-safety", "ada", "grooming_or_enticement", 1, 1)]
    # Every read is logged: the relay's check on arrival and the detectors' scan, per copy.
    # The scan queue logs a batch's reads once its scans (and their reports) are done.
    async def reads() -> list[tuple[Any, ...]]:
        found = await _rows(covey_server, "SELECT reader, count(DISTINCT copy_id) FROM "
                            "safety_copy_reads GROUP BY reader ORDER BY reader")
        return [tuple(r) for r in found]

    expected = [("detectors", 2), ("relay", 2)]

    async def all_logged() -> bool:
        return await reads() == expected

    with contextlib.suppress(TimeoutError):
        await wait_for(all_logged)
    assert await reads() == expected


async def test_a_phrase_in_an_attachment_caption_is_reported_with_its_blob(
        _phrase_list: Path, people: People, covey_server: Any) -> None:
    adult, kid = await people.adult("ada"), await people.child("kid")
    await _befriend(adult, kid)
    await adult.send_attachment(kid.user_id, b"\x89PNG generated test bytes", name="a.png",
                                text="meet me alone, bring this")
    got = await kid.next_message(within_s=15)
    assert got.attachments and got.text == "meet me alone, bring this"

    async def reported() -> list[tuple[Any, ...]]:
        return await _rows(covey_server, "SELECT reporter, verified_count, total_count, "
                           "reported_verified FROM reports")

    rows = await wait_for(reported)
    assert [(r[0], r[1], r[2], bool(r[3])) for r in rows] == [("covey-safety", 1, 1, True)]


async def test_copies_stop_when_everyone_is_16_plus(band_issuer: Any, people: People,
                                                   covey_server: Any) -> None:
    alice, newcomer = await people.adult("alice"), await people.unverified("newbie")
    policy = await alice.conversation_policy("newbie")
    assert policy.protection == "safeguarded"  # unverified: safeguarded by default
    await _exchange(alice, newcomer, "welcome")
    assert await _copies(covey_server) == 1
    # The newcomer proves 16+; alice's client still holds the safeguarded policy, is
    # told by the server that no copy is wanted, refreshes, and sends end to end.
    newcomer._age.adopt(band_issuer.wallet(30))
    band_issuer.place_tails(Path(str(people.tmp / "newbie.db")))
    status = await newcomer.prove_age()
    assert status.band == "16+"
    await _exchange(alice, newcomer, "now we are end to end")
    assert await _copies(covey_server) == 1
    assert (await alice.conversation_policy("newbie")).protection == "end-to-end"


async def _rows(server: Any, sql: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = await asyncio.to_thread(server.rows, sql)
    return rows


async def _execute(server: Any, sql: str) -> None:
    engine = create_engine(server.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()
