"""Blocking as the blocked sender sees it in `covey chat`: its lines look sent, exactly as
before the block (no refusal, nothing printed twice), and none reaches the blocker; the
blocker's earlier messages stay reportable, and `covey contacts block` says so."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client
from covey.moderation import ReportCategory
from tests.integration._covey_cli import quit_chat, read_until, run, start, type_line

pytestmark = pytest.mark.timeout(240)


async def test_blocked_sender_sees_sent_and_the_blocker_gets_nothing(
        covey_server: Any, tmp_path: Path) -> None:
    bob = await Client.register(covey_server.url, "bob", tmp_path / "bob.db", "pw")
    store = str(tmp_path / "alice.db")
    try:
        chat = await start("chat", "--server", covey_server.url, "--store", store,
                           "--register", "alice", "--to", "bob")
        # The banner says why the conversation is safeguarded and how to verify.
        banner = await read_until(chat, "covey age prove")
        assert "safeguarded: the safety service can read this conversation because" in banner
        assert f"you have not verified your age: covey age request --issuer URL " \
               f"--evidence ... --store {store}" in banner
        await type_line(chat, "before the block")
        before = await read_until(chat, "✓ sent")
        first = await bob.next_message(30)
        assert first.text == "before the block"

        await bob.block("alice")
        await asyncio.sleep(2.5)  # past the gate's reload, in any server process
        await type_line(chat, "after the block")
        after = await read_until(chat, "✓ sent")
        # Word for word what an unblocked send shows (but for the time and the text).
        assert after.split("after the block")[1] == before.split("before the block")[1]
        with pytest.raises(TimeoutError):
            await bob.next_message(3)
        await quit_chat(chat)
        assert chat.stdout is not None
        rest = (await chat.stdout.read()).decode()
        for shown in (before, after, rest):
            assert "block" not in shown.replace("before the block", "").replace(
                "after the block", ""), shown
            assert "not delivered" not in shown

        # The blocker can still report what did arrive, with verified franking.
        receipt = await bob.report(first, ReportCategory.HARASSMENT)
        assert receipt.messages_verified == receipt.messages_submitted == 1
    finally:
        await bob.close()

    code, out = await run("contacts", "block", "bob", "--store", store)
    assert code == 0, out
    assert "nothing they send reaches you, and they are not told" in out
