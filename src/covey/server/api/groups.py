"""HTTP routes for groups and their members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from covey.protocol.ids import GROUP_ID_PATTERN, USER_ID_PATTERN
from covey.protocol.wire import AddMemberRequest, CreateGroupRequest, GroupInfo, GroupList
from covey.server.api._deps import ERRORS, LimiterDep, PrincipalDep, ServicesDep, lookup_charge

router = APIRouter(responses=ERRORS, tags=["groups"])
GroupIdPath = Annotated[str, Path(pattern=GROUP_ID_PATTERN)]
UserIdPath = Annotated[str, Path(pattern=USER_ID_PATTERN)]


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


@router.post("/v1/groups/{group_id}/members", response_model=GroupInfo)
async def add_member(group_id: GroupIdPath, body: AddMemberRequest, principal: PrincipalDep,
                     services: ServicesDep, limits: LimiterDep) -> GroupInfo:
    return await services.groups.add_member(principal, group_id, body.user_id,
                                            lookup_charge(limits, principal))


@router.delete("/v1/groups/{group_id}/members/{user_id}", response_model=GroupInfo)
async def remove_member(group_id: GroupIdPath, user_id: UserIdPath, principal: PrincipalDep,
                        services: ServicesDep) -> GroupInfo:
    return await services.groups.remove_member(principal, group_id, user_id)
