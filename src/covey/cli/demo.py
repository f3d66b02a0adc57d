"""`covey demo`: a real server process on a temporary SQLite database and real clients,
showing 1:1 and group messages end to end, a device catching up after being offline,
an attachment, what the server actually stored (ciphertext and commitments), age
assurance, reporting, and the age-aware safety policy."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from covey.cli import app
from covey.cli._demo_age import IssuerService, scene_age
from covey.cli._demo_common import WAIT_S, Glossary, demo_console, received, server_rows
from covey.cli._demo_reports import scene_reports
from covey.cli._demo_safety import START_TIMEOUT_S, scene_safety
from covey.client import Client, RoomKeyReceived
from covey.errors import CoveyError
from covey.server.process import ServerProcess


@dataclass
class _Cast:
    """Everyone in the demo, and every plaintext sent (to look for it on the server)."""

    root: Path
    server: ServerProcess
    clients: dict[str, Client] = field(default_factory=dict)
    sent_texts: list[str] = field(default_factory=list)
    sent_files: list[bytes] = field(default_factory=list)
    issuer: IssuerService | None = None  # the school's issuer, from scene 5 on
    glossary: Glossary = field(default_factory=Glossary)

    def store(self, name: str) -> Path:
        return self.root / "devices" / f"{name}.db"

    @property
    def database(self) -> Path:
        return self.root / "server" / "covey.db"

    @staticmethod
    def passphrase(name: str) -> str:
        return f"demo passphrase for {name}"


def _demo_image() -> bytes:
    """A small generated PNG (a colour gradient): never real material."""
    width = height = 64
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 4, y * 4, 160))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


async def _send(cast: _Cast, sender: str, to: str, text: str) -> None:
    cast.sent_texts.append(text)
    await cast.clients[sender].send_text(to, text)


async def _scene_accounts(console: Console, cast: _Cast) -> None:
    console.rule("[bold]1. Accounts and devices")
    url = cast.server.url
    for name, handle in (("alice-laptop", "alice"), ("bob", "bob"), ("carol", "carol")):
        cast.clients[name] = await Client.register(
            url, handle, cast.store(name), cast.passphrase(name))
    token = await cast.clients["alice-laptop"].create_link_token()
    cast.clients["alice-phone"] = await Client.link_device(
        url, "alice", token, cast.store("alice-phone"), cast.passphrase("alice-phone"))
    for client in cast.clients.values():
        await client.wait_connected()

    table = Table("device", "user", "device id", "where its keys live")
    for name, client in cast.clients.items():
        table.add_row(name, client.user_id, client.device_id,
                      f"{cast.store(name).name} (encrypted at rest)")
    console.print(table)
    console.print("Each device has its own vodozemac account; one-time keys and a fallback "
                  "key are signed and uploaded. Alice's phone joined with a link token.")


async def _scene_direct(console: Console, cast: _Cast) -> None:
    console.rule("[bold]2. A 1:1 conversation, end to end encrypted (Olm)")
    console.print("Every message is franked: the recipient checks that the plaintext opens "
                  "the commitment the server saw (✓ commitment) and keeps the server's tag "
                  "(✓ tag), so it could prove what was sent in a report.")
    cast.glossary.explain(console, "franked", "commitment", "tag")
    alice, bob, phone = (cast.clients[n] for n in ("alice-laptop", "bob", "alice-phone"))
    await _send(cast, "alice-laptop", "bob", "Hi Bob! Are we still on for climbing on Saturday?")
    received(console, "bob", await bob.next_message(WAIT_S))
    received(console, "alice-phone", await phone.next_message(WAIT_S))
    await _send(cast, "bob", "alice", "Yes! 10am at the wall. I'll bring the rope.")
    received(console, "alice-laptop", await alice.next_message(WAIT_S))
    received(console, "alice-phone", await phone.next_message(WAIT_S))
    console.print("Bob's reply reached both of Alice's devices; Alice's own message was "
                  "synced to her phone.")

    image = _demo_image()
    cast.sent_files.append(image)
    await alice.send_attachment("bob", image, name="gradient.png", mime="image/png")
    message = await bob.next_message(WAIT_S)
    await phone.next_message(WAIT_S)
    ref = message.attachments[0]
    downloaded = await bob.download_attachment(ref)
    verdict = "[green]identical[/]" if downloaded == image else "[red]DIFFERENT[/]"
    console.print(f"  [bold]bob[/] ← attachment {ref.name} ({ref.size} bytes): blob "
                  f"sha256 {ref.sha256[:16]}… checked, decrypted with its franked key: "
                  f"{verdict}")


async def _scene_group(console: Console, cast: _Cast) -> None:
    console.rule("[bold]3. A group (Megolm), membership change and key rotation")
    alice, bob, carol = (cast.clients[n] for n in ("alice-laptop", "bob", "carol"))
    group = await alice.create_group("Climbing club", ["bob", "carol"])
    console.print(f"Alice created [bold]{group.name}[/] ({group.group_id}) with bob and carol, "
                  f"epoch {group.epoch}.")
    cast.glossary.explain(console, "epoch")
    await _send(cast, "alice-laptop", group.group_id, "Welcome to the climbing club!")
    for name in ("bob", "carol", "alice-phone"):
        received(console, name, await cast.clients[name].next_message(WAIT_S))

    group = await alice.remove_member(group.group_id, "carol")
    console.print(f"Alice removed carol (epoch {group.epoch}): her next message uses a new "
                  "Megolm session shared only with the remaining devices.")
    await _send(cast, "alice-laptop", group.group_id, "Carol has left; next trip is in May.")
    for name in ("bob", "alice-phone"):
        received(console, name, await cast.clients[name].next_message(WAIT_S))
    try:
        leaked = await carol.next_message(2.0)
        console.print(f"[red]carol received {leaked.text!r} after leaving[/]")
    except TimeoutError:
        console.print("  [bold]carol[/] received nothing: she no longer has the group's key.")

    sessions = []
    async for event in _drain_events(bob):
        if isinstance(event, RoomKeyReceived) and event.group_id == group.group_id:
            sessions.append(event.session_id)
    console.print(f"Bob received {len(sessions)} Megolm session keys for the group "
                  f"({', '.join(s[:10] + '…' for s in sessions)}): one per epoch.")


async def _drain_events(client: Client) -> AsyncIterator[object]:
    events = client.events()
    while True:
        try:
            yield await asyncio.wait_for(anext(events), 0.2)
        except TimeoutError:
            return


async def _scene_offline(console: Console, cast: _Cast) -> None:
    console.rule("[bold]4. A device that was offline catches up")
    await cast.clients.pop("alice-phone").close()
    console.print("Alice's phone goes offline.")
    texts = ["Bob, the forecast says rain.", "Shall we move to Sunday?",
             "Same time, same place."]
    for text in texts:
        await _send(cast, "bob", "alice", text)
    for _ in texts:
        received(console, "alice-laptop", await cast.clients["alice-laptop"].next_message(WAIT_S))
    await cast.clients["bob"].flush()

    _show_server_storage(console, cast)

    phone = await Client.open(cast.store("alice-phone"), cast.passphrase("alice-phone"))
    cast.clients["alice-phone"] = phone
    console.print("Alice's phone comes back online, resuming its sessions from its "
                  "encrypted store:")
    for _ in texts:
        received(console, "alice-phone", await phone.next_message(WAIT_S))


def _show_server_storage(console: Console, cast: _Cast) -> None:
    rows = server_rows(
        cast.database, "SELECT m.conversation_id, m.sender_user, m.commitment, mb.body, "
        "mb.olm_type FROM mailbox mb JOIN messages m ON m.id = mb.message_pk ORDER BY mb.seq")
    table = Table("conversation", "from", "commitment", "ciphertext (base64)",
                  "size", title="Held for Alice's phone while it is offline")
    for conversation, sender, commitment, body, olm_type in rows:
        shown = "…" + (body or "")[-16:]
        kind = "Olm" if olm_type is not None else "Megolm"
        table.add_row(conversation, sender, commitment[:12] + "…", shown,
                      f"{len(body or '') * 3 // 4} B {kind}")
    console.print(table)

    stored = b"".join(p.read_bytes() for p in (cast.root / "server").rglob("*") if p.is_file())
    found = [t for t in cast.sent_texts if t.encode() in stored]
    found += [f"{len(f)}-byte attachment" for f in cast.sent_files if f in stored]
    if found:
        console.print(f"[red]plaintext found on the server: {found}[/]")
    else:
        console.print(f"Searched every byte of the server's database, WAL and blobs for the "
                      f"{len(cast.sent_texts)} texts and the picture sent: [green]none of them "
                      f"is there[/]. Sizes are padded to buckets (256 B, 512 B, …).")
        cast.glossary.explain(console, "WAL")


def _next_steps(console: Console) -> None:
    """Where a newcomer goes from here: the README's walkthrough, by hand."""
    steps = Text()
    for command, what in (
            ("covey server", "run your own server here; it prints its address and the "
                             "console's"),
            ("covey register --server http://127.0.0.1:8470 --store alice.db alice",
             "an account on it (and bob's, in a second terminal)"),
            ("covey chat --store alice.db --to bob",
             "talk; /report N CATEGORY reports line N to the moderators"),
            ("covey admin create-user mod --role moderator",
             "a console account: log in at http://127.0.0.1:8470/console/"),
            ("covey audit visibility", "what your server can read, measured"),
            ("covey COMMAND --help", "every command, with an example")):
        steps.append("$ ", style="dim").append(command, style="bold").append("\n")
        steps.append(f"    {what}\n", style="italic")
    steps.append('The README\'s "Try it yourself" walks through them to a report in the '
                 "console.")
    console.print(Panel(steps, title="What to try next", title_align="left"))


async def _run_demo(root: Path, console: Console) -> None:
    server = ServerProcess(f"sqlite+aiosqlite:///{root / 'server' / 'covey.db'}",
                           root / "server", log_path=root / "server.log",
                           env={"COVEY_SAFETY_MODE": "e2ee-only",
                                # the console on plain http://127.0.0.1
                                "COVEY_CONSOLE_ALLOW_HTTP": "true"})
    with console.status("Starting a real covey server on a temporary SQLite database…"):
        await asyncio.to_thread(server.start, None, START_TIMEOUT_S)
    console.print(Panel(f"covey server running at [bold]{server.url}[/]\n"
                        f"database: {root / 'server' / 'covey.db'}\n"
                        "Scenes 1 to 4 show the messaging core with the operator's "
                        "[bold]e2ee-only[/] mode (COVEY_SAFETY_MODE=e2ee-only); from scene 5 "
                        "the server runs the default, [bold]safeguarded[/].",
                        title="Covey demo", title_align="left"))
    cast = _Cast(root=root, server=server)
    (root / "devices").mkdir(parents=True, exist_ok=True)
    try:
        await _scene_accounts(console, cast)
        await _scene_direct(console, cast)
        await _scene_group(console, cast)
        await _scene_offline(console, cast)
        await scene_age(console, cast)
        await scene_reports(console, cast)
        await scene_safety(console, cast)
        console.rule("[bold green]Done")
        console.print("Every message above was encrypted on one device, relayed as "
                      "ciphertext, decrypted on the others, and opened its franking "
                      "commitment; from scene 5 on, each message in a conversation with an "
                      "under-16 or unverified participant also carried a safety copy the "
                      "server could read.")
        _next_steps(console)
    finally:
        for client in cast.clients.values():
            await client.close()
        server.stop()
        if cast.issuer is not None:
            cast.issuer.stop()


@app.command("demo")
def demo(
    keep: Annotated[bool, typer.Option(help="keep the temporary server and device files")] = False,
) -> None:
    """Start a real server on a temporary SQLite database and show Covey end to end."""
    console = demo_console()
    root = Path(tempfile.mkdtemp(prefix="covey-demo-"))
    try:
        asyncio.run(_run_demo(root, console))
    except (TimeoutError, RuntimeError, CoveyError) as exc:
        console.print(f"[red]The demo failed: {exc}[/] (files kept in {root})")
        raise typer.Exit(1) from exc
    if keep:
        console.print(f"Files kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
