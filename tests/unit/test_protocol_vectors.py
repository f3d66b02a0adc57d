"""The test vectors published in docs/protocol.md: franking, and the signed safety
statements (conversation policy, safety service key, on-device rules).

Each vector is checked twice: our functions must produce the documented bytes and
MACs or signatures, and an independent computation (HMAC; plain sorted JSON and an
Ed25519 verification) over the documented bytes must agree.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from covey.age import AgeBand
from covey.client._policy import check_on_device_rules, check_safety_keys, check_statement
from covey.protocol import (
    FrankingContext,
    FrankingKey,
    MessageContent,
    ServerFrankingKey,
    TagContext,
    commit,
    server_tag,
)
from covey.protocol._encoding import b64decode, b64encode
from covey.protocol.franking import commitment_input, tag_input
from covey.protocol.safety_copy import SafetyServicePrivateKey
from covey.protocol.wire import OnDeviceRules, PolicyStatement, SafetyKeys
from covey.safety.detectors import rules_version
from covey.safety.policy import (
    PolicyConfig,
    conversation_policy,
    on_device_rules_bytes,
    safety_keys_statement_bytes,
)

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


# --- signed safety statements (docs/protocol.md, "Safety statement vectors") ------------

POLICY_SIGNING_SEED = bytes([0x11]) * 32
SAFETY_SERVICE_SECRET = bytes([0x22]) * 32
POLICY_ISSUED_AT_MS = 1767225600000
ON_DEVICE_PHRASES = "[high] keep this our secret\n"


def _independent_labelled(label: str, value: dict[str, object]) -> bytes:
    # The vectors are ASCII, so sorted-key compact JSON is their RFC 8785 form.
    return (f"covey/{label}/v1".encode() + b"\x00"
            + json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def _signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(POLICY_SIGNING_SEED)


def _check_signature(statement: bytes, name: str) -> None:
    signature = _doc_value(name)
    public = _signing_key().public_key()
    assert b64encode(public.public_bytes_raw()) == _doc_value("policy_signing_key_b64")
    public.verify(b64decode(signature), statement)  # raises if it does not verify
    assert b64encode(_signing_key().sign(statement)) == signature  # Ed25519 is deterministic


def test_policy_statement_vector_matches_docs() -> None:
    policy = conversation_policy({"alice": AgeBand.SIXTEEN_PLUS, "kid": AgeBand.UNDER_16},
                                 PolicyConfig())
    statement = policy.statement_bytes("dm:alice:kid", 0, POLICY_ISSUED_AT_MS)
    assert statement.hex() == _doc_value("policy_statement_hex")
    assert statement == _independent_labelled("conversation-policy", {
        "conversation_id": "dm:alice:kid", "epoch": 0, "issued_at_ms": POLICY_ISSUED_AT_MS,
        "policy": policy.to_json()})
    _check_signature(statement, "policy_signature_b64")
    wire = PolicyStatement(conversation_id="dm:alice:kid", epoch=0,
                           issued_at_ms=POLICY_ISSUED_AT_MS, policy=policy.to_json(),
                           signature=_doc_value("policy_signature_b64"))
    check_statement(wire, _doc_value("policy_signing_key_b64"))  # what clients run


def test_safety_keys_vector_matches_docs() -> None:
    public = SafetyServicePrivateKey(SAFETY_SERVICE_SECRET).public_key()
    assert public.to_b64() == _doc_value("safety_service_key_b64")
    assert public.key_id() == _doc_value("safety_service_key_id")
    assert public.key_id() == hashlib.sha256(_independent_labelled(
        "safety-key", {"x25519": public.to_b64()})).digest()[:16].hex()
    statement = safety_keys_statement_bytes(public.to_b64(), public.key_id(), "safeguarded")
    assert statement.hex() == _doc_value("safety_keys_statement_hex")
    assert statement == _independent_labelled("safety-service-key", {
        "x25519": public.to_b64(), "key_id": public.key_id(), "mode": "safeguarded"})
    _check_signature(statement, "safety_keys_signature_b64")
    keys = SafetyKeys(policy_signing_key=_doc_value("policy_signing_key_b64"),
                      safety_service_key=public.to_b64(),
                      safety_service_key_id=public.key_id(), mode="safeguarded",
                      signature=_doc_value("safety_keys_signature_b64"))
    check_safety_keys(keys, None)  # first use
    check_safety_keys(keys, _doc_value("policy_signing_key_b64"))  # pinned


def test_on_device_rules_vector_matches_docs() -> None:
    rules = {"phrase_list": ON_DEVICE_PHRASES}
    version = rules_version(rules)
    assert version == hashlib.sha256(json.dumps(rules, sort_keys=True, separators=(
        ",", ":")).encode()).hexdigest()
    statement = on_device_rules_bytes("on-device", version, rules)
    assert statement.hex() == _doc_value("on_device_rules_hex")
    assert statement == (b"covey/on-device-rules/v2\x00" + json.dumps(
        {"mode": "on-device", "version": version, "detectors": rules}, sort_keys=True,
        separators=(",", ":")).encode())
    _check_signature(statement, "on_device_rules_signature_b64")
    check_on_device_rules(OnDeviceRules(mode="on-device", version=version, detectors=rules,
                                        signature=_doc_value("on_device_rules_signature_b64")),
                          _doc_value("policy_signing_key_b64"))
