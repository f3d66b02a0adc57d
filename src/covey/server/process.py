"""Run `covey server` as a child process: used by `covey demo`, the benchmarks and the
integration tests, which all want a real server they can start, SIGKILL and restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> bool:
    """Poll `url`/healthz until it answers 200 (True), or the process exits or time runs
    out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


class ServerProcess:
    """A `covey server` subprocess bound to one database, data dir and loopback port."""

    def __init__(self, database_url: str, data_dir: Path, *, env: dict[str, str] | None = None,
                 port: int | None = None, log_path: Path | None = None) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.env = dict(env or {})
        self.log_path = log_path or data_dir.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, env: dict[str, str] | None = None, timeout: float = 30) -> Self:
        """Start (or restart) on the same state; `env` adds COVEY_* variables."""
        if self.running:
            raise RuntimeError("the server is already running")
        if env is not None:
            self.env.update(env)
        full_env = {**os.environ, **self.env}
        full_env.pop("COVEY_CONFIG", None)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "covey", "server", "--host", "127.0.0.1",
                 "--port", str(self.port), "--database-url", self.database_url,
                 "--data-dir", str(self.data_dir)],
                env=full_env, stdout=log, stderr=subprocess.STDOUT)
        if wait_until_healthy(self.url, self.proc, timeout):
            return self
        if self.proc.poll() is not None:
            raise RuntimeError(f"covey server exited with {self.proc.returncode}:\n{self.log()}")
        self.kill()
        raise RuntimeError(f"covey server did not become healthy:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flush; what was committed must survive."""
        if self.proc is not None and self.running:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.running:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, env: dict[str, str] | None = None) -> Self:
        self.stop()
        return self.start(env)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
