"""What bad input gets: a 4xx JSON error naming the problem, and nothing stored changes.
Also the rate limits (429 with Retry-After)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.raw import RawDevice, dm_envelope, new_handle, register

pytestmark = pytest.mark.opaque_envelopes


def _error(r: httpx.Response) -> dict:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]
    return dict(body["error"])


def test_bad_input_table(covey_server):
    alice, bob = register(covey_server.url, "alice"), register(covey_server.url, "bob")
    with httpx.Client(base_url=covey_server.url, timeout=30) as c:
        # Something stored that must survive every rejected request below.
        kept = dm_envelope(alice, [bob], peer=bob.user_id)
        assert c.post("/v1/messages", headers=alice.headers, json=kept).status_code == 201
        used = alice.challenge()
        used_body = alice.sign_challenge(used)
        assert c.post("/v1/auth/token", json=used_body).status_code == 200
        good = dm_envelope(alice, [bob], peer=bob.user_id)
        bad_sig_keys = bob.make_one_time_keys(1)
        bad_sig_keys[0]["signature"] = alice.sign(b"something else")
        newcomer = RawDevice(covey_server.url, new_handle())
        wrong_signer = newcomer.device_keys() | {
            "signature": RawDevice(covey_server.url, "x").sign(b"x")}
        h = alice.headers
        cases = [
            # (name, request kwargs, status, code, words the message must contain)
            ("malformed json", dict(method="POST", url="/v1/accounts", content=b"{nope",
                                    headers={"content-type": "application/json"}),
             422, "invalid_request", "json"),
            ("missing field", dict(method="POST", url="/v1/accounts", json={}),
             422, "invalid_request", "device"),
            ("unknown field", dict(method="POST", url="/v1/messages", headers=h,
                                   json=good | {"surprise": 1}), 422, "invalid_request",
             "surprise"),
            ("bad base64 commitment", dict(method="POST", url="/v1/messages", headers=h,
                                           json=good | {"commitment": "!!"}),
             422, "invalid_request", "commitment"),
            ("oversized envelope", dict(method="POST", url="/v1/messages", headers=h,
                                        json=dm_envelope(alice, [bob], peer=bob.user_id,
                                                         body_size=300 * 1024)),
             413, "too_large", "bytes"),
            ("unknown device", dict(method="POST", url="/v1/messages", headers=h,
                                    json=dm_envelope(alice, [bob, {
                                        "user_id": bob.user_id, "device_id": "nosuch"}],
                                        peer=bob.user_id)), 409, "device_list_mismatch",
             "recipients"),
            ("unknown peer", dict(method="POST", url="/v1/messages", headers=h,
                                  json=dm_envelope(alice, [{"user_id": "ghost-user",
                                                            "device_id": "DGHOST"}],
                                                   peer="ghost-user")),
             # The answer for an account you cannot reach, known or not (no oracle).
             404, "not_found", "no account with this handle"),
            ("dm with oneself", dict(method="POST", url="/v1/messages", headers=h,
                                     json=good | {"conversation_id":
                                                  f"dm:{alice.user_id}:{alice.user_id}"}),
             400, "invalid_request", "two different users"),
            ("bad key signature", dict(method="POST", url="/v1/keys/upload",
                                       headers=bob.headers,
                                       json={"one_time_keys": bad_sig_keys}),
             400, "bad_signature", "signature"),
            ("bad device signature", dict(method="POST", url="/v1/accounts",
                                          json={"device": wrong_signer}),
             400, "bad_signature", "signature"),
            ("expired or unknown token", dict(method="GET", url="/v1/keys/count",
                                              headers={"Authorization": "Bearer x" * 3}),
             401, "bad_token", "token"),
            ("replayed challenge", dict(method="POST", url="/v1/auth/token", json=used_body),
             401, "challenge_used", "challenge"),
            ("empty ack", dict(method="POST", url="/v1/messages/ack", headers=h,
                               json={"seqs": []}), 422, "invalid_request", "seqs"),
            ("empty claim", dict(method="POST", url="/v1/keys/claim", headers=h,
                                 json={"devices": []}), 422, "invalid_request", "devices"),
            ("negative after", dict(method="GET", url="/v1/messages/pending?after=-1",
                                    headers=h), 422, "invalid_request", "after"),
            ("bad user id in path", dict(method="GET", url="/v1/users/A!/devices",
                                         headers=h), 422, "invalid_request", "user_id"),
            ("group with unknown member", dict(method="POST", url="/v1/groups", headers=h,
                                               json={"name": "g",
                                                     "members": ["nobody-home"]}),
             404, "unknown_user", "unknown"),
            ("add device with bad link token", dict(
                method="POST", url="/v1/devices",
                json={"link_token": "z" * 32, "device": RawDevice(
                    covey_server.url, alice.user_id).device_keys()}),
             401, "bad_link_token", "link token"),
            ("NUL in a stored name", dict(method="POST", url="/v1/groups", headers=h,
                                          json={"name": "a\u0000b"}),
             400, "invalid_request", "name"),
            ("NUL in a challenge id", dict(method="POST", url="/v1/auth/token",
                                           json=used_body | {"challenge_id": "abc\u0000defgh"}),
             400, "invalid_request", "challenge_id"),
            ("NUL in a group session id", dict(
                method="POST", url="/v1/messages", headers=h,
                json={**good, "conversation_id": "grp_abcdefghijkl", "group_epoch": 0,
                      "group": {"session_id": "s\u0000", "body": ""}}),
             400, "invalid_request", "session_id"),
            ("not json at all", dict(method="POST", url="/v1/messages/ack",
                                     headers=h | {"content-type": "application/json"},
                                     content=b"\xff\xfe"),
             422, "invalid_request", ""),
        ]
        before = covey_server.counts()
        for name, kwargs, status, code, words in cases:
            r = c.request(**kwargs)
            assert r.status_code == status, (name, r.status_code, r.text)
            err = _error(r)
            assert err["code"] == code, (name, err)
            assert words.lower() in json.dumps(err).lower(), (name, err)
        assert covey_server.counts() == before
        [d] = c.get("/v1/messages/pending", headers=bob.headers).json()["deliveries"]
        assert d["message_id"] == kept["message_id"]
        assert c.get("/v1/keys/count", headers=bob.headers).json()["one_time_key_count"] == 3


def test_oversized_websocket_frame_gets_an_error_frame(covey_server):
    from tests.support.raw import frames_until

    alice, bob = register(covey_server.url, "alice"), register(covey_server.url, "bob")
    env = dm_envelope(alice, [bob], peer=bob.user_id, body_size=300 * 1024)
    with alice.ws(covey_server.ws_url) as sock:
        sock.send(json.dumps({"type": "send", "envelope": env}))
        frames = frames_until(sock, lambda fs: any(f["type"] == "error" for f in fs))
        err = next(f for f in frames if f["type"] == "error")
        assert err["error"]["code"] == "too_large"
        assert err["message_id"] == env["message_id"]
    assert covey_server.counts()["messages"] == 0


@pytest.mark.slow
def test_rate_limits_answer_429_with_retry_after(covey_server):
    covey_server.restart(env={"COVEY_RATE_REGISTER_BURST": "3",
                              "COVEY_RATE_REGISTER_PER_MIN": "1",
                              "COVEY_RATE_SEND_BURST": "3", "COVEY_RATE_SEND_PER_MIN": "1"})
    alice, bob = register(covey_server.url, "alice"), register(covey_server.url, "bob")
    with httpx.Client(base_url=covey_server.url, timeout=30) as c:
        third = c.post("/v1/accounts", json={"device": RawDevice(
            covey_server.url, new_handle()).device_keys()})
        assert third.status_code == 201
        before = covey_server.counts()
        limited = c.post("/v1/accounts", json={"device": RawDevice(
            covey_server.url, new_handle()).device_keys()})
        assert limited.status_code == 429
        assert _error(limited)["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        assert covey_server.counts() == before
        codes = [c.post("/v1/messages", headers=alice.headers,
                        json=dm_envelope(alice, [bob], peer=bob.user_id)).status_code
                 for _ in range(5)]
        assert codes == [201, 201, 201, 429, 429]
        assert covey_server.counts()["messages"] == 3
