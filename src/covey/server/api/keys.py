"""HTTP routes for one-time and fallback keys."""

from __future__ import annotations

from fastapi import APIRouter

from covey.protocol.wire import ClaimRequest, ClaimResponse, KeyCountResponse, KeysUploadRequest
from covey.server.api._deps import ERRORS, PrincipalDep, ServicesDep

router = APIRouter(responses=ERRORS, tags=["keys"])


@router.post("/v1/keys/upload", response_model=KeyCountResponse)
async def upload(body: KeysUploadRequest, principal: PrincipalDep,
                 services: ServicesDep) -> KeyCountResponse:
    return await services.keys.upload(principal, body)


@router.get("/v1/keys/count", response_model=KeyCountResponse)
async def count(principal: PrincipalDep, services: ServicesDep) -> KeyCountResponse:
    return await services.keys.count(principal)


@router.post("/v1/keys/claim", response_model=ClaimResponse)
async def claim(body: ClaimRequest, principal: PrincipalDep,
                services: ServicesDep) -> ClaimResponse:
    for user in sorted({device.user_id for device in body.devices}):
        await services.policy.check_visible(principal.user_id, user)
    return await services.keys.claim(body)
