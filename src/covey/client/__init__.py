"""Covey's client SDK: `Client` (asyncio) over a sans-I/O core and an encrypted store.

    client = await Client.register("http://127.0.0.1:8470", "alice", "alice.db", passphrase)
    await client.send_text("bob", "hi")
    async for message in client.messages(): ...
"""

from covey.client._client import AttachmentUnverifiable, Client
from covey.client._core import ClientCore, ClientError
from covey.client._events import (
    AttachmentDownload,
    ContactRequestReceived,
    DeviceListChanged,
    Event,
    FrankingEvidence,
    GroupMembersWithheld,
    GuardianAlert,
    IncomingMessage,
    MessageDropped,
    MessageSent,
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
    "AttachmentDownload",
    "AttachmentUnverifiable",
    "Client",
    "ClientCore",
    "ClientError",
    "ContactRequestReceived",
    "DeviceListChanged",
    "Event",
    "FrankingEvidence",
    "GroupMembersWithheld",
    "GuardianAlert",
    "IncomingMessage",
    "MessageDropped",
    "MessageKey",
    "MessageSent",
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
