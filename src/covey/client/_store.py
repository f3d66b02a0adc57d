"""The device's local store: one SQLite file, every record encrypted at rest.

A passphrase goes through scrypt (random salt kept in the file) to a master key; HKDF
splits it into a record key (AES-256-GCM per record), an index key (record names are
HMACs, so no handle or message id appears in the file) and the vodozemac pickle key.
"""

from __future__ import annotations

import asyncio
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

SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_NONCE = 12
_CHECK = b"covey/store-check/v1"
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


class Store:
    """Encrypted key-value records grouped by kind, kept in insertion order."""

    def __init__(self, conn: sqlite3.Connection, keys: _StoreKeys) -> None:
        self._conn = conn
        self._keys = keys
        self._depth = 0
        self.pickle_key = PickleKey(keys.pickle)

    # --- opening -----------------------------------------------------------------

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA secure_delete=ON")
        conn.executescript(_SCHEMA)
        return conn

    @classmethod
    def create(cls, path: str | os.PathLike[str], passphrase: str, *,
               scrypt_n: int = SCRYPT_N) -> Store:
        """A new, empty store. Refuses to overwrite an existing one."""
        conn, salt = cls._new_file(Path(path), passphrase)
        try:
            keys = _StoreKeys.derive(passphrase, salt, scrypt_n, SCRYPT_R, SCRYPT_P)
        except BaseException:
            conn.close()
            raise
        return cls._initialise(conn, salt, keys, scrypt_n)

    @classmethod
    def create_in_background(cls, path: str | os.PathLike[str], passphrase: str, *,
                             scrypt_n: int = SCRYPT_N) -> asyncio.Task[Store]:
        """`create`, with the key derivation (scrypt: a tenth of a second or more) in a
        thread. The file is made, or refused, before this returns; the task gives the
        store. Cancelling it closes the file (the caller removes it)."""
        conn, salt = cls._new_file(Path(path), passphrase)

        async def finish() -> Store:
            try:
                keys = await asyncio.to_thread(_StoreKeys.derive, passphrase, salt, scrypt_n,
                                               SCRYPT_R, SCRYPT_P)
            except BaseException:
                conn.close()
                raise
            return cls._initialise(conn, salt, keys, scrypt_n)

        return asyncio.create_task(finish(), name="covey-store-key")

    @classmethod
    def _new_file(cls, target: Path, passphrase: str) -> tuple[sqlite3.Connection, bytes]:
        if target.exists() and target.stat().st_size > 0:
            raise StoreError(f"a store already exists at {target}", code="store_exists")
        if not passphrase:
            raise StoreError("the store passphrase must not be empty", code="bad_passphrase")
        conn = cls._connect(target)
        target.chmod(0o600)
        return conn, os.urandom(16)

    @classmethod
    def _initialise(cls, conn: sqlite3.Connection, salt: bytes, keys: _StoreKeys,
                    scrypt_n: int) -> Store:
        nonce = os.urandom(_NONCE)
        check = nonce + AESGCM(keys.record).encrypt(nonce, _CHECK, b"check")
        params = json.dumps({"n": scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P}).encode()
        conn.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                         [("salt", salt), ("scrypt", params), ("check", check)])
        return cls(conn, keys)

    @classmethod
    def open(cls, path: str | os.PathLike[str], passphrase: str) -> Store:
        """Open an existing store; `WrongPassphrase` when the passphrase does not fit."""
        target = Path(path)
        if not target.exists():
            raise StoreError(f"no store at {target}", code="store_missing")
        conn = cls._connect(target)
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        if not {"salt", "scrypt", "check"} <= meta.keys():
            conn.close()
            raise StoreError(f"{target} is not a Covey store", code="store_invalid")
        params = json.loads(meta["scrypt"])
        keys = _StoreKeys.derive(passphrase, meta["salt"], int(params["n"]), int(params["r"]),
                                 int(params["p"]))
        check = meta["check"]
        try:
            AESGCM(keys.record).decrypt(check[:_NONCE], check[_NONCE:], b"check")
        except InvalidTag:
            conn.close()
            raise WrongPassphrase("wrong passphrase for this store") from None
        return cls(conn, keys)

    def close(self) -> None:
        self._conn.close()

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
