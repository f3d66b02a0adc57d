"""The client store at rest: 0600 files (WAL and SHM too) in a 0700 directory, KDF
parameters bounded and authenticated, OWASP strength by default, one process at a time,
and stores made before these rules still open."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from covey.client._store import (
    SCRYPT_N,
    TEST_FAST_KDF_ENV,
    Store,
    StoreError,
    WrongPassphrase,
    _StoreKeys,
    default_scrypt_n,
)

PASSPHRASE = "correct horse battery staple"
FAST = 2**10


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_files_are_0600_and_a_new_directory_0700(tmp_path: Path) -> None:
    os.umask(0o022)
    path = tmp_path / "device" / "phone.db"
    store = Store.create(path, PASSPHRASE, scrypt_n=FAST)
    with store.transaction():
        store.put("kind", "key", {"v": 1})
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    assert wal.exists() and shm.exists()
    assert [_mode(p) for p in (path, wal, shm)] == [0o600, 0o600, 0o600]
    assert _mode(path.parent) == 0o700
    assert _mode(Path(f"{path}.lock")) == 0o600
    store.close()


def test_old_world_readable_wal_and_shm_are_made_private_on_open(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store.create(path, PASSPHRASE, scrypt_n=FAST)
    store.put("kind", "key", {"v": 1})
    store.close()
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            name.chmod(0o644)
    Store.open(path, PASSPHRASE).close()
    assert _mode(path) == 0o600
    for name in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        assert not name.exists() or _mode(name) == 0o600


def _set_params(path: Path, params: dict[str, int]) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE name = 'scrypt'",
                     (json.dumps(params).encode(),))


@pytest.mark.parametrize("params", [
    {"n": 2**30, "r": 8, "p": 1, "v": 2},  # 128 GiB of memory
    {"n": 2**20, "r": 8, "p": 1, "v": 2},
    {"n": 2**14 + 1, "r": 8, "p": 1, "v": 2},  # not a power of two
    {"n": 2**14, "r": 1024, "p": 1, "v": 2},
    {"n": 2**14, "r": 8, "p": 64, "v": 2},
    {"n": 2, "r": 1, "p": 1, "v": 2},
])
def test_out_of_bounds_kdf_parameters_are_refused_at_once(tmp_path: Path,
                                                           params: dict[str, int]) -> None:
    path = tmp_path / "s.db"
    Store.create(path, PASSPHRASE, scrypt_n=FAST).close()
    _set_params(path, params)
    started = time.perf_counter()
    with pytest.raises(StoreError) as refused:
        Store.open(path, PASSPHRASE)
    assert refused.value.code == "store_invalid"
    assert "out of bounds" in refused.value.message
    assert time.perf_counter() - started < 1.0  # refused before any derivation


def test_kdf_parameters_are_authenticated(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store.create(path, PASSPHRASE, scrypt_n=FAST).close()
    # In bounds, but not what the store was made with (or a v1 label to skip the binding).
    for params in ({"n": 2**11, "r": 8, "p": 1, "v": 2}, {"n": FAST, "r": 8, "p": 1},
                   {"n": FAST, "r": 8, "p": 1, "v": 2, "x": 0}):
        _set_params(path, params)
        with pytest.raises(WrongPassphrase):
            Store.open(path, PASSPHRASE)
    _set_params(path, {"v": 2, "r": 8, "p": 1, "n": FAST})  # same values, other bytes
    with pytest.raises(WrongPassphrase):  # the bytes, not just the values, are bound
        Store.open(path, PASSPHRASE)
    _set_params(path, {"n": FAST, "p": 1, "r": 8, "v": 2})  # the bytes it was made with
    Store.open(path, PASSPHRASE).close()


def test_new_stores_use_the_owasp_strength_unless_the_test_setting_is_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert SCRYPT_N == 2**17
    monkeypatch.delenv(TEST_FAST_KDF_ENV, raising=False)
    assert default_scrypt_n() == 2**17
    monkeypatch.setenv(TEST_FAST_KDF_ENV, "1")
    assert default_scrypt_n() < 2**17


def test_a_store_made_before_the_parameters_were_bound_still_opens(tmp_path: Path) -> None:
    """Version 1 (N=2^15, check value without the parameters) opens as it is."""
    path = tmp_path / "old.db"
    store = Store.create(path, PASSPHRASE, scrypt_n=FAST)
    store.put("kind", "key", {"v": "kept"})
    store.close()
    salt = os.urandom(16)
    keys = _StoreKeys.derive(PASSPHRASE, salt, 2**15, 8, 1)
    nonce = os.urandom(12)
    check = nonce + AESGCM(keys.record).encrypt(nonce, b"covey/store-check/v1", b"check")
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM records")
        conn.executemany("UPDATE meta SET value = ? WHERE name = ?", [
            (salt, "salt"), (json.dumps({"n": 2**15, "r": 8, "p": 1}).encode(), "scrypt"),
            (check, "check")])
    old = Store.open(path, PASSPHRASE)
    old.put("kind", "key", {"v": "new"})
    assert old.get("kind", "key") == {"v": "new"}
    old.close()
    with pytest.raises(WrongPassphrase):
        Store.open(path, "another passphrase")


def test_a_second_process_cannot_open_the_store(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store.create(path, PASSPHRASE, scrypt_n=FAST)
    code = ("import sys\nfrom covey.client._store import Store, StoreError\n"
            "try:\n    Store.open(sys.argv[1], sys.argv[2])\n"
            "except StoreError as exc:\n    print(exc.code, exc.message)\n    sys.exit(3)\n")
    other = subprocess.run([sys.executable, "-c", code, str(path), PASSPHRASE],
                           capture_output=True, text=True, timeout=60)
    assert other.returncode == 3, other.stderr
    assert other.stdout.startswith("store_locked") and "another process" in other.stdout
    with pytest.raises(StoreError) as here:  # nor this one, twice
        Store.open(path, PASSPHRASE)
    assert here.value.code == "store_locked"
    store.close()
    Store.open(path, PASSPHRASE).close()  # closed: free again


async def test_opening_derives_the_key_off_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store.create(path, PASSPHRASE, scrypt_n=FAST).close()
    store = await Store.open_in_thread(path, PASSPHRASE)
    store.close()
