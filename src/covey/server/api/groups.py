"""HTTP routes for groups and their members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from covey.protocol.ids import GROUP_ID_PATTERN, USER_ID_PATTERN
from covey.protocol.wire import (
    GROUP_INVITATION_ID_PATTERN,
    AddMemberRequest,
    CreateGroupRequest,
    GroupInfo,
    GroupInvitationList,
    GroupList,
)
from covey.server.api._deps import ERRORS, LimiterDep, PrincipalDep, ServicesDep, lookup_charge

router = APIRouter(responses=ERRORS, tags=["groups"])
GroupIdPath = Annotated[str, Path(pattern=GROUP_ID_PATTERN)]
UserIdPath = Annotated[str, Path(pattern=USER_ID_PATTERN)]
InvitationIdPath = Annotated[str, Path(pattern=GROUP_INVITATION_ID_PATTERN)]


@router.post("/v1/groups", status_code=201, response_model=GroupInfo)
async def create(body: CreateGroupRequest, principal: PrincipalDep,
                 services: ServicesDep, limits: LimiterDep) -> GroupInfo:
    return await services.groups.create(principal, body, lookup_charge(limits, principal))


@router.get("/v1/groups", response_model=GroupList)
async def list_groups(principal: PrincipalDep, services: ServicesDep) -> GroupList:
    return await services.groups.list_for(principal)


@router.get("/v1/groups/{group_id}", response_model=GroupInfo)
async def get_group(group_id: GroupIdPath, principal: PrincipalDep,
                    services: ServicesDep) -> GroupInfo:
    return await services.groups.get(principal, group_id)


@router.post("/v1/groups/{group_id}/members", response_model=GroupInfo,
             responses={202: {"model": GroupInfo, "description": "invited, not added: an "
                              "unverified or under-16 account joins only by accepting"}})
async def add_member(group_id: GroupIdPath, body: AddMemberRequest, principal: PrincipalDep,
                     services: ServicesDep, limits: LimiterDep, response: Response) -> GroupInfo:
    info = await services.groups.add_member(principal, group_id, body.user_id,
                                            lookup_charge(limits, principal))
    if body.user_id in info.invited:
        response.status_code = 202
    return info


@router.get("/v1/group-invitations", response_model=GroupInvitationList)
async def list_invitations(principal: PrincipalDep,
                           services: ServicesDep) -> GroupInvitationList:
    return await services.groups.invitations(principal)


@router.post("/v1/group-invitations/{invitation_id}/accept", response_model=GroupInfo)
async def accept_invitation(invitation_id: InvitationIdPath, principal: PrincipalDep,
                            services: ServicesDep) -> GroupInfo:
    return await services.groups.accept_invitation(principal, invitation_id)


@router.post("/v1/group-invitations/{invitation_id}/decline", status_code=204)
async def decline_invitation(invitation_id: InvitationIdPath, principal: PrincipalDep,
                             services: ServicesDep) -> Response:
    await services.groups.decline_invitation(principal, invitation_id)
    return Response(status_code=204)


@router.delete("/v1/groups/{group_id}/members/{user_id}", response_model=GroupInfo)
async def remove_member(group_id: GroupIdPath, user_id: UserIdPath, principal: PrincipalDep,
                        services: ServicesDep) -> GroupInfo:
    return await services.groups.remove_member(principal, group_id, user_id)
