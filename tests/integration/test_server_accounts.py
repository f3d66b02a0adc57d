"""Accounts, devices and login against a real server: registration, challenges, tokens,
link tokens for a second device."""

from __future__ import annotations

import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.raw import RawDevice, frames_until, new_handle, register


@pytest.mark.shared_server
def test_register_login_and_device_list(covey_server):
    alice = RawDevice(covey_server.url, new_handle("alice")).register().login()
    with alice.http() as c:
        r = c.get(f"/v1/users/{alice.user_id}/devices", headers=alice.headers)
        assert r.status_code == 200
        [device] = r.json()["devices"]
        assert device == alice.device_keys() | {"signature": device["signature"]}
        assert device["signing_key"] == alice.signing_key
        again = c.post("/v1/accounts", json={"device": RawDevice(
            covey_server.url, alice.user_id).device_keys()})
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "handle_taken"
        # The one answer for an unknown account and one the contact rules hide.
        unknown = c.get("/v1/users/nobody-here/devices", headers=alice.headers)
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "not_found"


@pytest.mark.shared_server
def test_register_rejects_bad_self_signature(covey_server):
    device = RawDevice(covey_server.url, new_handle())
    keys = device.device_keys()
    other = RawDevice(covey_server.url, device.user_id)
    keys["signature"] = other.device_keys()["signature"]  # valid shape, wrong signer
    with device.http() as c:
        r = c.post("/v1/accounts", json={"device": keys})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "bad_signature"
        assert c.post("/v1/auth/challenge", json=device.ref).status_code == 404


@pytest.mark.shared_server
def test_replayed_and_unknown_challenges_are_refused(covey_server):
    alice = RawDevice(covey_server.url, new_handle()).register()
    challenge = alice.challenge()
    body = alice.sign_challenge(challenge)
    with alice.http() as c:
        first = c.post("/v1/auth/token", json=body)
        assert first.status_code == 200
        replay = c.post("/v1/auth/token", json=body)
        assert replay.status_code == 401
        assert replay.json()["error"]["code"] == "challenge_used"
        unknown = c.post("/v1/auth/token", json={**body, "challenge_id": "x" * 32})
        assert unknown.status_code == 401
        assert unknown.json()["error"]["code"] == "unknown_challenge"
        # A signature by another key does not log in, and burns the challenge.
        fresh = alice.challenge()
        mallory = RawDevice(covey_server.url, alice.user_id, device_id=alice.device_id)
        bad = c.post("/v1/auth/token", json=mallory.sign_challenge(fresh))
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "bad_signature"


@pytest.mark.shared_server
def test_bad_tokens_are_unauthorized(covey_server):
    with httpx.Client(base_url=covey_server.url) as c:
        missing = c.get("/v1/keys/count")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "missing_token"
        bad = c.get("/v1/keys/count", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        assert bad.json()["error"]["code"] == "bad_token"


@pytest.mark.slow
def test_tokens_and_challenges_expire(covey_server):
    covey_server.restart(env={"COVEY_TOKEN_TTL_S": "1", "COVEY_CHALLENGE_TTL_S": "1"})
    alice = RawDevice(covey_server.url, new_handle()).register().login()
    challenge = alice.challenge()
    with alice.http() as c, alice.ws(covey_server.ws_url) as sock:
        assert c.get("/v1/keys/count", headers=alice.headers).status_code == 200
        # The socket closes when its token expires, after saying why.
        frames = frames_until(sock, lambda fs: any(f["type"] == "error" for f in fs))
        assert next(f for f in frames if f["type"] == "error")["error"]["code"] == (
            "token_expired")
        with pytest.raises(ConnectionClosed):
            sock.recv(timeout=3)
        time.sleep(0.3)
        expired = c.get("/v1/keys/count", headers=alice.headers)
        assert expired.status_code == 401
        assert expired.json()["error"]["code"] == "token_expired"
        late = c.post("/v1/auth/token", json=alice.sign_challenge(challenge))
        assert late.status_code == 401
        assert late.json()["error"]["code"] == "challenge_expired"


@pytest.mark.shared_server
def test_link_token_adds_a_device_once(covey_server):
    alice = register(covey_server.url, "alice")
    with alice.http() as c:
        link = c.post("/v1/devices/link-token", headers=alice.headers).json()["link_token"]
        phone = RawDevice(covey_server.url, alice.user_id)
        added = c.post("/v1/devices", json={"link_token": link, "device": phone.device_keys()})
        assert added.status_code == 201, added.text
        assert added.json() == {"user_id": alice.user_id, "device_id": phone.device_id}
        tablet = RawDevice(covey_server.url, alice.user_id)
        reused = c.post("/v1/devices", json={"link_token": link,
                                             "device": tablet.device_keys()})
        assert reused.status_code == 401
        assert reused.json()["error"]["code"] == "link_token_used"
        # A link token only adds devices to its own user.
        link2 = c.post("/v1/devices/link-token", headers=alice.headers).json()["link_token"]
        stranger = RawDevice(covey_server.url, new_handle())
        other_user = c.post("/v1/devices", json={"link_token": link2,
                                                 "device": stranger.device_keys()})
        assert other_user.status_code == 401
        devices = c.get(f"/v1/users/{alice.user_id}/devices", headers=alice.headers).json()
        assert {d["device_id"] for d in devices["devices"]} == {alice.device_id,
                                                                 phone.device_id}
    phone.login()
