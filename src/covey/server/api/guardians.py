"""HTTP routes for guardians: propose, accept and remove links, approve a child's removal
request, list links both ways, and read and acknowledge alerts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from covey.protocol.wire import (
    AcknowledgeAlertsRequest,
    AcknowledgeAlertsResponse,
    GuardianAlertList,
    GuardianLink,
    GuardianLinkList,
    GuardianRemoval,
    ProposeGuardianLink,
)
from covey.server.api._deps import ERRORS, LimiterDep, PrincipalDep, ServicesDep

router = APIRouter(responses=ERRORS, tags=["guardians"])
LinkIdPath = Annotated[str, Path(pattern=r"^gl_[A-Za-z0-9_-]{8,36}$")]


@router.post("/v1/guardians", status_code=201, response_model=GuardianLink)
async def propose(body: ProposeGuardianLink, principal: PrincipalDep, services: ServicesDep,
                  limits: LimiterDep) -> GuardianLink:
    """Propose a link; `role` is the role `user_id` would have. The other side accepts.
    404 `not_found` for unknown accounts and for those the contact rules hide."""
    limits.check("guardian", f"user:{principal.user_id}")
    return await services.guardians.propose(principal, body)


@router.get("/v1/guardians", response_model=GuardianLinkList)
async def list_links(principal: PrincipalDep, services: ServicesDep) -> GuardianLinkList:
    """Every link and proposal this account is part of, as child or as guardian."""
    return await services.guardians.links(principal)


@router.post("/v1/guardians/{link_id}/accept", response_model=GuardianLink)
async def accept(link_id: LinkIdPath, principal: PrincipalDep, services: ServicesDep,
                 limits: LimiterDep) -> GuardianLink:
    """Accept the other side's proposal: the child must be under 16, the guardian 16+."""
    limits.check("guardian", f"user:{principal.user_id}")
    return await services.guardians.accept(principal, link_id)


@router.delete("/v1/guardians/{link_id}", response_model=GuardianRemoval,
               responses={202: {"model": GuardianRemoval,
                                "description": "removal requested: the guardian must approve"}})
async def remove(link_id: LinkIdPath, principal: PrincipalDep, services: ServicesDep,
                 limits: LimiterDep) -> JSONResponse:
    """Withdraw or decline a proposal, or end a link. A child under 16 gets 202: the
    removal waits for the guardian's approval."""
    limits.check("guardian", f"user:{principal.user_id}")
    removal = await services.guardians.remove(principal, link_id)
    return JSONResponse(removal.model_dump(mode="json"),
                        status_code=202 if removal.outcome == "removal_requested" else 200)


@router.post("/v1/guardians/{link_id}/approve-removal", response_model=GuardianRemoval)
async def approve_removal(link_id: LinkIdPath, principal: PrincipalDep, services: ServicesDep,
                          limits: LimiterDep) -> GuardianRemoval:
    """The guardian consents to the child's request to remove the link."""
    limits.check("guardian", f"user:{principal.user_id}")
    return await services.guardians.approve_removal(principal, link_id)


@router.get("/v1/guardians/alerts", response_model=GuardianAlertList)
async def alerts(principal: PrincipalDep, services: ServicesDep,
                 unacknowledged: bool = False,
                 limit: Annotated[int, Query(ge=1, le=500)] = 100) -> GuardianAlertList:
    """Alerts received as guardian and those sent about this account, newest first."""
    return await services.guardians.alerts(principal, unacknowledged=unacknowledged,
                                           limit=limit)


@router.post("/v1/guardians/alerts/ack", response_model=AcknowledgeAlertsResponse)
async def acknowledge(body: AcknowledgeAlertsRequest, principal: PrincipalDep,
                      services: ServicesDep) -> AcknowledgeAlertsResponse:
    """Mark alerts read (only the guardian's own; unknown ids are ignored)."""
    return AcknowledgeAlertsResponse(
        acknowledged=await services.guardians.acknowledge(principal, body.alert_ids))
