"""HTTP routes for sending, the pending mailbox and acknowledgements."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from covey.protocol.wire import AckRequest, AckResponse, PendingResponse, SendEnvelope, SendReceipt
from covey.server.api._deps import ERRORS, LimiterDep, PrincipalDep, ServicesDep, client_ip

router = APIRouter(responses=ERRORS, tags=["messages"])


@router.post("/v1/messages", status_code=201, response_model=SendReceipt,
             responses={200: {"model": SendReceipt, "description": "a resend (duplicate)"}})
async def send(body: SendEnvelope, request: Request, principal: PrincipalDep,
               services: ServicesDep, limits: LimiterDep) -> Response:
    limits.check("send", f"user:{principal.user_id}", f"ip:{client_ip(request)}")
    receipt = await services.messages.send(principal, body)
    if not receipt.duplicate:
        request.app.state.metrics.messages_accepted.inc()
    return JSONResponse(receipt.model_dump(mode="json"),
                        status_code=200 if receipt.duplicate else 201)


@router.get("/v1/messages/pending", response_model=PendingResponse)
async def pending(principal: PrincipalDep, services: ServicesDep,
                  after: Annotated[int, Query(ge=0, le=2**62)] = 0,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> PendingResponse:
    return await services.messages.pending(principal, after, limit)


@router.post("/v1/messages/ack", response_model=AckResponse)
async def ack(body: AckRequest, principal: PrincipalDep, services: ServicesDep) -> AckResponse:
    return await services.messages.ack(principal, body.seqs)
