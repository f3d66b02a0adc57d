"""`covey issuer`: run an age-credential issuer (a bank, an eID scheme, a school).

`init` creates the schema and a revocable credential definition in a directory, `serve`
issues over HTTP, `pending` / `approve` / `reject` are the operator's check, `revoke`
revokes by credential id, and `publish` writes the trust-registry entry a server needs.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from covey.cli import app

issuer_app = typer.Typer(name="issuer", no_args_is_help=True,
                         help="Issue, approve and revoke age credentials (AnonCreds).")
app.add_typer(issuer_app)

DirOption = Annotated[Path, typer.Option(
    "--dir", envvar="COVEY_ISSUER_DIR", help="the issuer's state directory")]
_DEFAULT_DIR = Path("covey-issuer")
console = Console()


def _fail(message: str) -> typer.Exit:
    """One line, exit 2: every failure here is the operator's input (a directory, a date,
    a ticket)."""
    console.print(f"[red]{escape(message)}[/]", soft_wrap=True)
    return typer.Exit(2)


def _open(directory: Path) -> Any:
    from covey.age import Issuer, ManualApproval

    if not (directory / "public.json").exists():
        raise _fail(f"no issuer in {directory}: run `covey issuer init --dir {directory}`")
    return Issuer(directory, ManualApproval())


@issuer_app.command("init")
def init(
    issuer_id: Annotated[str, typer.Option(
        "--id", help="the issuer's URI (did:web:school.example or https://...)")],
    directory: DirOption = _DEFAULT_DIR,
    url: Annotated[str | None, typer.Option(
        help="public base URL of `covey issuer serve` (tails files are published there)")
    ] = None,
    capacity: Annotated[int, typer.Option(
        help="credentials a revocation registry holds (a full one is followed by another)")
    ] = 1000,
) -> None:
    """Create the schema, a revocable credential definition and a revocation registry
    (more follow, each of `--capacity`, as they fill)."""
    from covey.age import Issuer, ManualApproval
    from covey.errors import CoveyError

    tails_url = f"{url.rstrip('/')}/v1/tails" if url else None
    with console.status(f"Creating issuer {issuer_id} (keys and a revocation registry for "
                        f"{capacity} credentials: a few seconds)…"):
        try:
            issuer = Issuer.create(directory, issuer_id, ManualApproval(), capacity=capacity,
                                   tails_base_url=tails_url)
        except CoveyError as exc:
            raise _fail(exc.message) from exc
    console.print(f"[green]✓[/] issuer [bold]{issuer.issuer_id}[/] in {directory}\n"
                  f"  credential definition {issuer.cred_def_id}\n"
                  f"  next: `covey issuer serve --dir {directory}` and "
                  f"`covey issuer publish --dir {directory} --out registry.json`")


@issuer_app.command("serve")
def serve(
    directory: DirOption = _DEFAULT_DIR,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8480,
    check: Annotated[str | None, typer.Option(
        help="module:attribute of a BirthDateCheck; default: an operator approves each "
             "request (`covey issuer pending` / `approve`)")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Issue credentials over HTTP: offer → request → credential."""
    import uvicorn

    from covey.age.service import create_issuer_app, load_check

    _open(directory)
    application = create_issuer_app(directory, load_check(check))
    console.print(f"issuer service for {directory} on [bold]http://{host}:{port}[/]")
    uvicorn.run(application, host=host, port=port, log_level=log_level)


@issuer_app.command("pending")
def pending(directory: DirOption = _DEFAULT_DIR,
            as_json: Annotated[bool, typer.Option("--json", help="print JSON lines")] = False,
            ) -> None:
    """List requests waiting for an operator's decision, oldest first."""
    tickets = _open(directory).pending()
    if as_json:
        for ticket in tickets:
            print(json.dumps({"ticket_id": ticket.ticket_id, "evidence": ticket.evidence,
                              "submitted_at": ticket.submitted_at}))
        return
    if not tickets:
        console.print("no pending requests")
        return
    from datetime import datetime

    table = Table("ticket", "evidence (check it against your records)", "waiting since",
                  title="Pending credential requests",
                  caption="approve or reject takes the ticket as shown (a unique prefix); "
                          "--json gives full ids")
    table.columns[0].no_wrap = True
    table.columns[1].overflow = "fold"
    table.columns[2].no_wrap = True
    shown = short_ids([t.ticket_id for t in tickets])
    for ticket in tickets:
        table.add_row(shown[ticket.ticket_id], escape(json.dumps(ticket.evidence)),
                      datetime.fromtimestamp(ticket.submitted_at).strftime("%H:%M:%S"))
    console.print(table)


def short_ids(ids: list[str], least: int = 8) -> dict[str, str]:
    """Each id's shortest prefix (at least `least` characters) no other id starts with."""
    shown = {}
    for one in ids:
        length = least
        while length < len(one) and any(o != one and o.startswith(one[:length])
                                         for o in ids):
            length += 1
        shown[one] = one[:length]
    return shown


def _ticket(issuer: Any, given: str) -> str:
    """The pending ticket `given` names: its full id, or a prefix of exactly one."""
    given = given.strip()
    ids = [t.ticket_id for t in issuer.pending()]
    if given in ids or len(given) < 4:
        return given
    found = [i for i in ids if i.startswith(given)]
    if len(found) > 1:
        console.print(f"[red]{len(found)} pending tickets start with {given}: give more of "
                      "it (covey issuer pending)[/]")
        raise typer.Exit(2)
    return found[0] if found else given


@issuer_app.command("approve")
def approve(
    ticket_id: Annotated[str, typer.Argument(help="the ticket from `covey issuer pending`")],
    birth_date: Annotated[str, typer.Option(
        help="the birth date your records show (YYYY-MM-DD)")],
    directory: DirOption = _DEFAULT_DIR,
) -> None:
    """Vouch for a birth date after checking the holder's records; signs the credential."""
    from covey.errors import CoveyError

    try:
        day = date.fromisoformat(birth_date)
    except ValueError as exc:
        raise _fail(f"not a date: {birth_date!r} (YYYY-MM-DD)") from exc
    try:
        issuer = _open(directory)
        issuing = issuer.rev_reg_def_id
        ticket_id = _ticket(issuer, ticket_id)
        result = issuer.approve(ticket_id, day)
    except CoveyError as exc:
        raise _fail(f"{exc.code}: {exc.message}") from exc
    console.print(f"[green]✓[/] approved {ticket_id}: credential [bold]{result.credential_id}"
                  f"[/] (the holder's wallet shows the same id; keep it to revoke the "
                  "credential; the birth date is not kept)", soft_wrap=True)
    if result.rev_reg_def_id not in (None, issuing):
        console.print(f"[yellow]![/] the revocation registry was full: this credential is in "
                      f"a new one, {result.rev_reg_def_id}; run `covey issuer publish` so "
                      f"servers accept it")


@issuer_app.command("reject")
def reject(
    ticket_id: Annotated[str, typer.Argument(help="the ticket from `covey issuer pending`")],
    reason: Annotated[str, typer.Option(help="told to the holder")] = "not confirmed",
    directory: DirOption = _DEFAULT_DIR,
) -> None:
    """Refuse a pending request."""
    from covey.errors import CoveyError

    try:
        issuer = _open(directory)
        ticket_id = _ticket(issuer, ticket_id)
        issuer.reject(ticket_id, reason)
    except CoveyError as exc:
        raise _fail(f"{exc.code}: {exc.message}") from exc
    console.print(f"rejected {ticket_id}")


@issuer_app.command("revoke")
def revoke(
    credential_id: Annotated[str, typer.Argument(help="the id `approve` printed")],
    directory: DirOption = _DEFAULT_DIR,
) -> None:
    """Revoke a credential; run `publish` afterwards so servers get the new status list."""
    from covey.errors import CoveyError

    try:
        status_list = _open(directory).revoke(credential_id)
    except CoveyError as exc:
        raise _fail(f"{exc.code}: {exc.message}") from exc
    console.print(f"[green]✓[/] revoked {credential_id} (status list {status_list['timestamp']}"
                  f"); publish it to your servers")


@issuer_app.command("operator-key")
def operator_key(
    out: Annotated[Path, typer.Option(help="where to write the private key (PEM, 0600)")],
) -> None:
    """Create the operator's trust-registry signing key; pin the printed public key in the
    servers' settings (`trust_registry_key`)."""
    from covey.age._files import PRIVATE_MODE
    from covey.age.signed import OperatorKey

    if out.exists():
        raise _fail(f"{out} exists: not overwriting an operator key")
    key = OperatorKey.generate()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.to_pem())
    console.print(f"[green]✓[/] operator key written to {out}\n"
                  f"  pin it on every server: COVEY_TRUST_REGISTRY_KEY={key.public_key}")
    print(key.public_key)


def _existing_issuers(path: Path, key: Any) -> list[dict[str, Any]]:
    """The issuers already in a registry file: one signed by this operator key, or a
    legacy unsigned `{"issuers": [...]}` being converted."""
    from covey.age.signed import FORMAT, open_signed

    if not path.exists():
        return []
    data = path.read_bytes()
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise _fail(f"{path} is not a trust registry (not JSON)") from exc
    if isinstance(document, dict) and document.get("format") == FORMAT:
        return open_signed(data, key.verify_key).issuers
    if isinstance(document, dict) and isinstance(document.get("issuers"), list):
        return list(document["issuers"])
    raise _fail(f"{path} is not a trust registry")


@issuer_app.command("publish")
def publish(
    directory: DirOption = _DEFAULT_DIR,
    out: Annotated[Path | None, typer.Option(
        help="trust-registry file to add this issuer to (or update); default: print")
    ] = None,
    operator_key_file: Annotated[Path | None, typer.Option(
        "--operator-key", envvar="COVEY_OPERATOR_KEY",
        help="the operator's signing key (`covey issuer operator-key`); needed with --out")
    ] = None,
) -> None:
    """Write the trust-registry entry (public material, every revocation registry and its
    status list, re-dated to now) and sign the registry. Run it after a revocation, when
    a new registry opens, and regularly (servers refuse registries and status lists older
    than their maximum age)."""
    from covey.age import TrustedIssuer, TrustRegistry
    from covey.age.signed import OperatorKey
    from covey.errors import CoveyError

    entry = _open(directory).publish(refresh=True)
    if out is None:
        print(json.dumps(entry))
        return
    if operator_key_file is None:
        raise _fail("--out needs --operator-key: servers only trust a signed registry")
    try:
        key = OperatorKey.from_pem(operator_key_file.read_bytes())
    except OSError as exc:
        raise _fail(f"cannot read the operator key {operator_key_file}: {exc}") from exc
    except CoveyError as exc:
        raise _fail(exc.message) from exc
    try:
        registry = TrustRegistry.from_entries(_existing_issuers(out, key))
        registry.trust(TrustedIssuer.from_entry(entry))
        key.write(out, registry.to_json()["issuers"])
    except CoveyError as exc:
        raise _fail(exc.message) from exc
    console.print(f"[green]✓[/] {entry['issuer_id']} written to {out} "
                  f"({len(registry.issuers())} trusted issuers, signed); servers reload it "
                  f"on change")

