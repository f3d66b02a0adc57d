"""The REST half of the transport: one method per endpoint, wire models in and out.

It logs in by itself (a challenge signed by the device key) and logs in again once when
the server answers 401 (`token_expired`). Errors come back as `ServerError` with the
server's stable code, or `Offline` when the server cannot be reached.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel

from covey.client._core import ClientError
from covey.moderation.wire import BlockRequest, BlockResponse, ReportReceiptOut, ReportSubmission
from covey.protocol.wire import (
    AcknowledgeAlertsRequest,
    AcknowledgeAlertsResponse,
    AddDeviceRequest,
    AddMemberRequest,
    AgeChallengeRequest,
    AgeStatus,
    BlobUploadResponse,
    ChallengeRequest,
    ChallengeResponse,
    ClaimRequest,
    ClaimResponse,
    ContactList,
    ContactRequestInfo,
    ContactRequestList,
    CreateGroupRequest,
    DeviceKeys,
    DeviceList,
    DeviceRef,
    GroupInfo,
    GroupInvitationList,
    GroupList,
    GuardianAlertList,
    GuardianLink,
    GuardianLinkList,
    GuardianRemoval,
    InviteResponse,
    JoinRequest,
    KeyCountResponse,
    KeysUploadRequest,
    LinkTokenResponse,
    MeResponse,
    ModeratorWarningList,
    OnDeviceRules,
    PolicyStatement,
    ProposeGuardianLink,
    RegisterRequest,
    RegisterResponse,
    SafetyKeys,
    SendEnvelope,
    SendReceipt,
    TokenRequest,
    TokenResponse,
    UserIdList,
    UserLookup,
    UserRef,
)

Model = TypeVar("Model", bound=BaseModel)
REQUEST_TIMEOUT_S = 30.0


class ServerError(ClientError):
    """The server answered with a 4xx/5xx error body."""

    code = "server_error"


class Offline(ClientError):
    """The server could not be reached (connection refused, reset, timed out)."""

    code = "offline"


def ws_url(server_url: str) -> str:
    base = server_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://"):] + "/v1/ws"
    if base.startswith("http://"):
        return "ws://" + base[len("http://"):] + "/v1/ws"
    raise ClientError(f"server URL must start with http:// or https://: {server_url}",
                      code="bad_server_url")


def _error_from(response: httpx.Response) -> ServerError:
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
        details = body.get("details") or {}
    except (ValueError, KeyError, TypeError):
        code, message, details = f"http_{response.status_code}", response.text[:200], {}
    return ServerError(message, code=code, status=response.status_code, details=details)


class Api:
    """Typed REST calls for one device; `sign_login` signs a login challenge."""

    def __init__(self, server_url: str, user_id: str, device_id: str,
                 sign_login: Callable[[str], str],
                 http: httpx.AsyncClient | None = None) -> None:
        self.server_url = server_url.rstrip("/")
        self.ws_url = ws_url(self.server_url)
        self.user_id = user_id
        self.device_id = device_id
        self._sign_login = sign_login
        self._http = http or httpx.AsyncClient(base_url=self.server_url,
                                               timeout=REQUEST_TIMEOUT_S, trust_env=False)
        self.token: str | None = None
        self.on_login: Callable[[TokenResponse], Awaitable[None]] | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- plumbing ----------------------------------------------------------------------

    async def _raw(self, method: str, path: str, *, body: BaseModel | None = None,
                   content: bytes | None = None, auth: bool = True,
                   content_type: str = "application/octet-stream") -> httpx.Response:
        for attempt in range(2):
            headers: dict[str, str] = {}
            if auth:
                if self.token is None:
                    await self.login()
                headers["Authorization"] = f"Bearer {self.token}"
            if content is not None:
                headers["Content-Type"] = content_type
            kwargs: dict[str, Any] = {"headers": headers}
            if body is not None:
                kwargs["json"] = body.model_dump(mode="json", exclude_none=True)
            elif content is not None:
                kwargs["content"] = content
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise Offline(f"cannot reach {self.server_url}: {type(exc).__name__}") from exc
            if response.status_code == 401 and auth and attempt == 0:
                self.token = None  # expired or revoked: log in again, once
                continue
            if response.status_code >= 400:
                raise _error_from(response)
            return response
        raise ServerError("the server refused a fresh login", code="unauthorized", status=401)

    async def _call(self, method: str, path: str, answer: type[Model], *,
                    body: BaseModel | None = None, content: bytes | None = None,
                    auth: bool = True) -> Model:
        response = await self._raw(method, path, body=body, content=content, auth=auth)
        return answer.model_validate_json(response.content)

    # --- accounts and login ----------------------------------------------------------

    async def register(self, device: DeviceKeys) -> RegisterResponse:
        return await self._call("POST", "/v1/accounts", RegisterResponse,
                                body=RegisterRequest(device=device), auth=False)

    async def add_device(self, link_token: str, device: DeviceKeys) -> RegisterResponse:
        return await self._call("POST", "/v1/devices", RegisterResponse,
                                body=AddDeviceRequest(link_token=link_token, device=device),
                                auth=False)

    async def create_link_token(self) -> LinkTokenResponse:
        return await self._call("POST", "/v1/devices/link-token", LinkTokenResponse)

    async def remove_device(self, device_id: str) -> None:
        await self._raw("DELETE", f"/v1/devices/{device_id}")

    async def login(self) -> TokenResponse:
        challenge = await self._call(
            "POST", "/v1/auth/challenge", ChallengeResponse, auth=False,
            body=ChallengeRequest(user_id=self.user_id, device_id=self.device_id))
        token = await self._call(
            "POST", "/v1/auth/token", TokenResponse, auth=False,
            body=TokenRequest(challenge_id=challenge.challenge_id,
                              signature=self._sign_login(challenge.challenge)))
        self.token = token.token
        if self.on_login is not None:
            await self.on_login(token)
        return token

    async def device_list(self, user_id: str) -> DeviceList:
        return await self._call("GET", f"/v1/users/{user_id}/devices", DeviceList)

    # --- keys ------------------------------------------------------------------------

    async def upload_keys(self, request: KeysUploadRequest) -> KeyCountResponse:
        return await self._call("POST", "/v1/keys/upload", KeyCountResponse, body=request)

    async def key_count(self) -> KeyCountResponse:
        return await self._call("GET", "/v1/keys/count", KeyCountResponse)

    async def claim(self, devices: list[DeviceRef]) -> ClaimResponse:
        return await self._call("POST", "/v1/keys/claim", ClaimResponse,
                                body=ClaimRequest(devices=devices))

    # --- groups ---------------------------------------------------------------------

    async def create_group(self, name: str, members: list[str]) -> GroupInfo:
        return await self._call("POST", "/v1/groups", GroupInfo,
                                body=CreateGroupRequest(name=name, members=members))

    async def groups(self) -> GroupList:
        return await self._call("GET", "/v1/groups", GroupList)

    async def group(self, group_id: str) -> GroupInfo:
        return await self._call("GET", f"/v1/groups/{group_id}", GroupInfo)

    async def add_member(self, group_id: str, user_id: str) -> GroupInfo:
        return await self._call("POST", f"/v1/groups/{group_id}/members", GroupInfo,
                                body=AddMemberRequest(user_id=user_id))

    async def remove_member(self, group_id: str, user_id: str) -> GroupInfo:
        return await self._call("DELETE", f"/v1/groups/{group_id}/members/{user_id}",
                                GroupInfo)

    async def group_invitations(self) -> GroupInvitationList:
        return await self._call("GET", "/v1/group-invitations", GroupInvitationList)

    async def accept_group_invitation(self, invitation_id: str) -> GroupInfo:
        return await self._call("POST", f"/v1/group-invitations/{invitation_id}/accept",
                                GroupInfo)

    async def decline_group_invitation(self, invitation_id: str) -> None:
        await self._raw("POST", f"/v1/group-invitations/{invitation_id}/decline")

    # --- messages and blobs ---------------------------------------------------------------

    async def send(self, envelope: SendEnvelope) -> SendReceipt:
        return await self._call("POST", "/v1/messages", SendReceipt, body=envelope)

    async def upload_blob(self, blob: bytes) -> BlobUploadResponse:
        return await self._call("POST", "/v1/blobs", BlobUploadResponse, content=blob)

    async def download_blob(self, blob_id: str) -> bytes:
        return (await self._raw("GET", f"/v1/blobs/{blob_id}")).content

    # --- reports and blocks --------------------------------------------------------------

    async def report(self, submission: ReportSubmission) -> ReportReceiptOut:
        # Sent with its nulls: evidence keeps `tag: null` / `recipient_user: null`.
        response = await self._raw("POST", "/v1/reports",
                                   content=submission.model_dump_json().encode("utf-8"),
                                   content_type="application/json")
        return ReportReceiptOut.model_validate_json(response.content)

    async def block(self, user_id: str) -> BlockResponse:
        return await self._call("POST", "/v1/blocks", BlockResponse,
                                body=BlockRequest(user_id=user_id))

    # --- safety policy: keys, conversation policy, contacts, blocks, mutes, invites -----

    async def safety_keys(self) -> SafetyKeys:
        return await self._call("GET", "/v1/safety/keys", SafetyKeys, auth=False)

    async def on_device_rules(self) -> OnDeviceRules:
        return await self._call("GET", "/v1/safety/on-device-rules", OnDeviceRules)

    async def conversation_policy(self, conversation_id: str) -> PolicyStatement:
        return await self._call("GET", f"/v1/conversations/{conversation_id}/policy",
                                PolicyStatement)

    async def find_user(self, handle: str) -> UserLookup:
        return await self._call("GET", f"/v1/users/{handle}", UserLookup)

    async def request_contact(self, user_id: str) -> ContactRequestInfo:
        return await self._call("POST", "/v1/contacts/requests", ContactRequestInfo,
                                body=UserRef(user_id=user_id))

    async def contact_requests(self) -> ContactRequestList:
        return await self._call("GET", "/v1/contacts/requests", ContactRequestList)

    async def answer_contact_request(self, request_id: str,
                                     answer: str) -> ContactRequestInfo:
        if answer == "cancel":
            return await self._call("DELETE", f"/v1/contacts/requests/{request_id}",
                                    ContactRequestInfo)
        return await self._call("POST", f"/v1/contacts/requests/{request_id}/{answer}",
                                ContactRequestInfo)

    async def contacts(self) -> ContactList:
        return await self._call("GET", "/v1/contacts", ContactList)

    async def remove_contact(self, user_id: str) -> None:
        await self._raw("DELETE", f"/v1/contacts/{user_id}")

    async def blocks(self) -> UserIdList:
        return await self._call("GET", "/v1/blocks", UserIdList)

    async def unblock(self, user_id: str) -> None:
        await self._raw("DELETE", f"/v1/blocks/{user_id}")

    async def mutes(self) -> UserIdList:
        return await self._call("GET", "/v1/mutes", UserIdList)

    async def set_mute(self, user_id: str, on: bool) -> None:
        if on:
            await self._raw("POST", "/v1/mutes", body=UserRef(user_id=user_id))
        else:
            await self._raw("DELETE", f"/v1/mutes/{user_id}")

    async def create_invite(self, group_id: str) -> InviteResponse:
        return await self._call("POST", f"/v1/groups/{group_id}/invites", InviteResponse)

    async def join_invite(self, token: str) -> GroupInfo:
        return await self._call("POST", "/v1/invites/join", GroupInfo,
                                body=JoinRequest(token=token))

    # --- age assurance -------------------------------------------------------------------

    async def age_challenge(self, band: str, horizon_days: int | None) -> dict[str, Any]:
        response = await self._raw("POST", "/v1/age/challenge", body=AgeChallengeRequest(
            band=band, horizon_days=horizon_days))
        body: dict[str, Any] = response.json()
        return body

    async def age_presentation(self, submission: dict[str, Any]) -> AgeStatus:
        content = json.dumps(submission, separators=(",", ":")).encode()
        response = await self._raw("POST", "/v1/age/presentation", content=content,
                                   content_type="application/json")
        return AgeStatus.model_validate_json(response.content)

    async def me(self) -> MeResponse:
        return await self._call("GET", "/v1/me", MeResponse)

    # --- guardians -----------------------------------------------------------------------

    async def propose_guardian_link(self, user_id: str,
                                    role: Literal["guardian", "child"]) -> GuardianLink:
        return await self._call("POST", "/v1/guardians", GuardianLink,
                                body=ProposeGuardianLink(user_id=user_id, role=role))

    async def guardian_links(self) -> GuardianLinkList:
        return await self._call("GET", "/v1/guardians", GuardianLinkList)

    async def accept_guardian_link(self, link_id: str) -> GuardianLink:
        return await self._call("POST", f"/v1/guardians/{link_id}/accept", GuardianLink)

    async def remove_guardian_link(self, link_id: str) -> GuardianRemoval:
        return await self._call("DELETE", f"/v1/guardians/{link_id}", GuardianRemoval)

    async def approve_guardian_removal(self, link_id: str) -> GuardianRemoval:
        return await self._call("POST", f"/v1/guardians/{link_id}/approve-removal",
                                GuardianRemoval)

    async def moderator_warnings(self) -> ModeratorWarningList:
        return await self._call("GET", "/v1/me/warnings", ModeratorWarningList)

    async def guardian_alerts(self, unacknowledged: bool, limit: int) -> GuardianAlertList:
        query = f"unacknowledged={'true' if unacknowledged else 'false'}&limit={limit}"
        return await self._call("GET", f"/v1/guardians/alerts?{query}", GuardianAlertList)

    async def acknowledge_guardian_alerts(self, alert_ids: list[str]) -> int:
        answer = await self._call("POST", "/v1/guardians/alerts/ack",
                                  AcknowledgeAlertsResponse,
                                  body=AcknowledgeAlertsRequest(alert_ids=alert_ids))
        return answer.acknowledged
