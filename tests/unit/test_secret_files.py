"""Server key files: created once, mode 0600, and never read half-written, even when
several server processes start at the same moment."""

from __future__ import annotations

import os
import secrets
import stat
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from covey.server.services._common import load_or_create_secret_file


def _slow_key() -> bytes:
    time.sleep(0.05)  # widen the window in which another process could read the file
    return secrets.token_bytes(32)


def _load(path: str) -> bytes:
    return load_or_create_secret_file(Path(path), _slow_key)


def test_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "policy-signing.key"
    first = load_or_create_secret_file(path, lambda: b"k" * 32)
    assert first == b"k" * 32 == path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret_file(path, lambda: b"other") == first
    assert sorted(os.listdir(path.parent)) == ["policy-signing.key"]  # no temporary left


def test_processes_starting_together_agree_on_one_whole_key(tmp_path: Path) -> None:
    path = str(tmp_path / "safety-service.key")
    with ProcessPoolExecutor(6) as pool:
        keys = list(pool.map(_load, [path] * 12))
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert Path(path).read_bytes() == keys[0]
