"""`covey chat`: an interactive terminal chat with one user or group, end to end encrypted
or safeguarded as the server's signed policy says (shown as a banner; /policy says why).

Lines typed are sent; incoming messages print with sender and time. `/quit` leaves,
`/help` lists the other commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from covey.cli import app
from covey.cli._device import passphrase as device_passphrase
from covey.cli._messages import attachment_label
from covey.client import (
    AttachmentDownload,
    Client,
    DeviceListChanged,
    IncomingMessage,
    MessageDropped,
    Offline,
    PolicyChanged,
    SafetyNotice,
    SafetyWarning,
    SendFailed,
    ServerError,
    media_type,
)
from covey.errors import CoveyError
from covey.moderation import ReportCategory
from covey.protocol.content import AttachmentRef
from covey.protocol.ids import dm_participants, is_group_id

_HELP = """commands:
  /quit                      leave
  /to USER_OR_GROUP          talk to someone else
  /group NAME USER[,USER..]  create a group with these members and talk to it
  /attach PATH               send a file as an encrypted attachment
  /save N [PATH]             save message #N's attachment (to PATH, a file or a folder)
  /report N CATEGORY [TEXT]  report message #N to the moderators (the sender is not told)
  /block-report N [CATEGORY [TEXT]]  block its sender and report message #N (default: other)
  /link                      print a link token to add another device
  /policy                    how this conversation is protected, and why
  /help                      this text"""


def _read_file(text: str) -> tuple[str, bytes]:
    path = Path(text).expanduser()
    return path.name, path.read_bytes()


def _save_path(ref: AttachmentRef, target: str, *, several: bool) -> Path:
    """Where `/save` writes: PATH as a file, or the attachment's own name (without any
    folders the sender put in it) in PATH's folder or the current one."""
    own = Path(ref.name).name
    own = ref.blob_id if own in ("", ".", "..") else own
    if not target:
        return Path(own)
    path = Path(target).expanduser()
    return path / own if several or path.is_dir() or target.endswith("/") else path


def _write_new(path: Path, data: bytes) -> None:
    with path.open("xb") as file:
        file.write(data)


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


def device_change_line(event: DeviceListChanged, me: str) -> str:
    """`alice added a new device (D…)`: said plainly, since a device the user did not add
    is how an account takeover (or a lying server) shows."""
    who = "you" if event.user_id == me else event.user_id
    parts = []
    if event.added:
        parts.append(f"{who} added a new device ({', '.join(event.added)})"
                     if len(event.added) == 1 else
                     f"{who} added {len(event.added)} new devices ({', '.join(event.added)})")
    if event.removed:
        parts.append(f"{who} removed a device ({', '.join(event.removed)})")
    line = "; ".join(parts)
    if event.user_id == me and event.added:
        line += ": if that was not you, someone else can read your new messages"
    return line


class _Chat:
    def __init__(self, client: Client, to: str, console: Console) -> None:
        self.client = client
        self.to = to
        self.console = console
        self.shown: list[IncomingMessage] = []  # message #N is shown[N - 1]

    def _show(self, message: IncomingMessage,
              checked: Sequence[AttachmentDownload | None] = ()) -> None:
        where = "" if self._is_current(message) else f" [dim]({escape(message.conversation_id)})[/]"
        who = "you" if message.sender_user == self.client.user_id else message.sender_user
        muted = " [dim](muted)[/]" if message.muted else ""
        self.shown.append(message)
        line = (f"[dim]#{len(self.shown)} {_time(message.server_ts_ms)}[/] "
                f"[bold cyan]{escape(who)}[/]"
                f"{muted}{where}: ")
        line += escape(message.text)
        for i, ref in enumerate(message.attachments):
            got = checked[i] if i < len(checked) else None
            if got is not None and got.verified:
                line += " " + attachment_label(ref, "verified")
            else:
                why = "" if got is None else f": {got.status.value}"
                line += (f" [red]\\[attachment {escape(ref.name or ref.blob_id)} could not be "
                         f"verified{escape(why)}][/]")
        self.console.print(line)

    async def _check_attachments(self, message: IncomingMessage
                                 ) -> list[AttachmentDownload | None]:
        """Fetch and check each attachment, so none is shown as if it were verified."""
        checked: list[AttachmentDownload | None] = []
        for ref in message.attachments:
            try:
                checked.append(await self.client.fetch_attachment(ref))
            except (Offline, ServerError):
                checked.append(None)
        return checked

    def _is_current(self, message: IncomingMessage) -> bool:
        return message.conversation_id == self.client.core.conversation_for(self.to)

    async def banner(self, *, reason: bool = False) -> None:
        """The conversation's protection as the server signed it, so no one is misled."""
        policy = await self.client.conversation_policy(self.to)
        colour = "yellow" if policy.protection == "safeguarded" else "green"
        self.console.print(f"[{colour}]■ {escape(policy.label)}[/]"
                           + (f" — {escape(policy.reason)}" if reason else ""))

    async def incoming(self) -> None:
        async for message in self.client.messages():
            self._show(message, await self._check_attachments(message))

    async def events(self) -> None:
        async for event in self.client.events():
            if isinstance(event, MessageDropped):
                self.console.print(f"[yellow]dropped a message from {escape(event.sender_user)}:"
                                   f" {escape(event.reason)}[/]")
            elif isinstance(event, PolicyChanged):
                self.console.print(f"[yellow]this conversation is now "
                                   f"{escape(event.policy.label)}: "
                                   f"{escape(event.policy.reason)}[/]")
            elif isinstance(event, SafetyWarning):
                self.console.print(f"[bold red]⚠ {escape(event.text)}[/] [dim](about "
                                   f"{escape(event.sender_user)}'s message)[/]")
            elif isinstance(event, SafetyNotice):
                self._notice(event)
            elif isinstance(event, SendFailed):
                self.console.print(f"[red]not delivered ({escape(event.code)}): "
                                   f"{escape(event.detail)}[/]")
            elif isinstance(event, DeviceListChanged):
                line = device_change_line(event, self.client.user_id)
                self.console.print(f"[yellow]{escape(line)}[/]")

    def _notice(self, notice: SafetyNotice) -> None:
        """A safety notice in the conversation, with its one-command block-and-report."""
        number = next((n for n, m in enumerate(self.shown, 1) if m.key == notice.key), None)
        action = (f"/block-report {number} grooming_or_enticement" if number is not None
                  else f"covey report {notice.message_id} --category grooming_or_enticement "
                       "--block")
        self.console.print(f"[bold yellow]⚠ safety notice ({escape(notice.sender_user)}):[/] "
                           f"{escape(notice.text)}\n  [bold]block and report:[/] "
                           f"{escape(action)} · help: {escape(notice.help_url)}")

    async def command(self, line: str) -> bool:
        """Run a /command; False means quit."""
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        if name == "/quit":
            return False
        if name == "/help":
            self.console.print(escape(_HELP))
        elif name == "/to" and rest:
            self.to = rest
            self.console.print(f"[green]now talking to {escape(rest)}[/]")
            await self.banner()
        elif name == "/policy":
            await self.banner(reason=True)
        elif name == "/group" and rest:
            group_name, _, members = rest.partition(" ")
            info = await self.client.create_group(
                group_name, [m for m in members.replace(",", " ").split() if m])
            self.to = info.group_id
            self.console.print(f"[green]created {escape(info.group_id)}; now talking to it[/]")
        elif name == "/attach" and rest:
            name, data = await asyncio.to_thread(_read_file, rest)
            mime = media_type(data, name)
            await self.client.send_attachment(self.to, data, name=name, mime=mime)
            self.console.print(f"[green]sent[/] {escape(name)} ({len(data)} B, {escape(mime)}) "
                               f"to {escape(self.to)}")
        elif name == "/save" and rest:
            await self._save(rest)
        elif name in ("/report", "/block-report") and rest:
            await self._report(rest, block=name == "/block-report")
        elif name == "/link":
            token = await self.client.create_link_token()
            self.console.print(f"link token (single use): [bold]{escape(token)}[/]")
        else:
            self.console.print(f"[yellow]unknown command; {escape(_HELP)}[/]")
        return True

    def _numbered(self, number: str) -> IncomingMessage | None:
        """Message #number of this session, or None (after saying so)."""
        if number.lstrip("#").isdigit() and 0 < int(number.lstrip("#")) <= len(self.shown):
            return self.shown[int(number.lstrip("#")) - 1]
        self.console.print(f"[yellow]no message #{escape(number.lstrip('#'))} here: use the "
                           "number shown before a message[/]")
        return None

    async def _report(self, rest: str, *, block: bool) -> None:
        """`/report N CATEGORY [comment]`, `/block-report N [CATEGORY [comment]]`."""
        number, _, rest = rest.partition(" ")
        category_text, _, comment = rest.strip().partition(" ")
        message = self._numbered(number)
        if message is None:
            return
        try:
            category = ReportCategory((category_text or ("other" if block else ""))
                                      .replace("-", "_").lower())
        except ValueError:
            self.console.print("[yellow]say why: one of "
                               + ", ".join(c.value for c in ReportCategory) + "[/]")
            return
        receipt = await self.client.report(message, category, comment.strip() or None,
                                           block=block)
        self.console.print(f"[green]report {escape(receipt.report_id)} "
                           f"{'already filed' if receipt.duplicate else 'filed'}[/]: "
                           f"{receipt.messages_verified} of {receipt.messages_submitted} "
                           "messages verified"
                           + (f" · {escape(message.sender_user)} blocked"
                              if receipt.blocked else "")
                           + " (the sender is not told of the report)")

    async def _save(self, rest: str) -> None:
        """`/save N [PATH]`: download, verify and decrypt message #N's attachments into
        new files (never over an existing one)."""
        number, _, target = rest.partition(" ")
        message = self._numbered(number)
        if message is None:
            return
        if not message.attachments:
            self.console.print(f"[yellow]message #{escape(number)} has no attachment[/]")
            return
        for ref in message.attachments:
            data = await self.client.download_attachment(ref)
            path = _save_path(ref, target.strip(), several=len(message.attachments) > 1)
            try:
                await asyncio.to_thread(_write_new, path, data)
            except FileExistsError:
                self.console.print(f"[yellow]{escape(str(path))} exists: give another PATH[/]")
                return
            self.console.print(f"[green]saved[/] {escape(ref.name or ref.blob_id)} "
                               f"({ref.size} B, {escape(ref.mime)}) to {escape(str(path))}")

    async def typing(self) -> None:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return  # end of input
            text = line.rstrip("\n")
            if not text.strip():
                continue
            try:
                if text.startswith("/"):
                    if not await self.command(text):
                        return
                    continue
                await self.client.send_text(self.to, text)
                if self.client.pending_sends():
                    self.console.print("[dim](queued: the server is unreachable)[/]")
            except (CoveyError, OSError) as exc:
                self.console.print(f"[red]{escape(str(exc))}[/]")


async def _reachable(client: Client, to: str) -> bool:
    """False when `to` names a user the server says is not there for us (unknown, or not
    findable: one answer for both); groups, and an unreachable server, are not checked."""
    if is_group_id(to) or dm_participants(to) is not None or to == client.user_id:
        return True
    try:
        await client.find_user(to)
    except ServerError as exc:
        return exc.status != 404
    except Offline:
        pass
    return True


async def _run_chat(server: str | None, store: Path, register: str | None,
                    link_token: str | None, to: str, console: Console) -> None:
    passphrase = device_passphrase()
    if register is not None:
        if server is None:
            raise typer.BadParameter("--server is needed to register", param_hint="--server")
        if link_token is not None:
            client = await Client.link_device(server, register, link_token, store, passphrase)
        else:
            client = await Client.register(server, register, store, passphrase)
        console.print(f"[green]registered {escape(register)} (device "
                      f"{escape(client.device_id)})[/]")
    else:
        client = await Client.open(store, passphrase)
    async with client:
        if not await _reachable(client, to):
            console.print(f"[red]there is no user {escape(to)} you can reach: look people up "
                          f"with covey contacts find HANDLE --store {escape(str(store))}[/]")
            raise typer.Exit(2)
        chat = _Chat(client, to, console)
        console.print(f"[bold]{escape(client.user_id)}[/] talking to [bold]{escape(to)}[/]; "
                      "/help for commands, /quit to leave")
        with contextlib.suppress(CoveyError):  # offline: the banner comes with /policy
            await chat.banner()
        background = [asyncio.create_task(chat.incoming()), asyncio.create_task(chat.events())]
        try:
            await chat.typing()
            with contextlib.suppress(TimeoutError, CoveyError):
                await client.flush(within_s=5)
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


@app.command("chat")
def chat(
    to: Annotated[str, typer.Option("--to", help="user id (1:1) or group id to talk to")],
    store: Annotated[Path, typer.Option("--store", help="this device's encrypted store file")],
    server: Annotated[str | None, typer.Option(
        "--server", help="relay URL, e.g. http://127.0.0.1:8470 (needed with --register)")
    ] = None,
    register: Annotated[str | None, typer.Option(
        "--register", metavar="HANDLE", help="create this account (and the store) first")
    ] = None,
    link_token: Annotated[str | None, typer.Option(
        "--link-token", help="with --register: add a device to an existing account instead")
    ] = None,
) -> None:
    """Chat with a user or group; a banner says how the conversation is protected.
    Passphrase: $COVEY_PASSPHRASE or a prompt."""
    console = Console(highlight=False)
    try:
        asyncio.run(_run_chat(server, store, register, link_token, to, console))
    except CoveyError as exc:
        console.print(f"[red]error ({escape(exc.code)}): {escape(exc.message)}[/]")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
