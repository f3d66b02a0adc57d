"""The app's other pages: age (request a credential, see it pending and approved, prove
the band), groups (names, members, add, remove, leave, invite links), safety (guardian
links and alerts: categories and times, never content) and devices (list, link with a
code and a QR code)."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from covey.app._security import Session
from covey.app._server import AppService, _back, _client, _conversation_path, _refuse, page
from covey.errors import CoveyError
from covey.protocol.ids import GROUP_ID_PATTERN, USER_ID_PATTERN

BAND_MEANING = {
    "16+": "You have proven you are 16 or over. Conversations where everyone has proven "
           "16 or over are end-to-end encrypted: no one else, not even Covey, can read "
           "them. You can reach someone under 16 only if they accept your contact request.",
    "under-16": "You have proven you are under 16. Only people whose contact request you "
                "accepted can message you, and no one can find you by search. Your "
                "conversations are safeguarded: Covey's safety service can read them to "
                "spot grooming and abuse, keeps them encrypted for a short time, and logs "
                "every read.",
    "unverified": "You have not proven your age. Your conversations are safeguarded "
                  "(Covey's safety service can read them) and you cannot contact anyone "
                  "under 16. Ask an issuer you trust (a school, a bank) for an age "
                  "credential below: Covey then learns your age band, never your birth "
                  "date.",
}
ALERT_WORDS = {
    "report_filed": "reported someone",
    "contact_accepted": "accepted a new contact",
    "high_risk_detection": "got a safety warning in a conversation",
    "removal_requested": "asked to remove your guardian link",
}


def _evidence(text: str) -> dict[str, str] | None:
    evidence: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            return None
        evidence[key.strip()] = value.strip()
    return evidence or None


async def age(request: Request, service: AppService, session: Session,
              form: dict[str, str]) -> Response:
    client = _client(service)
    error = None
    if request.method == "POST":
        action = request.path_params.get("action", "")
        if action == "request":
            issuer = form.get("issuer", "").strip()
            evidence = _evidence(form.get("evidence", ""))
            if not issuer.startswith(("http://", "https://")):
                error = "Type the issuer's address, starting with http:// or https://."
            elif evidence is None:
                error = "Write the evidence as name=value, one per line."
            else:
                try:
                    _, held = await client.start_age_request(issuer, evidence)
                except CoveyError as exc:
                    error = f"The issuer did not accept the request: {exc.message}"
                else:
                    return _back("/age", "age_requested" if held is None else None)
        elif action == "prove":
            try:
                await client.prove_age()
            except CoveyError as exc:
                error = f"Could not prove your age: {exc.message}"
            else:
                return _back("/age", "age_proven")
        else:
            return _refuse(404, "no such action")
    approved: list[str] = []
    refused: list[str] = []
    for pending in client.age_requests():
        ticket = str(pending["ticket_id"])
        try:
            if await client.check_age_request(ticket) is not None:
                approved.append(ticket)
        except CoveyError as exc:
            refused.append(exc.message)
    me = await client.whoami()
    return service.render("age.html", request, session, 400 if error else 200, title="Age",
                          band=me.age, meaning=BAND_MEANING[me.age.band],
                          held=client.age_credentials(), pending=client.age_requests(),
                          approved=approved, refused=refused, error=error)


async def groups(request: Request, service: AppService, session: Session,
                 form: dict[str, str]) -> Response:
    client = _client(service)
    error = None
    if request.method == "POST":
        action = request.path_params.get("action", "")
        try:
            if action == "create":
                name = form.get("name", "").strip()
                members = [m for m in re.split(r"[\s,]+", form.get("members", "").lower())
                           if m]
                if not name:
                    error = "Give the group a name."
                elif not members or any(not re.fullmatch(USER_ID_PATTERN, m)
                                        for m in members):
                    error = "List the members' handles, separated by commas."
                else:
                    info = await client.create_group(name[:64], members)
                    return _back(_conversation_path(info.group_id), "group_created")
            elif action == "join":
                info = await client.join_invite(form.get("token", "").strip())
                return _back(_conversation_path(info.group_id))
            elif action == "accept":
                info = await client.accept_group_invitation(form.get("invitation", ""))
                return _back(_conversation_path(info.group_id), "group_joined")
            elif action == "decline":
                await client.decline_group_invitation(form.get("invitation", ""))
                return _back("/groups", "invitation_declined")
            else:
                return _refuse(404, "no such action")
        except CoveyError as exc:
            error = exc.message
    listed: list[Any] = []
    invitations: list[Any] = []
    with contextlib.suppress(CoveyError):
        listed = await client.groups()
        invitations = list(await client.group_invitations())
    return service.render("groups.html", request, session, 400 if error else 200,
                          title="Groups", groups=listed, invitations=invitations,
                          error=error)


async def group(request: Request, service: AppService, session: Session,
                form: dict[str, str]) -> Response:
    client = _client(service)
    group_id = request.path_params["group_id"]
    if not re.fullmatch(GROUP_ID_PATTERN, group_id):
        return _refuse(404, "no such group")
    here = f"/groups/{group_id}"
    invite = None
    error = None
    if request.method == "POST":
        action = request.path_params.get("action", "")
        user = form.get("user", "").strip().lower()
        try:
            if action == "add" and re.fullmatch(USER_ID_PATTERN, user):
                await client.add_member(group_id, user)
                return _back(here, "member_added")
            if action == "remove" and re.fullmatch(USER_ID_PATTERN, user):
                await client.remove_member(group_id, user)
                return _back(here, "member_removed")
            if action == "leave":
                await client.remove_member(group_id, client.user_id)
                return _back("/groups", "left_group")
            if action == "invite":
                invite = await client.create_invite(group_id)
            else:
                error = "Type a handle."
        except CoveyError as exc:
            error = exc.message
    info = client.core.group(group_id)
    with contextlib.suppress(CoveyError):
        info = next((g for g in await client.groups() if g.group_id == group_id), info)
    if info is None:
        return _refuse(404, "you are not in this group")
    admin = any(m.user_id == client.user_id and m.role == "admin" for m in info.members)
    return service.render("group.html", request, session, 400 if error else 200,
                          title=info.name, group=info, admin=admin, invite=invite,
                          error=error, here=here)


async def safety(request: Request, service: AppService, session: Session,
                 form: dict[str, str]) -> Response:
    client = _client(service)
    error = None
    if request.method == "POST":
        action = request.path_params.get("action", "")
        link_id = form.get("link_id", "")
        try:
            if action == "propose":
                user = form.get("user", "").strip().lower()
                me = await client.whoami()
                await client.propose_guardian_link(
                    user, role="guardian" if me.age.band == "under-16" else "child")
            elif action == "accept":
                await client.accept_guardian_link(link_id)
            elif action == "remove":
                await client.remove_guardian_link(link_id)
            elif action == "approve-removal":
                await client.approve_guardian_removal(link_id)
            else:
                return _refuse(404, "no such action")
            return _back("/safety")
        except CoveyError as exc:
            error = exc.message
    links = await client.guardian_links()
    alerts = await client.guardian_alerts()
    me = await client.whoami()
    return service.render("safety.html", request, session, 400 if error else 200,
                          title="Safety", links=links, alerts=alerts, band=me.age.band,
                          alert_words=ALERT_WORDS, error=error)


async def devices(request: Request, service: AppService, session: Session,
                  form: dict[str, str]) -> Response:
    client = _client(service)
    link = None
    qr = None
    if request.method == "POST":
        action = request.path_params.get("action", "")
        if action == "link":
            link = await client.create_link_token()
            import segno

            qr = segno.make(f"covey-link:{client.user_id}:{link}", error="m").svg_data_uri(
                scale=4, dark="#000", light="#fff")
        elif action == "unlink":
            await client.unlink_device(form.get("device_id", ""))
            return _back("/devices", "unlinked")
        else:
            return _refuse(404, "no such action")
    me = await client.whoami()
    return service.render("devices.html", request, session, title="Devices", me_info=me,
                          this_device=client.device_id, link=link, qr=qr,
                          server=service.server_url)


def page_routes() -> list[Route]:
    return [
        Route("/age", page(age), methods=["GET"]),
        Route("/age/{action}", page(age), methods=["POST"]),
        Route("/groups", page(groups), methods=["GET"]),
        Route("/groups/new/{action}", page(groups), methods=["POST"]),
        Route("/groups/{group_id}", page(group), methods=["GET"]),
        Route("/groups/{group_id}/{action}", page(group), methods=["POST"]),
        Route("/safety", page(safety), methods=["GET"]),
        Route("/safety/{action}", page(safety), methods=["POST"]),
        Route("/devices", page(devices), methods=["GET"]),
        Route("/devices/{action}", page(devices), methods=["POST"]),
    ]
