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
from covey.server.services.moderation import (
    CONFIRMED_ACTIONS,
    MAX_REASON_CHARS,
    ConsoleSession,
    ModerationService,
)
from covey.settings import Settings
from covey.web.charts import transparency_svg

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
}
_ACTION_LABELS = {"suspend": "Suspend the reported user",
                  "escalate": "Escalate to law enforcement"}

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["when"] = lambda ms: (
    "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"))
templates.env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")

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
    rows = await _moderation(request).queue(session)
    backlog = await _moderation(request).detection_backlog()
    return _page(request, "queue.html", session=session, rows=rows, backlog=backlog)


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
    return _page(request, "report.html", session=session, view=view,
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


@router.post("/reports/{report_id}/matched-image", response_class=HTMLResponse)
async def matched_image(request: Request, report_id: str) -> Response:
    """A known-image match's image, only because the moderator asked: it opens blurred."""
    session, form, refused = await _checked_post(request)
    if refused is not None or session is None:
        return refused or _to_login()
    try:
        match, mime, data = await _moderation(request).matched_image(
            session, report_id, form.get("blob_id", ""))
    except CoveyError as exc:
        return _refused(request, session, exc.status, exc.message)
    return _page(request, "matched_image.html", session=session, report_id=report_id,
                 match=match, mime=mime, data=data)


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
    counts = await _moderation(request).transparency(session.actor)
    svg = transparency_svg(counts)
    return _page(request, "transparency.html", session=session, counts=counts,
                 chart=base64.b64encode(svg.encode("utf-8")).decode("ascii"))


@router.get("/transparency.json")
async def transparency_json(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return _to_login()
    counts = await _moderation(request).transparency(session.actor)
    return Response(json.dumps(counts, indent=2),
                    media_type="application/json")
