"""Smoke: a real server starts, registers, logs in and relays one message both ways."""

from __future__ import annotations

import httpx
import pytest

from tests.support.raw import dm_envelope, frames_until, register

pytestmark = pytest.mark.opaque_envelopes


@pytest.mark.shared_server
def test_health_and_openapi(covey_server):
    health = httpx.get(f"{covey_server.url}/healthz").json()
    assert health["status"] == "ok"
    # No registry is configured for this server: nothing to be stale, nothing trusted.
    assert set(health) == {"status", "trust_registry"}
    spec = httpx.get(f"{covey_server.url}/openapi.json").json()
    assert "/v1/messages" in spec["paths"]


@pytest.mark.shared_server
def test_send_and_receive_over_websocket(covey_server):
    alice = register(covey_server.url, "alice")
    bob = register(covey_server.url, "bob")
    env = dm_envelope(alice, [bob], peer=bob.user_id)
    with alice.ws(covey_server.ws_url) as a, bob.ws(covey_server.ws_url) as b:
        import json
        a.send(json.dumps({"type": "send", "envelope": env}))
        sent = frames_until(a, lambda fs: any(f["type"] == "sent" for f in fs))
        receipt = next(f for f in sent if f["type"] == "sent")["receipt"]
        assert receipt["message_id"] == env["message_id"] and not receipt["duplicate"]
        got = frames_until(b, lambda fs: any(f["type"] == "delivery" for f in fs))
        delivery = next(f for f in got if f["type"] == "delivery")["delivery"]
        assert delivery["message_id"] == env["message_id"]
        assert delivery["body"] == env["recipients"][0]["body"]
        assert delivery["participants"] == sorted([alice.user_id, bob.user_id])
