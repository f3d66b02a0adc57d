"""The input line of `covey chat`: your own lines echoed with time and a sent or queued
mark, /quit warning while messages are unsent, and on a terminal a prompt that keeps
what you type below the messages that arrive meanwhile."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client
from tests.integration._covey_cli import COVEY, cli_env, quit_chat, read_until, start, type_line

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize("covey_server", ["sqlite"], indirect=True)
async def test_queued_lines_warn_on_quit_and_go_out_later(covey_server: Any,
                                                          tmp_path: Path) -> None:
    bob = await Client.register(covey_server.url, "bob", tmp_path / "bob.db", "pw")
    await bob.close()
    store = str(tmp_path / "alice.db")
    chat = await start("chat", "--server", covey_server.url, "--store", store,
                       "--register", "alice", "--to", "bob")
    await read_until(chat, "/help for commands")
    await type_line(chat, "first")
    assert re.search(r"\d\d:\d\d:\d\d you → bob: first ✓ sent",
                     await read_until(chat, "✓ sent"))

    await asyncio.to_thread(covey_server.stop)
    await type_line(chat, "while you were away")
    await read_until(chat, "while you were away … queued")
    await type_line(chat, "/quit")
    await read_until(chat, "1 message is not sent yet")
    assert chat.returncode is None  # still chatting
    await type_line(chat, "/quit")
    assert await asyncio.wait_for(chat.wait(), 30) == 0

    await asyncio.to_thread(covey_server.start)
    chat = await start("chat", "--store", store, "--to", "bob")
    await read_until(chat, "✓ sent")
    await quit_chat(chat)
    bob = await Client.open(tmp_path / "bob.db", "pw")
    try:
        texts = [(await bob.next_message(30)).text for _ in range(2)]
        assert texts == ["first", "while you were away"]
    finally:
        await bob.close()


def _read_pty(fd: int, needle: str, within_s: float = 30) -> str:
    """What the terminal showed until `needle` (escape sequences removed)."""
    import select
    import time

    seen = ""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536).decode(errors="replace")
            except OSError:
                break
        plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r", "", seen)
        if needle in plain:
            return plain
    raise AssertionError(f"{needle!r} not shown within {within_s} s:\n{seen!r}")


@pytest.mark.parametrize("covey_server", ["sqlite"], indirect=True)
async def test_terminal_prompt_keeps_the_typed_line(covey_server: Any, tmp_path: Path) -> None:
    bob = await Client.register(covey_server.url, "bob", tmp_path / "bob.db", "pw")
    main, side = pty.openpty()
    process = subprocess.Popen(  # noqa: ASYNC220 (a pty needs the plain Popen)
        [COVEY, "chat", "--server", covey_server.url, "--store", str(tmp_path / "a.db"),
         "--register", "alice", "--to", "bob"],
        stdin=side, stdout=side, stderr=side, env=cli_env(TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1"),
        start_new_session=True)
    os.close(side)
    try:
        await asyncio.to_thread(_read_pty, main, "bob>")
        os.write(main, b"half a thou")  # typed, not yet sent
        await asyncio.to_thread(_read_pty, main, "half a thou")
        await bob.wait_connected()
        await bob.send_text("alice", "incoming while typing")
        shown = await asyncio.to_thread(_read_pty, main, "incoming while typing")
        # The message printed above the prompt, and the prompt came back with the text.
        after = shown.rsplit("incoming while typing", 1)[1]
        if "half a thou" not in after:
            after += await asyncio.to_thread(_read_pty, main, "half a thou", 10)
        assert "bob>" in after and "half a thou" in after.split("bob>", 1)[1]
        os.write(main, b"ght\r")
        await asyncio.to_thread(_read_pty, main, "half a thought ✓ sent")
        assert (await bob.next_message(30)).text == "half a thought"
        os.write(main, b"/quit\r")
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(main)
        await bob.close()


@pytest.mark.shared_server
async def test_a_line_over_64_kib_gets_one_line_and_the_chat_goes_on(
        covey_server: Any, tmp_path: Path) -> None:
    bob = await Client.register(covey_server.url, f"bob{os.getpid()}", tmp_path / "b.db", "pw")
    try:
        chat = await start("chat", "--server", covey_server.url, "--store",
                           str(tmp_path / "a.db"), "--register", f"alice{os.getpid()}",
                           "--to", bob.user_id)
        await read_until(chat, "/help for commands")
        await type_line(chat, "x" * (70 * 1024))
        await type_line(chat, "still here")
        seen = await read_until(chat, "still here ✓ sent")
        assert "Traceback" not in seen
        refusals = [line for line in seen.splitlines() if "64 KiB" in line]
        assert len(refusals) == 1, seen
        assert (await bob.next_message(30)).text == "still here"
        await quit_chat(chat)
    finally:
        await bob.close()
