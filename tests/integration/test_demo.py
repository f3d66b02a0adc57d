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
    env.update(COLUMNS="200", HOME=str(tmp_path))
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
