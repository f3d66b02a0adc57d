"""The sans-I/O client core driven against itself through an in-memory relay."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from covey.age import AgeBand
from covey.client._core import ClientCore
from covey.client._events import (
    FrankingEvidence,
    IncomingMessage,
    MessageDropped,
    MessageSent,
    RoomKeyReceived,
)
from covey.client._store import Store
from covey.protocol.franking import TagContext, opens, tag_is_valid
from covey.protocol.ids import dm_conversation_id
from tests.support.fake_server import PASSPHRASE, FakeServer


@pytest.fixture
def server(tmp_path: Path) -> FakeServer:
    return FakeServer(tmp_path)


def texts(events: list[object]) -> list[str]:
    return [e.text for e in events if isinstance(e, IncomingMessage)]


def drops(events: list[object]) -> list[str]:
    return [e.reason for e in events if isinstance(e, MessageDropped)]


def reopen(core: ClientCore, server: FakeServer) -> ClientCore:
    """Simulate a restart: close the store and resume the device from disk."""
    path = core.store._conn.execute("PRAGMA database_list").fetchone()[2]
    core.store.close()
    return ClientCore.load(Store.open(path, PASSPHRASE), rotate_after=server.rotate_after)


# --- 1:1 ------------------------------------------------------------------------------


def test_one_to_one_both_directions(server: FakeServer) -> None:
    alice, bob = server.new_device("alice"), server.new_device("bob")
    server.send(alice, "bob", "hi bob")
    events = server.deliver(bob)
    assert texts(events) == ["hi bob"]
    message = events[0]
    assert isinstance(message, IncomingMessage)
    assert message.sender_user == "alice" and message.sender_device == alice.device_id
    assert message.conversation_id == dm_conversation_id("alice", "bob")
    evidence = message.evidence
    assert evidence.tag is not None and tag_is_valid(
        server.server_key, evidence.tag, evidence.commitment,
        TagContext("alice", alice.device_id, "bob", message.conversation_id,
                   message.server_ts_ms, message.message_id))
    assert evidence.tag_context() == TagContext("alice", alice.device_id, "bob",
                                                message.conversation_id, message.server_ts_ms,
                                                message.message_id)
    # The stored evidence opens its commitment again (what a report will check).
    assert opens(evidence.commitment, evidence.content.fk(), evidence.content.committed_part(),
                 evidence.context)
    (stored,) = [r for r in bob.history() if r["direction"] == "in"]
    assert FrankingEvidence.from_record(stored) == evidence
    server.send(bob, "alice", "hi alice")
    server.send(bob, "alice", "how are you")
    assert texts(server.deliver(alice)) == ["hi alice", "how are you"]
    for i in range(5):
        server.send(alice, "bob", f"ping {i}")
        server.send(bob, "alice", f"pong {i}")
    assert texts(server.deliver(bob)) == [f"ping {i}" for i in range(5)]
    assert texts(server.deliver(alice)) == [f"pong {i}" for i in range(5)]


def test_sender_history_and_outbox(server: FakeServer) -> None:
    alice, bob = server.new_device("alice"), server.new_device("bob")
    entry = server.prepare(alice, "bob", "queued")
    assert [e.entry_id for e in alice.outbox()] == [entry.entry_id]
    events = server.flush(alice)
    assert isinstance(events[0], MessageSent) and not events[0].duplicate
    assert alice.outbox() == []
    (record,) = alice.history()
    assert record["direction"] == "out" and record["content"]["text"] == "queued"
    assert record["server_ts_ms"] == events[0].server_ts_ms
    assert texts(server.deliver(bob)) == ["queued"]


def test_multiple_devices_and_self_sync(server: FakeServer) -> None:
    alice1, alice2 = server.new_device("alice"), server.new_device("alice")
    bob1, bob2, bob3 = (server.new_device("bob") for _ in range(3))
    server.send(alice1, "bob", "to all of bob")
    for bob in (bob1, bob2, bob3):
        assert texts(server.deliver(bob)) == ["to all of bob"]
    synced = server.deliver(alice2)
    assert texts(synced) == ["to all of bob"]
    assert synced[0].sender_device == alice1.device_id  # type: ignore[union-attr]
    server.send(bob2, "alice", "from bob2")
    assert texts(server.deliver(alice1)) == ["from bob2"]
    assert texts(server.deliver(alice2)) == ["from bob2"]
    assert texts(server.deliver(bob1)) == ["from bob2"]
    assert texts(server.deliver(bob3)) == ["from bob2"]
    assert server.take(bob2) == []


def test_new_device_appears_device_list_mismatch_then_retry(server: FakeServer) -> None:
    alice, bob1 = server.new_device("alice"), server.new_device("bob")
    server.send(alice, "bob", "one")
    assert texts(server.deliver(bob1)) == ["one"]
    bob2 = server.new_device("bob")  # alice's cached list is now stale: 409, refresh, retry
    server.send(alice, "bob", "two")
    assert texts(server.deliver(bob1)) == ["two"]
    assert texts(server.deliver(bob2)) == ["two"]


def test_out_of_order_and_lost_olm_messages(server: FakeServer) -> None:
    alice, bob = server.new_device("alice"), server.new_device("bob")
    for i in range(6):
        server.send(alice, "bob", f"m{i}")
    deliveries = server.take(bob)
    lost = deliveries.pop(2)
    assert lost is not None
    shuffled = deliveries[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(texts(server.receive(bob, shuffled))) == ["m0", "m1", "m3", "m4", "m5"]
    server.send(bob, "alice", "still fine")
    assert texts(server.deliver(alice)) == ["still fine"]
    server.send(alice, "bob", "after loss")
    assert texts(server.deliver(bob)) == ["after loss"]


def test_lost_first_pre_key_message_does_not_block(server: FakeServer) -> None:
    alice, bob = server.new_device("alice"), server.new_device("bob")
    server.send(alice, "bob", "lost")
    server.take(bob)
    server.send(alice, "bob", "arrives")
    assert texts(server.deliver(bob)) == ["arrives"]


def test_redelivery_is_deduplicated(server: FakeServer) -> None:
    alice, bob = server.new_device("alice"), server.new_device("bob")
    server.send(alice, "bob", "once")
    deliveries = server.take(bob)
    assert texts(server.receive(bob, deliveries)) == ["once"]
    assert server.receive(bob, deliveries) == []
    bob = reopen(bob, server)
    assert server.receive(bob, deliveries) == []


def test_resend_after_restart_is_verbatim_and_duplicate(server: FakeServer) -> None:
    alice, bob = server.new_device("alice"), server.new_device("bob")
    entry = server.prepare(alice, "bob", "survives a crash")
    server.fetch_sessions(alice, entry.conversation_id)
    # The server accepts, but the receipt is lost: the entry stays in the outbox.
    server.accept(alice, entry.envelopes[0])
    alice = reopen(alice, server)
    (again,) = alice.outbox()
    assert again.envelopes == entry.envelopes
    events = server.flush(alice)
    assert isinstance(events[0], MessageSent) and events[0].duplicate
    assert texts(server.deliver(bob)) == ["survives a crash"]


def test_restart_mid_conversation(server: FakeServer) -> None:
    alice, bob = server.new_device("alice"), server.new_device("bob")
    server.send(alice, "bob", "before")
    assert texts(server.deliver(bob)) == ["before"]
    server.send(bob, "alice", "reply")
    alice, bob = reopen(alice, server), reopen(bob, server)
    assert texts(server.deliver(alice)) == ["reply"]
    server.send(alice, "bob", "after restart")
    assert texts(server.deliver(bob)) == ["after restart"]
    assert [m.text for _, m in bob.inbox()] == ["before", "after restart"]


# --- groups -----------------------------------------------------------------------------


def test_group_messages_and_rotation_on_membership_change(server: FakeServer) -> None:
    alice, bob, carol = (server.new_device(u) for u in ("alice", "bob", "carol"))
    dave = server.new_device("dave")
    group = server.create_group("friends", "alice", ["bob", "carol"])
    gid = group.group_id
    server.send(alice, gid, "hello group")
    for member in (bob, carol):
        events = server.deliver(member)
        assert any(isinstance(e, RoomKeyReceived) for e in events)
        assert texts(events) == ["hello group"]
    server.send(bob, gid, "hi from bob")
    assert texts(server.deliver(alice)) == ["hi from bob"]
    assert texts(server.deliver(carol)) == ["hi from bob"]

    # carol leaves, dave joins: the next message rotates the Megolm session.
    old_session = alice.store.get("megolm_out", gid)["session_id"]  # type: ignore[index]
    server.set_members(gid, ["bob", "dave"])
    server.send(alice, gid, "carol has gone")
    assert alice.store.get("megolm_out", gid)["session_id"] != old_session  # type: ignore[index]
    assert server.take(carol) == []
    assert texts(server.deliver(bob)) == ["carol has gone"]
    assert texts(server.deliver(dave)) == ["carol has gone"]
    # Dave never got the old session: an old message handed to him does not decrypt.
    server.send(bob, gid, "bob after change")
    assert texts(server.deliver(dave)) == ["bob after change"]


def test_removed_member_cannot_read_new_messages(server: FakeServer) -> None:
    alice, bob, carol = (server.new_device(u) for u in ("alice", "bob", "carol"))
    gid = server.create_group("g", "alice", ["bob", "carol"]).group_id
    server.send(alice, gid, "everyone")
    assert texts(server.deliver(carol)) == ["everyone"]
    server.deliver(bob)
    server.set_members(gid, ["bob"])
    server.send(alice, gid, "secret after removal")
    delivered_to_bob = server.take(bob)
    message = next(d for d in delivered_to_bob if d.group is not None)
    # Hand carol the Megolm message anyway (as if she sniffed the relay).
    forwarded = message.model_copy(update={"participants": ["alice", "bob", "carol"]})
    assert texts(server.receive(carol, [forwarded])) == []
    assert carol.store.get("megolm_in", message.group.session_id) is None  # type: ignore[union-attr]
    assert texts(server.receive(bob, delivered_to_bob)) == ["secret after removal"]


def test_new_member_cannot_read_old_messages(server: FakeServer) -> None:
    alice, bob = server.new_device("alice"), server.new_device("bob")
    dave = server.new_device("dave")
    gid = server.create_group("g", "alice", ["bob"]).group_id
    server.send(alice, gid, "before dave")
    old = [d for d in server.take(bob) if d.group is not None]
    server.set_members(gid, ["bob", "dave"])
    server.send(alice, gid, "dave is here")
    assert texts(server.deliver(dave)) == ["dave is here"]
    replay = old[0].model_copy(update={"participants": ["alice", "bob", "dave"]})
    assert texts(server.receive(dave, [replay])) == []


def test_rotation_after_n_messages(tmp_path: Path) -> None:
    server = FakeServer(tmp_path, rotate_after=3)
    alice, bob = server.new_device("alice"), server.new_device("bob")
    gid = server.create_group("g", "alice", ["bob"]).group_id
    sessions = set()
    for i in range(7):
        server.send(alice, gid, f"g{i}")
        sessions.add(alice.store.get("megolm_out", gid)["session_id"])  # type: ignore[index]
    assert len(sessions) == 3
    assert texts(server.deliver(bob)) == [f"g{i}" for i in range(7)]


def test_group_rotates_when_member_adds_a_device(server: FakeServer) -> None:
    alice, bob1 = server.new_device("alice"), server.new_device("bob")
    gid = server.create_group("g", "alice", ["bob"]).group_id
    server.send(alice, gid, "one")
    first = alice.store.get("megolm_out", gid)["session_id"]  # type: ignore[index]
    bob2 = server.new_device("bob")
    server.send(alice, gid, "two")
    assert alice.store.get("megolm_out", gid)["session_id"] != first  # type: ignore[index]
    assert texts(server.deliver(bob1)) == ["one", "two"]
    assert texts(server.deliver(bob2)) == ["two"]


def test_group_stale_epoch_is_refreshed_and_retried(server: FakeServer) -> None:
    alice, bob, carol = (server.new_device(u) for u in ("alice", "bob", "carol"))
    gid = server.create_group("g", "alice", ["bob"]).group_id
    server.send(alice, gid, "one")
    server.set_members(gid, ["bob", "carol"])  # alice is not told
    entry = server.prepare(alice, gid, "two")
    assert entry.envelopes[-1].group_epoch == 0
    server.flush(alice)
    assert texts(server.deliver(bob)) == ["one", "two"]
    assert texts(server.deliver(carol)) == ["two"]


def test_megolm_out_of_order_lost_and_key_after_message(server: FakeServer) -> None:
    alice, bob = server.new_device("alice"), server.new_device("bob")
    gid = server.create_group("g", "alice", ["bob"]).group_id
    for i in range(5):
        server.send(alice, gid, f"g{i}")
    deliveries = server.take(bob)
    key_share, messages = deliveries[0], deliveries[1:]
    assert key_share.group is None and all(d.group is not None for d in messages)
    del messages[1]  # lost
    messages.reverse()
    # Messages first (parked until their key arrives), key share last.
    assert server.receive(bob, messages) == []
    events = server.receive(bob, [key_share])
    assert sorted(texts(events)) == ["g0", "g2", "g3", "g4"]


def test_group_self_sync_to_own_other_device(server: FakeServer) -> None:
    alice1, alice2, bob = (server.new_device(u) for u in ("alice", "alice", "bob"))
    gid = server.create_group("g", "alice", ["bob"]).group_id
    server.send(alice1, gid, "from alice1")
    assert texts(server.deliver(alice2)) == ["from alice1"]
    assert texts(server.deliver(bob)) == ["from alice1"]
    server.send(alice2, gid, "from alice2")
    assert texts(server.deliver(alice1)) == ["from alice2"]


def test_restart_mid_group_conversation(server: FakeServer) -> None:
    alice, bob = server.new_device("alice"), server.new_device("bob")
    gid = server.create_group("g", "alice", ["bob"]).group_id
    server.send(alice, gid, "one")
    assert texts(server.deliver(bob)) == ["one"]
    alice, bob = reopen(alice, server), reopen(bob, server)
    server.send(alice, gid, "two")
    server.send(bob, gid, "three")
    assert texts(server.deliver(bob)) == ["two"]
    assert texts(server.deliver(alice)) == ["three"]


def test_group_session_rotates_when_the_group_stops_being_safeguarded(
        server: FakeServer) -> None:
    """The safety service saw the room key of a safeguarded group's session: once
    everyone is 16+, the next message starts a session the server never saw."""
    server.bands["kid"] = AgeBand.UNDER_16
    alice, kid = server.new_device("alice"), server.new_device("kid")
    gid = server.create_group("g", "alice", ["kid"]).group_id

    def session() -> str:
        return str(alice.store.get("megolm_out", gid)["session_id"])  # type: ignore[index]

    def keys_seen() -> set[str]:
        return {c.room_key.session_id for _, _, c in server.safety_copies
                if c.room_key is not None}

    server.send(alice, gid, "one")
    server.send(alice, gid, "two")
    first = session()
    assert keys_seen() == {first}  # safeguarded: the key share was copied, once
    server.bands["kid"] = AgeBand.SIXTEEN_PLUS
    server.send(alice, gid, "three")
    assert session() != first and session() not in keys_seen()
    assert texts(server.deliver(kid)) == ["one", "two", "three"]
