"""Attachments in `covey chat`: shown (markup escaped, with size and media type), saved
with /save, confirmed to the sender, and sent with the media type their bytes show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from covey.client import Client
from tests.integration._covey_cli import quit_chat, read_until, run, start, type_line

pytestmark = pytest.mark.timeout(180)

_PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
_JPEG = b"\xff\xd8\xff\xe0" + bytes(range(100))


async def test_chat_shows_saves_and_sends_attachments(covey_server: Any,
                                                      tmp_path: Path) -> None:
    bob = await Client.register(covey_server.url, "bob", tmp_path / "bob.db", "pw")
    store = str(tmp_path / "alice.db")
    saved = tmp_path / "saved"
    saved.mkdir()
    try:
        await bob.wait_connected()
        chat = await start("chat", "--server", covey_server.url, "--store", store,
                           "--register", "alice", "--to", "bob")
        await read_until(chat, "■")
        await bob.send_attachment("alice", _PNG, name="cat [bold]x.png",
                                  text="look [bold]here[/] and [/]")
        line = await read_until(chat, "#1 ")
        assert "look [bold]here[/] and [/]" in line
        assert f"[attachment cat [bold]x.png, {len(_PNG)} B, image/png, verified]" in line

        await type_line(chat, f"/save 1 {saved}")
        await read_until(chat, f"saved cat [bold]x.png ({len(_PNG)} B, image/png) to "
                               f"{saved / 'cat [bold]x.png'}")
        assert (saved / "cat [bold]x.png").read_bytes() == _PNG
        await type_line(chat, f"/save 1 {saved}")
        await read_until(chat, "exists: give another PATH")
        await type_line(chat, "/save 2")
        await read_until(chat, "no message #2 here")

        photo = tmp_path / "[bold]holiday[red].bin"
        photo.write_bytes(_JPEG)
        await type_line(chat, f"/attach {photo}")
        await read_until(chat, f"sent [bold]holiday[red].bin ({len(_JPEG)} B, image/jpeg) to bob")
        received = await bob.next_message(20)
        assert [(r.name, r.mime, r.size) for r in received.attachments] == [
            ("[bold]holiday[red].bin", "image/jpeg", len(_JPEG))]
        assert await bob.download_attachment(received.attachments[0]) == _JPEG
        await quit_chat(chat)
    finally:
        await bob.close()

    code, listing = await run("history", "--store", store, "--with", "bob")
    assert code == 0, listing
    assert f"[attachment cat [bold]x.png, {len(_PNG)} B, image/png]" in listing
    assert f"[attachment [bold]holiday[red].bin, {len(_JPEG)} B, image/jpeg]" in listing
