"""Real SDK clients on one real server for integration tests: `Devices` registers, links
and reopens clients and closes them all at the end; helpers wait for messages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client, IncomingMessage

PASSPHRASE = "integration passphrase"
FAST_SCRYPT = 2**12


class Devices:
    """Makes clients on one server and closes them all at the end."""

    def __init__(self, server: Any, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.clients: list[Client] = []
        self._n = 0

    def _path(self, handle: str) -> Path:
        self._n += 1
        return self.tmp / f"{handle}-{self._n}.db"

    async def register(self, handle: str, **kw: Any) -> Client:
        client = await Client.register(self.server.url, handle, self._path(handle), PASSPHRASE,
                                       scrypt_n=FAST_SCRYPT, **kw)
        return await self._ready(client)

    async def link(self, first: Client) -> Client:
        token = await first.create_link_token()
        client = await Client.link_device(self.server.url, first.user_id, token,
                                          self._path(first.user_id), PASSPHRASE,
                                          scrypt_n=FAST_SCRYPT)
        return await self._ready(client)

    async def reopen(self, client: Client) -> Client:
        path = client.core.store._conn.execute("PRAGMA database_list").fetchone()[2]
        await self.close(client)
        return await self._ready(await Client.open(path, PASSPHRASE))

    async def _ready(self, client: Client) -> Client:
        self.clients.append(client)
        await client.wait_connected()
        return client

    async def close(self, client: Client) -> None:
        self.clients.remove(client)
        await client.close()

    async def close_all(self) -> None:
        for client in list(self.clients):
            await self.close(client)


async def join_group(group_id: str, *clients: Client) -> None:
    """Each client accepts its invitation to `group_id` (an unverified or under-16 account
    becomes a member only so)."""
    for client in clients:
        (invitation,) = [i for i in await client.group_invitations()
                         if i.group_id == group_id]
        await client.accept_group_invitation(invitation.invitation_id)


async def receive(client: Client, count: int, within_s: float = 15) -> list[IncomingMessage]:
    return [await client.next_message(within_s) for _ in range(count)]


async def texts(client: Client, count: int, within_s: float = 15) -> list[str]:
    return [m.text for m in await receive(client, count, within_s)]


async def nothing_more(client: Client, wait_s: float = 1.0) -> None:
    with pytest.raises(TimeoutError):
        extra = await client.next_message(wait_s)
        pytest.fail(f"unexpected extra message {extra.text!r}")


async def eventually(check: Callable[[], bool], within_s: float = 10) -> None:
    for _ in range(int(within_s / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")
