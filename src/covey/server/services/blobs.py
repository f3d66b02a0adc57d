"""Encrypted attachment blobs: streamed to a temporary file under the size limit while
hashing, then moved into place; an oversized or broken upload leaves nothing behind."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from covey.errors import NotFound, QuotaExceeded, TooLarge
from covey.protocol.ids import new_blob_id
from covey.protocol.wire import BlobUploadResponse
from covey.server.services._common import Principal, now_ms
from covey.server.storage.repository import BlobRow, Repository
from covey.settings import Settings


def _flush_to_disk(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())


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

    async def locate(self, blob_id: str) -> tuple[Path, BlobRow]:
        row = await self._repo.get_blob(blob_id)
        path = self.path(blob_id)
        if row is None or not path.is_file():
            raise NotFound("no such blob", code="unknown_blob")
        return path, row
