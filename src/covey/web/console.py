"""Routes of the moderation console. Session cookie (HttpOnly, SameSite=Strict, Secure
with the `__Host-` prefix unless `console_allow_http`) and a per-session CSRF token in
every form; the login form uses a double-submit token. Pages show only fixed notices
(codes in the query string, never its text); suspend and escalate are confirmed with a
reason."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from covey.errors import CoveyError
from covey.moderation.verify import ItemStatus, ItemVerification
from covey.server.services.casework import MAX_NOTE_CHARS, CaseworkService
from covey.server.services.moderation import (
    CONFIRMED_ACTIONS,
    MAX_REASON_CHARS,
    ConsoleSession,
    ModerationService,
)
from covey.server.storage.console_repo import QueueFilter
from covey.settings import Settings
from covey.web import labels
from covey.web.charts import dimension_svg

_MAX_FORM = 16 * 1024
_STATIC = Path(__file__).parent / "static"

# The only texts a page shows as a notice or an error: the query string carries a code.
NOTICES = {
    "dismissed": "Report dismissed.",
    "warned": "The reported user was warned.",
    "suspended": "The reported user is suspended: their tokens are revoked, their "
                 "connections closed, and they can no longer log in or send.",
    "escalated": "Escalated: evidence bundle signed, CyberTipline XML validated against "
                 "the schema. The package is below.",
    "assigned": "Report assigned.",
    "unassigned": "Report unassigned.",
    "noted": "Note added.",
}
ERRORS = {
    "bad_login": "Wrong username or password.",
    "login_throttled": "Too many failed logins: wait a while before trying again.",
    "login_busy": "Too many logins at once: try again in a moment.",
    "moderator_disabled": "This console account is disabled.",
    "bad_action": "Unknown action.",
    "reason_required": "Give a reason for this action.",
    "unknown_report": "No such report.",
    "evidence_purged": "The evidence of this report has been purged.",
    "unverified_claim": "This report is an unverified claim: its reported message did not "
                        "verify, so no action against a user is possible.",
    "unknown_moderator": "There is no such console account to assign the report to.",
    "empty_note": "A note needs some text.",
}
_ACTION_LABELS = {"suspend": "Suspend the reported user",
                  "escalate": "Escalate to law enforcement"}

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["when"] = lambda ms: (
    "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"))
templates.env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
templates.env.filters["category"] = labels.category
templates.env.filters["band"] = labels.band
templates.env.filters["status_words"] = labels.status
templates.env.globals["labels"] = labels


def reporters_own(item: ItemVerification, reporter: str) -> bool:
    """A message the reporter sent themselves, complete but for a server tag: tags go to
    recipients, so a reporter's own lines are never attested. Context, not evidence."""
    return (item.item.context.sender_user == reporter and bool(item.findings)
            and all(f.code is ItemStatus.UNATTESTED for f in item.findings))


templates.env.globals["reporters_own"] = reporters_own

router = APIRouter(prefix="/console", include_in_schema=False)


@dataclass(frozen=True)
class _Cookies:
    """Cookie names and attributes: `__Host-` names need Secure, Path=/ and no Domain."""

    session: str
    login_csrf: str
    secure: bool
    path: str


def _cookies(request: Request) -> _Cookies:
    settings: Settings = request.app.state.settings
    if settings.console_allow_http:
        return _Cookies("covey_console", "covey_login_csrf", secure=False, path="/console")
    return _Cookies("__Host-covey_console", "__Host-covey_login_csrf", secure=True, path="/")


def _moderation(request: Request) -> ModerationService:
    found: ModerationService = request.app.state.moderation
    return found


def _casework(request: Request) -> CaseworkService:
    found: CaseworkService = request.app.state.casework
    return found


async def _session(request: Request) -> ConsoleSession | None:
    return await _moderation(request).session(request.cookies.get(_cookies(request).session))


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > _MAX_FORM:
        return {}
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _page(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=code)


def _to_login() -> RedirectResponse:
    return RedirectResponse("/console/login", status_code=303)


def _refused(request: Request, session: ConsoleSession | None, status: int,
             message: str) -> HTMLResponse:
    return _page(request, "error.html", status, session=session, status=status,
                 message=message)


def _error_code(exc: CoveyError) -> str:
    return exc.code if exc.code in ERRORS else "failed"


async def _checked_post(request: Request) -> tuple[ConsoleSession | None, dict[str, str],
                                                   Response | None]:
    """The session and form of a POST, or the response refusing it (login / 403 CSRF)."""
    session = await _session(request)
    if session is None:
        return None, {}, _to_login()
    form = await _form(request)
    if not _moderation(request).csrf_ok(session, form.get("csrf")):
        return session, form, _refused(request, session, 403,
                                       "Missing or wrong CSRF token: reload the page.")
    return session, form, None


@router.get("/console.css")
async def stylesheet() -> Response:
    return FileResponse(_STATIC / "console.css", media_type="text/css")


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, error: str = "") -> Response:
    cookies = _cookies(request)
    token = secrets.token_urlsafe(24)
    response = _page(request, "login.html", session=None, csrf=token,
                     error=ERRORS.get(error, ""))
    response.set_cookie(cookies.login_csrf, token, httponly=True, samesite="strict",
                        secure=cookies.secure, path=cookies.path)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    cookies = _cookies(request)
    form = await _form(request)
    cookie = request.cookies.get(cookies.login_csrf, "")
    submitted = form.get("csrf", "")
    if not cookie or not hmac.compare_digest(cookie.encode(), submitted.encode()):
        return _refused(request, None, 403, "Missing or wrong CSRF token: reload the page.")
    client = request.client.host if request.client else "unknown"
    try:
        token, _ = await _moderation(request).login(form.get("username", ""),
                                                    form.get("password", ""), client)
    except CoveyError as exc:
        retry = (exc.details or {}).get("retry_after_s")
        return RedirectResponse(f"/console/login?error={_error_code(exc)}", status_code=303,
                                headers={"Retry-After": str(retry)} if retry else None)
    response = RedirectResponse("/console/", status_code=303)
    response.set_cookie(cookies.session, token, httponly=True, samesite="strict",
                        secure=cookies.secure, path=cookies.path,
                        max_age=request.app.state.settings.console_session_ttl_s)
    response.delete_cookie(cookies.login_csrf, path=cookies.path, secure=cookies.secure,
                           httponly=True, samesite="strict")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    session, _, refused = await _checked_post(request)
    if refused is not None or session is None:
        return refused or _to_login()
    cookies = _cookies(request)
    await _moderation(request).logout(request.cookies.get(cookies.session, ""), session)
    response = _to_login()
    response.delete_cookie(cookies.session, path=cookies.path, secure=cookies.secure,
                           httponly=True, samesite="strict")
    return response


@router.get("/", response_class=HTMLResponse)
async def queue(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return _to_login()
    want = _queue_filter(request)
    entries = await _casework(request).queue(session, want)
    backlog = await _moderation(request).detection_backlog()
    return _page(request, "queue.html", session=session, entries=entries, backlog=backlog,
                 want=want, moderators=await _casework(request).moderators(),
                 filtered=want != QueueFilter(view=want.view))


def _queue_filter(request: Request) -> QueueFilter:
    """The queue's filters from the query string; unknown values filter nothing."""
    q = request.query_params
    view = "handled" if q.get("view") == "handled" else "open"
    priority = q.get("priority", "")
    return QueueFilter(
        view=view,
        category=q.get("category", "") if q.get("category") in labels.CATEGORIES else "",
        priority=int(priority) if priority in ("0", "1", "2", "3") else None,
        reporter_band=q.get("band", "") if q.get("band") in labels.BANDS else "",
        status=q.get("status", "") if q.get("status") in labels.STATUSES else "",
        assignee=q.get("assignee", "")[:64],
        query=q.get("q", "").strip()[:64])


@router.get("/reports/{report_id}", response_class=HTMLResponse)
async def report(request: Request, report_id: str, notice: str = "",
                 error: str = "") -> Response:
    session = await _session(request)
    if session is None:
        return _to_login()
    try:
        view = await _moderation(request).view(session, report_id)
    except CoveyError as exc:
        return _refused(request, session, exc.status, exc.message)
    casework = _casework(request)
    return _page(request, "report.html", session=session, view=view,
                 reported=await casework.reported_user(view.row),
                 assignee=await casework.assignee(report_id),
                 moderators=await casework.moderators(),
                 notes=await casework.notes(report_id), max_note=MAX_NOTE_CHARS,
                 notice=NOTICES.get(notice, ""),
                 error=ERRORS.get(error, "The action failed." if error else ""))


@router.post("/reports/{report_id}/action")
async def act(request: Request, report_id: str) -> Response:
    session, form, refused = await _checked_post(request)
    if refused is not None or session is None:
        return refused or _to_login()
    action, reason = form.get("action", ""), form.get("reason", "").strip()
    if action in CONFIRMED_ACTIONS and (form.get("confirm") != "yes" or not reason):
        return await _confirm(request, session, report_id, action,
                              missing_reason=form.get("confirm") == "yes")
    target = f"/console/reports/{quote(report_id)}"
    try:
        outcome = await _moderation(request).act(session, report_id, action, reason)
    except CoveyError as exc:
        return RedirectResponse(f"{target}?error={_error_code(exc)}", status_code=303)
    return RedirectResponse(f"{target}?notice={outcome}", status_code=303)


@router.post("/reports/{report_id}/assign")
async def assign(request: Request, report_id: str) -> Response:
    session, form, refused = await _checked_post(request)
    if refused is not None or session is None:
        return refused or _to_login()
    target = f"/console/reports/{quote(report_id)}"
    moderator = form.get("moderator", "").strip()
    try:
        row = await _moderation(request).report_row(report_id)
        outcome = await _casework(request).assign(
            session, row, session.username if moderator == "me" else moderator)
    except CoveyError as exc:
        if exc.code == "unknown_report":
            return _refused(request, session, exc.status, exc.message)
        return RedirectResponse(f"{target}?error={_error_code(exc)}", status_code=303)
    return RedirectResponse(f"{target}?notice={outcome}", status_code=303)


@router.post("/reports/{report_id}/notes")
async def add_note(request: Request, report_id: str) -> Response:
    session, form, refused = await _checked_post(request)
    if refused is not None or session is None:
        return refused or _to_login()
    target = f"/console/reports/{quote(report_id)}"
    try:
        row = await _moderation(request).report_row(report_id)
        await _casework(request).add_note(session, row, form.get("text", ""))
    except CoveyError as exc:
        if exc.code == "unknown_report":
            return _refused(request, session, exc.status, exc.message)
        return RedirectResponse(f"{target}?error={_error_code(exc)}#notes", status_code=303)
    return RedirectResponse(f"{target}?notice=noted#notes", status_code=303)


async def _confirm(request: Request, session: ConsoleSession, report_id: str, action: str,
                   *, missing_reason: bool) -> Response:
    """The confirmation step of suspend and escalate: what will happen, and a reason."""
    try:
        row = await _moderation(request).report_row(report_id)
    except CoveyError as exc:
        return _refused(request, session, exc.status, exc.message)
    return _page(request, "confirm.html", 400 if missing_reason else 200, session=session,
                 row=row, action=action, label=_ACTION_LABELS[action],
                 max_reason=MAX_REASON_CHARS,
                 error=ERRORS["reason_required"] if missing_reason else "")


@router.get("/reports/{report_id}/files/{name}")
async def escalation_file(request: Request, report_id: str, name: str) -> Response:
    session = await _session(request)
    if session is None:
        return _to_login()
    try:
        data = await _moderation(request).escalation_file(session, report_id, name)
    except CoveyError as exc:
        return _refused(request, session, exc.status, exc.message)
    return Response(data, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/attestation-key.pem")
async def attestation_key(request: Request) -> Response:
    """The platform's public attestation key, for checking bundles offline."""
    return Response(_moderation(request).attestation_public_pem(),
                    media_type="application/x-pem-file",
                    headers={"Content-Disposition": 'attachment; filename="covey-attestation'
                                                    '-public-key.pem"'})


@router.get("/audit", response_class=HTMLResponse)
async def audit(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return _to_login()
    try:
        rows = await _moderation(request).audit_log(session)
    except CoveyError as exc:
        return _refused(request, session, exc.status, exc.message)
    return _page(request, "audit.html", session=session, rows=rows)


@router.get("/transparency", response_class=HTMLResponse)
async def transparency(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return _to_login()
    start, end = _range(request)
    try:
        counts = await _casework(request).transparency(session, start, end)
    except CoveyError as exc:
        return _refused(request, session, exc.status, exc.message)
    return _page(request, "transparency.html", session=session, counts=counts,
                 charts=_chart(counts), start=start, end=end, public=False,
                 json_url="/console/transparency.json" + _range_query(start, end))


@router.get("/transparency.json")
async def transparency_json(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return _to_login()
    start, end = _range(request)
    try:
        counts = await _casework(request).transparency(session, start, end)
    except CoveyError as exc:
        return Response(json.dumps({"error": exc.code, "message": exc.message}),
                        status_code=exc.status, media_type="application/json")
    return Response(json.dumps(counts, indent=2), media_type="application/json")


@router.get("/public/transparency", response_class=HTMLResponse)
async def public_transparency(request: Request) -> Response:
    """The public transparency report: aggregates of completed months, no login, and every
    count under `transparency_min_count` hidden (see `suppress_small_counts`)."""
    try:
        months, first, last, counts = await _public_counts(request)
    except CoveyError as exc:
        return _refused(request, None, exc.status, exc.message)
    threshold = request.app.state.settings.transparency_min_count
    return _page(request, "transparency.html", session=None, counts=counts,
                 charts=_chart(counts, threshold) if counts else {}, start=first, end=last,
                 public=True, months=months, threshold=threshold,
                 json_url="/console/public/transparency.json" + _range_query(first, last))


@router.get("/public/transparency.json")
async def public_transparency_json(request: Request) -> Response:
    try:
        _, first, last, counts = await _public_counts(request)
    except CoveyError as exc:
        return Response(json.dumps({"error": exc.code, "message": exc.message}),
                        status_code=exc.status, media_type="application/json")
    body = {"from": first or None, "to": last or None,
            "suppressed_below": request.app.state.settings.transparency_min_count,
            "note": "null means hidden: fewer than suppressed_below, or hidden because a "
                    "small count could be worked out from it and the total", "counts": counts}
    return Response(json.dumps(body, indent=2), media_type="application/json")


async def _public_counts(request: Request,
                         ) -> tuple[list[str], str, str, dict[str, Any] | None]:
    """The published months, the range asked for (default: all of them) and its counts
    (None while no month is complete)."""
    casework = _casework(request)
    months = await casework.public_months()
    first, last = _range(request)
    if not months:
        return months, first, last, None
    first, last = first or months[-1], last or months[0]
    return months, first, last, await casework.public_transparency(first, last)


def _range(request: Request) -> tuple[str, str]:
    q = request.query_params
    return q.get("from", "").strip()[:10], q.get("to", "").strip()[:10]


def _range_query(start: str, end: str) -> str:
    parts = [f"{k}={quote(v)}" for k, v in (("from", start), ("to", end)) if v]
    return ("?" + "&".join(parts)) if parts else ""


def _chart(counts: dict[str, Any], threshold: int | None = None) -> dict[str, str]:
    """One base64 SVG per dimension for the page's grid of charts, and a wide month
    chart for wide screens (`by_month_wide`)."""
    def b64(svg: str) -> str:
        return base64.b64encode(svg.encode("utf-8")).decode("ascii")

    charts = {key: b64(dimension_svg(counts, key, suppressed_below=threshold))
              for key in counts if key.startswith("by_")}
    charts["by_month_wide"] = b64(dimension_svg(counts, "by_month",
                                                suppressed_below=threshold, wide=True))
    return charts
