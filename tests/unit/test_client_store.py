"""The encrypted local store: records round-trip, nothing readable on disk, wrong
passphrase refused, transactions all-or-nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from covey.client._store import Store, StoreError, WrongPassphrase
from tests.support.fake_server import PASSPHRASE, TEST_SCRYPT_N, FakeServer


def _raw_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    for extra in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        if extra.exists():
            data += extra.read_bytes()
    return data


def test_records_roundtrip_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store.create(path, PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
    with store.transaction():
        store.put("notes", "b", {"n": 2})
        store.put("notes", "a", {"n": 1})
        store.put("notes", "b", {"n": 3})  # update keeps its place
    assert store.get("notes", "a") == {"n": 1}
    assert [r["n"] for r in store.items("notes")] == [3, 1]
    store.delete("notes", "a")
    assert not store.has("notes", "a")
    store.close()
    again = Store.open(path, PASSPHRASE)
    assert again.items("notes") == [{"n": 3}]


def test_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store.create(path, PASSPHRASE, scrypt_n=TEST_SCRYPT_N).close()
    with pytest.raises(WrongPassphrase) as info:
        Store.open(path, "not the passphrase")
    assert info.value.code == "wrong_passphrase"
    with pytest.raises(StoreError):
        Store.open(tmp_path / "missing.db", PASSPHRASE)
    with pytest.raises(StoreError):
        Store.create(path, PASSPHRASE)


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "s.db", PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
    with pytest.raises(RuntimeError), store.transaction():
        store.put("k", "x", {"v": 1})
        raise RuntimeError("boom")
    assert store.get("k", "x") is None


def test_store_file_holds_no_plaintext_or_keys(tmp_path: Path) -> None:
    server = FakeServer(tmp_path)
    alice, bob = server.new_device("alice"), server.new_device("bob")
    gid = server.create_group("family", "alice", ["bob"]).group_id
    server.send(alice, "bob", "the secret meeting point is the old mill")
    server.send(alice, gid, "group secret: blue door")
    server.deliver(bob)
    server.send(bob, "alice", "reply with zebra crossing")
    server.deliver(alice)
    for core in (alice, bob):
        path = Path(core.store._conn.execute("PRAGMA database_list").fetchone()[2])
        record = core.history()[0]
        fk = record["content"]["franking_key"]
        identity = core.device_keys().identity_key
        pickles = [s["pickle"] for s in core.store.items("megolm_in")]
        pickles += [core.store.get("device", "self")["account"]]  # type: ignore[index]
        core.store.close()
        raw = _raw_bytes(path)
        for needle in ("secret meeting", "blue door", "zebra", "alice", "bob", "family",
                       core.device_id, fk, identity, gid):
            assert needle.encode() not in raw, needle
        assert core.store.pickle_key.raw not in raw
        for pickle in pickles:
            assert pickle.encode()[:32] not in raw


def test_the_key_is_the_rfc_7914_scrypt_of_before(tmp_path: Path) -> None:
    """Stores made with `cryptography`'s scrypt open with hashlib's (which lets go of the
    GIL): same parameters, same bytes."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    from covey.client._store import SCRYPT_N, SCRYPT_P, SCRYPT_R, _StoreKeys

    salt = bytes(range(16))
    ours = _StoreKeys.derive(PASSPHRASE, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    master = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R,
                    p=SCRYPT_P).derive(PASSPHRASE.encode())
    assert _StoreKeys.from_master(master).record == ours.record
    assert SCRYPT_N >= 2**15 and SCRYPT_R >= 8  # never weaker than it was


async def test_a_store_created_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    creating = Store.create_in_background(path, PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
    assert path.exists()  # the file is there (and refusals raised) before the key
    with pytest.raises(StoreError) as taken:
        Store.create_in_background(path, PASSPHRASE, scrypt_n=TEST_SCRYPT_N)
    assert taken.value.code == "store_exists"
    store = await creating
    store.put("notes", "a", {"n": 1})
    store.close()
    assert Store.open(path, PASSPHRASE).get("notes", "a") == {"n": 1}
    with pytest.raises(StoreError) as empty:
        Store.create_in_background(tmp_path / "t.db", "", scrypt_n=TEST_SCRYPT_N)
    assert empty.value.code == "bad_passphrase"
