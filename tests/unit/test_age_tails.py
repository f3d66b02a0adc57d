"""Tails-file names and locations chosen by an issuer: checked before they name a file."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest

from covey.age import TrustedIssuer
from covey.age.tails import check_tails_hash, check_tails_url, tails_digest, tails_path
from covey.errors import InvalidInput
from tests.unit._age_fixtures import covey_issuer

GOOD = tails_digest(b"tails")


@pytest.mark.parametrize("value", [
    "../../x", "..", "/etc/passwd", "a/b", "", "0" * 44, "l" * 44,  # 0 and l: not base58
    GOOD + "1",  # 33 bytes
    GOOD[:20],  # 15 bytes or so
    "1" + GOOD,  # a leading zero byte too many: not canonical
    42,
])
def test_what_is_not_a_tails_hash(value: object) -> None:
    with pytest.raises(InvalidInput):
        check_tails_hash(value)


def test_a_tails_hash_is_base58_of_sha256_and_stays_in_its_directory(tmp_path: Path) -> None:
    assert check_tails_hash(GOOD) == GOOD
    assert len(GOOD) in (43, 44)
    assert tails_path(tmp_path, GOOD) == (tmp_path / GOOD).resolve()
    with pytest.raises(InvalidInput, match="tailsHash"):
        check_tails_hash(GOOD, tails_digest(b"other"))
    with pytest.raises(InvalidInput):
        tails_path(tmp_path, "../../x")
    zero = tails_digest(b"")  # any digest, including ones with leading zero bytes
    assert check_tails_hash(zero) == zero
    leading = next(bytes([0, i]) for i in range(256)
                   if hashlib.sha256(bytes([0, i])).digest()[0] == 0)
    assert tails_digest(leading).startswith("1")
    assert check_tails_hash(tails_digest(leading))


def test_a_registry_entry_naming_its_tails_file_otherwise_is_refused() -> None:
    entry = covey_issuer().publish()
    assert TrustedIssuer.from_entry(entry).revocation is not None
    for name, definition in [("../../x", "../../x"),  # a malicious issuer makes them agree
                             (GOOD, entry["revocation"]["rev_reg_def"]["value"]["tailsHash"])]:
        bad = copy.deepcopy(entry)
        bad["revocation"]["tails_hash"] = name
        bad["revocation"]["rev_reg_def"]["value"]["tailsHash"] = definition
        with pytest.raises(InvalidInput, match="tails"):
            TrustedIssuer.from_entry(bad)


@pytest.mark.parametrize(("url", "ok"), [
    ("https://issuer.example/v1/tails/x", True),
    ("http://127.0.0.1:8480/v1/tails/x", True),
    ("http://localhost/v1/tails/x", True),
    ("http://[::1]:1/v1/tails/x", True),
    ("http://issuer.example/v1/tails/x", False),
    ("http://10.0.0.1/v1/tails/x", False),
    ("file:///etc/passwd", False),
    ("ftp://issuer.example/x", False),
])
def test_tails_are_downloaded_over_https_or_loopback_only(url: str, ok: bool) -> None:
    if ok:
        assert check_tails_url(url) == url
    else:
        with pytest.raises(InvalidInput):
            check_tails_url(url)
