"""`covey demo` scene: a child reports grooming-style messages (written for the demo),
the server verifies the franked evidence, a moderator escalates it from the console, the
signed evidence bundle is checked offline, and a forged report is refused."""

from __future__ import annotations

import asyncio
import html
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from covey.client import Client
from covey.client._reporting import build_report
from covey.moderation import ReportCategory, load_public_key, verify_bundle

if TYPE_CHECKING:
    from covey.cli.demo import _Cast

WAIT_S = 15.0
_PASSWORD = "demo moderator passphrase"  # noqa: S105  (a throwaway demo server)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_LINES = ("hey! you play in the under-14 team right?", "you're really mature for your age",
          "let's keep this just between us, ok?", "is anyone else looking at your screen?",
          "add me on another app, it's more private there")


def _csrf(page: str) -> str:
    found = _CSRF.search(page)
    if found is None:
        raise RuntimeError("the console page has no CSRF token")
    return found.group(1)


def _create_moderator(cast: _Cast) -> None:
    env = {**os.environ, "COVEY_ADMIN_PASSWORD": _PASSWORD}
    result = subprocess.run(
        [sys.executable, "-m", "covey", "admin", "create-user", "demo-moderator", "--role",
         "moderator", "--database-url", cast.server.database_url, "--data-dir",
         str(cast.server.data_dir)], capture_output=True, text=True, env=env, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"covey admin create-user failed: {result.stdout}{result.stderr}")


def _escalate(cast: _Cast, report_id: str, out: Path) -> tuple[str, Path, Path]:
    """Log in to the console, open the report, escalate it, download the package."""
    with httpx.Client(base_url=cast.server.url, trust_env=False, timeout=30) as web:
        login = web.get("/console/login")
        web.post("/console/login", data={"csrf": _csrf(login.text),
                                         "username": "demo-moderator", "password": _PASSWORD})
        page = web.get(f"/console/reports/{report_id}")
        if page.status_code != 200:
            raise RuntimeError(f"the console refused the report page ({page.status_code})")
        done = web.post(f"/console/reports/{report_id}/action",
                        data={"csrf": _csrf(page.text), "action": "escalate",
                              "confirm": "yes", "reason": "grooming: secrecy and a move "
                              "to another app, verified"},
                        follow_redirects=True)
        notice = re.search(r'<p class="notice">(.*?)</p>', done.text, re.S)
        bundle = out / "evidence-bundle.zip"
        bundle.write_bytes(web.get(f"/console/reports/{report_id}/files/"
                                   "evidence-bundle.zip").content)
        key = out / "covey-attestation-public-key.pem"
        key.write_bytes(web.get("/console/attestation-key.pem").content)
    return (html.unescape(notice.group(1)) if notice else "escalation failed"), bundle, key


async def scene_reports(console: Console, cast: _Cast) -> None:
    console.rule("[bold]6. Reporting: verified evidence, escalation, offline check")
    stranger = await Client.register(cast.server.url, "stranger", cast.store("stranger"),
                                     cast.passphrase("stranger"))
    dana = await Client.register(cast.server.url, "dana", cast.store("dana"),
                                 cast.passphrase("dana"))
    cast.clients["stranger"], cast.clients["dana"] = stranger, dana
    await stranger.wait_connected()
    await dana.wait_connected()
    last = ""
    for text in _LINES:
        last = await stranger.send_text("dana", text)
        message = await dana.next_message(WAIT_S)
        console.print(f"  [bold]dana[/] ← stranger: [italic]{message.text}[/]")

    receipt = await dana.report(last, ReportCategory.GROOMING_OR_ENTICEMENT,
                                "he wants me to move to another app", block=True)
    console.print(f"Dana taps [bold]block and report[/]: report {receipt.report_id}, "
                  f"{receipt.messages_verified} of {receipt.messages_submitted} messages "
                  f"verified by the server (commitment and tag), priority "
                  f"{receipt.priority}; stranger is blocked and is not told.")

    report = build_report(dana.core.history(), "dana", last,
                          ReportCategory.GROOMING_OR_ENTICEMENT).model_dump(mode="json")
    forged = {**report, "messages": [m for m in report["messages"]
                                     if m["content"]["message_id"] == last]}
    forged["messages"][0]["content"]["text"] = "a message stranger never sent"
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        answer = await http.post(
            f"{cast.server.url}/v1/reports",
            json={"report": forged},
            headers={"Authorization": f"Bearer {dana._api.token}"})
    error = answer.json().get("error", {})
    items = error.get("details", {}).get("items") or []
    why = "; ".join(f"message {item.get('message_id', '?')[:8]}… {item.get('status')}"
                    for item in items if isinstance(item, dict)) or error.get("message", "")
    console.print(f"A forged report (the text changed after the fact) is refused: "
                  f"[red]{answer.status_code} {error.get('code')}[/] — {escape(why)}")

    out = cast.root / "law-enforcement"
    out.mkdir(exist_ok=True)
    await asyncio.to_thread(_create_moderator, cast)
    notice, bundle, key = await asyncio.to_thread(_escalate, cast, receipt.report_id, out)
    console.print(f"A moderator logs in to the console and escalates it: {notice}")

    result = verify_bundle(bundle.read_bytes(), load_public_key(key.read_bytes()))
    table = Table("server time (UTC)", "sender", "message", title="The signed bundle, "
                  "checked offline with the platform's public key")
    for attested in result.messages:
        table.add_row(str(attested.get("server_time")), str(attested.get("sender_user")),
                      str(attested.get("text")))
    console.print(table)
    verdict = "[green]bundle verified offline[/]" if result.ok else "[red]bundle NOT verified[/]"
    console.print(f"{verdict}: signed by attestation key {result.key_id}; the same check is "
                  f"`covey evidence verify {bundle.name} --public-key {key.name}`.")
