"""HTTP routes for encrypted attachment blobs (raw bytes, streamed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse

from covey.errors import InvalidInput
from covey.protocol.ids import BLOB_ID_PATTERN
from covey.protocol.wire import BlobUploadResponse
from covey.server.api._deps import ERRORS, LimiterDep, PrincipalDep, ServicesDep, client_ip

router = APIRouter(responses=ERRORS, tags=["blobs"])

_RAW_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("/v1/blobs", status_code=201, response_model=BlobUploadResponse,
             openapi_extra=_RAW_BODY)
async def upload(request: Request, principal: PrincipalDep, services: ServicesDep,
                 limits: LimiterDep) -> BlobUploadResponse:
    limits.check("blob", f"user:{principal.user_id}", f"ip:{client_ip(request)}")
    declared = request.headers.get("content-length")
    size: int | None = None
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise InvalidInput("bad Content-Length header") from exc
    return await services.blobs.upload(principal, request.stream(), size)


@router.get("/v1/blobs/{blob_id}", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "the stored bytes"}})
async def download(blob_id: Annotated[str, Path(pattern=BLOB_ID_PATTERN)],
                   principal: PrincipalDep, services: ServicesDep) -> FileResponse:
    path, row = await services.blobs.locate_for(principal, blob_id)
    # A blob that matched a known harmful image goes to no one but its uploader.
    await services.images.check_download(row, principal.user_id)
    return FileResponse(path, media_type="application/octet-stream",
                        headers={"X-Content-SHA256": row.sha256})
