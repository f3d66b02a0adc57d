"""`covey guardian`: link an under-16 account with its guardians (both consent), end a
link, and read the alerts a guardian gets — ids and codes, never message content."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from covey.cli import app
from covey.cli._device import StoreOption, run_on_store, when
from covey.client import Client, GuardianAlert

guardian_app = typer.Typer(name="guardian", no_args_is_help=True,
                           help="Guardians: links between an under-16 account and the 16+ "
                           "accounts it chose, and their safety alerts (never content).")
app.add_typer(guardian_app, name="guardian")

LinkIdArgument = Annotated[str, typer.Argument(help="the link id (from `covey guardian list`)")]


class Role(StrEnum):
    guardian = "guardian"
    child = "child"


@guardian_app.command("list")
def list_links(store: StoreOption) -> None:
    """Your links and proposals, as child and as guardian."""
    links, me = run_on_store(store, lambda c: c.guardian_links())
    console = Console(highlight=False)
    if not links:
        console.print("no guardian links")
        return
    table = Table("link", "child", "guardian", "status", "asked by", "since")
    for link in links:
        waiting = link.status == "pending" and link.proposed_by != me
        status = "waiting for you" if waiting else link.status.replace("_", " ")
        table.add_row(link.link_id, link.child, link.guardian, status, link.proposed_by,
                      when(link.accepted_at_ms or link.created_at_ms))
    console.print(table)


@guardian_app.command("link")
def link(
    user_id: Annotated[str, typer.Argument(help="the other account")],
    store: StoreOption,
    role: Annotated[Role, typer.Option(help="the other account's role: `guardian` if you "
                                       "are the child, `child` if you offer to be theirs")],
) -> None:
    """Propose a link; it is active once the other account accepts."""
    made, _ = run_on_store(store, lambda c: c.propose_guardian_link(user_id, role=role.value))
    Console(highlight=False).print(
        f"proposed {made.link_id}: {made.child} (child) ↔ {made.guardian} (guardian); "
        f"waiting for {user_id} to accept")


@guardian_app.command("accept")
def accept(link_id: LinkIdArgument, store: StoreOption) -> None:
    """Accept a proposal the other account made."""
    made, _ = run_on_store(store, lambda c: c.accept_guardian_link(link_id))
    Console(highlight=False).print(
        f"[green]linked[/]: {made.guardian} is now a guardian of {made.child}")


@guardian_app.command("remove")
def remove(link_id: LinkIdArgument, store: StoreOption) -> None:
    """Withdraw or decline a proposal, or end a link (a child under 16 asks its guardian)."""
    removal, _ = run_on_store(store, lambda c: c.remove_guardian_link(link_id))
    console = Console(highlight=False)
    if removal.outcome == "removed":
        console.print(f"[green]removed[/] {link_id}")
    else:
        console.print(f"removal of {link_id} requested: it ends when the guardian approves")


@guardian_app.command("approve-removal")
def approve_removal(link_id: LinkIdArgument, store: StoreOption) -> None:
    """As the guardian, consent to the child's request to end the link."""
    run_on_store(store, lambda c: c.approve_guardian_removal(link_id))
    Console(highlight=False).print(f"[green]removed[/] {link_id}")


def _facts(alert: GuardianAlert) -> str:
    names = ("category", "other_user", "conversation_id", "detector", "code", "severity")
    return ", ".join(f"{name} {getattr(alert, name)}" for name in names
                     if getattr(alert, name) is not None) or "—"


@guardian_app.command("alerts")
def alerts(
    store: StoreOption,
    unread: Annotated[bool, typer.Option("--unread", help="only unacknowledged")] = False,
    ack: Annotated[bool, typer.Option("--ack", help="acknowledge the ones shown")] = False,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
) -> None:
    """Alerts, newest first: about the children you guard (a child: those about it)."""

    async def action(client: Client) -> list[GuardianAlert]:
        shown = await client.guardian_alerts(unacknowledged=unread, limit=limit)
        mine = [a.alert_id for a in shown if a.guardian == client.user_id
                and a.acknowledged_at_ms is None]
        if ack and mine:
            await client.acknowledge_guardian_alerts(mine)
        return shown

    shown, _ = run_on_store(store, action)
    console = Console(highlight=False)
    if not shown:
        console.print("no alerts")
        return
    table = Table("when", "child", "guardian", "alert", "facts", "read")
    for alert in shown:
        table.add_row(when(alert.created_at_ms), alert.child, alert.guardian,
                      alert.kind.replace("_", " "), escape(_facts(alert)),
                      "yes" if alert.acknowledged_at_ms else "")
    console.print(table)
