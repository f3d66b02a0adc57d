"""The app's web server: server-rendered pages over this device's `Client`, forms for
every action (each with the session's CSRF token), server-sent events telling open pages
that something changed. Every response carries the strict security headers; every request
is checked by the `Gate` first (see `_security.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from covey.app import _views as views
from covey.app._security import SAFE_METHODS, SECURITY_HEADERS, Gate, Session
from covey.client import (
    AttachmentDownload,
    Client,
    ContactRequestReceived,
    DeviceListChanged,
    GuardianAlert,
    MessageDropped,
    MessageSent,
    PolicyChanged,
    SafetyWarning,
    SendFailed,
    WrongPassphrase,
    media_type,
)
from covey.errors import CoveyError
from covey.moderation import ReportCategory
from covey.protocol.content import AttachmentRef
from covey.protocol.ids import USER_ID_PATTERN, MessageKey

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
_MAX_FORM = 256 * 1024
MAX_ATTACHMENT = 100 * 1024 * 1024
_MIN_PASSPHRASE = 8

# The only notices a page shows from its query string: fixed texts, picked by code.
NOTICES = {
    "blocked_reported": "Blocked and reported. The moderators will look at it; the person "
                        "is not told you reported them.",
    "blocked": "Blocked. They can no longer message you.",
    "reported": "Report sent to the moderators. The person is not told you reported them.",
    "request_sent": "Contact request sent.",
    "accepted": "Contact request accepted: you can now message each other.",
    "declined": "Contact request declined.",
    "not_found": "No one with that handle can be found.",
    "sent_file": "File sent.",
    "group_created": "Group created. People who are unverified or under 16 are invited: "
                     "they join when they accept.",
    "group_joined": "You joined the group.",
    "invitation_declined": "Invitation declined.",
    "member_added": "Member added (or invited, if they must accept first).",
    "member_removed": "Member removed.",
    "left_group": "You left the group.",
    "age_requested": "Request sent to the issuer.",
    "age_proven": "Your age band is proven to the server.",
    "unlinked": "Device unlinked: it no longer receives messages.",
}


class AppService:
    """One device's client (once unlocked) and the pages' live-update subscribers."""

    def __init__(self, gate: Gate, server_url: str, store: Path, *,
                 scrypt_n: int | None = None) -> None:
        self.gate = gate
        self.server_url = server_url.rstrip("/")
        self.store = store
        self.scrypt_n = scrypt_n
        self.client: Client | None = None
        self._subscribers: set[asyncio.Queue[str]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._attachments: dict[str, AttachmentDownload] = {}
        self._unlocking = asyncio.Lock()
        self.templates = Environment(loader=FileSystemLoader(_HERE / "templates"),
                                     autoescape=select_autoescape(["html"]))
        self.templates.globals.update(clock=views.clock, band_words=views.BAND_WORDS,
                                      categories=views.CATEGORY_WORDS, quote=quote,
                                      urlencode=urlencode)

    # --- the client -----------------------------------------------------------------------

    async def create_account(self, handle: str, passphrase: str) -> None:
        async with self._unlocking:
            if self.client is None:
                self._started(await Client.register(self.server_url, handle, self.store,
                                                    passphrase, scrypt_n=self.scrypt_n))

    async def sign_in(self, passphrase: str) -> None:
        async with self._unlocking:
            if self.client is None:
                self._started(await Client.open(self.store, passphrase))

    async def link_device(self, handle: str, code: str, passphrase: str) -> None:
        async with self._unlocking:
            if self.client is None:
                self._started(await Client.link_device(self.server_url, handle, code,
                                                       self.store, passphrase,
                                                       scrypt_n=self.scrypt_n))

    def _started(self, client: Client) -> None:
        self.client = client
        self._tasks = [asyncio.create_task(self._read_messages(client)),
                       asyncio.create_task(self._read_events(client))]
        self.changed("*")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for queue in self._subscribers:
            queue.put_nowait("")
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def _read_messages(self, client: Client) -> None:
        async for message in client.messages():
            self.changed(message.conversation_id)

    async def _read_events(self, client: Client) -> None:
        async for event in client.events():
            try:
                self._on_event(client, event)
            except Exception:  # one odd event must not stop the live updates
                log.exception("could not show an event")

    def _on_event(self, client: Client, event: object) -> None:
        if isinstance(event, MessageSent):
            self.changed(event.conversation_id)
        elif isinstance(event, SendFailed):
            views.add_notice(client, event.conversation_id,
                             f"Not delivered: {event.detail}", kind="failed")
            self.changed(event.conversation_id)
        elif isinstance(event, PolicyChanged):
            views.add_notice(client, event.conversation_id,
                             f"This conversation is now {event.policy.label}: "
                             f"{event.policy.reason}", kind="policy")
            self.changed(event.conversation_id)
        elif isinstance(event, SafetyWarning):
            views.add_notice(client, event.conversation_id, event.text, kind="safety",
                             about=event.sender_user)
            self.changed(event.conversation_id)
        elif isinstance(event, DeviceListChanged):
            self._device_notice(client, event)
        elif isinstance(event, MessageDropped):
            views.add_notice(client, event.conversation_id,
                             f"A message from {event.sender_user} could not be shown "
                             f"({event.reason.replace('_', ' ')}).", kind="dropped")
            self.changed(event.conversation_id)
        elif isinstance(event, ContactRequestReceived | GuardianAlert):
            self.changed("*")
        else:
            # Events added to the SDK later (e.g. safety notices from the server) show
            # as plain notices when they carry a conversation and a text.
            conversation_id = getattr(event, "conversation_id", None)
            text = getattr(event, "text", None)
            if isinstance(conversation_id, str) and isinstance(text, str) and text:
                views.add_notice(client, conversation_id, text, kind="safety",
                                 about=getattr(event, "sender_user", None))
                self.changed(conversation_id)
            else:
                if isinstance(text, str) and text:  # e.g. a moderator's warning to you
                    views.add_notice(client, views.ACCOUNT_NOTICES, text, kind="account")
                self.changed("*")

    def _device_notice(self, client: Client, event: DeviceListChanged) -> None:
        me = event.user_id == client.user_id
        who = "You" if me else event.user_id
        parts = []
        if event.added:
            parts.append(f"{who} added a new device")
        if event.removed:
            parts.append(f"{who} removed a device")
        text = " and ".join(parts) + "."
        if me and event.added:
            text += " If that was not you, someone else can read your new messages: " \
                    "unlink it under Devices."
        elif event.added:
            text += " New devices get messages only from now on; check its safety " \
                    "emoji under Verify if you want to be sure."
        targets = [row.conversation_id for row in views.conversation_rows(client)
                   if me or event.user_id in client.core.participants(row.conversation_id)]
        for conversation_id in targets:
            views.add_notice(client, conversation_id, text, kind="device")
        self.changed("*")

    # --- live updates ---------------------------------------------------------------------

    def changed(self, conversation_id: str) -> None:
        for queue in self._subscribers:
            if queue.qsize() < 100:
                queue.put_nowait(conversation_id)

    async def stream(self) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            yield "retry: 2000\n\n"
            while True:
                try:
                    what = await asyncio.wait_for(queue.get(), 15)
                except TimeoutError:
                    yield ": still here\n\n"
                    continue
                if not what:
                    return
                yield f"event: changed\ndata: {json.dumps(what)}\n\n"
        finally:
            self._subscribers.discard(queue)

    async def attachment(self, client: Client, ref: AttachmentRef) -> AttachmentDownload:
        cached = self._attachments.get(ref.blob_id)
        if cached is None:
            cached = await client.fetch_attachment(ref)
            if cached.verified:
                self._attachments[ref.blob_id] = cached
                while len(self._attachments) > 64:
                    self._attachments.pop(next(iter(self._attachments)))
        return cached

    def render(self, name: str, request: Request, session: Session, status: int = 200,
               **context: Any) -> HTMLResponse:
        notice = NOTICES.get(request.query_params.get("notice", ""))
        body = self.templates.get_template(name).render(
            csrf=session.csrf, me=self.client.user_id if self.client else None,
            notice=notice, path=request.url.path, **context)
        return HTMLResponse(body, status)


# --- request plumbing ------------------------------------------------------------------------


class Guarded:
    """ASGI middleware: the Host check on every request, security headers on every
    response."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if not self.gate.host_ok(host):
            await PlainTextResponse("wrong host: open the address covey app printed",
                                    421)(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
            await send(message)

        await self.app(scope, receive, with_headers)


Handler = Callable[[Request, AppService, Session, dict[str, str]], Awaitable[Response]]


async def read_form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > _MAX_FORM:
        return {}
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _refuse(status: int, text: str) -> Response:
    return PlainTextResponse(text, status)


def page(handler: Handler, *, needs_client: bool = True
         ) -> Callable[[Request], Awaitable[Response]]:
    """A route: a session (else the launch page), for POST the CSRF token and the
    origin, and (unless `needs_client`) an unlocked client (else the sign-in page)."""

    async def endpoint(request: Request) -> Response:
        service: AppService = request.app.state.service
        gate = service.gate
        session = gate.session(request.cookies.get(gate.cookie_name))
        if session is None:
            if request.method in SAFE_METHODS and request.url.path == "/":
                return HTMLResponse(service.templates.get_template("launch.html").render())
            if request.method in SAFE_METHODS:
                return RedirectResponse("/", 303)
            return _refuse(403, "no session: open the address covey app printed")
        form: dict[str, str] = {}
        if request.method not in SAFE_METHODS:
            if not gate.origin_ok(request.headers.get("origin"),
                                  request.headers.get("sec-fetch-site")):
                return _refuse(403, "refused: this request did not come from the app's pages")
            if request.headers.get("content-type", "").startswith(
                    "application/x-www-form-urlencoded"):
                form = await read_form(request)
            offered = form.get("csrf") or request.headers.get("x-csrf-token")
            if not gate.csrf_ok(session, offered):
                return _refuse(403, "refused: the form's CSRF token is missing or wrong; "
                               "reload the page")
        if needs_client and service.client is None:
            if request.method in SAFE_METHODS:
                return RedirectResponse("/", 303)
            return _refuse(409, "sign in first")
        try:
            return await handler(request, service, session, form)
        except CoveyError as exc:
            if request.method in SAFE_METHODS and service.client is not None \
                    and request.url.path != "/":
                return service.render("error.html", request, session, 400,
                                      title="That did not work", error=exc.message)
            return service.render("error.html", request, session,
                                  exc.status if 400 <= exc.status < 500 else 502,
                                  title="That did not work", error=exc.message)

    return endpoint


def _back(path: str, notice: str | None = None) -> RedirectResponse:
    return RedirectResponse(path + (f"?notice={notice}" if notice else ""), 303)


def _conversation_path(conversation_id: str) -> str:
    return "/c/" + quote(conversation_id, safe="")


def _client(service: AppService) -> Client:
    assert service.client is not None
    return service.client


# --- launch, account, sign in ----------------------------------------------------------------


async def open_session(request: Request) -> Response:
    """Redeem the launch token (from the address's fragment) for the session cookie."""
    service: AppService = request.app.state.service
    gate = service.gate
    if not gate.origin_ok(request.headers.get("origin"), request.headers.get("sec-fetch-site")):
        return _refuse(403, "refused: not from the app's own page")
    try:
        offered = str(json.loads(await request.body())["token"])
    except (ValueError, KeyError, TypeError):
        return _refuse(400, "send {\"token\": ...}")
    session = gate.redeem(offered)
    if session is None:
        return _refuse(403, "this link was already used or is wrong: restart covey app "
                       "for a new one")
    response = JSONResponse({"ok": True})
    response.headers["set-cookie"] = gate.cookie_header(session)
    return response


async def home(request: Request, service: AppService, session: Session,
               form: dict[str, str]) -> Response:
    if service.client is None:
        if service.store.exists():
            return service.render("signin.html", request, session, title="Sign in")
        return service.render("create.html", request, session, title="Create account",
                              server=service.server_url)
    client = service.client
    rows = views.conversation_rows(client)
    if any(row.is_group and client.core.group(row.conversation_id) is None for row in rows):
        with contextlib.suppress(CoveyError):  # a group we were just added to: its name
            await client.groups()
            rows = views.conversation_rows(client)
    await _fill_protection(client, rows)
    requests = (await client.contact_requests()).incoming
    pending = [r for r in requests if r.status == "pending"]
    invitations: list[Any] = []
    with contextlib.suppress(CoveyError):
        invitations = list(await client.group_invitations())
    return service.render("home.html", request, session, title="Chats", rows=rows,
                          requests=pending, invitations=invitations,
                          account_notices=views.notices(client, views.ACCOUNT_NOTICES)[-5:])


async def _fill_protection(client: Client, rows: list[views.ConversationRow]) -> None:
    async def fetch(row: views.ConversationRow) -> None:
        with contextlib.suppress(CoveyError, TimeoutError):
            policy = await asyncio.wait_for(client.conversation_policy(row.conversation_id), 5)
            row.protection = policy.label
    await asyncio.gather(*(fetch(row) for row in rows if not row.protection))


def _handle_problem(handle: str) -> str | None:
    if re.fullmatch(USER_ID_PATTERN, handle) is None:
        return ("A handle is 3 to 32 characters: lowercase letters, digits, and _ . -, "
                "starting with a letter or digit.")
    return None


def _credentials_problem(handle: str, passphrase: str) -> str | None:
    """What is wrong with a new device's handle and passphrase, or None."""
    problem = _handle_problem(handle)
    if problem is None and len(passphrase) < _MIN_PASSPHRASE:
        problem = f"Choose a passphrase of at least {_MIN_PASSPHRASE} characters."
    return problem


async def create_account(request: Request, service: AppService, session: Session,
                         form: dict[str, str]) -> Response:
    handle = form.get("handle", "").strip()
    passphrase = form.get("passphrase", "")
    problem = _credentials_problem(handle, passphrase)
    if problem is None and passphrase != form.get("passphrase2", ""):
        problem = "The two passphrases differ: type the same one twice."
    if problem is None and service.store.exists():
        problem = "This app's store already holds an account: sign in instead."
    if problem is None:
        try:
            await service.create_account(handle, passphrase)
        except CoveyError as exc:
            problem = (f"The handle {handle} is taken: choose another." if
                       exc.code in ("handle_taken", "user_exists", "conflict")
                       or exc.status == 409 else exc.message)
    if problem is not None:
        return service.render("create.html", request, session, 400, title="Create account",
                              error=problem, handle=handle, server=service.server_url)
    return _back("/")


async def sign_in(request: Request, service: AppService, session: Session,
                  form: dict[str, str]) -> Response:
    try:
        await service.sign_in(form.get("passphrase", ""))
    except WrongPassphrase:
        return service.render("signin.html", request, session, 400, title="Sign in",
                              error="Wrong passphrase: try again.")
    except CoveyError as exc:
        return service.render("signin.html", request, session, 400, title="Sign in",
                              error=exc.message)
    return _back("/")


async def link_device(request: Request, service: AppService, session: Session,
                      form: dict[str, str]) -> Response:
    handle = form.get("handle", "").strip()
    passphrase = form.get("passphrase", "")
    problem = _credentials_problem(handle, passphrase)
    if problem is None:
        try:
            await service.link_device(handle, form.get("code", "").strip(), passphrase)
        except CoveyError as exc:
            problem = exc.message
    if problem is not None:
        return service.render("create.html", request, session, 400, title="Create account",
                              link_error=problem, handle=handle, server=service.server_url)
    return _back("/")


async def events(request: Request, service: AppService, session: Session,
                 form: dict[str, str]) -> Response:
    return StreamingResponse(service.stream(), media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no"})


# --- conversations -------------------------------------------------------------------------


async def conversation(request: Request, service: AppService, session: Session,
                       form: dict[str, str]) -> Response:
    client = _client(service)
    conversation_id = request.path_params["conversation_id"]
    try:
        conversation_id = client.core.conversation_for(conversation_id)
    except CoveyError:
        return service.render("error.html", request, session, 404, title="Not found",
                              error="There is no such conversation.")
    before_text = request.query_params.get("before", "")
    before = int(before_text) if before_text.isdigit() else None
    items, earlier = views.conversation_items(client, conversation_id, before=before)
    downloads: dict[str, AttachmentDownload] = {}
    for item in items:
        for attachment in item.attachments:
            with contextlib.suppress(CoveyError):
                downloads[attachment.ref.blob_id] = await service.attachment(
                    client, attachment.ref)
    if before is None:
        views.mark_read(client, conversation_id)
    policy = None
    with contextlib.suppress(CoveyError, TimeoutError):
        policy = await asyncio.wait_for(client.conversation_policy(conversation_id), 10)
    peer = views.peer_of(client, conversation_id)
    group = client.core.group(conversation_id) if peer is None else None
    contact_notice = None
    if peer is not None:
        with contextlib.suppress(CoveyError, TimeoutError):
            listed = await asyncio.wait_for(client.contacts(), 10)
            contact_notice = next((c.safety_notice for c in listed
                                   if c.user_id == peer and c.safety_notice), None)
    return service.render("conversation.html", request, session,
                          title=views.title_of(client, conversation_id),
                          conversation_id=conversation_id, items=items, earlier=earlier,
                          policy=policy, peer=peer, group=group, downloads=downloads,
                          contact_notice=contact_notice,
                          path_of=_conversation_path(conversation_id))


async def send(request: Request, service: AppService, session: Session,
               form: dict[str, str]) -> Response:
    client = _client(service)
    conversation_id = request.path_params["conversation_id"]
    text = form.get("message", "").strip()
    if text:
        await client.send_text(conversation_id, text)
    if request.headers.get("x-requested-with") == "fetch":
        return JSONResponse({"ok": True})
    return _back(_conversation_path(conversation_id))


async def attach(request: Request, service: AppService, session: Session,
                 form: dict[str, str]) -> Response:
    client = _client(service)
    conversation_id = request.path_params["conversation_id"]
    length_text = request.headers.get("content-length") or "0"
    if not length_text.isdigit():
        return JSONResponse({"error": "a bad Content-Length"}, 400)
    if int(length_text) > MAX_ATTACHMENT:
        return JSONResponse({"error": "files are limited to 100 MB"}, 413)
    data = await request.body()
    if not data or len(data) > MAX_ATTACHMENT:
        return JSONResponse({"error": "choose a file of 1 byte to 100 MB"}, 400)
    from urllib.parse import unquote

    name = Path(unquote(request.headers.get("x-file-name", "file"))).name[:200] or "file"
    await client.send_attachment(conversation_id, data, name=name,
                                 mime=media_type(data, name))
    service.changed(conversation_id)
    return JSONResponse({"ok": True, "name": name, "size": len(data)})


async def attachment(request: Request, service: AppService, session: Session,
                     form: dict[str, str]) -> Response:
    client = _client(service)
    params = request.query_params
    key = MessageKey(params.get("c", ""), params.get("s", ""), params.get("m", ""))
    record = views.find_record(client, key)
    index = params.get("i", "0")
    if record is None or not index.isdigit():
        return _refuse(404, "no such attachment")
    message = views.message_of(record)
    if int(index) >= len(message.attachments):
        return _refuse(404, "no such attachment")
    ref = message.attachments[int(index)]
    got = await service.attachment(client, ref)
    if not got.verified or got.data is None:
        return _refuse(409, f"this file could not be verified ({got.status.value})")
    inline = ref.mime in views.IMAGE_TYPES and params.get("download") != "1"
    safe_name = re.sub(r"[^A-Za-z0-9._ -]", "_", Path(ref.name).name) or "attachment"
    disposition = ("inline" if inline else "attachment") + \
        f"; filename=\"{safe_name}\"; filename*=UTF-8''{quote(Path(ref.name).name)}"
    return Response(got.data, media_type=ref.mime if inline else "application/octet-stream",
                    headers={"Content-Disposition": disposition,
                             "Content-Security-Policy": "default-src 'none'; sandbox"})


async def report_form(request: Request, service: AppService, session: Session,
                      form: dict[str, str]) -> Response:
    client = _client(service)
    params = request.query_params if request.method == "GET" else form
    key = MessageKey(params.get("c", ""), params.get("s", ""), params.get("m", ""))
    from covey.client._reporting import build_report

    report = build_report(client.core.history(), client.user_id, key, ReportCategory.OTHER)
    block = params.get("block") == "1"
    if request.method == "POST":
        category = form.get("category", "")
        if category not in views.CATEGORY_WORDS:
            return service.render("report.html", request, session, 400, title="Report",
                                  key=key, context=report.messages, block=block,
                                  error="Choose a category.", me=client.user_id)
        await client.report(key, category, form.get("comment", "").strip()[:2000] or None,
                            block=block)
        return _back(_conversation_path(key.conversation_id),
                     "blocked_reported" if block else "reported")
    return service.render("report.html", request, session, title="Report", key=key,
                          context=report.messages, block=block)


async def block_and_report(request: Request, service: AppService, session: Session,
                           form: dict[str, str]) -> Response:
    """One tap: block the other person and report their latest message (if any)."""
    client = _client(service)
    conversation_id = request.path_params["conversation_id"]
    user = form.get("user") or views.peer_of(client, conversation_id) or ""
    if not re.fullmatch(USER_ID_PATTERN, user):
        return _refuse(400, "whom to block is missing")
    last = views.last_received_from(client, conversation_id, user)
    if last is None:
        await client.block(user)
        return _back(_conversation_path(conversation_id), "blocked")
    category = form.get("category") or "other"
    if category not in views.CATEGORY_WORDS:
        return _refuse(400, "unknown category")
    await client.report(last, ReportCategory(category), None, block=True)
    return _back(_conversation_path(conversation_id), "blocked_reported")


async def start_conversation(request: Request, service: AppService, session: Session,
                             form: dict[str, str]) -> Response:
    client = _client(service)
    user = request.path_params["user"]
    if not re.fullmatch(USER_ID_PATTERN, user):
        return _refuse(400, "not a handle")
    return _back(_conversation_path(client.core.conversation_for(user)))


# --- contacts --------------------------------------------------------------------------------


async def contacts(request: Request, service: AppService, session: Session,
                   form: dict[str, str]) -> Response:
    client = _client(service)
    query = request.query_params.get("q", "").strip().lower()
    found = None
    searched = False
    if query:
        searched = True
        if re.fullmatch(USER_ID_PATTERN, query):
            with contextlib.suppress(CoveyError):
                found = await client.find_user(query)
    listed = await client.contact_requests()
    return service.render("contacts.html", request, session, title="Contacts", query=query,
                          found=found, searched=searched,
                          incoming=[r for r in listed.incoming if r.status == "pending"],
                          outgoing=[r for r in listed.outgoing if r.status == "pending"],
                          contacts=await client.contacts(), blocked=await client.blocked())


async def contact_action(request: Request, service: AppService, session: Session,
                         form: dict[str, str]) -> Response:
    client = _client(service)
    action = request.path_params["action"]
    request_id = form.get("request_id", "")
    user = form.get("user", "")
    back = form.get("back", "/contacts")
    if not back.startswith("/") or back.startswith("//"):
        back = "/contacts"
    notice = None
    if action == "request":
        await client.request_contact(user)
        notice = "request_sent"
    elif action == "accept":
        await client.accept_contact(request_id)
        notice = "accepted"
    elif action == "decline":
        await client.decline_contact(request_id)
        notice = "declined"
    elif action == "cancel":
        await client.cancel_contact_request(request_id)
    elif action == "block":
        if request_id:
            with contextlib.suppress(CoveyError):
                await client.decline_contact(request_id)
        await client.block(user)
        notice = "blocked"
    elif action == "unblock":
        await client.unblock(user)
    else:
        return _refuse(404, "no such action")
    service.changed("*")
    return _back(back, notice)


def routes() -> list[Route]:
    return [
        Route("/", page(home, needs_client=False), methods=["GET"]),
        Route("/session", open_session, methods=["POST"]),
        Route("/account", page(create_account, needs_client=False), methods=["POST"]),
        Route("/sign-in", page(sign_in, needs_client=False), methods=["POST"]),
        Route("/link", page(link_device, needs_client=False), methods=["POST"]),
        Route("/events", page(events), methods=["GET"]),
        Route("/c/{conversation_id}", page(conversation), methods=["GET"]),
        Route("/c/{conversation_id}/send", page(send), methods=["POST"]),
        Route("/c/{conversation_id}/attach", page(attach), methods=["POST"]),
        Route("/c/{conversation_id}/block-report", page(block_and_report), methods=["POST"]),
        Route("/file", page(attachment), methods=["GET"]),
        Route("/report", page(report_form), methods=["GET", "POST"]),
        Route("/to/{user}", page(start_conversation), methods=["GET"]),
        Route("/contacts", page(contacts), methods=["GET"]),
        Route("/contacts/{action}", page(contact_action), methods=["POST"]),
        Route("/static/{name}", static, methods=["GET"]),
    ]


_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    path = _HERE / "static" / name
    if "/" in name or name.startswith(".") or not path.is_file():
        return _refuse(404, "not found")
    return FileResponse(path, media_type=_STATIC_TYPES.get(path.suffix, "application/octet-stream"))


def create_app(service: AppService, extra_routes: list[Route] | None = None) -> ASGIApp:
    app = Starlette(routes=routes() + (extra_routes or []))
    app.state.service = service
    return Guarded(app, service.gate)
