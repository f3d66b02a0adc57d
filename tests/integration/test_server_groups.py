"""Groups: create, list, add and remove members with epoch bumps, group_changed frames,
and group sends checked against the current epoch and member devices."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.raw import frames_until, group_envelope, register

pytestmark = pytest.mark.opaque_envelopes


def _client(server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


@pytest.mark.shared_server
def test_group_lifecycle_bumps_epochs_and_notifies(covey_server):
    alice, bob, carol = (register(covey_server.url, p) for p in ("alice", "bob", "carol"))
    with _client(covey_server) as c:
        created = c.post("/v1/groups", headers=alice.headers,
                         json={"name": "climbing", "members": [bob.user_id]})
        assert created.status_code == 201, created.text
        group = created.json()
        gid = group["group_id"]
        # Bob is unverified: invited, a member only once he accepts.
        assert group["epoch"] == 0 and group["invited"] == [bob.user_id]
        assert {m["user_id"]: m["role"] for m in group["members"]} == {alice.user_id: "admin"}
        assert c.get("/v1/groups", headers=bob.headers).json()["groups"] == []
        joined = bob.accept_group_invitation(gid)
        assert joined["epoch"] == 1
        assert {m["user_id"]: m["role"] for m in joined["members"]} == {
            alice.user_id: "admin", bob.user_id: "member"}
        assert [g["group_id"] for g in c.get("/v1/groups", headers=bob.headers).json()[
            "groups"]] == [gid]
        assert c.get(f"/v1/groups/{gid}", headers=carol.headers).status_code == 404
        # Only admins add; members cannot.
        denied = c.post(f"/v1/groups/{gid}/members", headers=bob.headers,
                        json={"user_id": carol.user_id})
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "not_admin"
        with bob.ws(covey_server.ws_url) as bob_ws:
            invited = c.post(f"/v1/groups/{gid}/members", headers=alice.headers,
                             json={"user_id": carol.user_id})
            assert invited.status_code == 202 and invited.json()["epoch"] == 1
            assert invited.json()["invited"] == [carol.user_id]
            assert carol.accept_group_invitation(gid)["epoch"] == 2
            frames = frames_until(bob_ws, lambda fs: any(f["type"] == "group_changed"
                                                         for f in fs))
            changed = next(f for f in frames if f["type"] == "group_changed")
            assert changed == {"type": "group_changed", "group_id": gid, "epoch": 2}
        dup = c.post(f"/v1/groups/{gid}/members", headers=alice.headers,
                     json={"user_id": carol.user_id})
        assert dup.status_code == 409 and dup.json()["error"]["code"] == "already_member"
        # Bob leaves by himself; then the admin removes Carol.
        left = c.delete(f"/v1/groups/{gid}/members/{bob.user_id}", headers=bob.headers)
        assert left.status_code == 200 and left.json()["epoch"] == 3
        removed = c.delete(f"/v1/groups/{gid}/members/{carol.user_id}", headers=alice.headers)
        assert removed.json()["epoch"] == 4
        assert [m["user_id"] for m in removed.json()["members"]] == [alice.user_id]
        unknown = c.post(f"/v1/groups/{gid}/members", headers=alice.headers,
                         json={"user_id": "nobody-at-all"})
        assert unknown.status_code == 404


@pytest.mark.shared_server
def test_group_send_needs_current_epoch_and_exact_devices(covey_server):
    alice, bob, carol = (register(covey_server.url, p) for p in ("alice", "bob", "carol"))
    alice2 = alice.link_new_device()
    with _client(covey_server) as c:
        gid = c.post("/v1/groups", headers=alice.headers, json={
            "name": "g", "members": [bob.user_id]}).json()["group_id"]
        bob.accept_group_invitation(gid)  # epoch 1
        env = group_envelope(alice, gid, 1, [bob, alice2])
        sent = c.post("/v1/messages", headers=alice.headers, json=env)
        assert sent.status_code == 201, sent.text
        c.post(f"/v1/groups/{gid}/members", headers=alice.headers,
               json={"user_id": carol.user_id})
        carol.accept_group_invitation(gid)  # epoch 2
        stale = c.post("/v1/messages", headers=alice.headers,
                       json=group_envelope(alice, gid, 1, [bob, alice2, carol]))
        assert stale.status_code == 409
        assert stale.json()["error"]["code"] == "stale_group_epoch"
        assert stale.json()["error"]["details"]["epoch"] == 2
        missing = c.post("/v1/messages", headers=alice.headers,
                         json=group_envelope(alice, gid, 2, [bob, alice2]))
        assert missing.status_code == 409
        details = missing.json()["error"]["details"]
        assert details == {"missing": [carol.ref], "extra": []}
        outsider = c.post("/v1/messages", headers=carol.headers | {}, json=group_envelope(
            carol, "grp_doesnotexist1", 0, [alice]))
        assert outsider.status_code == 404
        ok = c.post("/v1/messages", headers=alice.headers,
                    json=group_envelope(alice, gid, 2, [bob, alice2, carol]))
        assert ok.status_code == 201
        pending = c.get("/v1/messages/pending", headers=carol.headers).json()["deliveries"]
        assert len(pending) == 1
        d = pending[0]
        assert d["group"]["session_id"] == "s1" and d["body"] is None
        assert d["participants"] == sorted([alice.user_id, bob.user_id, carol.user_id])
        # Bob got both messages; the sending device none, its sibling both.
        assert len(c.get("/v1/messages/pending", headers=bob.headers).json()["deliveries"]) == 2
        assert len(c.get("/v1/messages/pending",
                         headers=alice2.headers).json()["deliveries"]) == 2
        assert c.get("/v1/messages/pending", headers=alice.headers).json()["deliveries"] == []


@pytest.mark.shared_server
def test_non_member_cannot_send_to_group(covey_server):
    alice, bob, eve = (register(covey_server.url, p) for p in ("alice", "bob", "eve"))
    with _client(covey_server) as c:
        gid = c.post("/v1/groups", headers=alice.headers, json={
            "name": "g", "members": [bob.user_id]}).json()["group_id"]
        bob.accept_group_invitation(gid)
        with eve.ws(covey_server.ws_url) as sock:
            env = group_envelope(eve, gid, 0, [alice, bob])
            sock.send(json.dumps({"type": "send", "envelope": env}))
            frames = frames_until(sock, lambda fs: any(f["type"] == "error" for f in fs))
            error = next(f for f in frames if f["type"] == "error")
            assert error["message_id"] == env["message_id"]
            assert error["error"]["code"] == "not_a_participant"
