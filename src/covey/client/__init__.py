"""Covey's client SDK: `Client` (asyncio) over a sans-I/O core and an encrypted store.

    client = await Client.register("http://127.0.0.1:8470", "alice", "alice.db", passphrase)
    await client.send_text("bob", "hi")
    async for message in client.messages(): ...
"""

from covey.client._client import (
    IMAGE_REVIEW_CODE,
    IMAGE_REVIEW_NOTICE,
    WITHHELD_NOTICE,
    AttachmentUnverifiable,
    Client,
)
from covey.client._core import ClientCore, ClientError
from covey.client._events import (
    AttachmentDownload,
    ContactRequestReceived,
    DeviceListChanged,
    Event,
    FrankingEvidence,
    GroupChanged,
    GroupInvited,
    GroupMembersWithheld,
    GuardianAlert,
    GuardianLinkProposed,
    IncomingMessage,
    MessageDropped,
    MessageSent,
    ModeratorWarning,
    PolicyChanged,
    RoomKeyReceived,
    SafetyNotice,
    SafetyWarning,
    SendFailed,
)
from covey.client._media import media_type
from covey.client._store import StoreError, WrongPassphrase
from covey.client._transport import Offline, ServerError
from covey.protocol.ids import MessageKey

__all__ = [
    "IMAGE_REVIEW_CODE",
    "IMAGE_REVIEW_NOTICE",
    "WITHHELD_NOTICE",
    "AttachmentDownload",
    "AttachmentUnverifiable",
    "Client",
    "ClientCore",
    "ClientError",
    "ContactRequestReceived",
    "DeviceListChanged",
    "Event",
    "FrankingEvidence",
    "GroupChanged",
    "GroupInvited",
    "GroupMembersWithheld",
    "GuardianAlert",
    "GuardianLinkProposed",
    "IncomingMessage",
    "MessageDropped",
    "MessageKey",
    "MessageSent",
    "ModeratorWarning",
    "Offline",
    "PolicyChanged",
    "RoomKeyReceived",
    "SafetyNotice",
    "SafetyWarning",
    "SendFailed",
    "ServerError",
    "StoreError",
    "WrongPassphrase",
    "media_type",
]
