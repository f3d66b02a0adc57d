"""Request plumbing shared by the routers: the services, the authenticated device, rate
limits, and the error responses every route documents in the OpenAPI spec."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from covey.errors import Unauthorized
from covey.protocol.wire import ErrorResponse
from covey.server.ratelimit import RateLimiter
from covey.server.services import Principal, Services
from covey.server.services.policy import Charge

_bearer = HTTPBearer(auto_error=False, description="token from POST /v1/auth/token")


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def limiter(request: Request) -> RateLimiter:
    found: RateLimiter = request.app.state.limiter
    return found


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthorized("send Authorization: Bearer <token>", code="missing_token")
    return await services(request).auth.authenticate(credentials.credentials)


def lookup_charge(limits: RateLimiter, principal: Principal) -> Charge:
    """Charges the caller's `lookup` limit (for looking up accounts it has no tie to)."""
    return lambda cost: limits.check("lookup", f"user:{principal.user_id}", cost=cost)


ServicesDep = Annotated[Services, Depends(services)]
PrincipalDep = Annotated[Principal, Depends(principal)]
LimiterDep = Annotated[RateLimiter, Depends(limiter)]

_ERR: dict[str, Any] = {"model": ErrorResponse}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ERR, "description": "malformed request or bad signature"},
    401: {**_ERR, "description": "missing, bad or expired credentials"},
    403: {**_ERR, "description": "not allowed"},
    404: {**_ERR, "description": "unknown user, device, group or blob"},
    409: {**_ERR, "description": "conflict (device list, group epoch, ids)"},
    413: {**_ERR, "description": "too large"},
    422: {**_ERR, "description": "the request does not match the schema"},
    429: {**_ERR, "description": "rate limited; see Retry-After"},
}
