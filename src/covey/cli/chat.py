"""`covey chat`: an interactive terminal chat with one user or group, end to end encrypted
or safeguarded as the server's signed policy says (shown as a banner; /policy says why).

Lines typed are sent; incoming messages print with sender and time. `/quit` leaves,
`/help` lists the other commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from covey.cli import app
from covey.cli._device import exit_code, refuse_missing_store
from covey.cli._device import passphrase as device_passphrase
from covey.cli._messages import attachment_label
from covey.client import (
    AttachmentDownload,
    Client,
    ContactRequestReceived,
    DeviceListChanged,
    Event,
    GroupChanged,
    GroupInvited,
    GroupMembersWithheld,
    GuardianAlert,
    GuardianLinkProposed,
    IncomingMessage,
    MessageDropped,
    MessageSent,
    ModeratorWarning,
    Offline,
    PolicyChanged,
    SafetyNotice,
    SafetyWarning,
    SendFailed,
    ServerError,
    media_type,
)
from covey.client._client import group_change
from covey.errors import CoveyError
from covey.moderation import ReportCategory
from covey.protocol.content import AttachmentRef
from covey.protocol.ids import dm_participants, is_group_id

_HELP = """commands (quote names with spaces: /group "Book club" bob carol):
  /quit                      leave (asks again while messages are still unsent)
  /to USER_OR_GROUP          talk to someone else (a user, or a group by its name)
  /groups                    the groups you are in
  /group NAME USER [USER..]  create a group with these members and talk to it
                             (unverified and under-16 accounts are invited: they join
                             when they accept)
  /invitations               the groups you are invited to
  /join INVITATION_ID        accept a group invitation and talk to the group
  /members [GROUP]           who is in this group (or GROUP)
  /add USER [USER..]         add people to this group (admins)
  /remove USER [USER..]      remove people from this group (admins)
  /leave [GROUP]             leave this group (or GROUP)
  /accept ID, /decline ID    answer a contact request (cr_…) or guardian link (gl_…)
  /attach PATH               send a file as an encrypted attachment
  /save N [PATH]             save message #N's attachment (to PATH, a file or a folder)
  /report N CATEGORY [TEXT]  report message #N to the moderators (the sender is not told)
  /block-report N [CATEGORY [TEXT]]  block its sender and report message #N (default: other)
  /link                      print a link token to add another device
  /policy                    how this conversation is protected, and why
  /help                      this text"""


class _Usage(Exception):
    """A command typed wrongly: print the message, keep chatting."""


def _words(text: str) -> list[str]:
    """A command's arguments, with "quoted names" kept whole."""
    try:
        return shlex.split(text)
    except ValueError as exc:  # e.g. an unclosed quote
        raise _Usage(f"could not read that: {exc}") from None


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
    def __init__(self, client: Client, to: str, console: Console,
                 store: Path | None = None) -> None:
        self.client = client
        self.store = "STORE" if store is None else str(store)
        self.to = to
        self.console = console
        self.shown: list[IncomingMessage] = []  # message #N is shown[N - 1]
        self.unsent: dict[str, str] = {}  # queued message id -> its text, until sent
        self.warned_quit = False
        for entry in client.core.outbox():  # queued by an earlier session
            self.unsent[entry.entry_id] = ""

    def say(self, markup: str) -> None:
        self.console.print(markup)

    # --- names ---------------------------------------------------------------------

    def label(self, conversation: str) -> str:
        """A conversation as people say it: a group's name, or the other person."""
        if is_group_id(conversation):
            group = self.client.core.group(conversation)
            return f"group {group.name}" if group is not None else "a group"
        pair = dm_participants(conversation)
        if pair is not None:
            others = [u for u in pair if u != self.client.user_id]
            return others[0] if others else "yourself"
        return conversation

    def _group_named(self, text: str) -> str | None:
        """The group id `text` names (an id, or a name: exact, then ignoring case)."""
        groups = self.client.core.groups()
        if is_group_id(text):
            return text
        for fold in (False, True):
            found = [g.group_id for g in groups
                     if (g.name.casefold() == text.casefold() if fold else g.name == text)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise _Usage(f"{len(found)} groups are named {text!r}: use its id "
                             f"({', '.join(found)}; /groups lists them)")
        return None

    async def resolve(self, text: str) -> str:
        """What `/to` and `--to` take: a group name or id, or a user."""
        with contextlib.suppress(CoveyError):
            await self.client.groups()  # names of groups joined while away
        return self._group_named(text) or text

    def _current_group(self, name: str = "") -> str:
        if name:
            found = self._group_named(name)
            if found is None:
                raise _Usage(f"you are in no group named {name!r}: /groups lists yours")
            return found
        if not is_group_id(self.to):
            raise _Usage("you are not talking to a group: /to GROUP first, or name one")
        return self.to

    # --- what is printed -----------------------------------------------------------

    def _show(self, message: IncomingMessage,
              checked: Sequence[AttachmentDownload | None] = ()) -> None:
        where = ("" if self._is_current(message) else
                 f" [dim](in {escape(self.label(message.conversation_id))})[/]"
                 if message.is_group else " [dim](to you)[/]")
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
            elif got is not None and got.withheld:
                line += (f" [bold red]\\[an image was withheld for your safety: it matched a "
                         f"known harmful image — /block-report {len(self.shown)} to block "
                         f"and report the sender][/]")
            else:
                why = "" if got is None else f": {got.status.value}"
                line += (f" [red]\\[attachment {escape(ref.name or ref.blob_id)} could not be "
                         f"verified{escape(why)}][/]")
        self.say(line)

    def _echo(self, message_id: str, text: str) -> None:
        """Your own line, with its time and whether the server has it yet."""
        now = datetime.now().strftime("%H:%M:%S")
        if message_id in {e.entry_id for e in self.client.core.outbox()}:
            self.unsent[message_id] = text
            self.say(f"[dim]{now}[/] [bold]you[/] → {escape(self.label(self._conversation))}: "
                     f"{escape(text)} [yellow]… queued (the server is unreachable; it goes out "
                     "when it is back)[/]")
        else:
            self.say(f"[dim]{now}[/] [bold]you[/] → {escape(self.label(self._conversation))}: "
                     f"{escape(text)} [green]✓ sent[/]")

    @property
    def _conversation(self) -> str:
        return self.client.core.conversation_for(self.to)

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
        return message.conversation_id == self._conversation

    async def banner(self, *, reason: bool = False) -> None:
        """The conversation's protection as the server signed it, so no one is misled;
        a safeguarded one also says why, and how verifying age could change it."""
        policy = await self.client.conversation_policy(self.to)
        safeguarded = policy.protection == "safeguarded"
        colour = "yellow" if safeguarded else "green"
        self.say(f"[{colour}]■ {escape(policy.label)}[/]"
                 + (f" — {escape(policy.reason)}" if reason or safeguarded else ""))
        if safeguarded or policy.protection == "on-device-detection":
            band = None
            with contextlib.suppress(CoveyError):
                band = (await self.client.whoami()).age.band
            mine = ("you have not verified your age: " if band == "unverified" else
                    "if everyone here is 16 or over, each can verify: ")
            self.say(f"[dim]  {mine}covey age request --issuer URL --evidence ... --store "
                     f"{escape(_quoted(self.store))}, then covey age prove (covey age --help); "
                     "it is end-to-end encrypted once every participant has proven 16 or "
                     "over[/]")

    # --- background ----------------------------------------------------------------

    async def incoming(self) -> None:
        async for message in self.client.messages():
            self._show(message, await self._check_attachments(message))

    async def events(self) -> None:
        async for event in self.client.events():
            line = self.event_line(event)
            if line is not None:
                self.say(line)

    def event_line(self, event: Event) -> str | None:
        """How an event reads in the chat, or None for the ones not shown."""
        if isinstance(event, MessageDropped):
            return (f"[yellow]dropped a message from {escape(event.sender_user)}:"
                    f" {escape(event.reason)}[/]")
        if isinstance(event, PolicyChanged):
            return (f"[yellow]{escape(self.label(event.conversation_id))} is now "
                    f"{escape(event.policy.label)}: {escape(event.policy.reason)}[/]")
        if isinstance(event, SafetyWarning):
            return (f"[bold red]⚠ {escape(event.text)}[/] [dim](about "
                    f"{escape(event.sender_user)}'s message)[/]")
        if isinstance(event, SafetyNotice):
            return self._notice_line(event)
        if isinstance(event, SendFailed):
            if event.message_id not in self.unsent:
                return None  # refused as it was typed: said already, once
            text = self.unsent.pop(event.message_id)
            about = f" ({escape(text[:40])})" if text else ""
            return f"[red]not delivered{about}: {escape(event.detail)}[/]"
        if isinstance(event, MessageSent):
            if event.message_id not in self.unsent:
                return None
            text = self.unsent.pop(event.message_id)
            return (f"[green]✓ sent[/] [dim]{_time(event.server_ts_ms)}[/]: "
                    f"{escape(text[:60]) or 'a message queued earlier'}")
        if isinstance(event, DeviceListChanged):
            return f"[yellow]{escape(device_change_line(event, self.client.user_id))}[/]"
        if isinstance(event, GroupChanged):
            return f"[yellow]{escape(group_change_line(event))}[/]"
        if isinstance(event, GroupInvited):
            return (f"[yellow]{escape(event.invited_by)} invites you to the group "
                    f"{escape(event.group_name)}: /join {escape(event.invitation_id)}[/]")
        if isinstance(event, GroupMembersWithheld):
            return (f"[yellow]{escape(self.label(event.group_id))}: {escape(event.reason)}: "
                    f"{escape(', '.join(event.users))}[/]")
        if isinstance(event, ContactRequestReceived):
            band = f" ({escape(event.band_words)})" if event.band_words else ""
            return (f"[yellow]{escape(event.requester)}{band} asks to be your contact: "
                    f"/accept {escape(event.request_id)} or /decline "
                    f"{escape(event.request_id)}[/]")
        if isinstance(event, ModeratorWarning):
            return f"[bold red]⚠ moderator warning: {escape(event.text)}[/]"
        if isinstance(event, GuardianLinkProposed):
            if event.proposed_by == event.guardian:
                what = f"{event.guardian} offers to be your guardian"
            else:
                what = f"{event.child} asks you to be their guardian"
            return (f"[yellow]{escape(what)}: /accept {escape(event.link_id)} or /decline "
                    f"{escape(event.link_id)}[/]")
        if isinstance(event, GuardianAlert):
            return f"[yellow]{escape(guardian_alert_line(event, self.client.user_id))}[/]"
        return None

    # --- commands ------------------------------------------------------------------

    def _notice_line(self, notice: SafetyNotice) -> str:
        """A safety notice in the conversation, with its one-command block-and-report."""
        number = next((n for n, m in enumerate(self.shown, 1) if m.key == notice.key), None)
        action = (f"/block-report {number} grooming_or_enticement" if number is not None
                  else f"covey report {notice.message_id} --category grooming_or_enticement "
                       "--block")
        return (f"[bold yellow]⚠ safety notice ({escape(notice.sender_user)}):[/] "
                f"{escape(notice.text)}\n  [bold]block and report:[/] "
                f"{escape(action)} · help: {escape(notice.help_url)}")

    async def command(self, line: str) -> bool:
        """Run a /command; False means quit."""
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        if name == "/quit":
            return not self._may_quit()
        try:
            await self._command(name, rest)
        except _Usage as exc:
            self.say(f"[yellow]{escape(str(exc))}[/]")
        return True

    def _may_quit(self) -> bool:
        unsent = self.client.pending_sends()
        if not unsent or self.warned_quit:
            return True
        self.warned_quit = True
        self.say(f"[yellow]{unsent} message{'s are' if unsent != 1 else ' is'} not sent yet "
                 "(the server is unreachable): /quit again to leave anyway (they stay queued "
                 "and go out the next time you open this store)[/]")
        return False

    async def _command(self, name: str, rest: str) -> None:
        if name == "/help":
            self.say(escape(_HELP))
        elif name == "/to" and rest:
            words = _words(rest)
            self.to = await self.resolve(" ".join(words))
            self.say(f"[green]now talking to {escape(self.label(self._conversation))}[/]")
            await self.banner()
        elif name == "/policy":
            await self.banner(reason=True)
        elif name == "/group" and rest:
            words = _words(rest)
            if len(words) < 2:
                raise _Usage('say who: /group NAME USER [USER..] (quote a name with spaces)')
            info = await self.client.create_group(
                words[0], [m for w in words[1:] for m in w.split(",") if m])
            self.to = info.group_id
            self.say(f"[green]created group {escape(info.name)} with "
                     f"{escape(', '.join(m.user_id for m in info.members))}; "
                     f"now talking to it[/] [dim]({escape(info.group_id)})[/]")
            if info.invited:
                self.say(f"[yellow]invited {escape(', '.join(info.invited))}: they join when "
                         "they accept[/]")
        elif name == "/invitations":
            for invitation in await self.client.group_invitations():
                self.say(f"{escape(invitation.invitation_id)}  {escape(invitation.group_name)}"
                         f" (from {escape(invitation.invited_by)})")
        elif name == "/join" and rest:
            info = await self.client.accept_group_invitation(rest)
            self.to = info.group_id
            self.say(f"[green]joined {escape(info.name)}; now talking to it[/]")
        elif name == "/groups":
            await self._groups()
        elif name == "/members":
            await self._members(self._current_group(" ".join(_words(rest))))
        elif name in ("/add", "/remove") and rest:
            group = self._current_group()
            for user in _words(rest):
                if name == "/add":
                    info = await self.client.add_member(group, user)
                    done = "invited" if user in info.invited else "added"
                    self.say(f"[green]{done} {escape(user)} to {escape(self.label(group))}[/]")
                else:
                    await self.client.remove_member(group, user)
                    self.say(f"[green]removed {escape(user)} from "
                             f"{escape(self.label(group))}[/]")
        elif name == "/leave":
            group = self._current_group(" ".join(_words(rest)))
            label = self.label(group)
            await self.client.remove_member(group, self.client.user_id)
            self.say(f"[green]you left {escape(label)}[/]")
            if group == self.to:
                self.say("[dim]/to someone to keep talking[/]")
        elif name in ("/accept", "/decline") and rest:
            await self._answer(rest, accept=name == "/accept")
        elif name == "/attach" and rest:
            name, data = await asyncio.to_thread(_read_file, rest)
            mime = media_type(data, name)
            await self.client.send_attachment(self.to, data, name=name, mime=mime)
            self.say(f"[green]sent[/] {escape(name)} ({len(data)} B, {escape(mime)}) "
                     f"to {escape(self.label(self._conversation))}")
        elif name == "/save" and rest:
            await self._save(rest)
        elif name in ("/report", "/block-report") and rest:
            await self._report(rest, block=name == "/block-report")
        elif name == "/link":
            token = await self.client.create_link_token()
            self.say(f"link token (single use): [bold]{escape(token)}[/]")
        else:
            self.say(f"[yellow]unknown command; {escape(_HELP)}[/]")

    async def _answer(self, request_id: str, *, accept: bool) -> None:
        """`/accept ID`, `/decline ID`: a contact request (cr_…) or a guardian link
        proposal (gl_…), as the notice that showed it named it."""
        if request_id.startswith("cr_"):
            if accept:
                answered = await self.client.accept_contact(request_id)
                self.say(f"[green]{escape(answered.requester)} is now your contact[/]")
            else:
                await self.client.decline_contact(request_id)
                self.say(f"declined {escape(request_id)} (they are not told)")
        elif request_id.startswith("gl_"):
            if accept:
                link = await self.client.accept_guardian_link(request_id)
                self.say(f"[green]linked[/]: {escape(link.guardian)} is now a guardian of "
                         f"{escape(link.child)}")
            else:
                await self.client.remove_guardian_link(request_id)
                self.say(f"declined {escape(request_id)}")
        else:
            raise _Usage("give the id a notice showed: cr_… (a contact request) or gl_… "
                         "(a guardian link)")

    async def _groups(self) -> None:
        groups = await self.client.groups()
        if not groups:
            self.say("you are in no group: /group NAME USER [USER..] makes one")
        for info in sorted(groups, key=lambda g: g.name.casefold()):
            here = " [green](here)[/]" if info.group_id == self.to else ""
            self.say(f"{escape(info.name)}: {len(info.members)} member"
                     f"{'' if len(info.members) == 1 else 's'}{here} "
                     f"[dim]{escape(info.group_id)}[/]")

    async def _members(self, group_id: str) -> None:
        info = next((g for g in await self.client.groups() if g.group_id == group_id), None)
        if info is None:
            raise _Usage("you are not in that group any more")
        self.say(f"{escape(info.name)}:")
        for member in info.members:
            notes: list[str] = [member.role] if member.role == "admin" else []
            if member.user_id == self.client.user_id:
                notes.append("you")
            if member.user_id in info.withheld:
                notes.append("you and they cannot message each other here")
            extra = f" [dim]({escape(', '.join(notes))})[/]" if notes else ""
            self.say(f"  {escape(member.user_id)}{extra}")

    def _numbered(self, number: str) -> IncomingMessage | None:
        """Message #number of this session, or None (after saying so)."""
        if number.lstrip("#").isdigit() and 0 < int(number.lstrip("#")) <= len(self.shown):
            return self.shown[int(number.lstrip("#")) - 1]
        self.say(f"[yellow]no message #{escape(number.lstrip('#'))} here: use the "
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
            self.say("[yellow]say why: one of "
                     + ", ".join(c.value for c in ReportCategory) + "[/]")
            return
        receipt = await self.client.report(message, category, comment.strip() or None,
                                           block=block)
        self.say(f"[green]report {escape(receipt.report_id)} "
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
            self.say(f"[yellow]message #{escape(number)} has no attachment[/]")
            return
        for ref in message.attachments:
            data = await self.client.download_attachment(ref)
            path = _save_path(ref, target.strip(), several=len(message.attachments) > 1)
            try:
                await asyncio.to_thread(_write_new, path, data)
            except FileExistsError:
                self.say(f"[yellow]{escape(str(path))} exists: give another PATH[/]")
                return
            self.say(f"[green]saved[/] {escape(ref.name or ref.blob_id)} "
                     f"({ref.size} B, {escape(ref.mime)}) to {escape(str(path))}")

    # --- the input line ------------------------------------------------------------

    async def handle(self, text: str) -> bool:
        """One typed line; False means quit."""
        if not text.strip():
            return True
        try:
            if text.startswith("/"):
                return await self.command(text)
            self.warned_quit = False
            message_id = await self.client.send_text(self.to, text)
            self._echo(message_id, text)
        except (CoveyError, OSError) as exc:
            self.say(f"[red]{escape(refusal_line(exc))}[/]")
        except ValidationError as exc:  # input the protocol refuses: say so, keep chatting
            first = exc.errors()[0] if exc.errors() else {"msg": str(exc)}
            self.say(f"[red]could not send that: {escape(str(first.get('msg')))}[/]")
        return True

    async def typing(self) -> None:
        """Read lines: a prompt that keeps what you type below incoming messages on a
        terminal, plain lines otherwise (pipes, scripts, tests)."""
        if sys.stdin.isatty() and sys.stdout.isatty():
            await self._prompt()
            return
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return  # end of input
            if not await self.handle(line.rstrip("\n")):
                return

    async def _prompt(self) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.patch_stdout import patch_stdout

        session: PromptSession[str] = PromptSession()
        with patch_stdout(raw=True):
            while True:
                try:
                    line = await session.prompt_async(f"{self.label(self._conversation)}> ")
                except EOFError:
                    if self._may_quit():
                        return
                    continue
                except KeyboardInterrupt:
                    return
                if not await self.handle(line):
                    return


def refusal_line(exc: CoveyError | OSError) -> str:
    if isinstance(exc, CoveyError):
        return exc.message
    return str(exc)


def group_change_line(event: GroupChanged) -> str:
    if event.joined:
        return f"you were added to the group {event.name}: /to {_quoted(event.name)} to talk"
    if event.left:
        return f"you are no longer in the group {event.name}"
    parts = []
    if event.added:
        parts.append(f"{', '.join(event.added)} joined")
    if event.removed:
        parts.append(f"{', '.join(event.removed)} left")
    return f"group {event.name}: " + "; ".join(parts)


def guardian_alert_line(alert: GuardianAlert, me: str) -> str:
    """A guardian alert as words (ids and codes only: alerts never carry content)."""
    child = "you" if alert.child == me else alert.child
    what = {
        "report_filed": f"{child} reported a message"
                        + (f" ({alert.category.replace('_', ' ')})" if alert.category else ""),
        "contact_accepted": f"{child} accepted a contact: {alert.other_user}",
        "high_risk_detection": f"a conversation of {child} looks unsafe"
                               + (f" ({alert.code})" if alert.code else ""),
        "removal_requested": f"{child} asks to remove your guardian link",
    }.get(alert.kind, f"{alert.kind.replace('_', ' ')} ({child})")
    return f"guardian alert: {what} (covey guardian alerts lists them)"


def _quoted(name: str) -> str:
    return shlex.quote(name) if any(c.isspace() or c in "'\"" for c in name) else name


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
        chat = _Chat(client, to, console, store)
        known = {g.group_id for g in client.core.groups()}
        try:
            chat.to = await chat.resolve(to)
        except _Usage as exc:
            console.print(f"[red]{escape(str(exc))}[/]")
            raise typer.Exit(2) from None
        if not await _reachable(client, chat.to):
            console.print(f"[red]there is no user {escape(to)} you can reach: look people up "
                          f"with covey contacts find HANDLE --store {escape(str(store))}[/]")
            raise typer.Exit(2)
        console.print(f"[bold]{escape(client.user_id)}[/] talking to "
                      f"[bold]{escape(chat.label(chat._conversation))}[/]; "
                      "/help for commands, /quit to leave")
        for info in client.core.groups():  # joined while this device was away
            if info.group_id not in known and register is None:
                joined = group_change(None, info, client.user_id)
                if joined is not None:
                    console.print(f"[yellow]{escape(group_change_line(joined))}[/]")
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
    if register is None:
        refuse_missing_store(console, store)
    try:
        asyncio.run(_run_chat(server, store, register, link_token, to, console))
    except CoveyError as exc:
        console.print(f"[red]error ({escape(exc.code)}): {escape(exc.message)}[/]",
                      soft_wrap=True)
        raise typer.Exit(exit_code(exc)) from exc
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
