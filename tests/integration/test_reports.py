"""Verifiable reporting against a real `covey server` (SQLite and PostgreSQL): genuine and
forged evidence, replays, block and report, suspension, the console's roles and CSRF,
escalation to a signed bundle checked offline, encryption at rest and the retention purge."""

from __future__ import annotations

import asyncio
import html
import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from covey.client import Client
from covey.client._reporting import build_report
from covey.errors import CoveyError
from covey.moderation import ReportCategory, load_public_key, verify_bundle
from covey.moderation.wire import ReportSubmission
from covey.server.storage.engine import create_engine
from covey.server.storage.schema_reports import audit_log, reports
from tests.support.console import console_login, create_console_user
from tests.support.devices import PASSPHRASE, Devices, join_group, receive

pytestmark = pytest.mark.timeout(180)

GROOMING = ReportCategory.GROOMING_OR_ENTICEMENT
LINES = ["hey, how was school today?", "you seem really mature for your age",
         "let's keep our chats just between us ok", "do your parents check your phone?",
         "add me on another app, it's more private there"]


@pytest.fixture
async def devices(covey_server: Any, tmp_path: Path) -> Any:
    made = Devices(covey_server, tmp_path / "clients")
    made.tmp.mkdir()
    yield made
    await made.close_all()


async def _conversation(devices: Devices) -> tuple[Client, Client, list[str]]:
    """alice sends bob five messages, bob answers once in the middle; returns ids."""
    alice, bob = await devices.register("alice"), await devices.register("bob")
    ids = []
    for i, text in enumerate(LINES):
        ids.append(await alice.send_text("bob", text))
        await receive(bob, 1)
        if i == 1:
            await bob.send_text("alice", "thanks i guess")
            await receive(alice, 1)
    await bob.flush()
    return alice, bob, ids


def _raw_report(server: Any, client: Client, report: dict[str, Any], *,
                block: bool = False) -> httpx.Response:
    assert client._api.token is not None
    return httpx.post(f"{server.url}/v1/reports", json={"report": report, "block": block},
                      headers={"Authorization": f"Bearer {client._api.token}"}, timeout=30,
                      trust_env=False)


def _report_dict(client: Client, message_id: str) -> dict[str, Any]:
    report = build_report(client.core.history(), client.user_id, message_id, GROOMING)
    return ReportSubmission(report=report).model_dump(mode="json")["report"]


async def _db(server: Any, query: Any) -> list[Any]:
    engine = create_engine(server.database_url)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(query))
    finally:
        await engine.dispose()


async def test_genuine_report_verifies_and_a_replay_is_one_report(
        covey_server: Any, devices: Devices) -> None:
    _, bob, ids = await _conversation(devices)
    receipt = await bob.report(ids[-1], GROOMING, "he keeps asking me to move apps")
    assert not receipt.duplicate and receipt.messages_submitted == 6
    assert receipt.messages_verified == 5 and receipt.reported_message_verified
    # bob's own reply was sent from this device: it has no tag and cannot be evidence
    assert sorted(i.status for i in receipt.items) == ["unattested"] + ["verified"] * 5
    again = await bob.report(ids[-1], ReportCategory.HARASSMENT)
    assert again.duplicate and again.report_id == receipt.report_id
    rows = await _db(covey_server, select(reports.c.report_id, reports.c.priority))
    assert [r[0] for r in rows] == [receipt.report_id]
    assert rows[0][1] == 2  # child-safety category, reporter band unverified


@pytest.mark.parametrize("forgery", ["forged_tag", "altered_plaintext", "reused_key"])
async def test_reports_of_only_forged_evidence_are_refused(
        covey_server: Any, devices: Devices, forgery: str) -> None:
    _, bob, ids = await _conversation(devices)
    report = _report_dict(bob, ids[-1])
    report["messages"] = [m for m in report["messages"] if m["context"]["message_id"] == ids[-1]]
    item = report["messages"][0]
    if forgery == "forged_tag":
        item["tag"] = "A" * 43 + "="
    elif forgery == "altered_plaintext":
        item["content"]["text"] = "an entirely different message"
    else:  # keep the revealed franking key and commitment, claim another text
        item["content"]["text"] = LINES[0]
    answer = _raw_report(covey_server, bob, report)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "report_unverifiable"
    expected = "tag_invalid" if forgery == "forged_tag" else "commitment_mismatch"
    assert error["details"]["items"] == [{"message_id": ids[-1], "status": expected}]
    assert await _db(covey_server, select(reports.c.report_id)) == []


async def test_spliced_evidence_from_another_conversation_is_marked(
        covey_server: Any, devices: Devices) -> None:
    _, bob, ids = await _conversation(devices)
    carol = await devices.register("carol")
    await carol.send_text("bob", "are you coming to practice?")
    other = (await receive(bob, 1))[0]
    report = _report_dict(bob, ids[-1])
    spliced = _report_dict(bob, other.message_id)["messages"][-1]
    report["messages"].insert(0, spliced)
    answer = _raw_report(covey_server, bob, report)
    assert answer.status_code == 201, answer.text
    statuses = {i["message_id"]: i["status"] for i in answer.json()["items"]}
    assert statuses[other.message_id] == "spliced"
    assert statuses[ids[-1]] == "verified"


@pytest.mark.shared_server
async def test_swapped_attachment_ciphertext_is_detected(
        covey_server: Any, devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    await alice.send_attachment("bob", b"generated test image one" * 50, name="a.png",
                                mime="image/png")
    first = (await receive(bob, 1))[0]
    await alice.send_attachment("bob", b"generated test image two" * 50, name="b.png",
                                mime="image/png")
    second = (await receive(bob, 1))[0]
    blobs = covey_server.data_dir / "blobs"
    a, b = first.attachments[0].blob_id, second.attachments[0].blob_id
    (blobs / a).write_bytes((blobs / b).read_bytes())  # the stored ciphertext is swapped
    # The server checks the blob against its own table before reading it: the swapped
    # file is read (its row still says the original hash), and fails the franked hash.
    receipt = await bob.report(first, ReportCategory.CHILD_SEXUAL_EXPLOITATION_IMAGERY)
    # The message itself verifies on its commitment and tag; its attachment does not.
    assert [i.status for i in receipt.items] == ["verified"]
    assert receipt.reported_message_verified
    assert [(x.blob_id, x.status) for x in receipt.items[0].attachments] == [
        (a, "hash_mismatch")]
    # bob's client shows that attachment as "could not be verified", never its bytes
    shown = await bob.fetch_attachment(first.attachments[0])
    assert shown.status == "hash_mismatch" and shown.data is None
    assert shown.label == "could not be verified"
    second_receipt = await bob.report(second,
                                      ReportCategory.CHILD_SEXUAL_EXPLOITATION_IMAGERY)
    assert {i.message_id: [x.status for x in i.attachments]
            for i in second_receipt.items} == {first.message_id: ["hash_mismatch"],
                                               second.message_id: ["verified"]}


async def test_reporter_must_be_the_caller(covey_server: Any, devices: Devices) -> None:
    alice, bob, ids = await _conversation(devices)
    report = _report_dict(bob, ids[-1])
    answer = _raw_report(covey_server, alice, report)
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "reporter_mismatch"


async def test_block_and_report_stops_the_sender(covey_server: Any, devices: Devices) -> None:
    alice, bob, ids = await _conversation(devices)
    receipt = await bob.report(ids[-1], GROOMING, block=True)
    assert receipt.blocked
    # alice is not told: her send is accepted as usual, and never reaches bob.
    await alice.send_text("bob", "why did you stop answering?")
    assert alice.pending_sends() == 0
    with pytest.raises(TimeoutError):
        await bob.next_message(3.0)
    # bob must unblock alice before writing to her himself (as on any messenger)
    with pytest.raises(CoveyError) as own:
        await bob.send_text("alice", "stop messaging me")
    assert own.value.code == "unblock_first"
    await bob.unblock("alice")
    await bob.send_text("alice", "stop messaging me")
    assert (await receive(alice, 1))[0].text == "stop messaging me"


def _login_without_csrf_cookie(server: Any) -> int:
    with httpx.Client(base_url=server.url, trust_env=False) as other:
        return other.post("/console/login", data={"username": "mod", "password": "x",
                                                  "csrf": "a"}).status_code


def _verify_offline(server: Any, console: httpx.Client, report_id: str,
                    tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Download the bundle and the public key, then `covey evidence verify` offline."""
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(console.get(f"/console/reports/{report_id}/files/"
                                   "evidence-bundle.zip").content)
    key = tmp_path / "key.pem"
    key.write_bytes(httpx.get(f"{server.url}/console/attestation-key.pem",
                              trust_env=False).content)
    return subprocess.run([sys.executable, "-m", "covey", "evidence", "verify", str(bundle),
                           "--public-key", str(key)], capture_output=True, text=True,
                          timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def _leaves(value: Any, pointer: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, f"{pointer}/{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, f"{pointer}/{i}")]
    return [pointer]


def _changed(value: Any, pointer: str) -> Any:
    parts = pointer.strip("/").split("/")
    target = value
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last: Any = int(parts[-1]) if isinstance(target, list) else parts[-1]
    old = target[last]
    target[last] = (not old) if isinstance(old, bool) else (
        old + 1 if isinstance(old, int) else f"{old}x")
    return value


def _tamper_each_field(bundle: Path, key: Path) -> dict[str, int]:
    """Change every manifest field and every field of the first message, one at a time:
    each change must fail the offline check, naming the field."""
    public = load_public_key(key.read_bytes())
    with zipfile.ZipFile(bundle) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    checked = {}
    for name, scope in (("manifest.json", None), ("messages.json", "/messages/0")):
        original = json.loads(files[name])
        pointers = [p for p in _leaves(original) if scope is None or p.startswith(scope)]
        for pointer in pointers:
            changed = dict(files)
            changed[name] = json.dumps(_changed(json.loads(files[name]), pointer)).encode()
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as archive:
                for entry, data in changed.items():
                    archive.writestr(entry, data)
            result = verify_bundle(out.getvalue(), public)
            assert not result.ok, f"{name} {pointer} changed and still verified"
            assert any(pointer in d.where for d in result.differences), \
                (name, pointer, [str(d) for d in result.differences])
        checked[name] = len(pointers)
    return checked


async def test_console_roles_csrf_actions_and_escalation(
        covey_server: Any, devices: Devices, tmp_path: Path) -> None:
    alice, bob, ids = await _conversation(devices)
    receipt = await bob.report(ids[-1], GROOMING, "he wants to move to another app")
    await asyncio.to_thread(create_console_user, covey_server, "mod", "moderator")
    await asyncio.to_thread(create_console_user, covey_server, "boss", "admin")

    mod, mod_csrf = console_login(covey_server, "mod")
    queue = mod.get("/console/")
    assert receipt.report_id in queue.text
    assert mod.get("/console/audit").status_code == 403  # moderators lack the admin role
    page = mod.get(f"/console/reports/{receipt.report_id}")
    assert page.status_code == 200 and LINES[-1] in html.unescape(page.text)
    assert page.text.count("✓ verified") == 5

    action = f"/console/reports/{receipt.report_id}/action"
    assert mod.post(action, data={"action": "dismiss"}).status_code == 403
    assert mod.post(action, data={"action": "dismiss", "csrf": "wrong"}).status_code == 403
    assert await asyncio.to_thread(_login_without_csrf_cookie, covey_server) == 403
    assert mod.get(f"/console/reports/{receipt.report_id}").text.count(
        'id="status">open') == 1

    done = mod.post(action, data={"action": "escalate", "csrf": mod_csrf, "confirm": "yes",
                                  "reason": "grooming, verified"})
    assert done.status_code == 303 and "notice=escalated" in done.headers["location"], \
        done.headers.get("location")
    verified = await asyncio.to_thread(_verify_offline, covey_server, mod,
                                       receipt.report_id, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "VERIFIED" in verified.stdout and LINES[-1] in verified.stdout
    checked = await asyncio.to_thread(_tamper_each_field, tmp_path / "bundle.zip",
                                      tmp_path / "key.pem")
    assert checked["manifest.json"] >= 20 and checked["messages.json"] >= 10
    xml = mod.get(f"/console/reports/{receipt.report_id}/files/cybertip-report.xml").text
    assert "<espIdentifier>alice</espIdentifier>" in xml

    suspended = mod.post(action, data={"action": "suspend", "csrf": mod_csrf,
                                       "confirm": "yes", "reason": "grooming"})
    assert suspended.status_code == 303
    with pytest.raises(CoveyError) as refused_send:
        await alice.send_text("bob", "hello?")
    assert refused_send.value.code == "account_suspended"
    alice._api.token = None
    with pytest.raises(CoveyError) as refused:  # and cannot log in again
        await alice._api.login()
    assert refused.value.code == "account_suspended"

    boss, _ = console_login(covey_server, "boss")
    audit = boss.get("/console/audit")
    assert audit.status_code == 200
    for entry in ("report_submitted", "view_report", "escalate", "suspend", "login"):
        assert f"<td>{entry}</td>" in audit.text
    transparency = boss.get("/console/transparency")
    assert transparency.status_code == 200 and "data:image/svg+xml;base64," in transparency.text
    actions = [r[0] for r in await _db(covey_server, select(audit_log.c.action))]
    assert "audit_log_denied" in actions
    exported = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "covey", "transparency", "--json",
                         "--database-url", covey_server.database_url],
        capture_output=True, text=True, timeout=60)
    counts = json.loads(exported.stdout)
    assert counts["total"] == 1 and counts["by_action"] == {"suspended": 1}
    assert counts["by_category"] == {"grooming_or_enticement": 1}
    assert counts["by_reporter_band"] == {"unverified": 1}


async def test_reports_are_encrypted_at_rest(covey_server: Any, devices: Devices) -> None:
    _, bob, ids = await _conversation(devices)
    await bob.report(ids[-1], GROOMING, "a comment nobody should read in the database")
    sealed = (await _db(covey_server, select(reports.c.sealed_evidence)))[0][0]
    for secret in (*LINES, "a comment nobody should read"):
        assert secret.encode() not in bytes(sealed)
    if covey_server.database_url.startswith("sqlite"):
        path = Path(covey_server.database_url.split("///", 1)[1])
        await asyncio.sleep(1.5)  # let the WAL checkpoint fold into the file
        stored = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        for secret in (*LINES, "a comment nobody should read"):
            assert secret.encode() not in stored
    assert (covey_server.data_dir / "reports.key").stat().st_mode & 0o777 == 0o600


async def test_retention_purge_deletes_evidence(covey_server: Any, tmp_path: Path) -> None:
    covey_server.restart({"COVEY_EVIDENCE_RETENTION_S": "1",
                          "COVEY_EVIDENCE_PURGE_INTERVAL_S": "0.5"})
    made = Devices(covey_server, tmp_path / "purge")
    made.tmp.mkdir()
    try:
        _, bob, ids = await _conversation(made)
        receipt = await bob.report(ids[-1], GROOMING)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            rows = await _db(covey_server, select(reports.c.sealed_evidence))
            if rows[0][0] is None:
                break
            await asyncio.sleep(0.3)
        assert rows[0][0] is None
        actions = await _db(covey_server, select(audit_log.c.action, audit_log.c.report_id))
        assert ("evidence_purged", receipt.report_id) in actions
        await asyncio.to_thread(create_console_user, covey_server, "mod", "moderator")
        mod, _ = console_login(covey_server, "mod")
        assert "deleted at the end of its preservation period" in mod.get(
            f"/console/reports/{receipt.report_id}").text
    finally:
        await made.close_all()


async def test_group_messages_from_several_devices_verify(
        covey_server: Any, devices: Devices) -> None:
    alice = await devices.register("alice")
    phone = await devices.link(alice)
    bob, carol = await devices.register("bob"), await devices.register("carol")
    group = await alice.create_group("Team", ["bob", "carol"])
    await join_group(group.group_id, bob, carol)
    await alice.send_text(group.group_id, "practice moved to 5pm")
    await receive(bob, 1)
    await receive(carol, 1)
    await receive(phone, 1)
    reported = await phone.send_text(group.group_id, "bob, send me a photo, only to me")
    await receive(bob, 1)
    await receive(carol, 1)
    receipt = await bob.report(reported, GROOMING)
    assert receipt.messages_verified == 2 and receipt.reported_message_verified
    # carol reports the same message: her own tag, her own fingerprint, another report
    other = await carol.report(reported, GROOMING)
    assert not other.duplicate and other.report_id != receipt.report_id
    rows = await _db(covey_server, select(reports.c.reported_user, reports.c.reporter))
    assert sorted(rows) == [("alice", "bob"), ("alice", "carol")]


async def test_a_report_may_exceed_the_envelope_limit_but_not_its_own(
        covey_server: Any, devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    last = ""
    for i in range(11):
        last = await alice.send_text("bob", f"generated long message {i} " + "y" * 40_000)
        await receive(bob, 1)
    receipt = await bob.report(last, ReportCategory.SPAM)  # ~600 KB of evidence
    assert receipt.messages_verified == 11
    answer = await asyncio.to_thread(
        httpx.post, f"{covey_server.url}/v1/reports", content=b"{" + b" " * (5 * 2**20) + b"}",
        headers={"Authorization": f"Bearer {bob._api.token}",
                 "Content-Type": "application/json"}, trust_env=False, timeout=30)
    assert answer.status_code == 413


async def test_covey_report_command(covey_server: Any, devices: Devices) -> None:
    _, bob, ids = await _conversation(devices)
    store = bob.core.store._conn.execute("PRAGMA database_list").fetchone()[2]
    await devices.close(bob)
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "covey", "report", ids[-1], "--store", store,
                         "--category", "grooming_or_enticement", "--comment", "please help",
                         "--block"],
        capture_output=True, text=True, timeout=60,
        env={"COVEY_PASSPHRASE": PASSPHRASE, "COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "filed" in result.stdout and "5 of 6 messages verified" in result.stdout
    assert "sender blocked" in result.stdout
    rows = await _db(covey_server, select(reports.c.category, reports.c.reporter))
    assert rows == [("grooming_or_enticement", "bob")]


@pytest.mark.shared_server
def test_console_bad_input_is_never_a_server_error(covey_server: Any) -> None:
    create_console_user(covey_server, "mod", "moderator")
    with httpx.Client(base_url=covey_server.url, trust_env=False) as anonymous:
        page = anonymous.get("/console/login")
        token = page.cookies.get("covey_login_csrf")
        for username in ("nul\x00name", "x" * 500, "", "mod"):
            answer = anonymous.post("/console/login", data={
                "csrf": token, "username": username, "password": "wrong\x00password"})
            assert answer.status_code == 303 and "error=" in answer.headers["location"]
        assert anonymous.get("/console/").status_code == 303  # not logged in
    mod, csrf = console_login(covey_server, "mod")
    for report_id in ("rep_unknown", "rep_%00", "x" * 300, "rep_" + "0" * 24):
        assert mod.get(f"/console/reports/{report_id}").status_code == 404
        answer = mod.post(f"/console/reports/{report_id}/action",
                          data={"csrf": csrf, "action": "dismiss"})
        assert answer.status_code == 303 and "error=" in answer.headers["location"]
        assert mod.get(f"/console/reports/{report_id}/files/x.zip").status_code == 404
    assert mod.post("/console/reports/rep_x/action", content=b"\xff" * 20_000).status_code == 403
