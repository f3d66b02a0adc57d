"""One-time and fallback keys: signed uploads, counts, and atomic claims that tell a
device (with a `keys_low` frame) when its stock of one-time keys runs low."""

from __future__ import annotations

from covey.errors import InvalidInput
from covey.protocol.wire import (
    ClaimRequest,
    ClaimResponse,
    DeviceRef,
    KeyBundle,
    KeyCountResponse,
    KeysLowFrame,
    KeysUploadRequest,
    SignedKey,
    one_time_key_signing_bytes,
)
from covey.server.fanout import DeviceAddress, Fanout, PushFrame
from covey.server.services._common import Principal, verify_ed25519
from covey.server.services.accounts import DeviceDirectory, device_keys
from covey.server.storage.repository import DeviceRow, KeyRow, Repository
from covey.settings import Settings


class KeyService:
    def __init__(self, settings: Settings, repo: Repository, directory: DeviceDirectory,
                 fanout: Fanout) -> None:
        self._settings = settings
        self._repo = repo
        self._directory = directory
        self._fanout = fanout

    async def upload(self, principal: Principal, request: KeysUploadRequest) -> KeyCountResponse:
        devices = await self._directory.devices(principal.user_id)
        device = devices.get(principal.device_id)
        if device is None:
            self._directory.invalidate(principal.user_id)
            devices = await self._directory.devices(principal.user_id)
            device = devices[principal.device_id]
        for key in request.one_time_keys:
            self._check(principal, device, key, fallback=False)
        if request.fallback_key is not None:
            self._check(principal, device, request.fallback_key, fallback=True)
        ids = [k.key_id for k in request.one_time_keys]
        if len(set(ids)) != len(ids):
            raise InvalidInput("one_time_keys repeats a key_id", details={"field": "key_id"})
        fallback = request.fallback_key
        count, has_fallback = await self._repo.upload_keys(
            principal.device_pk,
            [KeyRow(k.key_id, k.key, k.signature) for k in request.one_time_keys],
            None if fallback is None else KeyRow(fallback.key_id, fallback.key,
                                                 fallback.signature))
        return KeyCountResponse(one_time_key_count=count, has_fallback_key=has_fallback)

    @staticmethod
    def _check(principal: Principal, device: DeviceRow, key: SignedKey, *,
               fallback: bool) -> None:
        verify_ed25519(device.signing_key,
                       one_time_key_signing_bytes(principal.user_id, principal.device_id,
                                                  key.key_id, key.key, fallback),
                       key.signature, what="fallback_key" if fallback else "one_time_key")

    async def count(self, principal: Principal) -> KeyCountResponse:
        count, has_fallback = await self._repo.key_count(principal.device_pk)
        return KeyCountResponse(one_time_key_count=count, has_fallback_key=has_fallback)

    async def claim(self, request: ClaimRequest, visible: set[str]) -> ClaimResponse:
        """Claim one key per device; devices of accounts not in `visible` (unknown, or
        hidden from the caller by the contact rules) are `missing`, unlooked-at."""
        wanted: list[tuple[DeviceRef, DeviceRow]] = []
        missing: list[DeviceRef] = []
        seen: set[tuple[str, str]] = set()
        for ref in request.devices:
            if (ref.user_id, ref.device_id) in seen:
                continue
            seen.add((ref.user_id, ref.device_id))
            if ref.user_id not in visible:
                missing.append(ref)
                continue
            row = (await self._directory.devices(ref.user_id)).get(ref.device_id)
            if row is None:
                missing.append(ref)
            else:
                wanted.append((ref, row))
        claimed = {c.device_pk: c for c in await self._repo.claim_keys(
            [row.pk for _, row in wanted])}
        bundles = []
        low: list[tuple[DeviceAddress, PushFrame]] = []
        for ref, row in wanted:
            got = claimed.get(row.pk)
            if got is None:
                missing.append(ref)
                continue
            bundles.append(KeyBundle(
                device=device_keys(row),
                one_time_key=SignedKey(key_id=got.key.key_id, key=got.key.key,
                                       signature=got.key.signature),
                fallback=got.fallback))
            if got.remaining < self._settings.one_time_keys_low:
                low.append((DeviceAddress(row.user_id, row.device_id),
                            KeysLowFrame(one_time_key_count=got.remaining)))
        if low:
            self._fanout.publish(low)
        return ClaimResponse(bundles=bundles, missing=missing)
