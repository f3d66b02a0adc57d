"""Safety notices: when a detector asks for one (the grooming scorer at its notice
threshold), the child in the conversation gets a plain-language notice on every device
that is connected, with a help link and the message to block and report with one tap.

Only the child's own devices are told; the sender learns nothing (no answer, timing or
frame of theirs changes), and the notice carries the behaviour names and the text the
lexicon wrote for the child, never the message text."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from covey.protocol.wire import DetectionNotice, SafetyNoticeFrame
from covey.server.fanout import DeviceAddress, Fanout, PushFrame
from covey.server.services._common import now_ms
from covey.server.services.accounts import DeviceDirectory
from covey.settings import Settings


class SafetyNoticeService:
    def __init__(self, settings: Settings, directory: DeviceDirectory, fanout: Fanout) -> None:
        self._settings = settings
        self._directory = directory
        self._fanout = fanout

    def notice(self, *, conversation_id: str, message_id: str, sender_user: str,
               detector: str, behaviours: Sequence[str], text: str) -> DetectionNotice:
        return DetectionNotice(
            notice_id="sn_" + secrets.token_urlsafe(12), conversation_id=conversation_id,
            message_id=message_id, sender_user=sender_user, detector=detector,
            behaviours=list(behaviours)[:16], text=text[:4000],
            help_url=self._settings.safety_help_url, created_at_ms=now_ms())

    async def send(self, children: Sequence[str], notice: DetectionNotice) -> None:
        frame = SafetyNoticeFrame(notice=notice)
        items: list[tuple[DeviceAddress, PushFrame]] = []
        for child in dict.fromkeys(children):
            for device_id in await self._directory.devices(child):
                items.append((DeviceAddress(child, device_id), frame))
        self._fanout.publish(items)
