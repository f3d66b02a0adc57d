"""`covey demo` is the README's first command: it must run to the end on a fresh machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    # Every device store the demo makes would derive a full-strength key otherwise.
    env.update(COLUMNS="200", HOME=str(tmp_path), COVEY_TEST_FAST_KDF="1")
    result = subprocess.run([sys.executable, "-m", "covey", "demo"], capture_output=True,
                            text=True, timeout=240, env=env, cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
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
    # The visibility audit, the same workload in each mode, side by side.
    assert "reuses frank's, grace's and emma's wallets" in flat
    assert "┃ ┃ safeguarded ┃ on-device ┃ e2ee-only ┃" in flat
    assert "children's messages in safeguarded only and adults' in no mode" in flat
