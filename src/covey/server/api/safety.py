"""HTTP routes for the safety policy: a conversation's signed policy and the safety keys,
handle search, contact requests and contacts, blocks (listing and unblocking; blocking is
POST /v1/blocks) and mutes, and group invite links."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from covey.errors import NotFound
from covey.protocol.ids import (
    CONVERSATION_ID_PATTERN,
    GROUP_ID_PATTERN,
    USER_ID_PATTERN,
    dm_participants,
)
from covey.protocol.wire import (
    ContactList,
    ContactRequestInfo,
    ContactRequestList,
    GroupInfo,
    InviteResponse,
    JoinRequest,
    OnDeviceRules,
    PolicyStatement,
    SafetyKeys,
    UserIdList,
    UserLookup,
    UserRef,
)
from covey.server.api._deps import (
    ERRORS,
    LimiterDep,
    PrincipalDep,
    ServicesDep,
    lookup_charge,
)

router = APIRouter(responses=ERRORS, tags=["safety"])
UserIdPath = Annotated[str, Path(pattern=USER_ID_PATTERN)]
GroupIdPath = Annotated[str, Path(pattern=GROUP_ID_PATTERN)]
ConversationPath = Annotated[str, Path(pattern=f"^(?:{CONVERSATION_ID_PATTERN})$")]
RequestIdPath = Annotated[str, Path(pattern=r"^cr_[0-9a-f]{24}$")]


@router.get("/v1/safety/keys", response_model=SafetyKeys)
async def safety_keys(services: ServicesDep) -> SafetyKeys:
    """The policy-signing key (pin it) and the safety service's HPKE key, signed by it."""
    return services.policy.keys()


@router.get("/v1/safety/on-device-rules", response_model=OnDeviceRules)
async def on_device_rules(_principal: PrincipalDep, services: ServicesDep) -> OnDeviceRules:
    """In mode on-device: the phrase list children's clients scan with, signed."""
    return await asyncio.to_thread(services.policy.on_device_rules)


@router.get("/v1/conversations/{conversation_id}/policy", response_model=PolicyStatement)
async def conversation_policy(conversation_id: ConversationPath, principal: PrincipalDep,
                              services: ServicesDep, limits: LimiterDep) -> PolicyStatement:
    """How this conversation is protected, signed: every client shows `policy.label`."""
    pair = dm_participants(conversation_id)
    if pair is not None:
        if principal.user_id not in pair or pair[0] == pair[1]:
            raise NotFound("no such conversation", code="unknown_conversation")
        # The answer tells the other's band: only for someone the caller may find.
        other = pair[1] if pair[0] == principal.user_id else pair[0]
        await services.policy.check_visible(principal.user_id, other,
                                            charge=lookup_charge(limits, principal))
        return await services.policy.statement(conversation_id, list(pair), 0,
                                               principal.user_id)
    group = await services.groups.current(conversation_id)
    if group is None or principal.user_id not in group.members:
        raise NotFound("no such conversation", code="unknown_conversation")
    return await services.policy.statement(conversation_id, sorted(group.members),
                                           group.epoch, principal.user_id)


@router.get("/v1/users/{user_id}", response_model=UserLookup)
async def find_user(user_id: UserIdPath, principal: PrincipalDep,
                    services: ServicesDep, limits: LimiterDep) -> UserLookup:
    """Handle search: 404 for unknown handles and for accounts you may not find."""
    return await services.contacts.lookup(principal, user_id,
                                          charge=lookup_charge(limits, principal))


@router.post("/v1/contacts/requests", status_code=201, response_model=ContactRequestInfo)
async def request_contact(body: UserRef, principal: PrincipalDep,
                          services: ServicesDep, limits: LimiterDep) -> ContactRequestInfo:
    """Ask to become contacts (if they already asked you, this accepts theirs)."""
    limits.check("contact", f"user:{principal.user_id}")
    return await services.contacts.request(principal, body.user_id)


@router.get("/v1/contacts/requests", response_model=ContactRequestList)
async def contact_requests(principal: PrincipalDep,
                           services: ServicesDep) -> ContactRequestList:
    return await services.contacts.requests(principal)


@router.post("/v1/contacts/requests/{request_id}/accept", response_model=ContactRequestInfo)
async def accept_request(request_id: RequestIdPath, principal: PrincipalDep,
                         services: ServicesDep) -> ContactRequestInfo:
    return await services.contacts.decide(principal, request_id, "accepted")


@router.post("/v1/contacts/requests/{request_id}/decline", response_model=ContactRequestInfo)
async def decline_request(request_id: RequestIdPath, principal: PrincipalDep,
                          services: ServicesDep) -> ContactRequestInfo:
    return await services.contacts.decide(principal, request_id, "declined")


@router.delete("/v1/contacts/requests/{request_id}", response_model=ContactRequestInfo)
async def cancel_request(request_id: RequestIdPath, principal: PrincipalDep,
                         services: ServicesDep) -> ContactRequestInfo:
    return await services.contacts.decide(principal, request_id, "cancelled")


@router.get("/v1/contacts", response_model=ContactList)
async def contacts(principal: PrincipalDep, services: ServicesDep) -> ContactList:
    """Your contacts; an under-16 viewer sees a safety notice next to flagged accounts."""
    return await services.contacts.contacts(principal)


@router.delete("/v1/contacts/{user_id}", status_code=204)
async def remove_contact(user_id: UserIdPath, principal: PrincipalDep,
                         services: ServicesDep) -> Response:
    await services.contacts.remove(principal, user_id)
    return Response(status_code=204)


@router.get("/v1/blocks", response_model=UserIdList)
async def blocks(principal: PrincipalDep, services: ServicesDep) -> UserIdList:
    return await services.contacts.blocks(principal)


@router.delete("/v1/blocks/{user_id}", status_code=204)
async def unblock(user_id: UserIdPath, request: Request, principal: PrincipalDep,
                  services: ServicesDep) -> Response:
    await services.contacts.unblock(principal, user_id)
    request.app.state.reports.gate.blocked.discard((principal.user_id, user_id))
    return Response(status_code=204)


@router.get("/v1/mutes", response_model=UserIdList)
async def mutes(principal: PrincipalDep, services: ServicesDep) -> UserIdList:
    """Accounts whose messages your clients deliver silently (every device of yours)."""
    return await services.contacts.mutes(principal)


@router.post("/v1/mutes", status_code=204)
async def mute(body: UserRef, principal: PrincipalDep, services: ServicesDep,
               limits: LimiterDep) -> Response:
    """Any handle, known or not, gets the same 204 (muting is no existence test)."""
    limits.check("lookup", f"user:{principal.user_id}")
    await services.contacts.mute(principal, body.user_id, True)
    return Response(status_code=204)


@router.delete("/v1/mutes/{user_id}", status_code=204)
async def unmute(user_id: UserIdPath, principal: PrincipalDep,
                 services: ServicesDep) -> Response:
    await services.contacts.mute(principal, user_id, False)
    return Response(status_code=204)


@router.post("/v1/groups/{group_id}/invites", status_code=201, response_model=InviteResponse,
             tags=["groups"])
async def create_invite(group_id: GroupIdPath, principal: PrincipalDep,
                        services: ServicesDep) -> InviteResponse:
    """An invite link for the group (admins; valid 7 days)."""
    return await services.groups.create_invite(principal, group_id)


@router.post("/v1/invites/join", response_model=GroupInfo, tags=["groups"])
async def join(body: JoinRequest, principal: PrincipalDep, services: ServicesDep) -> GroupInfo:
    """Redeem an invite link; the contact rules hold against every member."""
    return await services.groups.join_by_invite(principal, body.token)
