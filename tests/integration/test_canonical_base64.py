"""A real `covey server` (SQLite and PostgreSQL) refuses a non-canonical base64 spelling of
a 32-byte value with a 4xx naming the field, and stores nothing."""

from __future__ import annotations

import secrets

import httpx
import pytest

from covey.protocol._encoding import b64encode
from tests.integration._raw import dm_envelope, register

pytestmark = pytest.mark.opaque_envelopes

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def test_a_non_canonical_commitment_is_refused(covey_server) -> None:  # type: ignore[no-untyped-def]
    alice, bob = register(covey_server.url, "alice"), register(covey_server.url, "bob")
    canonical = b64encode(secrets.token_bytes(32))
    # The same 32 bytes with one of the two spare bits of the last character set.
    other = canonical[:-1] + _ALPHABET[_ALPHABET.index(canonical[-1]) | 1]
    assert other != canonical
    with httpx.Client(base_url=covey_server.url, timeout=30) as http:
        refused = http.post("/v1/messages", headers=alice.headers, json=dm_envelope(
            alice, [bob], peer=bob.user_id, commitment=other))
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_request"
        assert "commitment" in error["message"]
        accepted = http.post("/v1/messages", headers=alice.headers, json=dm_envelope(
            alice, [bob], peer=bob.user_id, commitment=canonical))
        assert accepted.status_code == 201, accepted.text
