"""`covey evidence verify`: exit 0 and what the bundle attests; exit 1 naming what changed."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

import covey.cli.evidence  # noqa: F401  (registers the command)
from covey.cli import app
from covey.moderation import (
    Report,
    ReportCategory,
    build_bundle,
    public_key_pem,
    verify_report,
)
from covey.moderation.simulate import FrankedConversation
from covey.protocol import ServerFrankingKey

SERVER_KEY = ServerFrankingKey.generate()
ATTESTATION = Ed25519PrivateKey.generate()


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    conv = FrankedConversation(SERVER_KEY, "dm:alice:bob", ("alice", "bob"))
    conv.send("alice", "DALICE01", "what's your snapchat?")
    ref = conv.upload(b"\x89PNG generated test bytes", name="pic.png")
    conv.send("alice", "DALICE01", "send a pic", attachments=(ref,))
    items = conv.history("bob")
    report = Report(reporter="bob", reported_message_id=items[-1].message_id,
                    category=ReportCategory.GROOMING_OR_ENTICEMENT, messages=items)
    bundle = build_bundle(verify_report(report, SERVER_KEY, blobs=conv.blobs), ATTESTATION,
                          created_at_ms=1_767_312_000_000, escalated_by="mod.jane")
    key = tmp_path / "platform.pem"
    key.write_bytes(public_key_pem(ATTESTATION))
    return bundle.write(tmp_path / "bundle.zip"), key


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["evidence", "verify", *args], env={"COLUMNS": "240"})
    return result.exit_code, result.output


def test_intact_bundle_prints_what_it_attests(paths: tuple[Path, Path]) -> None:
    bundle, key = paths
    code, output = _run(str(bundle), "--public-key", str(key))
    assert code == 0, output
    assert "VERIFIED" in output
    assert "grooming_or_enticement" in output
    assert "send a pic" in output and "(reported)" in output
    assert "mod.jane" in output


def test_tampered_bundle_exits_1_naming_the_change(paths: tuple[Path, Path]) -> None:
    bundle, key = paths
    with zipfile.ZipFile(bundle) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    messages = json.loads(files["messages.json"])
    messages["messages"][0]["sender_user"] = "carol"
    files["messages.json"] = json.dumps(messages).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    bundle.write_bytes(out.getvalue())
    code, output = _run(str(bundle), "--public-key", str(key))
    assert code == 1
    assert "NOT VERIFIED" in output
    assert "/messages/0/sender_user" in output


def test_wrong_key_exits_1(paths: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, _key = paths
    other = tmp_path / "other.pem"
    other.write_bytes(public_key_pem(Ed25519PrivateKey.generate()))
    code, output = _run(str(bundle), "--public-key", str(other))
    assert code == 1
    assert "not by the given key" in output


def test_unreadable_inputs_exit_2(paths: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, key = paths
    assert _run(str(tmp_path / "missing.zip"), "--public-key", str(key))[0] == 2
    bad = tmp_path / "bad.pem"
    bad.write_text("nope")
    assert _run(str(bundle), "--public-key", str(bad))[0] == 2


def test_terminal_escapes_in_sender_text_are_shown_not_obeyed(tmp_path: Path) -> None:
    conv = FrankedConversation(SERVER_KEY, "dm:alice:bob", ("alice", "bob"))
    fake = "\x1b[2J\x1b[H\x1b[32mVERIFIED: nothing to see\x1b[0m\x9b31m\u202eevil"
    conv.send("alice", "DALICE01", fake)
    items = conv.history("bob")
    report = Report(reporter="bob", reported_message_id=items[-1].message_id,
                    category=ReportCategory.GROOMING_OR_ENTICEMENT, messages=items)
    bundle = build_bundle(verify_report(report, SERVER_KEY, blobs=conv.blobs), ATTESTATION,
                          created_at_ms=1_767_312_000_000).write(tmp_path / "b.zip")
    key = tmp_path / "platform.pem"
    key.write_bytes(public_key_pem(ATTESTATION))
    code, output = _run(str(bundle), "--public-key", str(key))
    assert code == 0, output
    assert not any(c in output for c in "\x1b\x9b\u202e")
    assert "\\x1b[2J" in output and "\\x9b" in output and "\\u202e" in output
