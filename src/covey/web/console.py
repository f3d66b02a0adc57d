"""Routes of the moderation console. Session cookie (HttpOnly, SameSite=Strict) and a
per-session CSRF token in every form; the login form uses a double-submit token."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from covey.errors import CoveyError
from covey.server.services.moderation import ConsoleSession, ModerationService
from covey.web.charts import transparency_svg

SESSION_COOKIE = "covey_console"
LOGIN_CSRF_COOKIE = "covey_login_csrf"
_MAX_FORM = 16 * 1024

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["when"] = lambda ms: (
    "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"))
templates.env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")

router = APIRouter(prefix="/console", include_in_schema=False)


def _moderation(request: Request) -> ModerationService:
    found: ModerationService = request.app.state.moderation
    return found


async def _session(request: Request) -> ConsoleSession | None:
    return await _moderation(request).session(request.cookies.get(SESSION_COOKIE))


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


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, error: str = "") -> Response:
    token = secrets.token_urlsafe(24)
    response = _page(request, "login.html", session=None, csrf=token, error=error)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        path="/console")
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    submitted = form.get("csrf", "")
    if not cookie or not hmac.compare_digest(cookie.encode(), submitted.encode()):
        return _refused(request, None, 403, "Missing or wrong CSRF token: reload the page.")
    try:
        token, _ = await _moderation(request).login(form.get("username", ""),
                                                    form.get("password", ""))
    except CoveyError as exc:
        return RedirectResponse(f"/console/login?error={quote(exc.message)}", status_code=303)
    response = RedirectResponse("/console/", status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                        path="/console", max_age=request.app.state.settings.console_session_ttl_s)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    session, _, refused = await _checked_post(request)
    if refused is not None or session is None:
        return refused or _to_login()
    await _moderation(request).logout(request.cookies.get(SESSION_COOKIE, ""), session)
    response = _to_login()
    response.delete_cookie(SESSION_COOKIE, path="/console")
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
    return _page(request, "report.html", session=session, view=view, notice=notice,
                 error=error)


@router.post("/reports/{report_id}/action")
async def act(request: Request, report_id: str) -> Response:
    session, form, refused = await _checked_post(request)
    if refused is not None or session is None:
        return refused or _to_login()
    target = f"/console/reports/{quote(report_id)}"
    try:
        outcome = await _moderation(request).act(session, report_id, form.get("action", ""))
    except CoveyError as exc:
        return RedirectResponse(f"{target}?error={quote(exc.message)}", status_code=303)
    return RedirectResponse(f"{target}?notice={quote(outcome)}", status_code=303)


@router.get("/reports/{report_id}/files/{name}")
async def escalation_file(request: Request, report_id: str, name: str) -> Response:
    session = await _session(request)
    if session is None:
        return _to_login()
    try:
        path = await _moderation(request).escalation_file(session, report_id, name)
    except CoveyError as exc:
        return _refused(request, session, exc.status, exc.message)
    return FileResponse(path, filename=name)


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
