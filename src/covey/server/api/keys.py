"""HTTP routes for one-time and fallback keys."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter

from covey.errors import NotFound
from covey.protocol.wire import ClaimRequest, ClaimResponse, KeyCountResponse, KeysUploadRequest
from covey.server.api._deps import (
    ERRORS,
    LimiterDep,
    PrincipalDep,
    ServicesDep,
    lookup_charge,
)

router = APIRouter(responses=ERRORS, tags=["keys"])


@router.post("/v1/keys/upload", response_model=KeyCountResponse)
async def upload(body: KeysUploadRequest, principal: PrincipalDep,
                 services: ServicesDep) -> KeyCountResponse:
    return await services.keys.upload(principal, body)


@router.get("/v1/keys/count", response_model=KeyCountResponse)
async def count(principal: PrincipalDep, services: ServicesDep) -> KeyCountResponse:
    return await services.keys.count(principal)


@router.post("/v1/keys/claim", response_model=ClaimResponse)
async def claim(body: ClaimRequest, principal: PrincipalDep, services: ServicesDep,
                limits: LimiterDep) -> ClaimResponse:
    """Devices of accounts you may not see come back `missing`, exactly like those of
    accounts that do not exist."""
    charge = lookup_charge(limits, principal)
    visible: set[str] = set()
    for user in sorted({device.user_id for device in body.devices}):
        with contextlib.suppress(NotFound):
            await services.policy.check_visible(principal.user_id, user, charge=charge)
            visible.add(user)
    return await services.keys.claim(body, visible)
