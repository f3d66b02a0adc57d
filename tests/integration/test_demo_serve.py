"""`covey demo --serve`: after the scenes, the demo's server, console and two signed-in
apps stay up with their addresses and logins printed; Ctrl-C stops them all."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.console import csrf_of


def _read_until(proc: subprocess.Popen[str], marker: str, within_s: float) -> str:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    out = ""
    deadline = time.monotonic() + within_s
    while marker not in out:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"no {marker!r} in:\n{out}")
        if selector.select(1):
            line = proc.stdout.readline()
            out += line
    # the panel's remaining lines
    end = time.monotonic() + 2
    while time.monotonic() < end and selector.select(0.5):
        out += proc.stdout.readline()
    return out


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_demo_serve_leaves_server_console_and_two_signed_in_apps(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    env.update(COLUMNS="250", HOME=str(tmp_path), COVEY_TEST_FAST_KDF="1")
    proc = subprocess.Popen([sys.executable, "-m", "covey", "demo", "--serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=tmp_path, start_new_session=True)
    try:
        out = _read_until(proc, "Ctrl-C stops everything", 300)
        server = re.search(r"server:\s+(http://127\.0\.0\.1:\d+)", out)
        login = re.search(r"login: moderator / (\S+)\)", out)
        apps = dict(re.findall(r"(alice|bob)'s app: (http://127\.0\.0\.1:\d+/#token=\S+)", out))
        assert server and login and set(apps) == {"alice", "bob"}, out
        for handle, url in apps.items():
            origin, token = url.split("/#token=")
            with httpx.Client(base_url=origin, trust_env=False, timeout=30) as http:
                assert http.post("/session", json={"token": token},
                                 headers={"Origin": origin}).status_code == 200
                home = http.get("/")
                assert f"Signed in as <strong>{handle}</strong>" in home.text, home.text[:500]
        with httpx.Client(base_url=server.group(1), trust_env=False, timeout=30) as http:
            page = http.get("/console/login")
            answer = http.post("/console/login", data={
                "csrf": csrf_of(page.text), "username": "moderator",
                "password": login.group(1)})
            assert answer.status_code == 303, answer.text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    for url in (*apps.values(), server.group(1)):
        with pytest.raises(httpx.TransportError):
            httpx.get(url.split("/#")[0] + "/", timeout=5, trust_env=False)
