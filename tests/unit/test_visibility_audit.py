"""The visibility measurement on a database of known rows: a SQLite file created by the
real migrations, filled through SQLAlchemy Core, measured read-only (bytes per 1,000
messages for adults and children), and the `covey audit visibility` command on it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import BigInteger, Integer, LargeBinary, SmallInteger, String, insert
from typer.testing import CliRunner

import covey.cli.audit  # noqa: F401  (registers the command)
from covey.cli import app
from covey.errors import InvalidInput
from covey.safety.policy import PolicyMode
from covey.safety.visibility import CATALOG, Audience, Visibility
from covey.server.audit import VisibilityReport, load_schema, measure_visibility
from covey.server.storage import create_engine, upgrade_to_head

NOW = int(time.time() * 1000)  # the command measures at the real time
DAY = 86_400_000
T = load_schema().tables

USERS = ("ann", "bob", "kit", "kay", "una", "old")
BANDS = [("ann", "16+", NOW + DAY), ("bob", "16+", NOW + DAY), ("kit", "under-16", NOW + DAY),
         ("kay", "under-16", NOW + DAY), ("old", "16+", NOW - DAY)]  # una: unverified
# (conversation, participants, sender, message id, group?, mailbox bodies, copy plaintext)
MESSAGES: list[tuple[str, list[str], str, str, bool, list[str], int | None]] = [
    ("dm:ann:bob", ["ann", "bob"], "ann", "M1", False, ["x" * 512], None),
    ("dm:ann:bob", ["ann", "bob"], "bob", "M2", False, [], None),  # acknowledged
    ("dm:ann:bob", ["ann", "bob"], "ann", "M3", False, ["y" * 1024, "z" * 512], None),
    ("g:birds", ["ann", "bob"], "bob", "M4", True, ["", ""], None),
    ("dm:kay:kit", ["kay", "kit"], "kit", "M5", False, ["x" * 512], 100),
    ("dm:kay:kit", ["kay", "kit"], "kay", "M6", False, [], 250),
    ("dm:ann:una", ["ann", "una"], "una", "M7", False, ["w" * 256], 50),
    ("dm:ann:old", ["ann", "old"], "ann", "M8", False, ["v" * 256], None),  # expired 16+
]
ORPHAN_COPY = 10  # a copy whose message row is gone


def _size(column: Any, value: Any) -> int:
    if value is None:
        return 0
    if isinstance(column.type, String):
        return len(str(value).encode())
    if isinstance(column.type, LargeBinary):
        return len(value)
    if isinstance(column.type, BigInteger):
        return 8
    if isinstance(column.type, SmallInteger):
        return 2
    assert isinstance(column.type, Integer)
    return 4


class Expected:
    """What the measurement must find, summed in Python from the rows inserted."""

    def __init__(self) -> None:
        self.bytes = {a: {"metadata": 0, "plaintext": 0, "ciphertext": 0, "commitment": 0}
                      for a in Audience}

    def add(self, audience: Audience, table: str, row: dict[str, Any]) -> None:
        entry = CATALOG[table]
        for name, value in row.items():
            spec = entry.columns[name]
            size = _size(T[table].c[name], value)
            key = {Visibility.CIPHERTEXT: "ciphertext", Visibility.COMMITMENT: "commitment",
                   Visibility.PLAINTEXT_READABLE: "plaintext"}.get(spec.visibility,
                                                                    "metadata")
            if spec.sealed_overhead and value is not None:
                size -= spec.sealed_overhead
            self.bytes[audience][key] += size


def _audience(participants: list[str]) -> Audience:
    adults = {"ann", "bob"}
    return Audience.ADULTS if set(participants) <= adults else Audience.CHILDREN


async def _fill(url: str) -> Expected:
    engine = create_engine(url)
    expected = Expected()
    try:
        await upgrade_to_head(engine)
        async with engine.begin() as conn:
            await conn.execute(insert(T["users"]), [
                {"user_id": u, "created_ms": NOW - DAY} for u in USERS])
            devices = {}
            for n, user in enumerate(USERS, start=1):
                devices[user] = n
                await conn.execute(insert(T["devices"]).values(
                    id=n, user_id=user, device_id=f"D{user.upper()}", identity_key="i" * 43,
                    signing_key="s" * 43, signature="g" * 86, created_ms=NOW - DAY))
            await conn.execute(insert(T["age_bands"]), [
                {"user_id": u, "band": b, "expires_ms": e, "issuer_id": "did:web:i.example",
                 "verified_ms": NOW - DAY} for u, b, e in BANDS])
            await conn.execute(insert(T["groups"]).values(
                group_id="g:birds", name="Bird club", epoch=0, created_ms=NOW - DAY))
            seq = 0
            for pk, (conv, parts, sender, mid, group, bodies, plain) in enumerate(
                    MESSAGES, start=1):
                audience = _audience(parts)
                message = {
                    "id": pk, "sender_device_pk": devices[sender], "sender_user": sender,
                    # Non-ASCII metadata: counted in UTF-8 bytes, not characters.
                    "sender_device": f"D{sender.upper()}é", "message_id": mid,
                    "conversation_id": conv, "commitment": "c" * 43, "server_ts_ms": NOW - pk,
                    "participants": json.dumps(parts),
                    "group_session_id": "S" * 43 if group else None,
                    "group_body": "m" * 2048 if group else None}
                await conn.execute(insert(T["messages"]).values(**message))
                expected.add(audience, "messages", message)
                for body in bodies:
                    seq += 1
                    entry = {"seq": seq, "device_pk": devices["bob"], "message_pk": pk,
                             "olm_type": None if group else 1, "body": body or None,
                             "franking_tag": "t" * 43, "expires_ms": NOW + DAY}
                    await conn.execute(insert(T["mailbox"]).values(**entry))
                    expected.add(audience, "mailbox", entry)
                if plain is not None:
                    copy = _copy(pk, mid, conv, sender, f"D{sender.upper()}é", parts, plain)
                    await conn.execute(insert(T["safety_copies"]).values(**copy))
                    expected.add(audience, "safety_copies", copy)
            await conn.execute(insert(T["safety_copies"]).values(**_copy(
                99, "GONE", "dm:kay:kit", "kit", "DKITé", ["kay", "kit"], ORPHAN_COPY)))
    finally:
        await engine.dispose()
    return expected


def _copy(pk: int, mid: str, conv: str, sender: str, device: str, parts: list[str],
          plaintext: int) -> dict[str, Any]:
    return {"id": pk, "message_id": mid, "conversation_id": conv, "sender_user": sender,
            "sender_device": device, "participants": json.dumps(parts),
            "commitment": "c" * 43, "key_id": "k" * 32,
            "sealed": b"\x01" * (48 + plaintext), "server_ts_ms": NOW - pk,
            "expires_ms": NOW + DAY}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Expected]:
    path = tmp_path_factory.mktemp("audit") / "covey.db"
    url = f"sqlite+aiosqlite:///{path}"
    expected = asyncio.run(_fill(url))
    return url, path, expected


def _measure(url: str, mode: PolicyMode = PolicyMode.SAFEGUARDED) -> VisibilityReport:
    return asyncio.run(measure_visibility(url, mode, now_ms=NOW))


def test_counts_and_bytes_per_audience(database: tuple[str, Path, Expected]) -> None:
    url, _, expected = database
    report = _measure(url)
    adults, children = report.audiences[Audience.ADULTS], report.audiences[Audience.CHILDREN]
    assert (adults.messages, adults.mailbox_entries, adults.safety_copies) == (4, 5, 0)
    assert (children.messages, children.mailbox_entries, children.safety_copies) == (4, 3, 3)
    assert len(adults.conversations) == 2 and len(children.conversations) == 3
    for audience, tally in report.audiences.items():
        want = expected.bytes[audience]
        assert (tally.metadata, tally.plaintext, tally.ciphertext, tally.commitment) == (
            want["metadata"], want["plaintext"], want["ciphertext"], want["commitment"])
    assert adults.plaintext == 0
    assert children.plaintext == 100 + 250 + 50
    assert adults.ciphertext == 512 + 1024 + 512 + 2048
    assert children.ciphertext == 512 + 256 + 256


def test_per_thousand_messages(database: tuple[str, Path, Expected]) -> None:
    url, _, expected = database
    data = _measure(url).to_json()["audiences"]
    assert data["adults"]["per_1000_messages"]["plaintext"] == 0
    assert data["children"]["per_1000_messages"]["plaintext"] == 400 * 1000 // 4
    children = expected.bytes[Audience.CHILDREN]
    assert data["children"]["per_1000_messages"]["readable"] == round(
        (children["metadata"] + 400) * 1000 / 4)
    assert data["children"]["bytes"]["ciphertext"] == 1024


def test_copy_without_its_message_is_counted_apart(database: tuple[str, Path, Expected],
                                                   ) -> None:
    report = _measure(database[0])
    orphan = report.unmatched_copies[Audience.CHILDREN]
    assert (orphan.safety_copies, orphan.plaintext, orphan.messages) == (1, ORPHAN_COPY, 0)
    assert report.unmatched_copies[Audience.ADULTS].safety_copies == 0
    sealed = report.readable_content["safety_copies.sealed"]
    assert (sealed.rows, sealed.bytes) == (4, 400 + ORPHAN_COPY)
    assert "safety service" in sealed.readable_by
    name = report.readable_content["groups.name"]
    assert (name.rows, name.bytes) == (1, len("Bird club"))
    assert report.readable_content["reports.sealed_evidence"].rows == 0


def test_table_totals_and_findings(database: tuple[str, Path, Expected]) -> None:
    url, _, _ = database
    report = _measure(url)
    assert report.tables["messages"].rows == len(MESSAGES)
    assert report.tables["safety_copies"].rows == 4
    assert report.tables["users"].bytes == {"metadata": sum(len(u) for u in USERS)
                                            + 8 * len(USERS)}
    assert any("1 of 4 stored children's messages have no stored safety copy" in f
               for f in report.findings)
    quiet = _measure(url, PolicyMode.E2EE_ONLY)
    assert any("the mode is e2ee-only but 4 safety copies are stored" in f
               for f in quiet.findings)


def test_audit_writes_nothing(database: tuple[str, Path, Expected]) -> None:
    url, path, _ = database
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in path.parent.iterdir()}
    _measure(url)
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in path.parent.iterdir()}
    assert after == before


def test_missing_database_is_refused_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.db"
    with pytest.raises(InvalidInput, match="no SQLite database"):
        _measure(f"sqlite+aiosqlite:///{missing}")
    assert not missing.exists()


def test_command_json(database: tuple[str, Path, Expected], tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVEY_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("COVEY_SAFETY_MODE", "on-device")
    result = CliRunner().invoke(app, ["audit", "visibility", "--database-url",
                                      database[0], "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["mode"] == "on-device"  # the default comes from the settings
    assert {t["table"] for t in data["catalog"]} == set(CATALOG)
    assert data["retention_settings"]["mailbox_ttl_s"] == 30 * 86400
    measured = data["measurement"]["audiences"]
    assert measured["adults"]["messages"] == 4
    assert measured["children"]["per_1000_messages"]["plaintext"] == 100_000


def test_command_human_and_errors(database: tuple[str, Path, Expected], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVEY_CONFIG", str(tmp_path / "absent.toml"))
    runner = CliRunner()
    result = runner.invoke(app, ["audit", "visibility", "--database-url", database[0],
                                 "--mode", "e2ee-only"])
    assert result.exit_code == 0, result.output
    assert "mode e2ee-only" in result.output and "safety_copies" in result.output
    assert "readable bytes" in result.output and "message content" in result.output
    bad = runner.invoke(app, ["audit", "visibility", "--database-url", database[0],
                              "--mode", "everything"])
    assert bad.exit_code == 2 and "unknown policy mode" in bad.output
    gone = runner.invoke(app, ["audit", "visibility", "--database-url",
                               f"sqlite+aiosqlite:///{tmp_path / 'none.db'}"])
    assert gone.exit_code == 2 and "no SQLite database" in gone.output
    only = runner.invoke(app, ["audit", "visibility", "--catalog-only", "--json",
                               "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'n.db'}"])
    assert only.exit_code == 0 and json.loads(only.output)["measurement"] is None
