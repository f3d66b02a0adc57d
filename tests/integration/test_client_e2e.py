"""Real clients against a real `covey server` (SQLite and PostgreSQL): 1:1, several devices,
groups with rotation, offline catch-up, restarts, attachments, and a SIGKILLed relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client, WrongPassphrase
from covey.errors import CryptoError
from covey.protocol import AttachmentRef
from tests.support.devices import (
    FAST_SCRYPT,
    PASSPHRASE,
    Devices,
    eventually,
    join_group,
    nothing_more,
    receive,
    texts,
)

# Also imported from here by tests written before they moved to tests.support.devices.
__all__ = ["FAST_SCRYPT", "PASSPHRASE", "Devices", "receive", "texts"]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def devices(covey_server: Any, tmp_path: Path) -> AsyncIterator[Devices]:
    made = Devices(covey_server, tmp_path / "clients")
    made.tmp.mkdir()
    yield made
    await made.close_all()


async def test_one_to_one_both_directions(devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    await alice.send_text("bob", "hi bob")
    (message,) = await receive(bob, 1)
    assert (message.text, message.sender_user, message.sender_device) == (
        "hi bob", "alice", alice.device_id)
    assert message.conversation_id == "dm:alice:bob"
    assert message.evidence.tag is not None and message.evidence.content.text == "hi bob"
    await bob.send_text("alice", "hi alice")
    await bob.send_text("alice", "how are you?")
    assert await texts(alice, 2) == ["hi alice", "how are you?"]
    for i in range(5):
        await alice.send_text("bob", f"ping {i}")
        await bob.send_text("alice", f"pong {i}")
    assert await texts(bob, 5) == [f"ping {i}" for i in range(5)]
    assert await texts(alice, 5) == [f"pong {i}" for i in range(5)]
    await nothing_more(bob, 0.3)


async def test_two_and_three_devices_with_self_sync(devices: Devices) -> None:
    alice1 = await devices.register("alice")
    alice2 = await devices.link(alice1)
    bob1 = await devices.register("bob")
    bob2, bob3 = await devices.link(bob1), await devices.link(bob1)
    await alice1.send_text("bob", "to every bob")
    for bob in (bob1, bob2, bob3):
        assert await texts(bob, 1) == ["to every bob"]
    (synced,) = await receive(alice2, 1)
    assert synced.text == "to every bob" and synced.sender_device == alice1.device_id
    await bob3.send_text("alice", "from bob3")
    for other in (alice1, alice2, bob1, bob2):
        assert await texts(other, 1) == ["from bob3"]
    await nothing_more(bob3, 0.3)


async def test_group_membership_change_rotates_the_session(devices: Devices) -> None:
    alice, bob, carol, dave = [await devices.register(h)
                               for h in ("alice", "bob", "carol", "dave")]
    group = await alice.create_group("friends", ["bob", "carol"])
    gid = group.group_id
    await join_group(gid, bob, carol)  # unverified accounts are invited and accept
    await alice.send_text(gid, "hello all")
    assert await texts(bob, 1) == ["hello all"]
    assert await texts(carol, 1) == ["hello all"]
    await carol.send_text(gid, "carol here")
    assert await texts(alice, 1) == ["carol here"]
    assert await texts(bob, 1) == ["carol here"]
    first_session = alice.core.store.get("megolm_out", gid)["session_id"]  # type: ignore[index]

    await alice.remove_member(gid, "carol")
    await alice.add_member(gid, "dave")
    await join_group(gid, dave)
    await alice.send_text(gid, "carol is out, dave is in")
    assert alice.core.store.get("megolm_out", gid)["session_id"] != first_session  # type: ignore[index]
    assert await texts(bob, 1) == ["carol is out, dave is in"]
    assert await texts(dave, 1) == ["carol is out, dave is in"]
    await nothing_more(carol)
    # Bob's cached group is stale (epoch 0): his send is refused as stale, refreshed,
    # rotated and retried.
    await bob.send_text(gid, "bob after the change")
    assert await texts(alice, 1) == ["bob after the change"]
    assert await texts(dave, 1) == ["bob after the change"]
    await nothing_more(carol, 0.3)
    # Dave holds only sessions made after he joined: nothing from before.
    assert first_session not in {r["session_id"] for r in dave.core.store.items("megolm_in")}


async def test_offline_device_catches_up(devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    await alice.send_text("bob", "first")
    assert await texts(bob, 1) == ["first"]
    bob = await _offline_then_back(devices, bob, alice, ["while", "you", "were", "away"])
    assert await texts(bob, 4) == ["while", "you", "were", "away"]
    await nothing_more(bob, 0.3)


async def _offline_then_back(devices: Devices, who: Client, sender: Client,
                             lines: list[str]) -> Client:
    path = who.core.store._conn.execute("PRAGMA database_list").fetchone()[2]
    await devices.close(who)
    for line in lines:
        await sender.send_text(who.user_id, line)
    return await devices._ready(await Client.open(path, PASSPHRASE))


async def test_client_restart_mid_conversation(devices: Devices, tmp_path: Path) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    await alice.send_text("bob", "before restart")
    assert await texts(bob, 1) == ["before restart"]
    await bob.send_text("alice", "reply 1")
    assert await texts(alice, 1) == ["reply 1"]
    alice = await devices.reopen(alice)
    bob = await devices.reopen(bob)
    await alice.send_text("bob", "after restart")
    assert await texts(bob, 1) == ["after restart"]
    await bob.send_text("alice", "reply 2")
    assert await texts(alice, 1) == ["reply 2"]
    path = alice.core.store._conn.execute("PRAGMA database_list").fetchone()[2]
    await devices.close(alice)
    with pytest.raises(WrongPassphrase):
        await Client.open(path, "wrong passphrase")


async def test_unread_messages_survive_a_restart(devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    await alice.send_text("bob", "stored, not read yet")
    await eventually(lambda: len(bob.core.inbox()) == 1)
    bob = await devices.reopen(bob)
    assert await texts(bob, 1) == ["stored, not read yet"]


async def test_attachments_end_to_end(devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    photo = bytes(range(256)) * 400
    await alice.send_attachment("bob", photo, name="photo.bin", mime="image/png",
                                text="look")
    (message,) = await receive(bob, 1)
    assert message.text == "look" and len(message.attachments) == 1
    ref = message.attachments[0]
    assert (ref.name, ref.mime, ref.size) == ("photo.bin", "image/png", len(photo))
    assert await bob.download_attachment(ref) == photo
    # A ref pointing at another blob (a swapped ciphertext) fails the franked hash.
    await alice.send_attachment("bob", b"other bytes", name="other.bin")
    (other,) = await receive(bob, 1)
    swapped = AttachmentRef(**{**ref.model_dump(), "blob_id": other.attachments[0].blob_id})
    with pytest.raises(CryptoError) as info:
        await bob.download_attachment(swapped)
    assert info.value.code == "attachment_hash_mismatch"
    # Group attachment.
    group = await alice.create_group("pics", ["bob"])
    await join_group(group.group_id, bob)
    await alice.send_attachment(group.group_id, b"group picture", name="g.png")
    (in_group,) = await receive(bob, 1)
    assert await bob.download_attachment(in_group.attachments[0]) == b"group picture"


async def test_sends_during_a_server_crash_arrive_exactly_once(devices: Devices) -> None:
    server = devices.server
    alice, bob = await devices.register("alice"), await devices.register("bob")
    await alice.send_text("bob", "before the crash")
    assert await texts(bob, 1) == ["before the crash"]

    await asyncio.to_thread(server.kill)
    for i in range(3):
        await alice.send_text("bob", f"queued {i}")  # sessions and device lists are cached
    assert alice.pending_sends() == 3
    await asyncio.to_thread(server.start)
    await alice.flush(30)
    assert await texts(bob, 3, within_s=30) == [f"queued {i}" for i in range(3)]

    # Bob receives, then the relay dies before (or after) his acks land: whatever it
    # redelivers after restarting is deduplicated.
    for i in range(3):
        await alice.send_text("bob", f"racing {i}")
    await eventually(lambda: len(bob.core.inbox()) >= 3, 20)
    await asyncio.to_thread(server.kill)
    await asyncio.to_thread(server.start)
    await bob.wait_connected(30)
    assert await texts(bob, 3) == [f"racing {i}" for i in range(3)]
    await alice.send_text("bob", "after everything")
    assert await texts(bob, 1, within_s=30) == ["after everything"]
    await nothing_more(bob, 1.0)
    history = [r["content"]["text"] for r in bob.core.history("dm:alice:bob")]
    assert len(history) == len(set(history)) == 8


async def test_unacknowledged_deliveries_are_redelivered_and_deduplicated(
        devices: Devices, monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    stored_without_ack: list[int] = []

    async def store_but_never_ack(raw: Any, ws: Any) -> None:
        from covey.protocol.wire import SERVER_FRAME, DeliveryFrame
        frame = SERVER_FRAME.validate_json(raw)
        if isinstance(frame, DeliveryFrame):
            await bob._handle_delivery(frame.delivery)
            stored_without_ack.append(frame.delivery.seq)

    monkeypatch.setattr(bob, "_on_frame", store_but_never_ack)
    for i in range(3):
        await alice.send_text("bob", f"m{i}")
    assert await texts(bob, 3) == ["m0", "m1", "m2"]
    assert len(stored_without_ack) == 3
    assert len(await _mailbox(bob)) == 3
    bob = await devices.reopen(bob)  # the relay redelivers the whole mailbox
    await alice.send_text("bob", "fresh")
    assert await texts(bob, 1) == ["fresh"]
    await nothing_more(bob, 0.5)
    for _ in range(100):
        if not await _mailbox(bob):
            break
        await asyncio.sleep(0.05)
    assert await _mailbox(bob) == []


async def _mailbox(client: Client) -> list[dict[str, Any]]:
    response = await client._api._raw("GET", "/v1/messages/pending?after=0&limit=100")
    deliveries: list[dict[str, Any]] = response.json()["deliveries"]
    return deliveries


async def test_one_time_keys_are_replenished(devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    start = (await bob._api.key_count()).one_time_key_count
    assert start >= 20
    from covey.protocol.wire import DeviceRef
    for _ in range(start - 2):  # drain bob's keys below the server's low mark
        await alice._api.claim([DeviceRef(user_id="bob", device_id=bob.device_id)])

    for _ in range(100):  # the relay sends `keys_low`; bob uploads more
        if (await bob._api.key_count()).one_time_key_count >= 10:
            break
        await asyncio.sleep(0.1)
    assert (await bob._api.key_count()).one_time_key_count >= 10
    await alice.send_text("bob", "still reachable")
    assert await texts(bob, 1) == ["still reachable"]


async def test_expired_token_logs_in_again(devices: Devices) -> None:
    await asyncio.to_thread(devices.server.restart, {"COVEY_TOKEN_TTL_S": "1"})
    alice, bob = await devices.register("alice"), await devices.register("bob")
    await alice.send_text("bob", "one")
    assert await texts(bob, 1) == ["one"]
    await asyncio.sleep(1.5)  # alice's token has expired: 401, log in again, retry
    await alice.send_text("bob", "two")
    assert await texts(bob, 1) == ["two"]
    alice._api.token = "not-a-valid-token-anymore-000000"
    await alice.send_text("bob", "three")
    assert await texts(bob, 1) == ["three"]


async def test_refusals_surface_to_the_caller(devices: Devices) -> None:
    from covey.client import ServerError

    alice, bob = await devices.register("alice"), await devices.register("bob")
    taken = devices.tmp / "second-alice.db"
    with pytest.raises(ServerError) as info:
        await Client.register(devices.server.url, "alice", taken, PASSPHRASE,
                              scrypt_n=FAST_SCRYPT)
    assert info.value.code == "handle_taken"
    assert not taken.exists()  # a store for a device that never registered is removed
    group = await alice.create_group("g", ["bob"])
    await join_group(group.group_id, bob)
    await bob.remove_member(group.group_id, "bob")  # bob leaves
    with pytest.raises(ServerError) as refused:
        await bob.send_text(group.group_id, "I am not in it any more")
    assert refused.value.status in (403, 404, 409)
    assert bob.pending_sends() == 0


async def test_outbox_survives_a_client_restart_while_the_server_is_down(
        devices: Devices) -> None:
    server = devices.server
    alice, bob = await devices.register("alice"), await devices.register("bob")
    await alice.send_text("bob", "hello")
    assert await texts(bob, 1) == ["hello"]
    await asyncio.to_thread(server.kill)
    await alice.send_text("bob", "queued before restart 1")
    await alice.send_text("bob", "queued before restart 2")
    queued = [e.envelopes for e in alice.core.outbox()]
    path = alice.core.store._conn.execute("PRAGMA database_list").fetchone()[2]
    await devices.close(alice)
    alice = await Client.open(path, PASSPHRASE, connect=False)  # still offline: no error
    assert [e.envelopes for e in alice.core.outbox()] == queued  # nothing re-encrypted
    await alice.close()
    await asyncio.to_thread(server.start)
    alice = await devices._ready(await Client.open(path, PASSPHRASE))
    await alice.flush(30)
    assert await texts(bob, 2, within_s=30) == ["queued before restart 1",
                                                "queued before restart 2"]
    await nothing_more(bob, 1.0)


async def test_group_changed_frames_refresh_members_and_removal(devices: Devices) -> None:
    alice, bob, carol = [await devices.register(h) for h in ("alice", "bob", "carol")]
    group = await alice.create_group("g", ["bob"])
    gid = group.group_id
    await join_group(gid, bob)
    await alice.send_text(gid, "hi")
    assert await texts(bob, 1) == ["hi"]
    await alice.add_member(gid, "carol")
    await join_group(gid, carol)
    await eventually(lambda: (bob.core.group(gid) or group).epoch == group.epoch + 2)
    await bob.send_text(gid, "welcome carol")  # no stale-epoch round trip needed
    assert await texts(carol, 1) == ["welcome carol"]
    await alice.remove_member(gid, "bob")
    await eventually(lambda: bob.core.group(gid) is None)  # bob learns he was removed
    await alice.send_text(gid, "bob is gone")
    assert await texts(carol, 1) == ["bob is gone"]
    await nothing_more(bob, 0.5)
