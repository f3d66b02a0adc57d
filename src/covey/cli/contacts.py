"""`covey contacts`: find people, send and answer contact requests, and block or mute.

Contact rules come from the server (docs/safety-policy.md): an under-16 account can only
be reached by 16+ accounts whose request it accepted, and cannot be found by handle."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from covey.cli import app
from covey.cli._device import StoreOption, run_on_store, when
from covey.client import Client
from covey.client._events import BAND_WORDS

contacts_app = typer.Typer(name="contacts", no_args_is_help=True,
                           help="Contacts: find people, requests, blocks and mutes.")
app.add_typer(contacts_app, name="contacts")

UserArgument = Annotated[str, typer.Argument(help="the other account's user id")]
RequestArgument = Annotated[str, typer.Argument(
    help="the request id (from `covey contacts requests`)")]


def _console() -> Console:
    return Console(highlight=False)


@contacts_app.command("list")
def list_contacts(store: StoreOption) -> None:
    """Your contacts, with any safety notice about them."""
    contacts, _ = run_on_store(store, lambda c: c.contacts())
    if not contacts:
        _console().print("no contacts")
        return
    table = Table("user", "since", "safety notice")
    for contact in contacts:
        notice = contact.safety_notice
        table.add_row(contact.user_id, when(contact.since_ms),
                      f"[bold red]{escape(notice.text)}[/]" if notice else "")
    _console().print(table)


@contacts_app.command("find")
def find(handle: Annotated[str, typer.Argument(help="the handle to look up")],
         store: StoreOption) -> None:
    """Look a handle up (under-16 accounts are found only by their contacts)."""
    found, _ = run_on_store(store, lambda c: c.find_user(handle))
    _console().print(f"{escape(found.user_id)}" + (" (a contact)" if found.contact else ""))


@contacts_app.command("request")
def request(user_id: UserArgument, store: StoreOption) -> None:
    """Ask someone to be your contact (if they asked you first, this accepts)."""
    request_id, _ = run_on_store(store, lambda c: c.request_contact(user_id))
    _console().print(f"contact request {escape(request_id)} sent to {escape(user_id)}")


@contacts_app.command("requests")
def requests(store: StoreOption) -> None:
    """Pending contact requests, to you and from you."""
    pending, me = run_on_store(store, lambda c: c.contact_requests())
    if not pending.incoming and not pending.outgoing:
        _console().print("no pending contact requests")
        return
    table = Table("request", "from", "to", "status", "sent")
    for item in [*pending.incoming, *pending.outgoing]:
        status = "waiting for you" if item.target == me else item.status
        requester = item.requester
        if item.requester_band is not None:
            # The band the server holds for them: what they say about themselves is not it.
            requester = f"{requester} (age: {BAND_WORDS[item.requester_band]})"
        table.add_row(item.request_id, requester, item.target, status,
                      when(item.created_ms))
    _console().print(table)


@contacts_app.command("accept")
def accept(request_id: RequestArgument, store: StoreOption) -> None:
    """Accept a request: you become each other's contacts."""
    answered, _ = run_on_store(store, lambda c: c.accept_contact(request_id))
    _console().print(f"[green]{escape(answered.requester)} is now your contact[/]")


@contacts_app.command("decline")
def decline(request_id: RequestArgument, store: StoreOption) -> None:
    """Decline a request (the sender is not told why)."""
    run_on_store(store, lambda c: c.decline_contact(request_id))
    _console().print(f"declined {escape(request_id)}")


@contacts_app.command("cancel")
def cancel(request_id: RequestArgument, store: StoreOption) -> None:
    """Withdraw a request you sent."""
    run_on_store(store, lambda c: c.cancel_contact_request(request_id))
    _console().print(f"cancelled {escape(request_id)}")


@contacts_app.command("remove")
def remove(user_id: UserArgument, store: StoreOption) -> None:
    """Stop being contacts."""
    run_on_store(store, lambda c: c.remove_contact(user_id))
    _console().print(f"{escape(user_id)} is no longer your contact")


@contacts_app.command("block")
def block(user_id: UserArgument, store: StoreOption) -> None:
    """Block someone: nothing they send reaches you, they cannot request you or add you to
    groups, and they are not told.

    Example: covey contacts block mallory --store me.db
    """
    run_on_store(store, lambda c: c.block(user_id))
    _console().print(f"[green]blocked {escape(user_id)}[/]: nothing they send reaches you, "
                     "and they are not told (their messages look sent to them)")


@contacts_app.command("unblock")
def unblock(user_id: UserArgument, store: StoreOption) -> None:
    """Lift a block."""
    run_on_store(store, lambda c: c.unblock(user_id))
    _console().print(f"unblocked {escape(user_id)}")


@contacts_app.command("mute")
def mute(user_id: UserArgument, store: StoreOption,
         off: Annotated[bool, typer.Option("--off", help="unmute instead")] = False) -> None:
    """Mute someone: their messages still arrive, without notifying you."""
    run_on_store(store, lambda c: c.mute(user_id, not off))
    _console().print(f"{'unmuted' if off else 'muted'} {escape(user_id)}")


@contacts_app.command("blocked")
def blocked(store: StoreOption) -> None:
    """Who you have blocked and muted."""
    async def both(client: Client) -> tuple[list[str], list[str]]:
        return await client.blocked(), await client.muted()

    (blocks, mutes), _ = run_on_store(store, both)
    _console().print(f"blocked: {escape(', '.join(blocks)) or '—'}\n"
                     f"muted: {escape(', '.join(mutes)) or '—'}")
