"""HTTP routes for age assurance: a challenge, a presentation answering it, and `/v1/me`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from covey.protocol.wire import AgeChallengeRequest, AgeStatus, MeResponse
from covey.server.api._deps import ERRORS, LimiterDep, PrincipalDep, ServicesDep

router = APIRouter(responses={
    **ERRORS, 410: {**ERRORS[400], "description": "the age challenge has expired"}})


@router.post("/v1/age/challenge", tags=["age"])
async def age_challenge(request: Request, body: AgeChallengeRequest, principal: PrincipalDep,
                        services: ServicesDep, limits: LimiterDep) -> dict[str, Any]:
    """A single-use presentation request for `band`, bound to this account and to this
    server's origin (5 min)."""
    limits.check("age", f"user:{principal.user_id}")
    # The origin the client reached (scheme and Host); `public_origin` overrides it.
    origin = f"{request.url.scheme}://{request.url.netloc}"
    return await services.age.challenge(principal, body, origin)


@router.post("/v1/age/presentation", response_model=AgeStatus, tags=["age"],
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {
                     "type": "object", "required": ["nonce", "presentation"],
                     "properties": {"nonce": {"type": "string"},
                                    "presentation": {"type": "object"}}}}}}})
async def age_presentation(request: Request, principal: PrincipalDep,
                           services: ServicesDep, limits: LimiterDep) -> AgeStatus:
    """Verify `{"nonce", "presentation"}`; the account's band changes only on success."""
    limits.check("age", f"user:{principal.user_id}")
    status = await services.age.present(principal, await request.body())
    services.policy.forget(principal.user_id)  # the band may have changed
    return status


@router.get("/v1/me", response_model=MeResponse, tags=["accounts"])
async def me(principal: PrincipalDep, services: ServicesDep) -> MeResponse:
    devices = await services.accounts.directory.devices(principal.user_id)
    return MeResponse(user_id=principal.user_id, device_id=principal.device_id,
                      devices=list(devices), age=await services.age.status(principal.user_id))
