"""`covey chat` as a real process against a real relay, talking to an SDK client."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client

pytestmark = pytest.mark.timeout(120)

# `python -m covey` loads every sub-command module; load just the ones this test needs.
_CLI = ("import covey.cli.server, covey.cli.chat; from covey.cli import app; "
        "app(prog_name='covey')")


async def _chat(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CLI, "chat", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COVEY_PASSPHRASE": "chat passphrase", "COLUMNS": "200"})


async def _read_until(process: asyncio.subprocess.Process, needle: str,
                      within_s: float = 30) -> str:
    assert process.stdout is not None
    seen = ""
    async with asyncio.timeout(within_s):
        while needle not in seen:
            line = await process.stdout.readline()
            if not line:
                break
            seen += line.decode()
    assert needle in seen, seen
    return seen


async def _type(process: asyncio.subprocess.Process, line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line.encode() + b"\n")
    await process.stdin.drain()


@pytest.mark.shared_server
async def test_chat_sends_and_prints(covey_server: Any, tmp_path: Path) -> None:
    bob = await Client.register(covey_server.url, "bob", tmp_path / "bob.db", "pw",
                                scrypt_n=2**12)
    try:
        await bob.wait_connected()
        store = tmp_path / "alice.db"
        chat = await _chat("--server", covey_server.url, "--store", str(store),
                           "--register", "alice", "--to", "bob")
        # Both are unverified: the server's default mode safeguards them, and says so.
        await _read_until(chat, "■ safeguarded")
        await _type(chat, "/policy")
        await _read_until(chat, "the safety service can read this conversation")
        await _type(chat, "hello from the terminal")
        message = await bob.next_message(20)
        assert (message.text, message.sender_user) == ("hello from the terminal", "alice")
        await bob.send_text("alice", "hello [bold]terminal[/bold]")
        output = await _read_until(chat, "hello [bold]terminal[/bold]")
        assert "bob" in output  # sender shown; markup printed literally, not interpreted
        await _type(chat, "/quit")
        assert await asyncio.wait_for(chat.wait(), 20) == 0

        # Reopen the same store (no --register): the session resumes.
        await bob.send_text("alice", "while you were away")
        chat = await _chat("--store", str(store), "--to", "bob")
        await _read_until(chat, "while you were away")
        await _type(chat, "back again")
        assert (await bob.next_message(20)).text == "back again"
        await _type(chat, "/quit")
        assert await asyncio.wait_for(chat.wait(), 20) == 0
    finally:
        await bob.close()


@pytest.mark.shared_server
async def test_chat_wrong_passphrase_is_a_clear_error(covey_server: Any,
                                                      tmp_path: Path) -> None:
    store = tmp_path / "carol.db"
    client = await Client.register(covey_server.url, "carol", store, "another passphrase",
                                   scrypt_n=2**12)
    await client.close()
    chat = await _chat("--store", str(store), "--to", "bob")
    assert chat.stdout is not None
    output = (await asyncio.wait_for(chat.stdout.read(), 30)).decode()
    assert await chat.wait() == 2  # bad input: one line, exit 2
    assert "wrong_passphrase" in output
