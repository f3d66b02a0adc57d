"""The demo's age-assurance scene: a real `covey issuer` (a school), its operator approving
requests, a 16+ and an under-16 user proving their bands to the relay with zero-knowledge
proofs, a replayed proof refused, and a revoked credential failing. The issuer stays up
for the later scenes (`_Cast.issuer`); `_run_demo` stops it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from rich.console import Console
from rich.table import Table

from covey.age import years_before
from covey.cli._demo_common import Glossary
from covey.client import Client, ClientError
from covey.server.process import ServerProcess, free_port, wait_until_healthy

WAIT_S = 60.0


class _Cast(Protocol):
    root: Path
    server: ServerProcess
    clients: dict[str, Client]
    issuer: IssuerService | None
    glossary: Glossary

    def store(self, name: str) -> Path: ...

    @staticmethod
    def passphrase(name: str) -> str: ...


def run_covey(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    env["COLUMNS"] = "160"
    result = subprocess.run([sys.executable, "-m", "covey", *args], capture_output=True,
                            text=True, timeout=120, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"covey {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result.stdout


class IssuerService:
    """A real `covey issuer serve` subprocess for a school, and its trust-registry entry."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "issuer"
        self.registry = root / "trust-registry.json"
        self.operator_key = root / "operator.key"
        self.operator_public_key = ""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def publish(self) -> None:
        """`covey issuer publish`: the entry, signed into the registry by the operator."""
        run_covey("issuer", "publish", "--dir", str(self.dir), "--out", str(self.registry),
                  "--operator-key", str(self.operator_key))

    def start(self) -> None:
        run_covey("issuer", "init", "--dir", str(self.dir), "--id", "did:web:school.example",
                  "--url", self.url, "--capacity", "100")
        # The operator's signing key: the relay pins its public half.
        self.operator_public_key = run_covey(
            "issuer", "operator-key", "--out", str(self.operator_key)).strip().splitlines()[-1]
        self.publish()
        env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
        with (self.dir.parent / "issuer.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "covey", "issuer", "serve", "--dir", str(self.dir),
                 "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT, env=env)
        if not wait_until_healthy(self.url, self.proc):
            raise RuntimeError("the issuer service did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


async def issue_credential(console: Console, issuer: IssuerService, client: Client,
                           evidence: Mapping[str, str], birth_date: date, *,
                           brief: bool = False) -> str:
    """The holder asks; the request waits; the operator checks records and approves.
    `brief`: one line instead of one per step."""
    pending: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    request = asyncio.create_task(client.request_age_credential(
        issuer.url, evidence, within_s=WAIT_S,
        on_pending=lambda ticket: pending.set_result(ticket)))
    ticket = await asyncio.wait_for(pending, WAIT_S)
    shown = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in evidence.items())
    approve = f"covey issuer approve {ticket[:8]}… --birth-date {birth_date.isoformat()}"
    if not brief:
        console.print(f"  {client.user_id}'s wallet asked the school's issuer for a "
                      f"credential (evidence: {shown}): [yellow]pending[/] "
                      f"(ticket {ticket[:8]}…)")
        console.print(f"  [dim]operator:[/] $ {approve}   [dim](after checking the school's "
                      f"records)[/]")
    out = await asyncio.to_thread(run_covey, "issuer", "approve", ticket, "--birth-date",
                                  birth_date.isoformat(), "--dir", str(issuer.dir))
    credential_id = out.split("credential ")[1].split()[0]
    await asyncio.wait_for(request, WAIT_S)
    if brief:
        console.print(f"  {client.user_id}'s wallet asked the school's issuer (evidence: "
                      f"{shown}); [dim]operator:[/] $ {approve}; the wallet stored "
                      f"credential {credential_id[:8]}… [green]✓[/]")
    else:
        console.print(f"  {client.user_id}'s wallet stored the credential in its encrypted "
                      f"store [green]✓[/] (the issuer keeps only credential id "
                      f"{credential_id[:8]}…)")
    return credential_id


def _band_table(rows: list[tuple[str, Any]]) -> Table:
    table = Table("user", "age band", "expires", "vouched for by",
                  title="What the server stores per account (nothing else)")
    for user, age in rows:
        expires = datetime.fromtimestamp(age.expires_at_ms / 1000, UTC).strftime("%Y-%m-%d")
        colour = "green" if age.band == "16+" else "cyan"
        table.add_row(user, f"[bold {colour}]{age.band}[/]", expires, age.issuer_id)
    return table


async def scene_age(console: Console, cast: _Cast, number: int = 5) -> None:
    """Run the scene on the demo's server (restarted to trust the new issuer)."""
    console.rule(f"[bold]{number}. Age assurance: 16+ or under 16, proven in zero knowledge")
    issuer = cast.issuer = IssuerService(cast.root)
    with console.status("Setting up an age-credential issuer for a school "
                        "(`covey issuer init`: CL keys and a revocation registry)…"):
        started = time.perf_counter()
        await asyncio.to_thread(issuer.start)
        setup_s = time.perf_counter() - started
    console.print(f"  issuer [bold]did:web:school.example[/] ready in {setup_s:.1f} s, "
                  f"serving at {issuer.url}; `covey issuer publish` wrote its entry to the "
                  f"server's trust registry, signed with the operator's key")
    with console.status("Restarting the relay with COVEY_TRUST_REGISTRY and "
                        "COVEY_SAFETY_MODE=safeguarded…"):
        await asyncio.to_thread(cast.server.restart,
                                {"COVEY_TRUST_REGISTRY": str(issuer.registry),
                                 "COVEY_TRUST_REGISTRY_KEY": issuer.operator_public_key,
                                 "COVEY_SAFETY_MODE": "safeguarded"})
    console.print("  the relay restarted trusting it, in the default mode, [bold]safeguarded[/]")
    await _scene_body(console, cast, issuer)


async def _scene_body(console: Console, cast: _Cast, issuer: IssuerService) -> None:
    today = datetime.now(UTC).date()
    people = {"dave": ({"student_id": "S-1001"}, years_before(today, 17)),
              "emma": ({"student_id": "S-2002"}, years_before(today, 13))}
    credentials: dict[str, str] = {}
    for name, (evidence, born) in people.items():
        client = await Client.register(cast.server.url, name, cast.store(name),
                                       cast.passphrase(name))
        cast.clients[name] = client
        credentials[name] = await issue_credential(console, issuer, client, evidence,
                                                   born)

    for name in people:
        status = await cast.clients[name].prove_age()
        console.print(f"  {name} proved [bold]{status.band}[/] to the relay: a predicate proof "
                      f"on birthdate_dateint against a single-use nonce; the relay never saw "
                      f"the birth date")
    cast.glossary.explain(console, "predicate", "nonce")
    console.print(_band_table([(n, (await cast.clients[n].whoami()).age) for n in people]))

    # A replayed proof: the same presentation bytes, submitted twice.
    dave = cast.clients["dave"]
    async with httpx.AsyncClient(base_url=cast.server.url, trust_env=False, timeout=30,
                                 headers={"Authorization": f"Bearer {dave._api.token}"}) as http:
        challenge = (await http.post("/v1/age/challenge", json={"band": "16+"})).json()
        submission = await asyncio.to_thread(
            dave._age.wallet.present, challenge, status_lists=challenge["status_lists"],
            tails_dir=dave._age._tails_dir)
        body = json.dumps(submission).encode()
        first = await http.post("/v1/age/presentation", content=body)
        again = await http.post("/v1/age/presentation", content=body)
    code = again.json()["error"]["code"]
    console.print(f"  a captured proof sent again: first [green]{first.status_code}[/], "
                  f"replay [red]{again.status_code} {code}[/] — nonces are single-use "
                  f"and bound to the account")

    # Revocation: the school finds dave's credential was obtained with someone else's record.
    console.print(f"  [dim]operator:[/] $ covey issuer revoke {credentials['dave'][:8]}… && "
                  f"covey issuer publish --out trust-registry.json --operator-key operator.key")
    await asyncio.to_thread(run_covey, "issuer", "revoke", credentials["dave"], "--dir",
                            str(issuer.dir))
    await asyncio.to_thread(issuer.publish)
    await asyncio.sleep(0.6)  # the relay re-reads the registry file when it changes
    try:
        await dave.prove_age()
        console.print("  [red]the revoked credential still proved![/]")
    except ClientError as exc:
        console.print(f"  dave's wallet tries again with the revoked credential: "
                      f"[red]{exc.code}[/] — it cannot prove non-revocation any more")
    async with httpx.AsyncClient(base_url=cast.server.url, trust_env=False, timeout=30,
                                 headers={"Authorization": f"Bearer {dave._api.token}"}) as http:
        fresh = (await http.post("/v1/age/challenge", json={"band": "16+"})).json()
        stale = await asyncio.to_thread(
            dave._age.wallet.present, fresh | {"status_lists": challenge["status_lists"]},
            status_lists=challenge["status_lists"], tails_dir=dave._age._tails_dir)
        refused = await http.post("/v1/age/presentation", json=stale)
    console.print(f"  a dishonest wallet proving against the old status list: "
                  f"[red]{refused.status_code} {refused.json()['error']['code']}[/]; dave's "
                  f"current band stays until it expires, then he is unverified")
