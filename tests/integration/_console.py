"""Helpers for tests of reporting and the moderation console against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import httpx

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def create_console_user(server: Any, username: str, role: str) -> None:
    """`covey admin create-user` against the server's database, as an operator would."""
    env = {**os.environ, "COVEY_ADMIN_PASSWORD": PASSWORD}
    env.pop("COVEY_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "covey", "admin", "create-user", username, "--role", role,
         "--database-url", server.database_url, "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, html[:2000]
    return found.group(1)


def console_login(server: Any, username: str) -> tuple[httpx.Client, str]:
    """A logged-in console session and its CSRF token."""
    http = httpx.Client(base_url=server.url, follow_redirects=False, timeout=30,
                        trust_env=False)
    page = http.get("/console/login")
    answer = http.post("/console/login", data={"csrf": csrf_of(page.text),
                                               "username": username, "password": PASSWORD})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/", answer.text
    queue = http.get("/console/")
    assert queue.status_code == 200
    return http, csrf_of(queue.text)


def console_suspend(http: httpx.Client, csrf: str, report_id: str, reason: str) -> None:
    """Suspend the reported user of `report_id` through the console form."""
    answer = http.post(f"/console/reports/{report_id}/action",
                       data={"action": "suspend", "csrf": csrf, "reason": reason,
                             "confirm": "yes"})
    assert answer.status_code == 303, answer.text
