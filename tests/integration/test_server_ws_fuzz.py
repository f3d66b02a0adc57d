"""Fuzz the delivery WebSocket with generated frames: every bad frame gets an error frame
naming the problem, nothing crashes, and the socket keeps working afterwards."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from covey.protocol.wire import CLIENT_FRAME, AckFrame
from tests.integration._raw import dm_envelope, frames_until, register

pytestmark = pytest.mark.opaque_envelopes

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


# Lone surrogates survive json.dumps as \udXXX escapes: valid JSON text, invalid Unicode.
_surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
                      min_size=1, max_size=4)
_depth = st.integers(min_value=50, max_value=100_000)


def _deeply_nested(depth: int, where: str) -> str:
    nested = "[" * depth + "]" * depth
    return {"top": nested,
            "envelope": '{"type": "send", "envelope": ' + nested + "}",
            "field": '{"type": "send", "envelope": {"message_id": ' + nested + "}}",
            "seqs": '{"type": "ack", "seqs": ' + "[" * depth + "1" + "]" * depth + "}",
            }[where]


def _hostile_frames(alice, bob):
    """Deep nesting and lone surrogates, in every place a frame carries data."""
    base = dm_envelope(alice, [bob], peer=bob.user_id)
    return st.one_of(
        st.builds(_deeply_nested, _depth, st.sampled_from(["top", "envelope", "field",
                                                           "seqs"])),
        st.builds(lambda key, bad: json.dumps({"type": "send",
                                               "envelope": {**base, key: bad}}),
                  st.sampled_from([*sorted(base), "extra"]), _surrogates),
        st.builds(lambda bad: json.dumps({"type": "send", "envelope": {**base, bad: 1}}),
                  _surrogates),
        st.builds(lambda bad: json.dumps({"type": bad, "seqs": [1]}), _surrogates),
        st.builds(lambda bad: json.dumps({"type": "ack", "seqs": [bad]}), _surrogates),
        st.builds(lambda bad: json.dumps({bad: bad}), _surrogates),
    )


def _mutated_envelopes(alice, bob):
    base = dm_envelope(alice, [bob], peer=bob.user_id)
    return st.builds(
        lambda key, value: {"type": "send", "envelope": {**base, key: value}},
        st.sampled_from([*sorted(base), "group", "group_epoch", "extra"]), _json)


@pytest.mark.slow
def test_fuzzed_frames_get_error_frames_and_the_socket_survives(covey_server):
    covey_server.restart(env={"COVEY_RATE_SEND_BURST": "100000"})
    alice, bob = register(covey_server.url, "alice"), register(covey_server.url, "bob")
    frames_strategy = st.one_of(
        _json.map(json.dumps),
        st.builds(lambda v: json.dumps({"type": "send", "envelope": v}), _json),
        st.builds(lambda v: json.dumps({"type": "ack", "seqs": v}), _json),
        _mutated_envelopes(alice, bob).map(json.dumps),
        st.text(max_size=50),
        _hostile_frames(alice, bob),
    )
    with alice.ws(covey_server.ws_url) as sock:
        frames_until(sock, lambda fs: any(f["type"] == "keys_low" for f in fs))

        @settings(max_examples=150, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(text=frames_strategy)
        def one_frame(text: str) -> None:
            sock.send(text)
            answer = json.loads(sock.recv(timeout=10)) if _expects_answer(text) else None
            if answer is not None:
                assert answer["type"] in {"error", "sent"}, answer
                if answer["type"] == "error":
                    assert answer["error"]["code"] != "internal_error", answer
                    assert answer["error"]["message"]

        one_frame()
        env = dm_envelope(alice, [bob], peer=bob.user_id)
        sock.send(json.dumps({"type": "send", "envelope": env}))
        frames = frames_until(sock, lambda fs: any(
            f["type"] == "sent" and f["receipt"]["message_id"] == env["message_id"]
            for f in fs))
        assert frames
    log = covey_server.log()
    assert "Traceback" not in log and "unexpected error" not in log, log[-4000:]


@pytest.mark.parametrize("where", ["top", "envelope", "field", "seqs"])
def test_deep_nesting_and_lone_surrogates_get_error_frames(covey_server, where):
    """The frames that used to kill the connection, each once, in a fixed order."""
    alice, bob = register(covey_server.url, "alice"), register(covey_server.url, "bob")
    base = dm_envelope(alice, [bob], peer=bob.user_id)
    hostile = [_deeply_nested(100_000, where), _deeply_nested(300, where),
               json.dumps({"type": "send", "envelope": {**base, "message_id": "\ud800"}}),
               json.dumps({"type": "send", "envelope": {**base, "\udfff": 1}}),
               '{"type": "send", "envelope": {"message_id": "\\ud800abcdefghijklmnop"}}',
               json.dumps({"type": "ack", "seqs": ["\udc00"]})]
    with alice.ws(covey_server.ws_url) as sock:
        frames_until(sock, lambda fs: any(f["type"] == "keys_low" for f in fs))
        for text in hostile:
            sock.send(text)
            answer = json.loads(sock.recv(timeout=10))
            assert answer["type"] == "error", answer
            assert answer["error"]["code"] == "invalid_request", answer
        env = dm_envelope(alice, [bob], peer=bob.user_id)
        sock.send(json.dumps({"type": "send", "envelope": env}))
        assert frames_until(sock, lambda fs: any(f["type"] == "sent" for f in fs))
    log = covey_server.log()
    assert "Traceback" not in log and "unexpected error" not in log, log[-4000:]


def _expects_answer(text: str) -> bool:
    """Every frame gets an answer except one the wire model reads as an ack (acks are
    silent; the model is lax, so `[1.0]` or `["1"]` are acks too)."""
    try:
        frame = CLIENT_FRAME.validate_json(text)
    except ValidationError:
        return True
    return not isinstance(frame, AckFrame)
