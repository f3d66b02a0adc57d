"""The relay's files at rest, on a real `covey server`'s disk: the data directory and
everything under it private (0700 directories, 0600 files: keys, blobs, escalation
packages), the SQLite database with its -wal and -shm 0600, and escalation packages
sealed under the reports key, readable only through an authorised console download."""

from __future__ import annotations

import asyncio
import io
import stat
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from covey.moderation import ReportCategory, load_public_key, verify_bundle
from tests.integration._console import console_login, create_console_user
from tests.integration.test_client_e2e import Devices, receive

pytestmark = pytest.mark.timeout(240)

SECRET_LINE = "keep this between us, send me a picture"
IMAGE = b"\x89PNG\r\n\x1a\n" + b"generated test image, no real content " * 40


@pytest.fixture
async def devices(covey_server: Any, tmp_path: Path) -> Any:
    made = Devices(covey_server, tmp_path / "clients")
    made.tmp.mkdir()
    yield made
    await made.close_all()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _modes_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): _mode(p) for p in [root, *root.rglob("*")]}


def _check_disk(covey_server: Any, report_id: str) -> None:
    """Modes under the data dir and of the SQLite files; the package holds no plaintext."""
    data_dir = covey_server.data_dir
    modes = _modes_under(data_dir)
    assert any(name.startswith("blobs/") for name in modes), modes
    package = data_dir / "escalations" / report_id
    assert package.is_dir()
    for name, mode in modes.items():
        is_dir = (data_dir / name).is_dir()
        assert mode == (0o700 if is_dir else 0o600), (name, oct(mode))
    if "sqlite" in covey_server.database_url:
        database = Path(covey_server.database_url.split("///", 1)[1])
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{database}{suffix}")
            assert path.exists(), path
            assert _mode(path) == 0o600, (path, oct(_mode(path)))

    # The package is sealed: no plaintext, no zip, no XML on disk.
    stored = {p.name: p.read_bytes() for p in package.iterdir()}
    assert "evidence-bundle.zip.sealed" in stored, sorted(stored)
    for name, data in stored.items():
        assert SECRET_LINE.encode() not in data and b"generated test image" not in data
        assert not data.startswith(b"PK") and b"<?xml" not in data, name


async def test_data_directory_database_and_packages_are_private(
        covey_server: Any, devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    await alice.send_attachment("bob", IMAGE, name="photo.png", mime="image/png")
    last = await alice.send_text("bob", SECRET_LINE)
    await receive(bob, 2)
    receipt = await bob.report(last, ReportCategory.GROOMING_OR_ENTICEMENT)
    await asyncio.to_thread(create_console_user, covey_server, "mod", "moderator")
    mod, csrf = await asyncio.to_thread(console_login, covey_server, "mod")
    done = mod.post(f"/console/reports/{receipt.report_id}/action", data={
        "action": "escalate", "csrf": csrf, "confirm": "yes", "reason": "verified"})
    assert done.status_code == 303 and done.headers["location"].endswith("escalated")

    await asyncio.to_thread(_check_disk, covey_server, receipt.report_id)
    # An authorised download decrypts it: the bundle verifies offline.
    bundle = mod.get(f"/console/reports/{receipt.report_id}/files/evidence-bundle.zip")
    assert bundle.status_code == 200 and zipfile.is_zipfile(io.BytesIO(bundle.content))
    key = mod.get("/console/attestation-key.pem").content
    assert verify_bundle(bundle.content, load_public_key(key)).ok
    anonymous = await asyncio.to_thread(
        httpx.get, f"{covey_server.url}/console/reports/{receipt.report_id}/files/"
        "evidence-bundle.zip", trust_env=False)
    assert anonymous.status_code == 303  # to the login page, nothing served
    audit = await asyncio.to_thread(
        covey_server.rows, "SELECT detail FROM audit_log WHERE action = 'download'")
    assert ("evidence-bundle.zip",) in audit

    await asyncio.to_thread(_loosened_files_are_tightened_at_start, covey_server)


def _loosened_files_are_tightened_at_start(covey_server: Any) -> None:
    """Files left wider (say by an older version) are made private at the next start."""
    data_dir = covey_server.data_dir
    loose = data_dir / "blobs" / "left-by-an-old-version"
    loose.write_bytes(b"x")
    loose.chmod(0o644)
    data_dir.chmod(0o755)
    covey_server.restart()
    assert _mode(loose) == 0o600 and _mode(data_dir) == 0o700
