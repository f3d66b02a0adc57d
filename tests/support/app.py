"""`covey app` processes for browser tests: each one a real device client serving its
pages on 127.0.0.1, started through the real `covey` entry point; and axe-core (from the
npm registry, installed once into .cache/npm) to check pages for accessibility."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NPM_PREFIX = ROOT / ".cache" / "npm"
AXE = NPM_PREFIX / "node_modules" / "axe-core" / "axe.min.js"
_LINE = re.compile(r"^Covey app: (http://127\.0\.0\.1:\d+)/#token=([A-Za-z0-9_-]+)$")


def axe_source() -> str:
    """axe-core's browser script; `npm install`s it when ./scripts/test has not."""
    if not AXE.exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent",
                        "--prefix", str(NPM_PREFIX), "axe-core@4"], check=True, timeout=300)
    return AXE.read_text()


class AppProcess:
    """`covey app --no-browser` on a store; `url` is the printed one-time address."""

    def __init__(self, server_url: str, store: Path, *, passphrase: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
        env["COVEY_TEST_FAST_KDF"] = "1"
        if passphrase is not None:
            env["COVEY_PASSPHRASE"] = passphrase
        self.store = store
        self.log = store.with_suffix(".log")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "covey", "app", "--server", server_url, "--store",
             str(store), "--no-browser"], stdout=subprocess.PIPE,
            stderr=self.log.open("ab"), env=env, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        found = _LINE.match(line)
        if found is None:
            self.stop()
            raise AssertionError(f"covey app printed {line!r}; log: {self.log.read_text()}")
        self.origin, self.token = found.group(1), found.group(2)
        self.url = f"{self.origin}/#token={self.token}"
        # Keep reading stdout so the process never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
