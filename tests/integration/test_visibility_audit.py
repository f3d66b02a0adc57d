"""`covey audit visibility` against a real server's database (SQLite and PostgreSQL) in each
policy mode, after real clients with real age bands exchanged messages: adults'
conversations are never readable by the server; children's are readable through safety
copies in safeguarded mode only. The audit itself opens no copy and writes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import select

from covey.client import Client
from covey.protocol._encoding import b64encode
from covey.protocol.content import bucket_size
from covey.protocol.safety_copy import SafetyCopyContext, SafetyServicePrivateKey, open_safety_copy
from covey.protocol.secrets import FrankingCommitment
from covey.server.storage.engine import create_engine
from covey.server.storage.schema_safety import safety_copies
from tests.support import safety as _safety

# The banded-people fixtures, found by name.
band_issuer = _safety.band_issuer
trust_band_issuer = _safety.trust_band_issuer
people = _safety.people

pytestmark = pytest.mark.timeout(240)

MODES = ["safeguarded", "on-device", "e2ee-only"]


@pytest.fixture(params=MODES)
def safety_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Request before `people` so the server starts in this mode."""
    monkeypatch.setenv("COVEY_SAFETY_MODE", request.param)
    return str(request.param)


async def _talk(a: Client, b: Client, lines: list[str]) -> int:
    """a and b take turns sending `lines`; each waits for the other's message."""
    sender, receiver = a, b
    for line in lines:
        message_id = await sender.send_text(receiver.user_id, line)
        got = await receiver.next_message(within_s=15)
        assert (got.message_id, got.sender_user, got.text) == (
            message_id, sender.user_id, line)
        sender, receiver = receiver, sender
    return len(lines)


async def _opened_sizes(server: Any) -> int:
    """The test (not the audit) opens every stored copy with the server's safety service
    key, to check the audit's size arithmetic (sealed minus HPKE enc and tag) exactly."""
    key = SafetyServicePrivateKey((server.data_dir / "safety-service.key").read_bytes())
    engine = create_engine(server.database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(safety_copies))).mappings().all()
    finally:
        await engine.dispose()
    total = 0
    for row in rows:
        context = SafetyCopyContext(
            row["message_id"], row["conversation_id"], row["sender_user"],
            row["sender_device"], tuple(json.loads(row["participants"])),
            FrankingCommitment.from_b64(row["commitment"]))
        copy = {"v": 1, "key_id": row["key_id"], "sealed": b64encode(bytes(row["sealed"]))}
        # Copies are padded to buckets: the audit counts the bucket, never less.
        total += bucket_size(len(open_safety_copy(copy, context, key).to_bytes()))
    return total


def _audit(database_url: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "COVEY_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-m", "covey", "audit", "visibility", "--database-url",
         database_url, "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


ADULT_LINES = ["are we still on for the climbing wall on saturday?",
               "yes, 10am, bring the blue rope", "great, see you there"]
CHILD_LINES = ["did you finish the science worksheet?", "nearly, question 4 is hard",
               "it's about photosynthesis, page 32 helps"]
UNVERIFIED_LINES = ["hi, we met at the book club", "oh hello! how are you?"]


async def test_audit_measures_what_the_server_can_read(safety_mode: str, people: Any,
                                                       covey_server: Any) -> None:
    ann, bob = await people.adult("ann"), await people.adult("bob")
    kit, kay = await people.child("kit"), await people.child("kay")
    una = await people.unverified("una")
    adults = await _talk(ann, bob, ADULT_LINES)
    # Two under-16s: only accepted contacts message a child, another child too.
    await kay.accept_contact(await kit.request_contact(kay.user_id))
    children = await _talk(kit, kay, CHILD_LINES)
    children += await _talk(una, ann, UNVERIFIED_LINES)    # unverified with a 16+
    before = await asyncio.to_thread(covey_server.counts)

    data = await asyncio.to_thread(_audit, covey_server.database_url)

    assert data["mode"] == safety_mode  # the default comes from COVEY_SAFETY_MODE
    assert {t["table"] for t in data["catalog"]} >= {"messages", "mailbox", "safety_copies"}
    measured = data["measurement"]["audiences"]
    grown, kids = measured["adults"], measured["children"]
    assert (grown["messages"], kids["messages"]) == (adults, children)
    assert (grown["conversations"], kids["conversations"]) == (1, 2)
    # 16+ with 16+ is end-to-end encrypted in every mode.
    assert grown["safety_copies"] == 0
    assert grown["bytes"]["plaintext"] == 0
    assert grown["per_1000_messages"]["plaintext"] == 0
    assert grown["per_1000_messages"]["metadata"] > 0
    if safety_mode == "safeguarded":
        assert kids["safety_copies"] == children
        sent = sum(len(line.encode()) for line in CHILD_LINES + UNVERIFIED_LINES)
        assert kids["bytes"]["plaintext"] >= sent  # each copy holds the whole content
        assert kids["per_1000_messages"]["plaintext"] > 0
        assert before["safety_copies"] == children
        assert kids["bytes"]["plaintext"] == await _opened_sizes(covey_server)
    else:
        assert kids["safety_copies"] == 0
        assert kids["bytes"]["plaintext"] == 0
        assert kids["per_1000_messages"]["plaintext"] == 0
        assert before["safety_copies"] == 0
    assert data["measurement"]["unmatched_safety_copies"]["children"]["safety_copies"] == 0
    assert not [f for f in data["measurement"]["findings"] if "16+" in f or "mode is" in f]
    # The audit measured sizes only: no copy was opened (no read logged), nothing written.
    after = await asyncio.to_thread(covey_server.counts)
    assert after["safety_copy_reads"] == before["safety_copy_reads"]
    assert {k: v for k, v in after.items() if k != "mailbox"} == {
        k: v for k, v in before.items() if k != "mailbox"}
