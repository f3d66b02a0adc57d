"""`covey register` creates an account before any conversation (passphrase confirmed);
`covey chat --to` a handle that is not there says so in one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client
from tests.integration._covey_cli import quit_chat, read_until, run, start

pytestmark = pytest.mark.timeout(180)


def _prompting_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "COVEY_PASSPHRASE"} | {
        "COLUMNS": "200"}


async def test_register_confirms_the_passphrase_then_chat_opens_it(covey_server: Any,
                                                                   tmp_path: Path) -> None:
    store = tmp_path / "alice.db"
    # A mistyped confirmation is asked again; the passphrase kept is the confirmed one.
    code, output = await run("register", "--server", covey_server.url, "--store", str(store),
                             "alice", env=_prompting_env(),
                             stdin=b"typo one\ntypo two\nright one\nright one\n")
    assert code == 0, output
    assert "do not match" in output
    assert "registered alice" in output and "covey chat --store" in output
    alice = await Client.open(store, "right one", connect=False)
    async with alice:
        assert alice.user_id == "alice"

    code, output = await run("register", "--server", covey_server.url, "--store", str(store),
                             "alice")
    assert code == 2 and "already exists" in output and "Traceback" not in output
    code, output = await run("register", "--server", covey_server.url, "--store",
                             str(tmp_path / "again.db"), "alice")
    assert code == 2 and "could not register alice" in output, output
    assert len(output.strip().splitlines()) == 1 and not (tmp_path / "again.db").exists()
    code, output = await run("register", "--server", covey_server.url, "--store",
                             str(tmp_path / "bad.db"), "Not A Handle!")
    assert code == 2 and "invalid handle" in output and "Traceback" not in output


async def test_chat_to_an_unknown_handle_says_so(covey_server: Any, tmp_path: Path) -> None:
    store = str(tmp_path / "carol.db")
    code, output = await run("register", "--server", covey_server.url, "--store", store,
                             "carol")
    assert code == 0, output
    code, output = await run("chat", "--store", store, "--to", "nobody-here")
    assert code == 2, output
    assert output.strip().splitlines() == [
        "there is no user nobody-here you can reach: look people up with covey contacts "
        f"find HANDLE --store {store}"]

    dave = await Client.register(covey_server.url, "dave", tmp_path / "dave.db", "pw")
    async with dave:
        chat = await start("chat", "--store", store, "--to", "dave")
        await read_until(chat, "■")
        await quit_chat(chat)
