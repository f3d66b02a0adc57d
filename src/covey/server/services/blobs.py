"""Encrypted attachment blobs: streamed to a temporary file under the size limit while
hashing, then moved into place; an oversized or broken upload leaves nothing behind.
Only the uploader and the participants of a conversation that declared a blob may read
it (everyone else gets the unknown blob's 404), and blobs nobody references are purged."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from covey.errors import InvalidInput, NotFound, QuotaExceeded, TooLarge
from covey.protocol.ids import new_blob_id
from covey.protocol.wire import BlobUploadResponse
from covey.server.services._common import Principal, now_ms
from covey.server.storage.repository import BlobRow, Repository
from covey.settings import Settings

log = logging.getLogger(__name__)


def _flush_to_disk(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())


async def check_declared_blobs(repo: Repository, user_id: str, blob_ids: list[str]) -> None:
    """A sender may declare only blobs it may read itself (its own uploads, or one it
    received): declaring grants the conversation access. 404 `unknown_blob` otherwise,
    the same answer as for a blob that does not exist."""
    if len(set(blob_ids)) != len(blob_ids):
        raise InvalidInput("a blob is declared twice", details={"field": "blob_ids"})
    for index, blob_id in enumerate(blob_ids):
        if await repo.readable_blob(blob_id, user_id) is None:
            raise NotFound("no such blob", code="unknown_blob",
                           details={"field": "blob_ids", "index": index, "blob_id": blob_id})


class BlobService:
    def __init__(self, settings: Settings, repo: Repository) -> None:
        self._settings = settings
        self._repo = repo
        self.root = settings.data_dir / "blobs"
        self._tmp = self.root / "tmp"

    def prepare_dirs(self) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        # Leftovers of a crash mid-upload were never acknowledged: drop them.
        for leftover in self._tmp.iterdir():
            leftover.unlink(missing_ok=True)

    def path(self, blob_id: str) -> Path:
        return self.root / blob_id

    async def upload(self, principal: Principal, chunks: AsyncIterator[bytes],
                     declared_size: int | None) -> BlobUploadResponse:
        limit = self._settings.max_blob_bytes
        if declared_size is not None and declared_size > limit:
            raise TooLarge(f"blobs are at most {limit} bytes", details={"limit": limit})
        quota = self._settings.blob_quota_bytes
        # Refused before a byte is written when the quota is already (or would be) spent;
        # the row insert checks again, atomically, once the real size is known.
        used = await self._repo.blob_bytes(principal.user_id)
        if used >= quota or used + (declared_size or 0) > quota:
            raise QuotaExceeded(
                f"this account may store at most {quota} bytes of attachments",
                details={"quota_bytes": quota, "used_bytes": used})
        blob_id = new_blob_id()
        tmp = self._tmp / blob_id
        digest = hashlib.sha256()
        size = 0
        try:
            with tmp.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"blobs are at most {limit} bytes",
                                       details={"limit": limit})
                    digest.update(chunk)
                    out.write(chunk)
                # Flushing up to 100 MiB to disk must not stall the event loop.
                await asyncio.to_thread(_flush_to_disk, out)
            os.replace(tmp, self.path(blob_id))
        finally:
            tmp.unlink(missing_ok=True)
        try:
            await self._repo.insert_blob(BlobRow(blob_id, principal.user_id, digest.hexdigest(),
                                                 size), now_ms(), quota)
        except BaseException:
            self.path(blob_id).unlink(missing_ok=True)
            raise
        return BlobUploadResponse(blob_id=blob_id, sha256=digest.hexdigest(), size=size)

    async def locate_for(self, principal: Principal, blob_id: str) -> tuple[Path, BlobRow]:
        """The blob for a download by `principal`: 404 `unknown_blob`, the same answer as
        for an id that does not exist, unless they uploaded it or take part in a
        conversation that declared it (no oracle for other people's blob ids)."""
        row = await self._repo.readable_blob(blob_id, principal.user_id)
        path = self.path(blob_id)
        if row is None or not path.is_file():
            raise NotFound("no such blob", code="unknown_blob")
        return path, row

    async def locate_declared(self, blob_id: str,
                              conversations: list[str]) -> tuple[Path, BlobRow]:
        """The blob, only when a message of one of `conversations` declared it (what a
        report may read: exactly what its conversation's participants could fetch)."""
        if not await self._repo.blob_declared_in(blob_id, conversations):
            raise NotFound("no such blob", code="unknown_blob")
        return await self.locate(blob_id)

    async def purge(self) -> int:
        """Delete blobs that no message has declared within the retention (and uploads
        never declared past the grace period); returns how many were deleted."""
        now = now_ms()
        ids = await self._repo.purge_blobs(
            now - self._settings.blob_unreferenced_grace_s * 1000,
            now - self._settings.blob_retention_s * 1000)
        for blob_id in ids:
            self.path(blob_id).unlink(missing_ok=True)
        return len(ids)

    async def purge_loop(self) -> None:
        """Run `purge` now and then, forever."""
        interval = max(1.0, min(300.0, min(self._settings.blob_unreferenced_grace_s,
                                           self._settings.blob_retention_s) / 4))
        while True:
            try:
                removed = await self.purge()
                if removed:
                    log.info("purged %d unreferenced blobs", removed)
            except Exception:
                log.exception("blob purge failed")
            await asyncio.sleep(interval)

    async def locate(self, blob_id: str) -> tuple[Path, BlobRow]:
        row = await self._repo.get_blob(blob_id)
        path = self.path(blob_id)
        if row is None or not path.is_file():
            raise NotFound("no such blob", code="unknown_blob")
        return path, row
