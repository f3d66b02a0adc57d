"""Secrets inside wire models and session rows never show in `repr` or `str`."""

from __future__ import annotations

import base64
import secrets

from covey.protocol.content import AttachmentRef, MessageContent, RoomKey
from covey.protocol.wire import (
    AddDeviceRequest,
    DeviceKeys,
    InviteResponse,
    JoinRequest,
    LinkTokenResponse,
    TokenResponse,
)
from covey.server.services.moderation import ConsoleSession
from covey.server.storage.reports_repo import ModeratorRow, SessionRow


def _b64(n: int) -> str:
    return base64.b64encode(secrets.token_bytes(n)).decode()


def _token() -> str:
    return secrets.token_urlsafe(32)


def _shown(model: object) -> str:
    return repr(model) + str(model) + f"{model!r} {model}"


def test_message_keys_are_redacted_but_still_serialised() -> None:
    attachment_key, session_key, franking_key = _b64(32), _b64(32), _b64(32)
    content = MessageContent(
        kind="text", message_id="m_" + "a" * 22, conversation_id="dm:alice:bob",
        sent_at_ms=1, text="hello",
        attachments=(AttachmentRef(blob_id="blob_" + "c" * 22, key=attachment_key,
                                   sha256="0" * 64, size=3),),
        room_key=RoomKey(group_id="g", session_id="s", session_key=session_key, epoch=0),
        franking_key=franking_key)
    shown = _shown(content)
    for secret in (attachment_key, session_key, franking_key):
        assert secret not in shown
    assert "<redacted>" in shown and "hello" in shown
    dumped = content.model_dump()
    assert dumped["franking_key"] == franking_key
    assert dumped["attachments"][0]["key"] == attachment_key


def test_tokens_are_redacted() -> None:
    token = _token()
    device = DeviceKeys(user_id="u_" + "a" * 22, device_id="d_" + "b" * 22,
                        identity_key=_b64(32), signing_key=_b64(32), signature=_b64(64))
    models = [TokenResponse(token=token, expires_at_ms=1, one_time_key_count=0),
              LinkTokenResponse(link_token=token, expires_at_ms=1),
              AddDeviceRequest(link_token=token, device=device),
              InviteResponse(token=token, group_id="grp_" + "c" * 22, expires_ms=1),
              JoinRequest(token=token)]
    for model in models:
        shown = _shown(model)
        assert token not in shown, type(model).__name__
        assert "<redacted>" in shown


def test_console_sessions_hide_csrf_tokens_and_password_hashes() -> None:
    token = _token()
    for row in (ConsoleSession(username="mod", role="moderator", csrf_token=token),  # type: ignore[arg-type]
                SessionRow(username="mod", role="moderator", csrf_token=token, expires_ms=1),
                ModeratorRow(username="mod", password_hash="$argon2id$" + token, role="admin")):
        assert token not in repr(row)
