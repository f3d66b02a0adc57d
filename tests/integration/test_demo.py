"""`covey demo` is the README's first command: it must run to the end on a fresh machine,
read well in an 80- and a 120-column terminal and in a file (no line longer than the
width, no Python reprs, every term explained once), and end with what to try next."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

from covey.cli._demo_common import GLOSSARY

_REPR = re.compile(r"[{\[]'|': |\{\"|\": ")


def _demo(tmp_path: Path, columns: int, *, to_file: bool) -> str:
    """The demo's output at `columns`, written to a file or read from a pipe."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    # Every device store the demo makes would derive a full-strength key otherwise.
    env.update(COLUMNS=str(columns), HOME=str(tmp_path), COVEY_TEST_FAST_KDF="1")
    command = [sys.executable, "-m", "covey", "demo"]
    if to_file:
        out_file = tmp_path / "demo.txt"
        with out_file.open("w", encoding="utf-8") as sink:
            result = subprocess.run(command, stdout=sink, stderr=subprocess.PIPE, text=True,
                                    timeout=560, env=env, cwd=tmp_path)
        out = out_file.read_text(encoding="utf-8") + result.stderr
    else:
        result = subprocess.run(command, capture_output=True, text=True, timeout=560,
                                env=env, cwd=tmp_path)
        out = result.stdout + result.stderr
    assert result.returncode == 0, out
    return out


def _check_layout(out: str, columns: int) -> None:
    too_long = [line for line in out.splitlines() if cell_len(line) > columns]
    assert not too_long, too_long[:5]
    assert "\x1b[" not in out  # no terminal escapes in a pipe or a file
    assert not _REPR.search(out), _REPR.search(out)
    for term in GLOSSARY:
        assert out.count(f"▸ {term}:") == 1, term
    # The check marks of a received message never break across lines.
    assert out.count("✓ commitment ✓ tag") >= 14
    flat = " ".join(out.split())
    # The audit measures ciphertext the server holds for offline devices, in every mode.
    held = re.findall(r"ciphertext held \(unreadable\) / 1,000 │ ([\d,]+) │ ([\d,]+) │ "
                      r"([\d,]+) │", flat)
    assert len(held) == 2 and all(n != "0" for row in held for n in row), held
    tail = out[out.rindex("Done"):]
    assert "What to try next" in tail and "covey register" in tail, tail


@pytest.mark.slow
@pytest.mark.timeout(600)  # under load the demo's four servers start slowly
def test_demo_fits_an_80_column_terminal(tmp_path: Path) -> None:
    out = _demo(tmp_path, 80, to_file=False)
    _check_layout(out, 80)
    assert "none of them is there" in out
    assert "bundle verified offline" in out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_runs_end_to_end_into_a_file_at_120_columns(tmp_path: Path) -> None:
    out = _demo(tmp_path, 120, to_file=True)
    _check_layout(out, 120)
    assert "none of them is there" in out
    assert "carol received nothing" in out
    assert out.count("✓ commitment") >= 14
    assert "plaintext found" not in out and "DIFFERENT" not in out
    assert "Bob received 2 Megolm session keys" in out
    # Age assurance: both bands from a real issuer, a replay refused, a revoked credential.
    assert "dave proved 16+" in out and "emma proved under-16" in out
    assert "covey issuer approve" in out
    assert "replay 409 nonce_used" in out
    assert "credential_revoked" in out and "409 revocation_stale" in out
    assert "still proved" not in out
    # Reporting: verified, a forged report refused, escalated, the bundle checked offline.
    assert "5 of 5 messages verified by the server" in out
    assert "422 report_unverifiable" in out and "commitment_mismatch" in out
    assert "Escalated: evidence bundle" in out
    assert "bundle verified offline" in out and "NOT verified" not in out
    # Safety policy: scenes 1-4 in e2ee-only, then safeguarded; the policy each client shows.
    flat = " ".join(out.split())  # long lines wrap at the terminal width
    assert "Scenes 1 to 4 show the messaging core with the operator's e2ee-only mode" in flat
    assert "frank 16+, grace 16+" in flat
    assert "banner end-to-end encrypted" in flat
    assert "safety copies stored for dm:frank:grace: 0 " in flat
    assert "banner safeguarded (on tap: the safety service can read this conversation" in flat
    assert "2 messages, safety copies stored for dm:emma:frank: 2 " in flat
    # An unverified account cannot reach the child: search, request and message refused.
    assert "find emma by handle │ refused: 404 not_found" in flat
    assert "send emma a contact request │ withheld (never shown to her)" in flat
    assert "from frank (16 or over)" in flat
    assert "send emma a direct message │ refused: 404" in flat
    assert "allowed" not in out and "frank messaged emma" not in out
    assert "before she accepted him as a contact: refused:" in flat
    # The guardian: linked with consent, alerted to the new contact and the detection.
    assert "grace accepted: active" in flat
    # Grooming: the benign chat flags nothing; moving apps plus secrecy gets emma a notice
    # (with one-tap block-and-report and a help link) and grace an alert.
    assert "The chat above about the game: 0 notices, nothing flagged" in flat
    assert "emma's client shows in the conversation (" in flat
    assert "another app" in flat and "[Block and report]" in flat and "help: https://" in flat
    assert "no safety notice reached emma" not in flat
    assert "│ kind │ high_risk_detection │ contact_accepted │" in flat
    assert "│ detector │ grooming │ — │" in flat
    assert "│ category │ grooming_or_enticement │ — │" in flat
    assert "none of the 24 fields holds message text" in flat
    # Known images: a banked test image withheld from the child and reported; a benign one
    # passes.
    assert "known-test-image.png: emma's client shows withheld for safety" in flat
    assert "holiday.png: emma's client shows verified" in flat
    assert "known image (bank demo-known, PDQ distance 0), priority 4" in flat
    # The visibility audit, the same workload in each mode, side by side.
    assert "reuses frank's, grace's and emma's wallets" in flat
    assert "┃ ┃ safeguarded ┃ on-device ┃ e2ee-only ┃" in flat
    assert "children's messages in safeguarded only and adults' in no mode" in flat
