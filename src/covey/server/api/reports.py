"""HTTP routes for reports and blocks. The reported sender is never told of either."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from covey.errors import Forbidden
from covey.moderation.wire import (
    AttachmentStatusOut,
    BlockRequest,
    BlockResponse,
    ItemStatusOut,
    ReportReceiptOut,
    ReportSubmission,
)
from covey.protocol.wire import ModeratorWarningList
from covey.server.api._deps import ERRORS, LimiterDep, PrincipalDep, client_ip
from covey.server.services.moderation import ModerationService
from covey.server.services.reports import ReportService

router = APIRouter(responses=ERRORS, tags=["reports"])


def _reports(request: Request) -> ReportService:
    found: ReportService = request.app.state.reports
    return found


@router.post("/v1/reports", status_code=201, response_model=ReportReceiptOut,
             responses={200: {"model": ReportReceiptOut, "description": "a replayed report"}})
async def submit_report(body: ReportSubmission, request: Request,
                        principal: PrincipalDep, limits: LimiterDep) -> Response:
    """File a report of franked evidence; optionally block the sender too."""
    limits.check("report", f"user:{principal.user_id}", f"ip:{client_ip(request)}")
    receipt = await _reports(request).submit(principal, body.report, block=body.block)
    verification = receipt.verification
    answer = ReportReceiptOut(
        report_id=receipt.row.report_id, duplicate=receipt.duplicate, blocked=receipt.blocked,
        priority=receipt.row.priority,
        attribution="verified" if receipt.row.attributed_user else "unverified_claim",
        messages_submitted=len(verification.items),
        messages_verified=len(verification.verified_items),
        reported_message_verified=verification.reported.verified,
        items=[ItemStatusOut(message_id=i.item.message_id,
                             sender_user=i.item.context.sender_user, status=i.status.value,
                             attachments=[AttachmentStatusOut(blob_id=a.ref.blob_id,
                                                              status=a.status.value)
                                          for a in i.attachments])
               for i in verification.items])
    return JSONResponse(answer.model_dump(mode="json"),
                        status_code=200 if receipt.duplicate else 201)


@router.post("/v1/blocks", status_code=201, response_model=BlockResponse)
async def block_user(body: BlockRequest, request: Request, principal: PrincipalDep,
                     limits: LimiterDep) -> BlockResponse:
    """Block a user: they can no longer send to you in a direct conversation. Any handle,
    known or not, gets the same answer (blocking is no existence test)."""
    limits.check("lookup", f"user:{principal.user_id}")
    if body.user_id == principal.user_id:
        raise Forbidden("you cannot block yourself", code="block_self")
    await _reports(request).block(principal, body.user_id)
    return BlockResponse(blocker=principal.user_id, blocked=body.user_id)


@router.get("/v1/me/warnings", response_model=ModeratorWarningList)
async def my_warnings(request: Request, principal: PrincipalDep) -> ModeratorWarningList:
    """Moderator warnings this account received (category and time only), newest first;
    each also arrives live as a `moderator_warning` frame."""
    moderation: ModerationService = request.app.state.moderation
    return await moderation.warnings_for(principal.user_id)
