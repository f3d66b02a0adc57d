"""HTTP routes for accounts, devices and login."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from covey.protocol.ids import DEVICE_ID_PATTERN, USER_ID_PATTERN
from covey.protocol.wire import (
    AddDeviceRequest,
    ChallengeRequest,
    ChallengeResponse,
    DeviceList,
    LinkTokenResponse,
    RegisterRequest,
    RegisterResponse,
    TokenRequest,
    TokenResponse,
)
from covey.server.api._deps import (
    ERRORS,
    LimiterDep,
    PrincipalDep,
    ServicesDep,
    client_ip,
    lookup_charge,
)

router = APIRouter(responses=ERRORS)


@router.post("/v1/accounts", status_code=201, response_model=RegisterResponse,
             tags=["accounts"])
async def register(body: RegisterRequest, request: Request, services: ServicesDep,
                   limits: LimiterDep) -> RegisterResponse:
    limits.check("register", f"ip:{client_ip(request)}")
    return await services.accounts.register(body)


@router.post("/v1/devices/link-token", status_code=201, response_model=LinkTokenResponse,
             tags=["accounts"])
async def link_token(principal: PrincipalDep, services: ServicesDep) -> LinkTokenResponse:
    return await services.accounts.create_link_token(principal)


@router.post("/v1/devices", status_code=201, response_model=RegisterResponse,
             tags=["accounts"])
async def add_device(body: AddDeviceRequest, request: Request, services: ServicesDep,
                     limits: LimiterDep) -> RegisterResponse:
    limits.check("register", f"ip:{client_ip(request)}")
    return await services.accounts.add_device(body)


@router.delete("/v1/devices/{device_id}", status_code=204, tags=["accounts"])
async def remove_device(device_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)],
                        principal: PrincipalDep, services: ServicesDep) -> Response:
    """Unlink another device of this account (a lost phone): it stops receiving at once."""
    await services.accounts.remove_device(principal, device_id)
    services.auth.forget_account(principal.user_id)  # its cached tokens and sockets here
    return Response(status_code=204)


@router.get("/v1/users/{user_id}/devices", response_model=DeviceList, tags=["accounts"])
async def user_devices(user_id: Annotated[str, Path(pattern=USER_ID_PATTERN)],
                       principal: PrincipalDep, services: ServicesDep,
                       limits: LimiterDep) -> DeviceList:
    """404 for unknown accounts and for accounts the contact rules keep you from."""
    await services.policy.check_visible(principal.user_id, user_id,
                                        charge=lookup_charge(limits, principal))
    return await services.accounts.device_list(user_id)


@router.post("/v1/auth/challenge", response_model=ChallengeResponse, tags=["auth"])
async def challenge(body: ChallengeRequest, request: Request, services: ServicesDep,
                    limits: LimiterDep) -> ChallengeResponse:
    limits.check("login", f"ip:{client_ip(request)}", f"user:{body.user_id}")
    return await services.auth.challenge(body)


@router.post("/v1/auth/token", response_model=TokenResponse, tags=["auth"])
async def token(body: TokenRequest, request: Request, services: ServicesDep,
                limits: LimiterDep) -> TokenResponse:
    limits.check("login", f"ip:{client_ip(request)}")
    return await services.auth.token(body)
