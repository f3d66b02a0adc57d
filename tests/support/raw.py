"""Raw HTTP helpers for server tests: a device with real vodozemac keys that registers,
signs its logins and keys, and builds opaque envelopes, without the client SDK."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import vodozemac
from websockets.sync.client import ClientConnection, connect

from covey.protocol._encoding import b64encode
from covey.protocol.ids import dm_conversation_id, new_message_id
from covey.protocol.wire import (
    device_signing_bytes,
    login_signing_bytes,
    one_time_key_signing_bytes,
)


def new_handle(prefix: str = "u") -> str:
    return f"{prefix}{secrets.token_hex(5)}"


@dataclass
class RawDevice:
    """One device: its vodozemac account and, once logged in, its bearer token."""

    base_url: str
    user_id: str
    device_id: str = field(default_factory=lambda: "D" + secrets.token_hex(6))
    account: vodozemac.Account = field(default_factory=vodozemac.Account)
    token: str | None = None

    @property
    def signing_key(self) -> str:
        return str(self.account.ed25519_key.to_base64())

    @property
    def identity_key(self) -> str:
        return str(self.account.curve25519_key.to_base64())

    def sign(self, message: bytes) -> str:
        return str(self.account.sign(message).to_base64())

    def device_keys(self) -> dict[str, str]:
        return {
            "user_id": self.user_id, "device_id": self.device_id,
            "identity_key": self.identity_key, "signing_key": self.signing_key,
            "signature": self.sign(device_signing_bytes(
                self.user_id, self.device_id, self.identity_key, self.signing_key)),
        }

    @property
    def headers(self) -> dict[str, str]:
        assert self.token, "log in first"
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def ref(self) -> dict[str, str]:
        return {"user_id": self.user_id, "device_id": self.device_id}

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)

    # --- account ---------------------------------------------------------------------

    def register(self) -> RawDevice:
        with self.http() as c:
            r = c.post("/v1/accounts", json={"device": self.device_keys()})
        assert r.status_code == 201, r.text
        return self

    def challenge(self) -> dict[str, Any]:
        with self.http() as c:
            r = c.post("/v1/auth/challenge", json=self.ref)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def sign_challenge(self, challenge: dict[str, Any]) -> dict[str, str]:
        return {"challenge_id": challenge["challenge_id"], "signature": self.sign(
            login_signing_bytes(self.user_id, self.device_id, challenge["challenge"]))}

    def login(self) -> RawDevice:
        with self.http() as c:
            r = c.post("/v1/auth/token", json=self.sign_challenge(self.challenge()))
        assert r.status_code == 200, r.text
        self.token = r.json()["token"]
        return self

    def signed_key(self, key_id: str, key: str, *, fallback: bool) -> dict[str, str]:
        return {"key_id": key_id, "key": key, "signature": self.sign(
            one_time_key_signing_bytes(self.user_id, self.device_id, key_id, key, fallback))}

    def make_one_time_keys(self, n: int) -> list[dict[str, str]]:
        self.account.generate_one_time_keys(n)
        keys = [self.signed_key(kid, k.to_base64(), fallback=False)
                for kid, k in self.account.one_time_keys.items()]
        self.account.mark_keys_as_published()
        return keys

    def make_fallback_key(self) -> dict[str, str]:
        self.account.generate_fallback_key()
        [(kid, key)] = self.account.fallback_key.items()
        return self.signed_key(kid, key.to_base64(), fallback=True)

    def upload_keys(self, n: int = 5, fallback: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"one_time_keys": self.make_one_time_keys(n)}
        if fallback:
            body["fallback_key"] = self.make_fallback_key()
        with self.http() as c:
            r = c.post("/v1/keys/upload", json=body, headers=self.headers)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def accept_group_invitation(self, group_id: str) -> dict[str, Any]:
        """Join `group_id` by accepting this account's invitation to it (unverified and
        under-16 accounts are invited, never added); returns the `GroupInfo`."""
        with self.http() as c:
            listed = c.get("/v1/group-invitations", headers=self.headers)
            assert listed.status_code == 200, listed.text
            (invitation,) = [i for i in listed.json()["invitations"]
                             if i["group_id"] == group_id]
            accepted = c.post(f"/v1/group-invitations/{invitation['invitation_id']}/accept",
                              headers=self.headers)
        assert accepted.status_code == 200, accepted.text
        return dict(accepted.json())

    def link_new_device(self) -> RawDevice:
        """Add a second device to this user with a link token; returns it logged in."""
        with self.http() as c:
            r = c.post("/v1/devices/link-token", headers=self.headers)
            assert r.status_code == 201, r.text
            other = RawDevice(self.base_url, self.user_id)
            r = c.post("/v1/devices", json={"link_token": r.json()["link_token"],
                                            "device": other.device_keys()})
            assert r.status_code == 201, r.text
        return other.login()

    # --- messages ----------------------------------------------------------------------

    @contextmanager
    def ws(self, ws_url: str) -> Iterator[ClientConnection]:
        with connect(f"{ws_url}/v1/ws", additional_headers=self.headers,
                     max_size=2**24, open_timeout=10) as sock:
            yield sock


def register(base_url: str, prefix: str = "u") -> RawDevice:
    """A new user with one logged-in device and a few keys."""
    device = RawDevice(base_url, new_handle(prefix)).register().login()
    device.upload_keys(3)
    return device


def dm_envelope(sender: RawDevice, targets: list[RawDevice | dict[str, str]], *,
                peer: str, message_id: str | None = None, body_size: int = 300,
                commitment: str | None = None) -> dict[str, Any]:
    """An opaque 1:1 envelope (random bytes stand in for Olm ciphertexts)."""
    recipients = []
    for t in targets:
        ref = t.ref if isinstance(t, RawDevice) else t
        recipients.append({**ref, "olm_type": 1,
                           "body": b64encode(secrets.token_bytes(body_size))})
    return {
        "message_id": message_id or new_message_id(),
        "conversation_id": dm_conversation_id(sender.user_id, peer),
        "commitment": commitment or b64encode(secrets.token_bytes(32)),
        "recipients": recipients,
    }


def group_envelope(sender: RawDevice, group_id: str, epoch: int,
                   targets: list[RawDevice], *, message_id: str | None = None) -> dict[str, Any]:
    return {
        "message_id": message_id or new_message_id(),
        "conversation_id": group_id,
        "commitment": b64encode(secrets.token_bytes(32)),
        "recipients": [t.ref for t in targets],
        "group": {"session_id": "s1", "body": b64encode(secrets.token_bytes(200))},
        "group_epoch": epoch,
    }


def frames_until(sock: ClientConnection, predicate: Any, timeout: float = 10) -> list[Any]:
    """Read frames until `predicate(frames)` is true; returns them all."""
    import time

    frames: list[Any] = []
    deadline = time.monotonic() + timeout
    while not predicate(frames):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out; got {frames!r}"[:2000])
        frames.append(json.loads(sock.recv(timeout=remaining)))
    return frames
