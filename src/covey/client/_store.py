"""The device's local store: one SQLite file, every record encrypted at rest.

A passphrase goes through scrypt (random salt kept in the file; N=2^17, r=8, p=1, the
OWASP minimum) to a master key; HKDF splits it into a record key (AES-256-GCM per
record), an index key (record names are HMACs, so no handle or message id appears in the
file) and the vodozemac pickle key. The KDF parameters read from the file are bounded
before use and bound into the passphrase check value. The file, its `-wal` and `-shm`
are 0600, a directory the store makes is 0700, and one process at a time holds the store
(an exclusive lock on `<store>.lock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from covey.crypto import PickleKey
from covey.errors import CoveyError

SCRYPT_N = 2**17  # OWASP Password Storage Cheat Sheet: scrypt N=2^17, r=8, p=1
SCRYPT_R = 8
SCRYPT_P = 1
# Test suites only: new stores use this N instead (keys derived in milliseconds). Read
# here and nowhere else; never set it for real devices.
TEST_FAST_KDF_ENV = "COVEY_TEST_FAST_KDF"
_TEST_SCRYPT_N = 2**12
# What a store file may ask for: a tampered file must not make opening it a memory or
# CPU bomb. 2^18 * 128 * 8 = 256 MiB at most; stores made before 2026-12 used 2^15.
_MIN_N, _MAX_N = 2**10, 2**18
_MAX_R, _MAX_P = 16, 4
_MAX_KDF_BYTES = 256 * 1024 * 1024
_NONCE = 12
_CHECK = b"covey/store-check/v1"
_KDF_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    name BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (kind, name)
);
"""

Record = dict[str, Any]


class StoreError(CoveyError):
    """The local store cannot be opened or read."""

    code = "store_error"


class WrongPassphrase(StoreError):
    code = "wrong_passphrase"


@dataclass(frozen=True, eq=False)
class _StoreKeys:
    record: bytes = field(repr=False)
    index: bytes = field(repr=False)
    pickle: bytes = field(repr=False)

    @classmethod
    def derive(cls, passphrase: str, salt: bytes, n: int, r: int, p: int) -> _StoreKeys:
        _check_kdf_bounds(n, r, p)
        # hashlib's scrypt (OpenSSL, RFC 7914: the same bytes as `cryptography`'s) lets go
        # of the GIL, so a key derived in a thread does not stall the event loop.
        master = hashlib.scrypt(passphrase.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                                maxmem=128 * r * (n + p + 2) + (1 << 20), dklen=32)
        return cls.from_master(master)

    @classmethod
    def from_master(cls, master: bytes) -> _StoreKeys:
        okm = HKDF(algorithm=hashes.SHA256(), length=96, salt=None,
                   info=b"covey/store-keys/v1").derive(master)
        return cls(okm[:32], okm[32:64], okm[64:])

    def __repr__(self) -> str:
        return "_StoreKeys(<redacted>)"


def default_scrypt_n() -> int:
    """N for a new store: the OWASP strength, or the test-only fast one (see above)."""
    return _TEST_SCRYPT_N if os.environ.get(TEST_FAST_KDF_ENV) == "1" else SCRYPT_N


def _check_kdf_bounds(n: int, r: int, p: int) -> None:
    if (not _MIN_N <= n <= _MAX_N or n & (n - 1) or not 1 <= r <= _MAX_R
            or not 1 <= p <= _MAX_P or 128 * r * n * p > _MAX_KDF_BYTES):
        raise StoreError(f"the store asks for scrypt parameters out of bounds (n={n}, "
                         f"r={r}, p={p}): not a store this client made, or tampered with",
                         code="store_invalid")


def _check_aad(params: bytes, salt: bytes) -> bytes:
    """What the passphrase check value authenticates: the KDF parameters and the salt."""
    return b"check\x00" + params + b"\x00" + salt


class Store:
    """Encrypted key-value records grouped by kind, kept in insertion order."""

    def __init__(self, conn: sqlite3.Connection, keys: _StoreKeys, lock: int) -> None:
        self._conn = conn
        self._keys = keys
        self._lock = lock
        self._depth = 0
        self.pickle_key = PickleKey(keys.pickle)

    # --- opening -----------------------------------------------------------------

    @staticmethod
    def _lock_path(path: Path) -> Path:
        return path.with_name(path.name + ".lock")

    @classmethod
    def _acquire(cls, path: Path) -> int:
        """Hold `<store>.lock` exclusively, or say who has it. Released by `close` (or
        when the process ends, however it ends)."""
        fd = os.open(cls._lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"the store {path} is open in another process (another "
                             f"`covey chat` or `covey app`?): close it first",
                             code="store_locked") from None
        return fd

    @staticmethod
    def _connect(path: Path, *, existing: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            if existing and conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                         "AND name = 'meta'").fetchone() is None:
                raise sqlite3.DatabaseError("no store tables")  # e.g. a server's database
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA secure_delete=ON")
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:  # some other file: say so, touch nothing
            conn.close()
            raise StoreError(f"{path} is not a Covey store ({exc}): give the --store file "
                             "covey register or covey chat --register made",
                             code="not_a_store") from None
        return conn

    @staticmethod
    def _private_files(path: Path) -> None:
        """0600 for the database and its WAL and shared-memory files (SQLite makes those
        with the database's mode, but a store from before 2026-12 may have 0644 ones)."""
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            if name.exists() and name.stat().st_mode & 0o077:
                name.chmod(0o600)

    @classmethod
    def create(cls, path: str | os.PathLike[str], passphrase: str, *,
               scrypt_n: int | None = None) -> Store:
        """A new, empty store. Refuses to overwrite an existing one."""
        n = default_scrypt_n() if scrypt_n is None else scrypt_n
        conn, salt, lock = cls._new_file(Path(path), passphrase, n)
        try:
            keys = _StoreKeys.derive(passphrase, salt, n, SCRYPT_R, SCRYPT_P)
        except BaseException:
            conn.close()
            os.close(lock)
            raise
        return cls._initialise(conn, salt, keys, n, lock)

    @classmethod
    def create_in_background(cls, path: str | os.PathLike[str], passphrase: str, *,
                             scrypt_n: int | None = None) -> asyncio.Task[Store]:
        """`create`, with the key derivation (scrypt: a tenth of a second or more) in a
        thread. The file is made, or refused, before this returns; the task gives the
        store. Cancelling it closes the file (the caller removes it)."""
        n = default_scrypt_n() if scrypt_n is None else scrypt_n
        conn, salt, lock = cls._new_file(Path(path), passphrase, n)

        async def finish() -> Store:
            try:
                keys = await asyncio.to_thread(_StoreKeys.derive, passphrase, salt, n,
                                               SCRYPT_R, SCRYPT_P)
            except BaseException:
                conn.close()
                os.close(lock)
                raise
            return cls._initialise(conn, salt, keys, n, lock)

        return asyncio.create_task(finish(), name="covey-store-key")

    @classmethod
    def _new_file(cls, target: Path, passphrase: str, n: int,
                  ) -> tuple[sqlite3.Connection, bytes, int]:
        _check_kdf_bounds(n, SCRYPT_R, SCRYPT_P)
        if target.exists() and target.stat().st_size > 0:
            raise StoreError(f"a store already exists at {target}", code="store_exists")
        if not passphrase:
            raise StoreError("the store passphrase must not be empty", code="bad_passphrase")
        if not target.parent.exists():
            target.parent.mkdir(mode=0o700, parents=True)
        lock = cls._acquire(target)
        try:
            # Made 0600 before SQLite opens it: the WAL and SHM files get the same mode.
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o600))
            cls._private_files(target)
            conn = cls._connect(target)
        except BaseException:
            os.close(lock)
            raise
        return conn, os.urandom(16), lock

    @classmethod
    def _initialise(cls, conn: sqlite3.Connection, salt: bytes, keys: _StoreKeys,
                    scrypt_n: int, lock: int) -> Store:
        params = json.dumps({"n": scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P,
                             "v": _KDF_VERSION}, sort_keys=True).encode()
        nonce = os.urandom(_NONCE)
        check = nonce + AESGCM(keys.record).encrypt(nonce, _CHECK, _check_aad(params, salt))
        conn.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                         [("salt", salt), ("scrypt", params), ("check", check)])
        return cls(conn, keys, lock)

    @classmethod
    def open(cls, path: str | os.PathLike[str], passphrase: str) -> Store:
        """Open an existing store; `WrongPassphrase` when the passphrase does not fit.

        Blocks for the key derivation (a few tenths of a second): from async code use
        `open_in_thread`."""
        target = Path(path)
        if not target.exists():
            raise StoreError(f"no store at {target}", code="store_missing")
        with contextlib.suppress(OSError), target.open("rb") as file:
            if file.read(16) not in (b"SQLite format 3\x00", b""):
                raise StoreError(f"{target} is not a Covey store (not even SQLite): give the "
                                 "--store file covey register or covey chat --register made",
                                 code="not_a_store")
        lock = cls._acquire(target)
        try:
            cls._private_files(target)
            conn = cls._connect(target, existing=True)
        except BaseException:
            os.close(lock)
            raise
        try:
            keys = cls._unlock(conn, target, passphrase)
        except BaseException:
            conn.close()
            os.close(lock)
            raise
        return cls(conn, keys, lock)

    @classmethod
    async def open_in_thread(cls, path: str | os.PathLike[str], passphrase: str) -> Store:
        """`open` off the event loop (scrypt lets go of the GIL)."""
        return await asyncio.to_thread(cls.open, path, passphrase)

    @staticmethod
    def _unlock(conn: sqlite3.Connection, target: Path, passphrase: str) -> _StoreKeys:
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        if not {"salt", "scrypt", "check"} <= meta.keys():
            raise StoreError(f"{target} is not a Covey store", code="store_invalid")
        try:
            params = json.loads(meta["scrypt"])
            n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
            version = int(params.get("v", 1))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"{target}: unreadable KDF parameters",
                             code="store_invalid") from exc
        keys = _StoreKeys.derive(passphrase, meta["salt"], n, r, p)  # bounds checked first
        check = meta["check"]
        # Version 1 (stores made before 2026-12, N=2^15) bound nothing into the check; they
        # open as they are, with their parameters within the bounds above.
        aad = _check_aad(meta["scrypt"], meta["salt"]) if version >= 2 else b"check"
        try:
            AESGCM(keys.record).decrypt(check[:_NONCE], check[_NONCE:], aad)
        except InvalidTag:
            raise WrongPassphrase("wrong passphrase for this store (or its KDF parameters "
                                  "were changed)") from None
        return keys

    def close(self) -> None:
        self._conn.close()
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    # --- records -------------------------------------------------------------------

    def _name(self, kind: str, key: str) -> bytes:
        return hmac.new(self._keys.index, f"{kind}\x00{key}".encode(), hashlib.sha256).digest()

    def _seal(self, kind: str, name: bytes, record: Record) -> bytes:
        nonce = os.urandom(_NONCE)
        plaintext = json.dumps(record, separators=(",", ":")).encode()
        return nonce + AESGCM(self._keys.record).encrypt(nonce, plaintext, kind.encode() + name)

    def _open(self, kind: str, name: bytes, blob: bytes) -> Record:
        try:
            plaintext = AESGCM(self._keys.record).decrypt(blob[:_NONCE], blob[_NONCE:],
                                                          kind.encode() + name)
        except InvalidTag:
            raise StoreError("a store record failed authentication",
                             code="store_corrupt") from None
        value: Record = json.loads(plaintext)
        return value

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes so they land together or not at all (nestable)."""
        if self._depth == 0:
            self._conn.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._conn.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._conn.execute("COMMIT")

    def put(self, kind: str, key: str, record: Record) -> None:
        name = self._name(kind, key)
        self._conn.execute(
            "INSERT INTO records (kind, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (kind, name) DO UPDATE SET value = excluded.value",
            (kind, name, self._seal(kind, name, record)))

    def get(self, kind: str, key: str) -> Record | None:
        name = self._name(kind, key)
        row = self._conn.execute("SELECT value FROM records WHERE kind = ? AND name = ?",
                                 (kind, name)).fetchone()
        return None if row is None else self._open(kind, name, row[0])

    def has(self, kind: str, key: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM records WHERE kind = ? AND name = ?",
                                 (kind, self._name(kind, key))).fetchone()
        return row is not None

    def delete(self, kind: str, key: str) -> None:
        self._conn.execute("DELETE FROM records WHERE kind = ? AND name = ?",
                           (kind, self._name(kind, key)))

    def items(self, kind: str) -> list[Record]:
        """Every record of a kind, oldest first."""
        rows = self._conn.execute(
            "SELECT name, value FROM records WHERE kind = ? ORDER BY rowid", (kind,)).fetchall()
        return [self._open(kind, name, blob) for name, blob in rows]
