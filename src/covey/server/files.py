"""Private file modes for the relay's data: the data directory 0700 and every file in it,
and the SQLite database with its -wal and -shm, 0600. Escalation packages and keys hold
evidence and secrets; nobody else on the host may read them."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy.engine import make_url

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
PRIVATE_UMASK = 0o077
# SQLite's own files beside the database (WAL mode, or a rollback journal).
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def write_private(path: Path, data: bytes) -> None:
    """Write `path` with mode 0600 from the first byte (no window at a wider mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)  # an existing file keeps its mode on O_CREAT
        os.write(fd, data)
    finally:
        os.close(fd)


def sqlite_path(database_url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases and in-memory ones."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def secure_data(data_dir: Path, database_url: str) -> None:
    """Make the data directory 0700 and everything already in it private; create the
    SQLite database 0600 before SQLite opens it (its -wal and -shm take its mode)."""
    data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    data_dir.chmod(PRIVATE_DIR)
    for root, dirs, files in os.walk(data_dir):
        for name in dirs:
            _tighten(Path(root) / name, PRIVATE_DIR)
        for name in files:
            _tighten(Path(root) / name, PRIVATE_FILE)
    database = sqlite_path(database_url)
    if database is None:
        return
    database.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.close(os.open(database, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    for suffix in _SQLITE_SUFFIXES:
        _tighten(Path(f"{database}{suffix}"), PRIVATE_FILE)


def _tighten(path: Path, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_symlink():
            return
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
