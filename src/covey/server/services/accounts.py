"""Accounts and devices: registration with self-signed device keys, link tokens for more
devices, device lists (cached per user, invalidated when a device is added)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping

from covey.errors import Conflict, InvalidInput, NotFound
from covey.protocol.wire import (
    AddDeviceRequest,
    DeviceKeys,
    DeviceList,
    DeviceListChangedFrame,
    LinkTokenResponse,
    RegisterRequest,
    RegisterResponse,
    device_signing_bytes,
)
from covey.safety.detectors.phrase_list import PhraseListFile
from covey.server.fanout import DeviceAddress, Fanout, PushFrame
from covey.server.services._common import Principal, now_ms, secret_hash, verify_ed25519
from covey.server.services.handles import HandlePhrases, handle_skeleton, is_reserved
from covey.server.storage.repository import DeviceRow, Repository
from covey.settings import Settings

# Device lists change rarely; the TTL only bounds staleness when several processes share
# one database (each invalidates its own cache on change).
_DEVICE_CACHE_TTL_S = 30.0


def _check_self_signature(device: DeviceKeys) -> None:
    verify_ed25519(device.signing_key,
                   device_signing_bytes(device.user_id, device.device_id,
                                        device.identity_key, device.signing_key),
                   device.signature, what="device")


def _row(device: DeviceKeys) -> DeviceRow:
    return DeviceRow(pk=0, user_id=device.user_id, device_id=device.device_id,
                     identity_key=device.identity_key, signing_key=device.signing_key,
                     signature=device.signature)


def device_keys(row: DeviceRow) -> DeviceKeys:
    return DeviceKeys.model_construct(user_id=row.user_id, device_id=row.device_id,
                                      identity_key=row.identity_key,
                                      signing_key=row.signing_key, signature=row.signature)


class DeviceDirectory:
    """user id -> {device id: device row}, read through from storage."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._cache: dict[str, tuple[float, dict[str, DeviceRow]]] = {}

    async def devices(self, user_id: str) -> dict[str, DeviceRow]:
        hit = self._cache.get(user_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < _DEVICE_CACHE_TTL_S:
            return hit[1]
        rows = {d.device_id: d for d in await self._repo.user_devices(user_id)}
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[user_id] = (now, rows)
        return rows

    def invalidate(self, user_id: str) -> None:
        self._cache.pop(user_id, None)


class AccountService:
    def __init__(self, settings: Settings, repo: Repository, directory: DeviceDirectory,
                 phrases: PhraseListFile, fanout: Fanout,
                 contacts_of: Callable[[str], Awaitable[Mapping[str, int]]]) -> None:
        self._settings = settings
        self._repo = repo
        self.directory = directory
        self._phrases = HandlePhrases(phrases)
        self._fanout = fanout
        self._contacts_of = contacts_of

    async def register(self, request: RegisterRequest) -> RegisterResponse:
        handle = request.device.user_id
        if is_reserved(handle):
            raise Conflict("this handle is reserved", code="handle_reserved",
                           details={"field": "user_id"})
        if self._phrases.matches(handle):
            raise InvalidInput("this handle is not allowed: choose another",
                               code="handle_not_allowed", details={"field": "user_id"})
        _check_self_signature(request.device)
        await self._repo.create_user(_row(request.device), now_ms(), handle_skeleton(handle))
        self.directory.invalidate(request.device.user_id)
        return RegisterResponse(user_id=request.device.user_id,
                                device_id=request.device.device_id)

    async def create_link_token(self, principal: Principal) -> LinkTokenResponse:
        token = secrets.token_urlsafe(32)
        expires = now_ms() + self._settings.link_token_ttl_s * 1000
        await self._repo.create_link_token(principal.user_id, secret_hash(token), expires)
        return LinkTokenResponse(link_token=token, expires_at_ms=expires)

    async def add_device(self, request: AddDeviceRequest) -> RegisterResponse:
        _check_self_signature(request.device)
        await self._repo.add_device_with_link_token(
            secret_hash(request.link_token), _row(request.device), now_ms())
        self.directory.invalidate(request.device.user_id)
        await self._announce_device_change(request.device.user_id)
        return RegisterResponse(user_id=request.device.user_id,
                                device_id=request.device.device_id)

    async def remove_device(self, principal: Principal, device_id: str) -> None:
        """Unlink another device of the principal's account."""
        if device_id == principal.device_id:
            raise InvalidInput("a device cannot unlink itself: unlink it from another of "
                               "your devices", code="cannot_remove_self")
        if not await self._repo.remove_device(principal.user_id, device_id, now_ms()):
            raise NotFound(f"no device {device_id!r} on this account", code="unknown_device")
        self.directory.invalidate(principal.user_id)
        await self._announce_device_change(principal.user_id)

    async def _announce_device_change(self, user_id: str) -> None:
        """Tell the connected devices of the account, its contacts and its groups'
        members that its device list changed (their clients show it: a device the
        user did not add is how a compromised account or server shows up)."""
        audience = {user_id, *await self._contacts_of(user_id)}
        for group in await self._repo.groups_of_user(user_id):
            audience.update(group.members)
        frame = DeviceListChangedFrame(user_id=user_id)
        items: list[tuple[DeviceAddress, PushFrame]] = []
        for user in sorted(audience):
            for device_id in await self.directory.devices(user):
                items.append((DeviceAddress(user, device_id), frame))
        self._fanout.publish(items)

    async def device_list(self, user_id: str) -> DeviceList:
        devices = await self.directory.devices(user_id)
        if not devices and not await self._repo.user_exists(user_id):
            raise NotFound(f"no user {user_id!r}", code="unknown_user")
        return DeviceList(user_id=user_id,
                          devices=[device_keys(d) for d in devices.values()])

