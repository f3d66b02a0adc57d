"""`covey demo --serve`: after the scenes, leave the demo's server and its moderation
console running with a moderator login, and two `covey app` instances signed in as the
demo's alice and bob, and print where each is; Ctrl-C stops them all."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from covey.server.process import ServerProcess

_LINE = re.compile(r"^Covey app: (http://127\.0\.0\.1:\d+/#token=[A-Za-z0-9_-]+)$")


def _create_moderator(server: ServerProcess, password: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    env["COVEY_ADMIN_PASSWORD"] = password
    result = subprocess.run(
        [sys.executable, "-m", "covey", "admin", "create-user", "moderator", "--role",
         "moderator", "--database-url", server.database_url, "--data-dir",
         str(server.data_dir)], capture_output=True, text=True, env=env, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"could not create the console login: {result.stdout}"
                           f"{result.stderr}")


def _start_app(server: ServerProcess, store: Path, passphrase: str
               ) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    env["COVEY_PASSPHRASE"] = passphrase
    proc = subprocess.Popen(
        [sys.executable, "-m", "covey", "app", "--server", server.url, "--store", str(store),
         "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        text=True)
    assert proc.stdout is not None
    found = _LINE.match(proc.stdout.readline().strip())
    if found is None:
        proc.terminate()
        raise RuntimeError(f"covey app did not start on {store}")
    return proc, found.group(1)


async def serve(console: Console, server: ServerProcess,
                people: list[tuple[str, Path, str]]) -> None:
    """Keep `server` up; one signed-in app per (handle, store, passphrase)."""
    password = secrets.token_urlsafe(12)
    await asyncio.to_thread(_create_moderator, server, password)
    apps: list[subprocess.Popen[str]] = []
    lines = [f"server:  {server.url}",
             f"console: {server.url}/console/  (login: moderator / {password})"]
    try:
        for handle, store, passphrase in people:
            proc, url = await asyncio.to_thread(_start_app, server, store, passphrase)
            apps.append(proc)
            lines.append(f"{handle}'s app: {url}")
            lines.append(f"  (signed in; store {store}, passphrase \"{passphrase}\")")
        console.print(Panel("\n".join(lines), title="Covey demo: still running",
                            subtitle="each app address opens once, in one browser · "
                                     "Ctrl-C stops everything"))
        await asyncio.Event().wait()  # until Ctrl-C cancels the demo
    finally:
        for proc in apps:
            proc.terminate()
        for proc in apps:
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()
