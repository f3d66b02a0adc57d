"""Reporting from the command line: `covey chat` numbers what it shows and reports by
number; `covey history` lists a conversation with the ids `covey report` takes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client
from tests.integration._covey_cli import PASSPHRASE, quit_chat, read_until, run, start, type_line

pytestmark = pytest.mark.timeout(180)


async def test_chat_reports_by_number_and_history_lists_ids(covey_server: Any,
                                                            tmp_path: Path) -> None:
    bob = await Client.register(covey_server.url, "bob", tmp_path / "bob.db", "pw")
    store = str(tmp_path / "alice.db")
    try:
        await bob.wait_connected()
        chat = await start("chat", "--server", covey_server.url, "--store", store,
                           "--register", "alice", "--to", "bob")
        await read_until(chat, "■")
        first = await bob.send_text("alice", "first")
        await read_until(chat, "#1 ")
        second = await bob.send_text("alice", "second")
        await read_until(chat, "#2 ")
        third = await bob.send_text("alice", "third")
        await read_until(chat, "#3 ")

        await type_line(chat, "/report 9 spam")
        await read_until(chat, "no message #9 here")
        await type_line(chat, "/report 1 not-a-category")
        await read_until(chat, "say why: one of child_sexual_exploitation_imagery")
        await type_line(chat, "/report 1 harassment he keeps at it")
        await read_until(chat, "filed: 1 of 1 messages verified")
        await type_line(chat, "/block-report 2")
        output = await read_until(chat, "bob blocked")
        assert "filed: 2 of 2 messages verified" in output
        await quit_chat(chat)
        alice = await Client.open(store, PASSPHRASE, connect=False)
        async with alice:
            assert "bob" in await alice.blocked()
    finally:
        await bob.close()

    code, listing = await run("history", "--store", store, "--with", "bob")
    assert code == 0, listing
    for message_id, text in ((first, "first"), (second, "second"), (third, "third")):
        assert re.search(rf"bob: {text}\s+id {re.escape(message_id)}", listing), listing

    code, output = await run("report", third, "--store", store, "--category", "spam")
    assert code == 0, output
    assert "filed: 3 of 3 messages verified" in output
    code, output = await run("report", third, "--store", store, "--category", "spam")
    assert "already filed" in output

    code, output = await run("history", "--store", store, "--with", "nobody")
    assert (code, output.strip()) == (0, "no messages with nobody on this device")
