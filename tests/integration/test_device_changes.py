"""Device changes are shown, with two real clients (and `covey chat`) against a real
`covey server`: when bob links a new device, the server pushes `device_list_changed` to
the connected devices of bob, his contacts and his groups' members; their clients (and
anyone's at the next send to bob) compare the list with the one they knew and raise
`DeviceListChanged`, and `covey chat` prints "bob added a new device"."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client, DeviceListChanged
from tests.integration.test_client_chat import _chat, _read_until, _type
from tests.integration.test_client_e2e import Devices, receive
from tests.support.devices import join_group

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def devices(covey_server: Any, tmp_path: Path) -> Any:
    made = Devices(covey_server, tmp_path / "clients")
    made.tmp.mkdir()
    yield made
    await made.close_all()


async def _device_change(client: Client, user_id: str, within_s: float = 20
                         ) -> DeviceListChanged:
    async with asyncio.timeout(within_s):
        async for event in client.events():
            if isinstance(event, DeviceListChanged) and event.user_id == user_id:
                return event
    raise AssertionError("unreachable")


async def test_a_new_device_is_announced_to_the_account_and_its_peers(
        covey_server: Any, devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    await alice.send_text("bob", "hi bob")
    await receive(bob, 1)
    await bob.send_text("alice", "hi alice")
    await receive(alice, 1)

    seen_by_bob = asyncio.create_task(_device_change(bob, "bob"))
    await asyncio.sleep(0.2)  # listening before the change
    laptop = await devices.link(bob)
    # bob's own first device is told at once (pushed): "you added a new device".
    own = await seen_by_bob
    assert own.added == (laptop.device_id,) and own.removed == (), own

    # alice (no contact, no group: not pushed to) sees it at her next send, when the
    # server refuses her old device set and her client compares the new list.
    seen_by_alice = asyncio.create_task(_device_change(alice, "bob"))
    await alice.send_text("bob", "to both of your devices")
    seen = await seen_by_alice
    assert seen.added == (laptop.device_id,) and seen.removed == (), seen
    assert (await laptop.next_message(20)).text == "to both of your devices"


async def test_contacts_and_group_members_are_told_at_once(
        covey_server: Any, devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    carol = await devices.register("carol")
    await join_group((await alice.create_group("book club", ["bob"])).group_id, bob)
    request = await carol.request_contact("bob")
    await bob.accept_contact(request)
    for client in (alice, carol):  # each has fetched bob's devices once
        await client.send_text("bob", "hello")
    await receive(bob, 2)
    watching = [asyncio.create_task(_device_change(c, "bob")) for c in (alice, carol)]
    await asyncio.sleep(0.2)
    laptop = await devices.link(bob)
    for task in watching:
        seen = await task
        assert seen.added == (laptop.device_id,), seen


async def test_covey_chat_shows_that_a_peer_added_a_device(
        covey_server: Any, devices: Devices, tmp_path: Path) -> None:
    bob = await devices.register("bob")
    chat = await _chat("--server", covey_server.url, "--store", str(tmp_path / "carol.db"),
                       "--register", "carol", "--to", "bob")
    try:
        await _read_until(chat, "■ safeguarded")
        await _type(chat, "hello bob")
        assert (await bob.next_message(20)).text == "hello bob"
        laptop = await devices.link(bob)
        await _type(chat, "are you on a new laptop?")
        output = await _read_until(chat, "bob added a new device")
        assert laptop.device_id in output
        await _type(chat, "/quit")
        assert await asyncio.wait_for(chat.wait(), 20) == 0
    finally:
        if chat.returncode is None:
            chat.kill()
