"""`DELETE /v1/devices/{device_id}` (Client.unlink_device): a lost phone stops receiving.
Another device of the account unlinks it; it leaves the device list, gets none of the
messages sent after, cannot log in again; a device cannot unlink itself or a stranger's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client
from covey.errors import CoveyError

PASSPHRASE = "unlink passphrase"
FAST = 2**12

pytestmark = [pytest.mark.shared_server, pytest.mark.timeout(180)]


async def test_an_unlinked_device_stops_receiving(covey_server: Any, tmp_path: Path) -> None:
    url = covey_server.url
    phone = await Client.register(url, "lina", tmp_path / "phone.db", PASSPHRASE, scrypt_n=FAST)
    laptop = await Client.link_device(url, "lina", await phone.create_link_token(),
                                      tmp_path / "laptop.db", PASSPHRASE, scrypt_n=FAST)
    omar = await Client.register(url, "omar", tmp_path / "omar.db", PASSPHRASE, scrypt_n=FAST)
    try:
        await asyncio.gather(phone.wait_connected(), laptop.wait_connected(),
                             omar.wait_connected())
        assert len((await laptop.whoami()).devices) == 2
        with pytest.raises(CoveyError) as own:
            await laptop.unlink_device(laptop.device_id)
        assert (own.value.status, own.value.code) == (400, "cannot_remove_self")
        with pytest.raises(CoveyError) as unknown:
            await laptop.unlink_device(omar.device_id)  # not one of lina's devices
        assert (unknown.value.status, unknown.value.code) == (404, "unknown_device")

        await laptop.unlink_device(phone.device_id)  # the phone is lost
        assert (await laptop.whoami()).devices == [laptop.device_id]
        await omar.send_text("lina", "are you coming to the match?")
        assert (await laptop.next_message(20)).text == "are you coming to the match?"
        with pytest.raises(TimeoutError):
            await phone.next_message(3)
        with pytest.raises(CoveyError):
            await laptop.unlink_device(phone.device_id)  # already gone: 404
    finally:
        for client in (phone, laptop, omar):
            await client.close()
    with pytest.raises(CoveyError):  # the phone cannot log in again
        await Client.open(tmp_path / "phone.db", PASSPHRASE)
