"""Sending and delivery: REST and WebSocket, idempotent resends, exact device lists,
mailbox order across reconnects, acks, TTL expiry, and the franking tags."""

from __future__ import annotations

import json
import stat
import time

import httpx
import pytest

from covey.protocol.franking import TagContext, tag_is_valid
from covey.protocol.secrets import FrankingCommitment, FrankingTag, ServerFrankingKey
from tests.support.raw import dm_envelope, frames_until, register

pytestmark = pytest.mark.opaque_envelopes


def _client(server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


@pytest.mark.shared_server
def test_rest_send_pending_ack_and_franking_tag(covey_server):
    alice, bob = register(covey_server.url, "alice"), register(covey_server.url, "bob")
    env = dm_envelope(alice, [bob], peer=bob.user_id)
    with _client(covey_server) as c:
        r = c.post("/v1/messages", headers=alice.headers, json=env)
        assert r.status_code == 201, r.text
        receipt = r.json()
        assert receipt["message_id"] == env["message_id"] and receipt["duplicate"] is False
        [d] = c.get("/v1/messages/pending", headers=bob.headers).json()["deliveries"]
        assert d["message_id"] == env["message_id"]
        assert d["sender_user"] == alice.user_id and d["sender_device"] == alice.device_id
        assert d["server_ts_ms"] == receipt["server_ts_ms"]
        assert d["commitment"] == env["commitment"]
        assert d["body"] == env["recipients"][0]["body"] and d["olm_type"] == 1
        key_file = covey_server.data_dir / "server.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = ServerFrankingKey(key_file.read_bytes())
        ctx = TagContext(sender_user=alice.user_id, sender_device=alice.device_id,
                         recipient_user=bob.user_id, conversation_id=env["conversation_id"],
                         server_ts_ms=d["server_ts_ms"], message_id=env["message_id"])
        assert tag_is_valid(key, FrankingTag.from_b64(d["franking_tag"]),
                            FrankingCommitment.from_b64(env["commitment"]), ctx)
        after = c.get("/v1/messages/pending", headers=bob.headers,
                      params={"after": d["seq"]}).json()
        assert after == {"deliveries": []}
        ack = c.post("/v1/messages/ack", headers=bob.headers, json={"seqs": [d["seq"]]})
        assert ack.json() == {"removed": 1}
        assert c.post("/v1/messages/ack", headers=bob.headers,
                      json={"seqs": [d["seq"]]}).json() == {"removed": 0}
        assert c.get("/v1/messages/pending", headers=bob.headers).json() == {"deliveries": []}


@pytest.mark.shared_server
def test_resend_is_idempotent_and_conflicting_resend_refused(covey_server):
    alice, bob = register(covey_server.url, "alice"), register(covey_server.url, "bob")
    env = dm_envelope(alice, [bob], peer=bob.user_id)
    with _client(covey_server) as c:
        first = c.post("/v1/messages", headers=alice.headers, json=env)
        time.sleep(0.01)
        again = c.post("/v1/messages", headers=alice.headers, json=env)
        assert again.status_code == 200
        assert again.json() == {**first.json(), "duplicate": True}
        other = dict(env, commitment=dm_envelope(alice, [bob], peer=bob.user_id)["commitment"])
        conflict = c.post("/v1/messages", headers=alice.headers, json=other)
        assert conflict.status_code == 409
        assert conflict.json()["error"]["code"] == "message_id_conflict"
        assert len(c.get("/v1/messages/pending", headers=bob.headers).json()[
            "deliveries"]) == 1
    # Over the WebSocket too: the same id twice gives one delivery and a duplicate receipt.
    env2 = dm_envelope(alice, [bob], peer=bob.user_id)
    with alice.ws(covey_server.ws_url) as sock:
        sock.send(json.dumps({"type": "send", "envelope": env2}))
        sock.send(json.dumps({"type": "send", "envelope": env2}))
        frames = frames_until(sock, lambda fs: sum(f["type"] == "sent" for f in fs) == 2)
        receipts = [f["receipt"] for f in frames if f["type"] == "sent"]
        assert sorted(r["duplicate"] for r in receipts) == [False, True]
        assert len({r["server_ts_ms"] for r in receipts}) == 1
    with _client(covey_server) as c:
        ids = [d["message_id"] for d in c.get("/v1/messages/pending",
                                              headers=bob.headers).json()["deliveries"]]
    assert ids == [env["message_id"], env2["message_id"]]


@pytest.mark.shared_server
def test_device_list_mismatch_names_missing_and_extra(covey_server):
    alice, bob = register(covey_server.url, "alice"), register(covey_server.url, "bob")
    bob2 = bob.link_new_device()
    alice2 = alice.link_new_device()
    with _client(covey_server) as c:
        ghost = {"user_id": bob.user_id, "device_id": "ghostdevice"}
        r = c.post("/v1/messages", headers=alice.headers,
                   json=dm_envelope(alice, [bob, ghost], peer=bob.user_id))
        assert r.status_code == 409
        err = r.json()["error"]
        assert err["code"] == "device_list_mismatch"
        assert sorted(map(json.dumps, err["details"]["missing"])) == sorted(
            map(json.dumps, [bob2.ref, alice2.ref]))
        assert err["details"]["extra"] == [ghost]
        # Listing the sending device itself is "extra" too.
        r = c.post("/v1/messages", headers=alice.headers,
                   json=dm_envelope(alice, [bob, bob2, alice2, alice], peer=bob.user_id))
        assert r.json()["error"]["details"] == {"missing": [], "extra": [alice.ref]}
        ok = c.post("/v1/messages", headers=alice.headers,
                    json=dm_envelope(alice, [bob, bob2, alice2], peer=bob.user_id))
        assert ok.status_code == 201
        for device in (bob, bob2, alice2):
            assert len(c.get("/v1/messages/pending", headers=device.headers).json()[
                "deliveries"]) == 1
        # Not a participant of someone else's DM.
        carol = register(covey_server.url, "carol")
        r = c.post("/v1/messages", headers=carol.headers,
                   json=dm_envelope(carol, [bob], peer=bob.user_id)
                   | {"conversation_id": f"dm:{min(alice.user_id, bob.user_id)}:"
                                         f"{max(alice.user_id, bob.user_id)}"})
        assert r.status_code == 403


@pytest.mark.shared_server
def test_offline_device_gets_everything_in_order_on_reconnect(covey_server):
    alice, bob = register(covey_server.url, "alice"), register(covey_server.url, "bob")
    sent_ids = []
    with alice.ws(covey_server.ws_url) as sock:
        for _ in range(40):
            env = dm_envelope(alice, [bob], peer=bob.user_id)
            sent_ids.append(env["message_id"])
            sock.send(json.dumps({"type": "send", "envelope": env}))
        frames_until(sock, lambda fs: sum(f["type"] == "sent" for f in fs) == 40)
    with bob.ws(covey_server.ws_url) as sock:
        # While draining, more arrive live: no gap, no duplicate.
        with _client(covey_server) as c:
            for _ in range(10):
                env = dm_envelope(alice, [bob], peer=bob.user_id)
                sent_ids.append(env["message_id"])
                assert c.post("/v1/messages", headers=alice.headers,
                              json=env).status_code == 201
        frames = frames_until(sock, lambda fs: sum(f["type"] == "delivery"
                                                   for f in fs) >= 50)
        deliveries = [f["delivery"] for f in frames if f["type"] == "delivery"]
        assert [d["message_id"] for d in deliveries] == sent_ids
        seqs = [d["seq"] for d in deliveries]
        assert seqs == sorted(seqs) and len(set(seqs)) == 50
        sock.send(json.dumps({"type": "ack", "seqs": seqs[:30]}))
        with pytest.raises(TimeoutError):
            sock.recv(timeout=0.3)  # nothing more, no duplicates
    deadline = time.monotonic() + 5
    while True:
        with _client(covey_server) as c:
            left = c.get("/v1/messages/pending", headers=bob.headers).json()["deliveries"]
        if len(left) == 20 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [d["message_id"] for d in left] == sent_ids[30:]
    with bob.ws(covey_server.ws_url) as sock:
        frames = frames_until(sock, lambda fs: sum(f["type"] == "delivery"
                                                   for f in fs) >= 20)
        assert [f["delivery"]["message_id"] for f in frames
                if f["type"] == "delivery"] == sent_ids[30:]


@pytest.mark.shared_server
def test_bad_frames_get_error_frames_and_the_socket_stays_open(covey_server):
    alice, bob = register(covey_server.url, "alice"), register(covey_server.url, "bob")
    with alice.ws(covey_server.ws_url) as sock:
        for bad in ("not json", json.dumps({"type": "dance"}), json.dumps({"type": "ack"}),
                    json.dumps({"type": "send", "envelope": {"message_id": "short"}})):
            sock.send(bad)
            frames = frames_until(sock, lambda fs: any(f["type"] == "error" for f in fs))
            err = next(f for f in frames if f["type"] == "error")["error"]
            assert err["code"] == "invalid_request" and err["message"]
        env = dm_envelope(alice, [bob], peer=bob.user_id)
        sock.send(json.dumps({"type": "send", "envelope": env}))
        frames = frames_until(sock, lambda fs: any(f["type"] == "sent" for f in fs))
        assert any(f["type"] == "sent" for f in frames)


@pytest.mark.shared_server
def test_websocket_rejects_bad_tokens(covey_server):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        with pytest.raises(InvalidStatus) as info:
            connect(f"{covey_server.ws_url}/v1/ws", additional_headers=headers,
                    open_timeout=5)
        assert info.value.response.status_code == 401


@pytest.mark.slow
def test_mailbox_entries_expire_after_the_ttl(covey_server):
    covey_server.restart(env={"COVEY_MAILBOX_TTL_S": "2"})
    alice, bob = register(covey_server.url, "alice"), register(covey_server.url, "bob")
    with _client(covey_server) as c:
        c.post("/v1/messages", headers=alice.headers,
               json=dm_envelope(alice, [bob], peer=bob.user_id))
        assert len(c.get("/v1/messages/pending", headers=bob.headers).json()[
            "deliveries"]) == 1
        time.sleep(2.2)
        assert c.get("/v1/messages/pending", headers=bob.headers).json() == {"deliveries": []}
    deadline = time.monotonic() + 10
    while covey_server.counts()["mailbox"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert covey_server.counts()["mailbox"] == 0  # purged, not just hidden
