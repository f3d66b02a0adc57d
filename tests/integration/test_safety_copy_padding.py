"""Stored safety copies give away no message's exact length: on a real server, the sealed
size of every copy is the HPKE overhead plus a power-of-two bucket, the same for
messages of different lengths in one bucket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from covey.protocol.content import MIN_BUCKET
from covey.protocol.safety_copy import ENC_BYTES, TAG_BYTES
from tests.integration._safety import People, band_issuer, people, trust_band_issuer

__all__ = ["band_issuer", "people", "trust_band_issuer"]

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


async def test_stored_safety_copies_are_padded_to_buckets(people: People,
                                                          covey_server: Any) -> None:
    adult, kid = await people.adult("ada"), await people.child("kid")
    request_id = await adult.request_contact(kid.user_id)
    await kid.accept_contact(request_id)
    texts = ["hi", "see you at the library", "x" * 20, "y" * 700, "z" * 5000]
    for text in texts:
        await adult.send_text(kid.user_id, text)
        assert (await kid.next_message(within_s=15)).text == text
    rows = await asyncio.to_thread(covey_server.rows,
                                   "SELECT length(sealed) FROM safety_copies ORDER BY id")
    buckets = [int(r[0]) - ENC_BYTES - TAG_BYTES for r in rows]
    assert len(buckets) == len(texts)
    for bucket in buckets:
        assert bucket >= MIN_BUCKET and bucket & (bucket - 1) == 0, buckets
    # The three short texts share one size; the longer ones move up whole buckets.
    assert len(set(buckets[:3])) == 1 and buckets[3] > buckets[0] and buckets[4] > buckets[3]
