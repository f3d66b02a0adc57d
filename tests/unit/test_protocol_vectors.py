"""The franking test vectors published in docs/protocol.md.

Each vector is checked twice: our functions must produce the documented bytes and
MACs, and an independent HMAC over the documented bytes must give the same MAC.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from covey.protocol import (
    FrankingContext,
    FrankingKey,
    MessageContent,
    ServerFrankingKey,
    TagContext,
    commit,
    server_tag,
)
from covey.protocol.franking import commitment_input, tag_input

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

FK = FrankingKey(bytes(range(32)))
SERVER_KEY = ServerFrankingKey(bytes([0xA5]) * 32)
CONTENT = MessageContent(
    kind="text",
    message_id="AAAAAAAAAAAAAAAAAAAAAA",
    conversation_id="dm:alice:bob",
    sent_at_ms=1767225600000,
    text="Hello, Bob! \N{WAVING HAND SIGN}",
    franking_key=FK.to_b64(),
)
CONTEXT = FrankingContext("dm:alice:bob", "alice", "DALICE01", ("bob", "alice"))
TAG_CONTEXT = TagContext(
    sender_user="alice",
    sender_device="DALICE01",
    recipient_user="bob",
    conversation_id="dm:alice:bob",
    server_ts_ms=1767225600123,
    message_id="AAAAAAAAAAAAAAAAAAAAAA",
)


def _doc_value(name: str) -> str:
    match = re.search(rf"^{re.escape(name)}\s*=\s*(\S+)\s*$", DOC.read_text(), re.MULTILINE)
    assert match, f"{name} is missing from docs/protocol.md"
    return match.group(1)


def test_commitment_vector_matches_docs() -> None:
    data = commitment_input(CONTENT.committed_part(), CONTEXT)
    assert data.hex() == _doc_value("commit_input_hex")
    expected = _doc_value("commitment_hex")
    assert hmac.new(FK.raw, data, hashlib.sha256).hexdigest() == expected
    assert commit(FK, CONTENT.committed_part(), CONTEXT).raw.hex() == expected


def test_tag_vector_matches_docs() -> None:
    commitment = commit(FK, CONTENT.committed_part(), CONTEXT)
    data = tag_input(commitment, TAG_CONTEXT)
    assert data.hex() == _doc_value("tag_input_hex")
    expected = _doc_value("tag_hex")
    assert hmac.new(SERVER_KEY.raw, data, hashlib.sha256).hexdigest() == expected
    assert server_tag(SERVER_KEY, commitment, TAG_CONTEXT).raw.hex() == expected


def test_padded_plaintext_vector_matches_docs() -> None:
    assert str(len(CONTENT.to_bytes())) == _doc_value("plaintext_len")
    from covey.protocol import pad

    assert str(len(pad(CONTENT.to_bytes()))) == _doc_value("padded_len")
