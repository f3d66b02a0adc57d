"""`covey evidence verify BUNDLE --public-key FILE`: check a law-enforcement evidence
bundle offline against the platform's attestation key and show what it attests.
Exit code 0 when intact, 1 when anything differs (each difference named), 2 on bad input."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from covey.cli import app
from covey.errors import CoveyError
from covey.moderation import BundleVerification, load_public_key, verify_bundle

# C0 controls but newline and tab, DEL, C1 controls (CSI among them), and the bidi
# overrides that reorder what is shown: sender-controlled text must not drive the
# investigator's terminal (clear it, move the cursor, fake a "VERIFIED" panel).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(value: object) -> str:
    """`value` as text safe to print: controls made visible (`\\x1b`), markup escaped."""
    return escape(_CONTROLS.sub(_visible, str(value)))


evidence_app = typer.Typer(name="evidence", no_args_is_help=True,
                           help="Evidence bundles for law enforcement.")
app.add_typer(evidence_app, name="evidence")


@evidence_app.command("verify")
def verify(
    bundle: Annotated[Path, typer.Argument(help="the evidence bundle (.zip)")],
    public_key: Annotated[Path, typer.Option(
        "--public-key", help="the platform's Ed25519 attestation public key (PEM, base64 "
                             "or hex)")],
) -> None:
    """Verify an evidence bundle offline and print what it attests."""
    console = Console(highlight=False)
    try:
        key = load_public_key(public_key.read_bytes())
        data = bundle.read_bytes()
    except OSError as exc:
        console.print(f"[red]cannot read {shown(exc.filename)}: "
                      f"{escape(exc.strerror or str(exc))}[/]")
        raise typer.Exit(2) from exc
    except CoveyError as exc:
        console.print(f"[red]{shown(public_key)}: {escape(exc.message)}[/]")
        raise typer.Exit(2) from exc
    result = verify_bundle(data, key)
    if not result.ok:
        _print_failure(console, bundle, result)
        raise typer.Exit(1)
    _print_attestation(console, bundle, result)


def _print_failure(console: Console, bundle: Path, result: BundleVerification) -> None:
    console.print(Panel(f"[bold red]NOT VERIFIED[/]: {shown(bundle)} differs from what "
                        f"key {result.key_id} signed", border_style="red"))
    table = _table("what changed", "where", "detail", border_style="red")
    for difference in result.differences:
        table.add_row(shown(difference.kind), shown(difference.where),
                      shown(difference.detail))
    console.print(table)


def _print_attestation(console: Console, bundle: Path, result: BundleVerification) -> None:
    manifest: Mapping[str, Any] = result.manifest or {}
    report: Mapping[str, Any] = manifest.get("report", {})
    lines = [
        f"[bold green]VERIFIED[/]: {shown(bundle)}",
        f"signed by {shown(manifest.get('platform'))} attestation key "
        f"{result.key_id}",
        f"bundle {shown(manifest.get('bundle_id'))} created "
        f"{shown(manifest.get('created_at'))}"
        + (f" by {shown(manifest['escalated_by'])}" if manifest.get("escalated_by")
           else ""),
        f"report {shown(report.get('fingerprint'))}: category "
        f"{shown(report.get('category'))}, "
        f"reported by {shown(report.get('reporter'))}",
        f"reported user {shown(report.get('reported_sender'))} in "
        f"{shown(report.get('conversation_id'))}",
        f"{shown(report.get('messages_verified'))} of "
        f"{shown(report.get('messages_submitted'))} submitted "
        "messages verified by franking (server tag and sender commitment); every "
        "commitment re-opened offline",
    ]
    console.print(Panel("\n".join(lines), border_style="green"))
    messages = _table("server time (UTC)", "sender", "message", title="attested messages")
    for message in result.messages:
        text = shown(message.get("text", ""))
        for attachment in message.get("attachments", []):
            text += (f"\n[dim]attachment {shown(attachment.get('name') or '')} "
                     f"{shown(attachment.get('plaintext_sha256'))} → "
                     f"{shown(attachment.get('file'))}[/]")
        marker = " [bold](reported)[/]" if message.get("reported") else ""
        messages.add_row(shown(message.get("server_time")),
                         f"{shown(message.get('sender_user'))}/"
                         f"{shown(message.get('sender_device'))}{marker}", text)
    console.print(messages)
    files = _table("file", "SHA-256", "bytes", title="files")
    for name, entry in sorted(manifest.get("files", {}).items()):
        files.add_row(shown(name), shown(entry.get("sha256")), shown(entry.get("size")))
    console.print(files)


def _table(*columns: str, **options: Any) -> Table:
    """A table that folds long values instead of cutting them: hashes must stay whole."""
    table = Table(**options)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table
