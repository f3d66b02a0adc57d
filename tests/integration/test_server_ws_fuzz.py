"""Fuzz the delivery WebSocket with generated frames: every bad frame gets an error frame
naming the problem, nothing crashes, and the socket keeps working afterwards."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from covey.protocol.wire import CLIENT_FRAME, AckFrame
from tests.support.raw import dm_envelope, frames_until, register

pytestmark = pytest.mark.opaque_envelopes

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


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


def _expects_answer(text: str) -> bool:
    """Every frame gets an answer except one the wire model reads as an ack (acks are
    silent; the model is lax, so `[1.0]` or `["1"]` are acks too)."""
    try:
        frame = CLIENT_FRAME.validate_json(text)
    except ValidationError:
        return True
    return not isinstance(frame, AckFrame)
