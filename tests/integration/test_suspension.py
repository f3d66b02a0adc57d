"""Suspension against a real `covey server`: a console suspension revokes every token of
the account, closes its open WebSocket with a clear code and reason, refuses every
authenticated action afterwards, and login only says `account_suspended` to the device
that proves its key."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from covey.client import Client
from covey.moderation import ReportCategory
from tests.integration._console import console_login, console_suspend, create_console_user
from tests.integration._raw import RawDevice
from tests.integration.test_client_e2e import Devices, receive

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def devices(covey_server: Any, tmp_path: Path) -> Any:
    made = Devices(covey_server, tmp_path / "clients")
    made.tmp.mkdir()
    yield made
    await made.close_all()


async def _raw_device_of(client: Client, url: str) -> RawDevice:
    """A second, raw device of `client`'s account (linked with a link token)."""
    token = await client.create_link_token()
    raw = RawDevice(url, client.user_id)
    async with httpx.AsyncClient(base_url=url, trust_env=False) as http:
        added = await http.post("/v1/devices", json={"link_token": token,
                                                     "device": raw.device_keys()})
    assert added.status_code == 201, added.text
    await asyncio.to_thread(raw.login)
    await asyncio.to_thread(raw.upload_keys, 3)
    return raw


class _Socket(threading.Thread):
    """Holds a raw device's WebSocket open and records how it ends."""

    def __init__(self, device: RawDevice, ws_url: str) -> None:
        super().__init__(daemon=True)
        self.device, self.ws_url = device, ws_url
        self.opened = threading.Event()
        self.frames: list[dict[str, Any]] = []
        self.close: tuple[int | None, str | None] = (None, None)

    def run(self) -> None:
        with self.device.ws(self.ws_url) as sock:
            self.opened.set()
            try:
                while True:
                    self.frames.append(json.loads(sock.recv(timeout=60)))
            except ConnectionClosed as closed:
                frame = closed.rcvd
                self.close = (frame.code, frame.reason) if frame else (None, None)


def _actions(raw: RawDevice, carol: str, invite: str, headers: dict[str, str]
             ) -> dict[str, httpx.Response]:
    with httpx.Client(base_url=raw.base_url, headers=headers, trust_env=False,
                      timeout=30) as http:
        return {
            "contact_request": http.post("/v1/contacts/requests", json={"user_id": carol}),
            "invite_join": http.post("/v1/invites/join", json={"token": invite}),
            "group_create": http.post("/v1/groups", json={"name": "mine", "members": []}),
            "blob_upload": http.post("/v1/blobs", content=b"x" * 100,
                                     headers={"content-type": "application/octet-stream"}),
            "link_token": http.post("/v1/devices/link-token"),
        }


def _login_with_signature(raw: RawDevice, *, forged: bool) -> httpx.Response:
    with httpx.Client(base_url=raw.base_url, trust_env=False, timeout=30) as http:
        challenge = http.post("/v1/auth/challenge", json={"user_id": raw.user_id,
                                                          "device_id": raw.device_id})
        assert challenge.status_code == 200, challenge.text
        body = raw.sign_challenge(challenge.json())
        if forged:  # a stranger: knows the ids, not the key
            body["signature"] = RawDevice(raw.base_url, "someone").sign(b"not the challenge")
        return http.post("/v1/auth/token", json=body)


async def test_suspension_revokes_tokens_closes_sockets_and_refuses_every_action(
        covey_server: Any, devices: Devices) -> None:
    alice, bob = await devices.register("alice"), await devices.register("bob")
    carol = await devices.register("carol")
    raw = await _raw_device_of(alice, covey_server.url)
    group = await bob.create_group("bobs group", [])
    invite = (await bob.create_invite(group.group_id)).token
    message_id = await alice.send_text("bob", "let's keep our chats just between us ok")
    await receive(bob, 1)
    receipt = await bob.report(message_id, ReportCategory.GROOMING_OR_ENTICEMENT)
    old_headers = dict(raw.headers)

    socket = _Socket(raw, covey_server.ws_url)
    socket.start()
    assert await asyncio.to_thread(socket.opened.wait, 10)
    await asyncio.to_thread(create_console_user, covey_server, "mod", "moderator")
    mod, csrf = await asyncio.to_thread(console_login, covey_server, "mod")
    await asyncio.to_thread(console_suspend, mod, csrf, receipt.report_id, "grooming")

    await asyncio.to_thread(socket.join, 15)
    assert not socket.is_alive(), "the suspended account's WebSocket stayed open"
    assert socket.close == (4403, "account_suspended"), socket.close
    assert any(f["type"] == "error" and f["error"]["code"] == "account_suspended"
               for f in socket.frames), socket.frames

    refused = await asyncio.to_thread(_actions, raw, carol.user_id, invite, old_headers)
    for name, answer in refused.items():
        assert answer.status_code == 401, (name, answer.status_code, answer.text)
        assert answer.json()["error"]["code"] == "bad_token", (name, answer.text)
    with pytest.raises(InvalidStatus) as denied:
        await asyncio.to_thread(lambda: raw.ws(covey_server.ws_url).__enter__())
    assert denied.value.response.status_code == 401

    # A stranger who names the device but cannot sign learns nothing about suspension.
    forged = await asyncio.to_thread(_login_with_signature, raw, forged=True)
    assert forged.status_code == 400, forged.text
    assert forged.json()["error"]["code"] == "bad_signature"
    genuine = await asyncio.to_thread(_login_with_signature, raw, forged=False)
    assert genuine.status_code == 403, genuine.text
    assert genuine.json()["error"]["code"] == "account_suspended"

    # Nothing of alice's went through: no request to carol, no membership, no group.
    assert not (await carol.contact_requests()).incoming
    listed = {g.group_id: g for g in await bob.groups()}
    assert [m.user_id for m in listed[group.group_id].members] == ["bob"]
    audit = await asyncio.to_thread(
        covey_server.rows, "SELECT detail FROM audit_log WHERE action = 'suspend'")
    assert audit == [("reported user alice; reason: grooming",)], audit
