"""`covey age`: get an age credential from an issuer the server trusts, see where it
stands, and prove this account's band to the server (a zero-knowledge proof: the server
learns the band, never the birth date). See docs/age-assurance.md."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from covey.cli import app
from covey.cli._device import StoreOption, passphrase, when
from covey.client import Client
from covey.errors import CoveyError

age_app = typer.Typer(help="Age credentials: request one from an issuer, see its status, "
                      "prove your age band to the server.", no_args_is_help=True)
app.add_typer(age_app, name="age")

BAND_MEANING = {
    "16+": "verified 16 or over: conversations where everyone is 16+ are end-to-end "
           "encrypted; children can only be reached through a contact request they accept.",
    "under-16": "verified under 16: only people whose contact request you accepted can "
                "message you, you cannot be found by search, and your conversations are "
                "safeguarded (the safety service can read them to protect you).",
    "unverified": "not verified: your conversations are safeguarded (the safety service "
                  "can read them), and you cannot contact anyone under 16. Get a credential "
                  "with `covey age request` to change this.",
}


def _evidence(items: list[str]) -> dict[str, str]:
    evidence: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: write evidence as KEY=VALUE, e.g. "
                                     "student_id=S-1234", param_hint="--evidence")
        evidence[key.strip()] = value.strip()
    return evidence


def _run(store: Path, action: Any) -> Any:
    """Open the store, connected (proofs and issuers need the network), run, close."""
    console = Console(highlight=False)
    secret = passphrase()

    async def run() -> Any:
        client = await Client.open(store, secret, connect=False)
        async with client:
            return await action(client)

    if not store.exists():
        console.print(f"[red]{escape(str(store))} is not a device store: create one with "
                      "covey register (or covey app)[/]")
        raise typer.Exit(2)
    try:
        return asyncio.run(run())
    except CoveyError as exc:
        console.print(f"[red]{escape(exc.code)}: {escape(exc.message)}[/]")
        raise typer.Exit(2 if 400 <= exc.status < 500 else 1) from exc


@age_app.command("request")
def request(
    store: StoreOption,
    issuer: Annotated[str, typer.Option("--issuer", help="the issuer's URL, e.g. "
                                        "http://127.0.0.1:8471")],
    evidence: Annotated[list[str], typer.Option(
        "--evidence", metavar="KEY=VALUE",
        help="what the issuer asks for to check your age (repeat for several)")],
    wait: Annotated[int, typer.Option("--wait", min=0, metavar="SECONDS",
                                      help="wait this long for the issuer's decision")] = 0,
) -> None:
    """Ask an issuer (a school, a bank…) for an age credential.

    It stays pending until the issuer's operator checks your evidence; then
    `covey age prove`.

    Example: covey age request --store alice.db --issuer http://127.0.0.1:8471
    --evidence student_id=S-1234
    """
    if not issuer.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{issuer!r} is not a URL", param_hint="--issuer")
    wanted = _evidence(evidence)

    async def action(client: Client) -> tuple[str, bool]:
        ticket, held = await client.start_age_request(issuer, wanted)
        deadline = asyncio.get_running_loop().time() + wait
        while held is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(1)
            held = await client.check_age_request(ticket)
        return ticket, held is not None

    ticket, issued = _run(store, action)
    console = Console(highlight=False)
    if issued:
        console.print(f"[green]credential issued[/] (ticket {escape(ticket)}); next: "
                      f"covey age prove --store {escape(str(store))}")
    else:
        console.print(f"[yellow]pending[/]: ticket {escape(ticket)} waits for the issuer's "
                      "operator to check your evidence; see it with "
                      f"covey age status --store {escape(str(store))}")


@age_app.command("status")
def status(store: StoreOption) -> None:
    """Your age band, the credentials on this device, and requests still pending.

    The band is as the server knows it; a request the issuer has decided since is
    collected here.

    Example: covey age status --store alice.db
    """
    async def action(client: Client) -> dict[str, Any]:
        collected: list[str] = []
        refused: list[str] = []
        for pending in client.age_requests():
            ticket = str(pending["ticket_id"])
            try:
                if await client.check_age_request(ticket) is not None:
                    collected.append(ticket)
            except CoveyError as exc:
                refused.append(f"{ticket}: {exc.message}")
        me = await client.whoami()
        return {"me": me, "held": client.age_credentials(), "pending": client.age_requests(),
                "collected": collected, "refused": refused}

    found = _run(store, action)
    console = Console(highlight=False)
    age = found["me"].age
    console.print(f"band: [bold]{escape(age.band)}[/]"
                  + (f" (until {when(age.expires_at_ms)}, issuer {escape(age.issuer_id)})"
                     if age.band != "unverified" and age.issuer_id else ""))
    console.print(f"  {escape(BAND_MEANING[age.band])}")
    for ticket in found["collected"]:
        console.print(f"[green]approved[/]: ticket {escape(ticket)} was issued and is stored")
    for line in found["refused"]:
        console.print(f"[red]refused[/]: {escape(line)}")
    for pending in found["pending"]:
        console.print(f"[yellow]pending[/]: ticket {escape(str(pending['ticket_id']))} at "
                      f"{escape(str(pending['issuer_url']))} since "
                      f"{when(int(pending['requested_ms']))}")
    held = found["held"]
    console.print(f"credentials on this device: {len(held)}"
                  + "".join(f"\n  {escape(h.credential_id)} from {escape(h.issuer_id)}"
                            for h in held))
    if held and age.band == "unverified":
        console.print(f"next: covey age prove --store {escape(str(store))}")


@age_app.command("prove")
def prove(store: StoreOption) -> None:
    """Prove your age band to the server with a fresh zero-knowledge proof.

    The server learns the band and its expiry, not your birth date.

    Example: covey age prove --store alice.db
    """
    async def action(client: Client) -> Any:
        if not client.age_credentials():
            raise CoveyError("this device holds no age credential: get one with covey age "
                             "request --issuer URL --evidence KEY=VALUE",
                             code="no_age_credential", status=400)
        return await client.prove_age()

    result = _run(store, action)
    console = Console(highlight=False)
    console.print(f"[green]proven[/]: {escape(result.band)} until "
                  f"{when(result.expires_at_ms)}")
    console.print(f"  {escape(BAND_MEANING[result.band])}")
