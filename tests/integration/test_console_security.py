"""The console's defences against a real `covey server`: login backoff per username and
per address, a cap on concurrent password checks, sessions ended on logout, password
reset and disabling, `__Host-` Secure cookies unless plain HTTP is allowed, security
headers on every page, fixed notices only, and suspend/escalate confirmed with a reason
that the audit log keeps."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from covey.moderation import ReportCategory
from tests.integration._console import (
    PASSWORD,
    console_login,
    create_console_user,
    csrf_of,
)
from tests.integration.test_client_e2e import Devices, receive

pytestmark = pytest.mark.timeout(240)


def _try_login(server: Any, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as http:
        page = http.get("/console/login")
        return http.post("/console/login", data={"csrf": csrf_of(page.text),
                                                 "username": username, "password": password})


def _outcome(answer: httpx.Response) -> str:
    """`ok` for a login that worked, else the error code it was sent back with."""
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    return "ok" if location == "/console/" else location.split("error=", 1)[1]


def _admin(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "covey", "admin", *args, "--database-url", server.database_url,
         "--data-dir", str(server.data_dir)], capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "COVEY_CONFIG"})


def test_failed_logins_back_off_per_username_and_per_address(covey_server: Any) -> None:
    covey_server.restart(env={"COVEY_CONSOLE_LOGIN_FREE_FAILURES": "3",
                              "COVEY_CONSOLE_LOGIN_IP_FREE_FAILURES": "6",
                              "COVEY_CONSOLE_LOGIN_BACKOFF_S": "60"})
    create_console_user(covey_server, "mod", "moderator")
    create_console_user(covey_server, "boss", "admin")
    outcomes = [_outcome(_try_login(covey_server, "mod", "wrong password")) for _ in range(4)]
    assert outcomes == ["bad_login"] * 4
    throttled = _try_login(covey_server, "mod", PASSWORD)  # the right one, too late
    assert _outcome(throttled) == "login_throttled"
    assert int(throttled.headers["retry-after"]) >= 1
    # The address backs off too: guesses spread over other names lock out everyone here.
    assert [_outcome(_try_login(covey_server, f"nobody{i}", "x" * 9)) for i in range(3)] \
        == ["bad_login"] * 3
    assert _outcome(_try_login(covey_server, "boss", PASSWORD)) == "login_throttled"
    # Unknown names back off exactly like known ones (nothing tells them apart).
    page = _try_login(covey_server, "nobody0", "x")
    assert _outcome(page) == "login_throttled"


def test_concurrent_password_checks_are_capped(covey_server: Any) -> None:
    covey_server.restart(env={"COVEY_CONSOLE_PASSWORD_CHECKS": "1",
                              "COVEY_CONSOLE_LOGIN_IP_FREE_FAILURES": "1000",
                              "COVEY_CONSOLE_LOGIN_FREE_FAILURES": "1000"})

    async def burst() -> list[str]:
        async with httpx.AsyncClient(base_url=covey_server.url, trust_env=False,
                                     timeout=120) as http:
            page = await http.get("/console/login")
            csrf = csrf_of(page.text)
            answers = await asyncio.gather(*(
                http.post("/console/login", data={"csrf": csrf, "username": f"user{i}",
                                                  "password": "wrong password"})
                for i in range(10)))
        return [_outcome(a) for a in answers]

    outcomes = asyncio.run(burst())
    assert "login_busy" in outcomes, outcomes
    assert set(outcomes) <= {"login_busy", "bad_login"}, outcomes
    assert outcomes.count("bad_login") >= 2  # one checking and one waiting get through


def test_sessions_end_on_logout_password_reset_and_disabling(covey_server: Any) -> None:
    create_console_user(covey_server, "mod", "moderator")
    mod, csrf = console_login(covey_server, "mod")
    assert mod.post("/console/logout", data={"csrf": csrf}).status_code == 303
    assert mod.get("/console/").headers.get("location") == "/console/login"

    mod, _ = console_login(covey_server, "mod")
    create_console_user(covey_server, "mod", "moderator")  # the operator resets it
    assert mod.get("/console/").headers.get("location") == "/console/login"

    mod, _ = console_login(covey_server, "mod")
    disabled = _admin(covey_server, "disable-user", "mod")
    assert disabled.returncode == 0, disabled.stdout + disabled.stderr
    assert mod.get("/console/").headers.get("location") == "/console/login"
    assert _outcome(_try_login(covey_server, "mod", PASSWORD)) == "moderator_disabled"
    assert _outcome(_try_login(covey_server, "mod", "wrong password")) == "bad_login"
    unknown = _admin(covey_server, "disable-user", "nobody")
    assert unknown.returncode == 2 and "no console account named 'nobody'" in unknown.stdout
    assert _admin(covey_server, "enable-user", "mod").returncode == 0
    assert _outcome(_try_login(covey_server, "mod", PASSWORD)) == "ok"
    audit = covey_server.rows("SELECT action FROM audit_log ORDER BY id")
    assert ("moderator_disabled",) in audit and ("login_disabled",) in audit


def test_cookies_are_secure_with_the_host_prefix_unless_plain_http_is_allowed(
        covey_server: Any) -> None:
    create_console_user(covey_server, "mod", "moderator")
    local = httpx.get(f"{covey_server.url}/console/login", trust_env=False)
    assert "covey_login_csrf=" in local.headers["set-cookie"]
    assert "secure" not in local.headers["set-cookie"].lower()

    covey_server.restart(env={"COVEY_CONSOLE_ALLOW_HTTP": "false"})
    with httpx.Client(base_url=covey_server.url, trust_env=False) as http:
        page = http.get("/console/login")
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("__Host-covey_login_csrf="), cookie
        attributes = {a.strip().lower() for a in cookie.split(";")}
        assert {"secure", "httponly", "path=/", "samesite=strict"} <= attributes, cookie
        token = cookie.split(";")[0].split("=", 1)[1]
        answer = http.post("/console/login", headers={
            "cookie": f"__Host-covey_login_csrf={token}"}, data={
            "csrf": token, "username": "mod", "password": PASSWORD})
        assert answer.status_code == 303 and answer.headers["location"] == "/console/"
        session = answer.headers["set-cookie"]
        assert session.startswith("__Host-covey_console=") and "Secure" in session, session


@pytest.fixture
async def devices(covey_server: Any, tmp_path: Path) -> Any:
    made = Devices(covey_server, tmp_path / "clients")
    made.tmp.mkdir()
    yield made
    await made.close_all()


HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
           "cache-control": "no-store"}


def _assert_secure_headers(answer: httpx.Response) -> None:
    for name, value in HEADERS.items():
        assert answer.headers.get(name) == value, (answer.url, name, answer.headers)
    policy = answer.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy, policy


async def test_console_pages_send_security_headers_fixed_notices_and_confirm_actions(
        covey_server: Any, devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    message_id = await alice.send_text("bob", "don't tell your parents we talk")
    await receive(bob, 1)
    report_id = (await bob.report(message_id, ReportCategory.GROOMING_OR_ENTICEMENT)).report_id
    await asyncio.to_thread(create_console_user, covey_server, "boss", "admin")
    boss, csrf = await asyncio.to_thread(console_login, covey_server, "boss")
    page_url = f"/console/reports/{report_id}"
    action = f"{page_url}/action"

    # Fixed notices only: text in the query string is never shown.
    lure = "Your session expired: log in again at evil.example"
    for query in (f"notice={lure}", f"error={lure}", "notice=<b>x</b>"):
        shown = boss.get(f"{page_url}?{query}")
        assert shown.status_code == 200 and "evil.example" not in shown.text
        assert "<b>x</b>" not in shown.text and 'class="notice"' not in shown.text
    assert "evil.example" not in boss.get(f"/console/login?error={lure}").text
    assert "is suspended" in boss.get(f"{page_url}?notice=suspended").text

    # Suspend asks first; without confirmation and a reason nothing happens.
    asked = boss.post(action, data={"action": "suspend", "csrf": csrf})
    assert asked.status_code == 200 and 'name="reason"' in asked.text
    assert "Suspend the reported user?" in asked.text
    empty = boss.post(action, data={"action": "suspend", "csrf": csrf, "confirm": "yes",
                                    "reason": "   "})
    assert empty.status_code == 400 and "Give a reason" in empty.text
    for answer in (asked, empty):
        _assert_secure_headers(answer)
    assert 'id="status">open' in boss.get(page_url).text
    assert not await asyncio.to_thread(covey_server.rows, "SELECT user_id FROM suspensions")
    done = boss.post(action, data={"action": "suspend", "csrf": csrf, "confirm": "yes",
                                   "reason": "asked a child for secrecy"})
    assert done.status_code == 303 and done.headers["location"].endswith("notice=suspended")
    escalated = boss.post(action, data={"action": "escalate", "csrf": csrf,
                                        "confirm": "yes", "reason": "enticement, verified"})
    assert escalated.headers["location"].endswith("notice=escalated")
    details = dict(await asyncio.to_thread(
        covey_server.rows,
        "SELECT action, detail FROM audit_log WHERE action IN ('suspend', 'escalate')"))
    assert "reason: asked a child for secrecy" in details["suspend"]
    assert "reason: enticement, verified" in details["escalate"]

    for path in ("/console/login", "/console/", page_url, "/console/audit",
                 "/console/transparency", "/console/transparency.json", "/console/console.css",
                 "/console/attestation-key.pem", "/console/reports/rep_nothing",
                 f"{page_url}/files/evidence-bundle.zip"):
        answer = boss.get(path)
        assert answer.status_code in (200, 404), (path, answer.status_code)
        _assert_secure_headers(answer)
