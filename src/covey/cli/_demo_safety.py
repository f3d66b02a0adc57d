"""`covey demo` scene: the age-aware safety policy on the demo's real server. Two 16+
adults chat end to end encrypted; an under-16 user's conversation with an adult is
safeguarded (one sealed safety copy per message); an unverified account cannot reach the
child; a guardian is alerted (never with content) to a new contact and to a high-risk
detection; the grooming scorer reads every safety copy: a benign chat triggers nothing, an
adult asking the child to move to another app and keep it secret gets the child a safety
notice and her guardian an alert; a known (generated) image is withheld from the child and
reported while a benign one passes; then the same workload on one short-lived server per
mode, measured by the visibility audit side by side."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from covey.age import years_before
from covey.cli._demo_age import IssuerService, issue_credential, run_covey
from covey.cli._demo_common import WAIT_S, received, server_rows
from covey.cli.audit import render_side_by_side
from covey.client import (
    Client,
    ClientError,
    GuardianAlert,
    IncomingMessage,
    SafetyNotice,
    ServerError,
)
from covey.client._events import BAND_WORDS
from covey.protocol.wire import ConversationPolicyBody
from covey.safety.visibility import Audience
from covey.server.audit import VisibilityReport, measure_visibility
from covey.server.process import ServerProcess

if TYPE_CHECKING:
    from covey.cli.demo import _Cast

MODES = ("safeguarded", "on-device", "e2ee-only")
# Written for the demo: moving the chat to another app, then secrecy (docs/detection.md).
GROOMING = ["Add me on snap, my username there is frankie_22",
            "It's our secret, don't tell your parents about it"]
AUDIT_MESSAGES = 10
# Sent while the recipient's device is offline: their ciphertext waits on the server.
AUDIT_QUEUED = 4
START_TIMEOUT_S = 120.0


def _banner(policy: ConversationPolicyBody) -> str:
    """The banner a client shows, and the reason shown on tap."""
    colour = "green" if policy.protection == "end-to-end" else "yellow"
    reason = policy.reason.removeprefix(f"{policy.label}: ")
    return f"banner [bold {colour}]{policy.label}[/] (on tap: {escape(reason)})"


def _copies(cast: _Cast, conversation: str) -> int:
    return int(server_rows(cast.database, "SELECT count(*) FROM safety_copies "
                                          "WHERE conversation_id = ?", conversation)[0][0])


async def _chat(console: Console, cast: _Cast, lines: list[tuple[str, str, str]],
                ) -> list[IncomingMessage]:
    """Each (sender, recipient, text) is sent and shown as received."""
    messages = []
    for sender, to, text in lines:
        await cast.clients[sender].send_text(to, text)
        messages.append(await cast.clients[to].next_message(WAIT_S))
        received(console, to, messages[-1])
    return messages


def _issuer(cast: _Cast) -> IssuerService:
    if cast.issuer is None:
        raise RuntimeError("the safety scene needs the school's issuer from the age scene")
    return cast.issuer


async def _adults(console: Console, cast: _Cast) -> None:
    """frank (the school's coach, 30) and grace (emma's mother, 41) get credentials."""
    today = datetime.now(UTC).date()
    for name, evidence, years in (("frank", {"staff_id": "T-3003"}, 30),
                                  ("grace", {"parent_of": "S-2002"}, 41)):
        client = await Client.register(cast.server.url, name, cast.store(name),
                                       cast.passphrase(name))
        cast.clients[name] = client
        await issue_credential(console, _issuer(cast), client, evidence,
                               years_before(today, years), brief=True)
    bands = [f"{name} {(await cast.clients[name].prove_age()).band}"
             for name in ("frank", "grace")]
    console.print(f"  proved to the relay: {', '.join(bands)}")


async def _adults_chat(console: Console, cast: _Cast) -> list[IncomingMessage]:
    frank = cast.clients["frank"]
    conversation = frank.core.conversation_for("grace")
    console.print(f"[bold]16+ ↔ 16+:[/] the policy of {conversation}, signed by the server "
                  f"and checked by frank's client against its pinned key:")
    console.print(f"  {_banner(await frank.conversation_policy('grace'))}")
    messages = await _chat(console, cast, [
        ("frank", "grace", "Hi Grace, is Emma coming to Thursday's training?"),
        ("grace", "frank", "Yes, I'll drop her off at 5."),
    ])
    console.print(f"  safety copies stored for {conversation}: [bold]"
                  f"{_copies(cast, conversation)}[/] (table safety_copies, read-only)")
    return messages


async def _link_guardian(console: Console, cast: _Cast) -> None:
    emma, grace = cast.clients["emma"], cast.clients["grace"]
    proposed = await emma.propose_guardian_link(grace.user_id, role="guardian")
    linked = await grace.accept_guardian_link(proposed.link_id)
    console.print(f"[bold]Guardian:[/] emma asked grace to be her guardian (link "
                  f"{proposed.link_id}, {proposed.status}); grace accepted: "
                  f"[green]{linked.status}[/] — both consented, grace gets safety alerts "
                  f"about emma, never content")


async def _answer(attempt: Awaitable[object]) -> str:
    try:
        await attempt
    except ServerError as exc:
        return f"[red]refused: {exc.status} {exc.code}[/]"
    except ClientError as exc:
        return f"[red]refused: {exc.code}[/]"
    return "[red bold]allowed[/]"


async def _withheld(attempt: Awaitable[object], target: Client, sender: str) -> str:
    """A request answered as sent: is it in the target's inbox?"""
    answer = await _answer(attempt)
    if any(r.requester == sender for r in (await target.contact_requests()).incoming):
        return answer
    return "[green]withheld (never shown to her)[/]"


async def _unverified(console: Console, cast: _Cast) -> None:
    carol, emma = cast.clients["carol"], cast.clients["emma"]
    me = await carol.whoami()
    table = Table("carol (unverified) tries to…", "the server's answer",
                  title="An unverified account and a child never reach each other")
    table.add_row("find emma by handle", await _answer(carol.find_user("emma")))
    table.add_row("send emma a contact request",
                  await _withheld(carol.request_contact(emma.user_id), emma, carol.user_id))
    table.add_row("send emma a direct message",
                  await _answer(carol.send_text(emma.user_id, "hi emma, I'm new here")))
    console.print(f"[bold]Unverified → under-16:[/] carol's band is {me.age.band}")
    console.print(table)
    console.print("  The message never leaves carol's device: the server gives emma's device "
                  "keys only to whoever may reach her. No answer mentions age or "
                  "verification, so refusals are no oracle for finding children.")


def _band_words(band: str | None) -> str:
    return "age unknown" if band is None else BAND_WORDS[band]


async def _contact_and_chat(console: Console, cast: _Cast) -> list[IncomingMessage]:
    frank, emma = cast.clients["frank"], cast.clients["emma"]
    early = await _answer(frank.send_text(emma.user_id, "Hi Emma, it's coach Frank."))
    console.print(f"[bold]16+ → under-16:[/] frank messages emma before she accepted him as "
                  f"a contact: {early}")
    request_id = await frank.request_contact(emma.user_id)
    incoming = (await emma.contact_requests()).incoming
    shown = ", ".join(f"{r.request_id} from {r.requester} ({_band_words(r.requester_band)})"
                      for r in incoming)
    accepted = await emma.accept_contact(request_id)
    console.print(f"  frank sends a contact request; emma's client lists it ({shown}) and "
                  f"she accepts: [green]{accepted.status}[/]")
    conversation = emma.core.conversation_for(frank.user_id)
    for who, other in ((emma, frank), (frank, emma)):
        console.print(f"  {who.user_id}'s client, {conversation}: "
                      f"{_banner(await who.conversation_policy(other.user_id))}")
    lines = [("frank", "emma", "Great game on Saturday, well played!"),
             ("emma", "frank", "thanks, see you on Thursday")]
    messages = await _chat(console, cast, lines)
    console.print(f"  {len(lines)} messages, safety copies stored for {conversation}: "
                  f"[bold]{_copies(cast, conversation)}[/] — each sealed to the safety "
                  f"service's key, opened and checked against the franking commitment")
    return messages


async def _notices(client: Client, within_s: float, *,
                   first: bool = False) -> list[SafetyNotice]:
    """The safety notices the client shows within `within_s` (other events are skipped);
    `first`: stop at the first."""
    found: list[SafetyNotice] = []

    async def collect() -> None:
        async for event in client.events():
            if isinstance(event, SafetyNotice):
                found.append(event)
                if first:
                    return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(collect(), within_s)
    return found


async def _detection(console: Console, cast: _Cast,
                     ) -> tuple[list[IncomingMessage], list[GuardianAlert]]:
    emma, grace = cast.clients["emma"], cast.clients["grace"]
    quiet = await _notices(emma, 2.0)
    console.print(f"[bold]Detection:[/] the safety service scores every safety copy of "
                  f"emma's conversations for grooming behaviour (five languages, "
                  f"docs/detection.md). The chat above about the game: "
                  f"[green]{len(quiet)} notices, nothing flagged[/]. Then frank writes:")
    messages = await _chat(console, cast, [("frank", "emma", text) for text in GROOMING])
    notices = await _notices(emma, WAIT_S, first=True)
    for notice in notices[:1]:
        console.print(f"  emma's client shows in the conversation "
                      f"({', '.join(notice.behaviours)}):\n    [yellow]{escape(notice.text)}[/]"
                      f"\n    [bold]{escape('[Block and report]')}[/]"
                      f" (one tap: reports message {notice.message_id} and blocks "
                      f"{notice.sender_user}) · help: {notice.help_url}")
    if not notices:
        console.print("  [red]no safety notice reached emma[/]")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    alerts = await grace.guardian_alerts()
    while not any(a.kind == "high_risk_detection" for a in alerts) and loop.time() < deadline:
        await asyncio.sleep(0.2)  # the safety service scans after the message is stored
        alerts = await grace.guardian_alerts()
    reports = server_rows(cast.database, "SELECT count(*) FROM reports WHERE "
                          "reporter = 'covey-safety'")[0][0]
    console.print(f"  grace (her guardian) is alerted: the behaviour category only. The score "
                  f"is below the report threshold: {reports} moderator reports (more "
                  f"behaviours, e.g. asking whether she is alone, would file one with the "
                  f"verified messages)")
    return messages, alerts


def _generated_image(seed: int) -> bytes:
    """A generated picture (a gradient and coloured ellipses), never a photo of anyone."""
    import io
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(600), rng.randrange(440)
        draw.ellipse((x, y, x + rng.randrange(40, 260), y + rng.randrange(40, 200)),
                     fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def _known_image(console: Console, cast: _Cast) -> None:
    """The operator banks a test image; frank sends it and a benign one to emma."""
    frank, emma = cast.clients["frank"], cast.clients["emma"]
    known, benign = cast.root / "known-test-image.png", cast.root / "holiday.png"
    known.write_bytes(_generated_image(1))
    benign.write_bytes(_generated_image(2))
    url = ("--database-url", f"sqlite+aiosqlite:///{cast.database}")
    await asyncio.to_thread(run_covey, "bank", "create", "demo-known", *url)
    await asyncio.to_thread(run_covey, "bank", "add-image", "demo-known", str(known), *url)
    console.print("[bold]Known images:[/] the operator banks a generated test image "
                  f"([dim]covey bank add-image demo-known {known.name}[/]); every relay "
                  "process loads the change within seconds")
    await asyncio.sleep(3)  # the relay polls the banks every 2 s
    for path in (known, benign):
        await frank.send_attachment(emma.user_id, path.read_bytes(), name=path.name)
        got = await emma.next_message(within_s=WAIT_S)
        download = await emma.fetch_attachment(got.attachments[0])
        colour = "red" if download.withheld else "green"
        console.print(f"  frank → emma: {path.name}: emma's client shows "
                      f"[{colour}]{download.label}[/]"
                      + (" — [italic]an image was withheld for your safety[/], with "
                         "block-and-report" if download.withheld else ""))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    rows: list[tuple[object, ...]] = []
    while not rows and loop.time() < deadline:
        await asyncio.sleep(0.2)  # the report is filed just after the message is stored
        rows = server_rows(cast.database, "SELECT m.bank, m.distance, r.report_id, "
                           "r.priority, r.verified_count, r.total_count FROM image_matches m "
                           "JOIN reports r ON r.report_id = m.report_id")
    for bank, distance, report_id, priority, verified, total in rows:
        console.print(f"  moderator report {report_id}: known image (bank {bank}, PDQ "
                      f"distance {distance}), priority {priority}, {verified} of {total} "
                      "messages verified; the console shows the match, not the image")
    if not rows:
        console.print("  [red]no known-image report was filed[/]")


def _alerts_table(console: Console, alerts: list[GuardianAlert],
                  messages: list[IncomingMessage]) -> None:
    fields = [f.name for f in dataclasses.fields(GuardianAlert)]
    table = Table(title="grace's guardian alerts about emma: every field, as received")
    for header in ("field", *[f"alert {n}" for n in range(1, len(alerts) + 1)]):
        table.add_column(header, overflow="fold")
    for name in fields:
        table.add_row(name, *["—" if getattr(a, name) is None else str(getattr(a, name))
                              for a in alerts])
    console.print(table)
    values = [str(getattr(a, name)) for a in alerts for name in fields]
    secrets = [m.text for m in messages] + [m.message_id for m in messages] + [
        "snap", "frankie_22", "parents"]
    leaked = [v for v in values if any(s in v for s in secrets)]
    if leaked:
        console.print(f"  [red]alert fields holding message content: {leaked}[/]")
    else:
        console.print(f"  none of the {len(values)} fields holds message text, a message id "
                      f"or the matched words: ids and codes only")


async def _audit_server(cast: _Cast, mode: str, wallets: dict[str, bytes]) -> VisibilityReport:
    """One short-lived relay in `mode`: frank and grace, frank and emma exchange
    AUDIT_MESSAGES messages each, delivered and acknowledged (the server deletes their
    ciphertext); then frank sends AUDIT_QUEUED more to each while their devices are
    offline (the server holds that ciphertext), and the audit measures its database."""
    root = cast.root / f"audit-{mode}"
    server = ServerProcess(f"sqlite+aiosqlite:///{root / 'server' / 'covey.db'}",
                           root / "server", log_path=root / "server.log",
                           env={"COVEY_SAFETY_MODE": mode,
                                "COVEY_TRUST_REGISTRY": str(_issuer(cast).registry),
                                "COVEY_TRUST_REGISTRY_KEY": _issuer(cast).operator_public_key})
    # Three relays start at once: on a busy machine that takes longer than one.
    await asyncio.to_thread(server.start, None, START_TIMEOUT_S)
    clients: dict[str, Client] = {}
    try:
        for name, wallet in wallets.items():
            store = root / "devices" / f"{name}.db"
            # The proof needs the issuer's public tails file beside the store.
            shutil.copytree(Path(f"{cast.store(name)}.tails"), Path(f"{store}.tails"))
            clients[name] = await Client.register(server.url, name, store,
                                                  cast.passphrase(name), wallet=wallet)
        frank, grace, emma = clients["frank"], clients["grace"], clients["emma"]
        await emma.accept_contact(await frank.request_contact(emma.user_id))
        for other in (grace, emma):
            for n in range(AUDIT_MESSAGES):
                sender, to = (frank, other) if n % 2 == 0 else (other, frank)
                await sender.send_text(to.user_id, f"audit message {n + 1} of {AUDIT_MESSAGES}")
                await to.next_message(WAIT_S)
        await _until_acknowledged(root / "server" / "covey.db")
        for other in (grace, emma):
            await clients.pop(other.user_id).close()
            for n in range(AUDIT_QUEUED):
                await frank.send_text(other.user_id, f"while you were away, {n + 1} of "
                                                     f"{AUDIT_QUEUED}")
        await frank.flush()
        return await measure_visibility(server.database_url, mode)
    finally:
        for client in clients.values():
            await client.close()
        await asyncio.to_thread(server.stop)


async def _until_acknowledged(database: Path) -> None:
    """Wait (briefly) for the last acknowledgements, so no ciphertext is still queued."""
    for _ in range(50):
        if not server_rows(database, "SELECT count(*) FROM mailbox")[0][0]:
            return
        await asyncio.sleep(0.1)


async def _audit(console: Console, cast: _Cast) -> None:
    console.print(f"[bold]Visibility audit:[/] the same workload on three short-lived relays, "
                  f"one per mode (COVEY_SAFETY_MODE), each on its own SQLite file: frank ↔ "
                  f"grace (16+) and frank ↔ emma (under-16), {AUDIT_MESSAGES} messages each, "
                  f"then {AUDIT_QUEUED} more each while grace's and emma's devices are "
                  f"offline (delivered ciphertext is deleted; undelivered ciphertext waits). "
                  f"To save the operator's time the demo reuses frank's, grace's and emma's "
                  f"wallets (their credentials from the school's issuer) for the new "
                  f"accounts, which prove their bands afresh to each relay.")
    wallets = {name: cast.clients[name]._age.wallet.to_bytes()
               for name in ("frank", "grace", "emma")}
    with console.status("Running the workload on three relays and measuring their "
                        "databases (covey.server.audit.measure_visibility, read-only)…"):
        measured = await asyncio.gather(*(_audit_server(cast, mode, wallets)
                                          for mode in MODES))
    reports = dict(zip(MODES, measured, strict=True))
    console.print(render_side_by_side(reports))

    def readable_in(audience: Audience) -> str:
        modes = [m for m in MODES if reports[m].audiences[audience].plaintext > 0]
        return " and ".join(modes) + " only" if modes else "no mode"

    console.print(f"  The server can read children's messages in "
                  f"[bold]{readable_in(Audience.CHILDREN)}[/] and adults' in "
                  f"[bold]{readable_in(Audience.ADULTS)}[/] (`covey audit visibility` "
                  f"measures the same on a live database).")


async def scene_safety(console: Console, cast: _Cast, number: int = 7) -> None:
    console.rule(f"[bold]{number}. Age-aware safety policy")
    console.print("Who can read a conversation, and who may reach a child.")
    console.print("  [dim]operator:[/] mode safeguarded, the default detectors (the "
                  "grooming scorer; COVEY_SAFETY_DETECTORS to choose)")
    await _adults(console, cast)
    seen = await _adults_chat(console, cast)
    await _link_guardian(console, cast)
    await _unverified(console, cast)
    seen += await _contact_and_chat(console, cast)
    flagged, alerts = await _detection(console, cast)
    _alerts_table(console, alerts, seen + flagged)
    await _known_image(console, cast)
    await _audit(console, cast)
