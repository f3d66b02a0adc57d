"""`Client`: the asyncio shell around the sans-I/O core.

It keeps one WebSocket per device open (reconnecting with backoff), feeds deliveries to
the core and acknowledges them once the core has stored them, sends the outbox over
REST (verbatim on every retry), and answers the protocol's 409s by refreshing device
lists or the group and encrypting again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import websockets
from pydantic import ValidationError
from websockets.exceptions import InvalidStatus, WebSocketException

from covey.age import HeldCredential, Wallet
from covey.client._age import AgeWallet, prove_at_registration
from covey.client._core import (
    DEFAULT_ROTATE_AFTER,
    ClientCore,
    ClientError,
    MissingSessions,
    NeedDeviceLists,
    NeedGroup,
    NeedPolicy,
    OutboxEntry,
    inbox_key,
)
from covey.client._events import (
    AttachmentDownload,
    ContactRequestReceived,
    DeviceListChanged,
    Event,
    GroupChanged,
    GroupInvited,
    GroupMembersWithheld,
    GuardianAlert,
    GuardianLinkProposed,
    IncomingMessage,
    ModeratorWarning,
    PolicyChanged,
    SafetyNotice,
    SafetyWarning,
)
from covey.client._media import media_type
from covey.client._on_device import OnDeviceDetection
from covey.client._policy import KnownPolicy
from covey.client._reporting import build_report
from covey.client._store import Store
from covey.client._transport import Api, Offline, ServerError
from covey.crypto import DeviceAccount
from covey.errors import CryptoError
from covey.moderation import ReportCategory
from covey.moderation.wire import ReportReceiptOut, ReportSubmission
from covey.protocol.attachments import AttachmentStatus, encrypt_attachment, open_attachment
from covey.protocol.content import MAX_TEXT_BYTES, AttachmentRef
from covey.protocol.ids import USER_ID_PATTERN, MessageKey, is_group_id, new_device_id
from covey.protocol.wire import (
    SERVER_FRAME,
    AckFrame,
    AgeProofNeededFrame,
    AgeStatus,
    ContactInfo,
    ContactRequestFrame,
    ContactRequestInfo,
    ContactRequestList,
    ConversationPolicyBody,
    Delivery,
    DeliveryFrame,
    DeviceListChangedFrame,
    ErrorFrame,
    GroupChangedFrame,
    GroupInfo,
    GroupInvitation,
    GroupInvitationFrame,
    GuardianAlertFrame,
    GuardianLink,
    GuardianLinkFrame,
    GuardianRemoval,
    InviteResponse,
    KeysLowFrame,
    MeResponse,
    ModeratorWarningFrame,
    SafetyNoticeFrame,
    TokenResponse,
    UserLookup,
)

log = logging.getLogger(__name__)


class AttachmentUnverifiable(CryptoError):
    """A downloaded attachment is missing or is not what its franked reference commits
    to; `attachment_status` says which (code `attachment_<status>`)."""

    def __init__(self, download: AttachmentDownload) -> None:
        super().__init__(f"attachment {download.ref.blob_id} could not be verified: "
                         f"{download.detail}", code=f"attachment_{download.status.value}")
        self.attachment_status: AttachmentStatus = download.status

# On-device mode: the warning that comes with each image a child receives.
IMAGE_REVIEW_CODE = "image_review"
IMAGE_REVIEW_NOTICE = ("This image is blurred until you tap it. If it upsets you, you "
                       "can block and report the sender with one tap: a report lets the "
                       "safety service check it against known harmful images.")


def is_image(ref: AttachmentRef) -> bool:
    """Whether an attachment is an image a viewer would render (by its committed type)."""
    return ref.mime.startswith("image/")


# What a person sees instead of an attachment the relay withheld (docs/detection.md).
WITHHELD_NOTICE = ("An image in this message was withheld for your safety: it matched a "
                   "known harmful image. You can block and report the sender.")

_BACKOFF_START_S = 0.2
_BACKOFF_MAX_S = 5.0
_MAX_REBUILDS = 4
# Server refusals the client mends by refreshing what it knows and encrypting again.
_REBUILD_CODES = frozenset({"device_list_mismatch", "stale_group_epoch", "recipients_withheld",
                            "safety_copy_missing", "safety_copy_not_expected"})
_EVENT_QUEUE = 1000
_FLUSH_RETRY_S = 2.0
_WARNINGS_SHOWN = "moderator_warnings_shown"  # store kind: warnings already shown here
RULES_REFRESH_S = 300.0  # mode on-device: check for new detector rules this often


def _tails_dir(store_path: str | os.PathLike[str]) -> Path:
    """Public revocation tails files for the age wallet, next to the store."""
    return Path(f"{os.fspath(store_path)}.tails")


def _discard(creating: asyncio.Task[Store]) -> None:
    """Stop making a store (or close the one made): the device did not register."""
    if not creating.done():
        creating.cancel()  # closes the file once the key derivation returns
    elif not creating.cancelled() and creating.exception() is None:
        creating.result().close()


async def _close_api(making: asyncio.Task[Api]) -> None:
    """Close the `Api` being made in a thread (once it is made)."""
    with contextlib.suppress(Exception):
        await (await asyncio.shield(making)).aclose()


def _remove_store(store_path: str | os.PathLike[str]) -> None:
    """Remove a store whose device never registered, so the user can try again."""
    for suffix in ("", "-wal", "-shm", ".lock"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{os.fspath(store_path)}{suffix}").unlink()


def group_change(before: GroupInfo | None, after: GroupInfo,
                 me: str) -> GroupChanged | None:
    """What a group update means to this account, or None when nothing it shows changed.
    A group first seen where this account is a plain member is one it was added to (its
    creator is its admin, and learns of it from its own create call)."""
    members = {m.user_id: m.role for m in after.members}
    if before is None:
        if members.get(me) == "member":
            return GroupChanged(after.group_id, after.name, joined=True)
        return None
    was = {m.user_id for m in before.members}
    added = tuple(sorted(set(members) - was))
    removed = tuple(sorted(was - set(members)))
    if not added and not removed:
        return None
    return GroupChanged(after.group_id, after.name, added, removed)


class Client:
    """One device of one user: `register`, `open` or `link_device`, then send and read."""

    def __init__(self, core: ClientCore, api: Api, *, tails_dir: Path | None = None,
                 age_clock: Callable[[], datetime] | None = None) -> None:
        self._core = core
        self._api = api
        self._age = AgeWallet(core.store, api, tails_dir, age_clock)
        self._age_task: asyncio.Task[None] | None = None
        api.on_login = self._after_login
        self._messages: asyncio.Queue[tuple[str, IncomingMessage]] = asyncio.Queue()
        self._events: asyncio.Queue[Event] = asyncio.Queue(_EVENT_QUEUE)
        self._send_lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._closed = False
        self._runner: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._refused: dict[str, ClientError] = {}
        self._blocked: set[str] = set()
        self._muted: set[str] = set()
        self._shown_policies: dict[str, str] = {}
        self._on_device = OnDeviceDetection(core.store)
        # Mode on-device: how often (seconds) received messages check for new rules.
        self.rules_refresh_s = RULES_REFRESH_S
        self._rules_checked = 0.0
        self._on_device_mode = False
        for key, message in core.inbox():
            self._messages.put_nowait((key, message))

    # --- construction -----------------------------------------------------------------

    @classmethod
    async def register(cls, server_url: str, handle: str, store_path: str | os.PathLike[str],
                       passphrase: str, *, rotate_after: int = DEFAULT_ROTATE_AFTER,
                       scrypt_n: int | None = None, connect: bool = True,
                       wallet: Wallet | bytes | None = None,
                       age_clock: Callable[[], datetime] | None = None) -> Client:
        """Create a user `handle` with this as its first device, stored at `store_path`.

        `wallet` (an age wallet filled before registering) moves into the device's
        encrypted store; if it holds a credential, the age band is proven before this
        returns."""
        return await cls._new_device(server_url, handle, store_path, passphrase, None,
                                     rotate_after=rotate_after, scrypt_n=scrypt_n,
                                     connect=connect, wallet=wallet, age_clock=age_clock)

    @classmethod
    async def link_device(cls, server_url: str, handle: str, link_token: str,
                          store_path: str | os.PathLike[str], passphrase: str, *,
                          rotate_after: int = DEFAULT_ROTATE_AFTER,
                          scrypt_n: int | None = None,
                          connect: bool = True) -> Client:
        """Add a device to `handle` with a link token made by one of its devices."""
        return await cls._new_device(server_url, handle, store_path, passphrase, link_token,
                                     rotate_after=rotate_after, scrypt_n=scrypt_n,
                                     connect=connect)

    @classmethod
    async def _new_device(cls, server_url: str, handle: str,
                          store_path: str | os.PathLike[str], passphrase: str,
                          link_token: str | None, *, rotate_after: int,
                          scrypt_n: int | None,
                          connect: bool, wallet: Wallet | bytes | None = None,
                          age_clock: Callable[[], datetime] | None = None) -> Client:
        if re.fullmatch(USER_ID_PATTERN, handle) is None:
            raise ClientError(f"invalid handle {handle!r}: use 3-32 of a-z 0-9 _ . - , "
                              "starting with a letter or digit", code="invalid_handle")
        account = DeviceAccount.create(handle, new_device_id())
        # httpx reads its CA bundle when a client is made (tens of ms): in a thread, while
        # the wallet is read and the store file made.
        making_api = asyncio.create_task(asyncio.to_thread(
            Api, server_url, handle, account.device_id,
            lambda challenge: account.sign_login(challenge).b64))
        try:
            held = None if wallet is None else Wallet.from_bytes(
                wallet.to_bytes() if isinstance(wallet, Wallet) else wallet, clock=age_clock)
            tails_dir = _tails_dir(store_path)
            # The store's key (scrypt, the slowest step) is derived in a thread while the
            # device registers, logs in and, with a filled wallet, proves its age band;
            # the account goes into the store once the key is there, before this returns.
            creating = Store.create_in_background(store_path, passphrase, scrypt_n=scrypt_n)
        except BaseException:
            await _close_api(making_api)
            raise
        proving: asyncio.Task[None] | None = None
        try:
            api = await making_api
            if link_token is None:
                await api.register(account.device_keys())
            else:
                await api.add_device(link_token, account.device_keys())
            token: TokenResponse | None = None
            with contextlib.suppress(Offline):  # `_start` tries again, then the runner
                token = await api.login()
            if token is not None and held is not None and held.credentials():
                proving = asyncio.create_task(
                    prove_at_registration(held, api, tails_dir, age_clock))
            core = ClientCore.create(await creating, handle, account.device_id,
                                     server_url.rstrip("/"), rotate_after=rotate_after,
                                     account=account)
            core.mark_registered()
        except BaseException:
            _discard(creating)
            if proving is not None:
                proving.cancel()
            await _close_api(making_api)
            _remove_store(store_path)
            raise
        client = cls(core, api, tails_dir=tails_dir, age_clock=age_clock)
        if held is not None:
            client._age.keep(held)
        await client._start(connect, token=token, proving=proving)
        return client

    @classmethod
    async def open(cls, store_path: str | os.PathLike[str], passphrase: str, *,
                   rotate_after: int = DEFAULT_ROTATE_AFTER, connect: bool = True,
                   age_clock: Callable[[], datetime] | None = None) -> Client:
        """Resume a device from its store (wrong passphrase: `WrongPassphrase`; open in
        another process: `store_locked`). The key derivation runs in a thread."""
        store = await Store.open_in_thread(store_path, passphrase)
        try:
            core = ClientCore.load(store, rotate_after=rotate_after)
            if not core.registered:
                raise ClientError("this device never finished registering",
                                  code="not_registered")
        except BaseException:
            store.close()
            raise
        client = cls(core, Api(core.server_url, core.user_id, core.device_id, core.sign_login),
                     tails_dir=_tails_dir(store_path), age_clock=age_clock)
        await client._start(connect)
        return client

    async def _start(self, connect: bool, *, token: TokenResponse | None = None,
                     proving: asyncio.Task[None] | None = None) -> None:
        """Log in (or finish a login made before this client existed: `token`), then
        connect. `proving`, an age proof begun with that login, runs alongside the key
        upload a login brings; registration waits for the longer of the two."""
        try:
            if token is None:
                await self._api.login()
            else:
                await self._after_login(token)
        except Offline:
            log.info("server unreachable at start; will keep trying")
        except BaseException:
            if proving is not None:
                proving.cancel()
            raise
        if proving is not None:
            await proving
        if connect:
            self._runner = asyncio.create_task(self._run(), name=f"covey-{self.device_id}")

    # --- identity -----------------------------------------------------------------------

    @property
    def user_id(self) -> str:
        return self._core.user_id

    @property
    def device_id(self) -> str:
        return self._core.device_id

    @property
    def core(self) -> ClientCore:
        """The sans-I/O core (history, franking evidence, outbox) for advanced use."""
        return self._core

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, within_s: float = 10.0) -> None:
        await asyncio.wait_for(self._connected.wait(), within_s)

    # --- public API --------------------------------------------------------------------

    async def create_link_token(self) -> str:
        return (await self._api.create_link_token()).link_token

    async def unlink_device(self, device_id: str) -> None:
        """Unlink another device of this account (a lost phone): the server leaves it out
        of device lists, refuses its logins and drops what it had not yet received."""
        await self._api.remove_device(device_id)

    async def send_text(self, to: str, text: str) -> str:
        """Send a text to a user id (1:1) or a group id; returns the message id.

        The message is durably queued before this returns; when the server cannot be
        reached it stays queued and is resent, unchanged, after reconnecting."""
        return await self._send(to, text=text)

    async def send_attachment(self, to: str, data: bytes, *, name: str = "",
                              mime: str | None = None, text: str = "") -> str:
        """Encrypt `data` under a fresh key, upload the blob, and send its franked ref;
        `mime` defaults to the type its first bytes or `name` show."""
        mime = mime or media_type(data, name)
        blob, key, digest = encrypt_attachment(data)
        uploaded = await self._api.upload_blob(blob)
        if uploaded.sha256 != digest:
            raise CryptoError("the server stored other bytes than were uploaded",
                              code="attachment_hash_mismatch")
        ref = AttachmentRef(blob_id=uploaded.blob_id, key=key, sha256=digest, size=len(data),
                            mime=mime, name=name)
        return await self._send(to, text=text, attachments=(ref,))

    async def fetch_attachment(self, ref: AttachmentRef,
                               message: IncomingMessage | None = None) -> AttachmentDownload:
        """Fetch a blob and check it against its franked reference (hash, size, key):
        a typed status, never an exception, for a blob that is missing or does not match.
        Show an unverified one as `label` ("could not be verified"), not its bytes; a
        `withheld` one (the relay matched it against known harmful images) as
        `WITHHELD_NOTICE`, with one-tap block-and-report (`report(..., block=True)`).

        Only a blob that its message's envelope declared is fetched (anything else is
        `missing`): pass `message` to hold `ref` to that message's own envelope; without
        it, to any envelope this device sent or received. The relay answers 404 for a
        blob that is gone and for one this account may not read alike: both are
        `missing`. A 403 is about this account (for example suspended), not the blob, so
        it is raised as `ServerError`."""
        if message is not None:
            declared = ref in message.attachments and ref.blob_id in message.blob_ids
        else:
            declared = self._core.blob_declared(ref.blob_id)
        if not declared:
            return AttachmentDownload(ref, AttachmentStatus.MISSING, None,
                                      "its message's envelope did not declare this blob")
        try:
            blob: bytes | None = await self._api.download_blob(ref.blob_id)
        except ServerError as exc:
            if exc.code == "attachment_withheld":
                return AttachmentDownload(ref, AttachmentStatus.WITHHELD, None, WITHHELD_NOTICE)
            if exc.status != 404:
                raise
            blob = None
        opened = open_attachment(blob, ref)
        return AttachmentDownload(ref, opened.status, opened.plaintext, opened.detail)

    async def download_attachment(self, ref: AttachmentRef,
                                  message: IncomingMessage | None = None) -> bytes:
        """Fetch a blob, check it against the franked hash and size, and decrypt it;
        `AttachmentUnverifiable` (a `CryptoError`) when it does not check out."""
        got = await self.fetch_attachment(ref, message)
        if got.data is None:
            raise AttachmentUnverifiable(got)
        return got.data

    async def report(self, message: IncomingMessage | MessageKey | str,
                     category: ReportCategory | str, comment: str | None = None,
                     block: bool = False) -> ReportReceiptOut:
        """Report a received message with up to ten preceding messages of its
        conversation as franked evidence; `block=True` also blocks its sender. The
        sender is not told. Name it by the message or its `key`; a bare message id must
        be the id of exactly one received message."""
        target = message.key if isinstance(message, IncomingMessage) else message
        report = build_report(self._core.history(), self.user_id, target, category,
                              comment)
        return await self._api.report(ReportSubmission(report=report, block=block))

    async def block(self, user_id: str) -> None:
        """Block a user: they can no longer reach you directly, send you contact
        requests or add you to groups; in groups you share, your client hides them."""
        await self._api.block(user_id)
        self._blocked.add(user_id)

    # --- safety policy: what each conversation is, contacts, blocks, mutes --------------

    async def conversation_policy(self, to: str) -> ConversationPolicyBody:
        """How a conversation (user id, dm: id or group id) is protected, freshly fetched
        and verified against the server's pinned key: show `label`, and `reason` on tap."""
        return (await self._fetch_policy(self._core.conversation_for(to))).policy

    async def find_user(self, handle: str) -> UserLookup:
        """Handle search (404 `not_found` when there is none you may find)."""
        return await self._api.find_user(handle)

    async def request_contact(self, user_id: str) -> str:
        """Send a contact request; returns its id (if they asked first, this accepts)."""
        return (await self._api.request_contact(user_id)).request_id

    async def contact_requests(self) -> ContactRequestList:
        return await self._api.contact_requests()

    async def accept_contact(self, request_id: str) -> ContactRequestInfo:
        return await self._api.answer_contact_request(request_id, "accept")

    async def decline_contact(self, request_id: str) -> ContactRequestInfo:
        return await self._api.answer_contact_request(request_id, "decline")

    async def cancel_contact_request(self, request_id: str) -> ContactRequestInfo:
        return await self._api.answer_contact_request(request_id, "cancel")

    async def contacts(self) -> list[ContactInfo]:
        """Contacts, each with a `safety_notice` an under-16 user should see, if any."""
        return (await self._api.contacts()).contacts

    async def remove_contact(self, user_id: str) -> None:
        await self._api.remove_contact(user_id)

    async def unblock(self, user_id: str) -> None:
        await self._api.unblock(user_id)
        self._blocked.discard(user_id)

    async def blocked(self) -> list[str]:
        users = (await self._api.blocks()).users
        self._blocked = set(users)
        return users

    async def mute(self, user_id: str, on: bool = True) -> None:
        """Muted senders' messages still arrive, marked `muted`, on every device of yours."""
        await self._api.set_mute(user_id, on)
        (self._muted.add if on else self._muted.discard)(user_id)

    async def muted(self) -> list[str]:
        users = (await self._api.mutes()).users
        self._muted = set(users)
        return users

    async def create_invite(self, group_id: str) -> InviteResponse:
        """An invite link token for a group you administer."""
        return await self._api.create_invite(group_id)

    async def join_invite(self, token: str) -> GroupInfo:
        info = await self._api.join_invite(token)
        self._update_group(info)
        return info

    async def messages(self) -> AsyncIterator[IncomingMessage]:
        """Received messages, oldest first, including those stored while not reading."""
        while True:
            key, message = await self._messages.get()
            self._core.consumed(key)
            yield message

    async def next_message(self, within_s: float | None = None) -> IncomingMessage:
        key, message = await asyncio.wait_for(self._messages.get(), within_s)
        self._core.consumed(key)
        return message

    async def events(self) -> AsyncIterator[Event]:
        """Everything else: dropped messages, send receipts and failures, room keys,
        guardian alerts."""
        while True:
            yield await self._events.get()

    async def create_group(self, name: str, members: list[str]) -> GroupInfo:
        info = await self._api.create_group(name, members)
        self._update_group(info)
        return info

    async def add_member(self, group_id: str, user_id: str) -> GroupInfo:
        info = await self._api.add_member(group_id, user_id)
        self._update_group(info)
        return info

    async def remove_member(self, group_id: str, user_id: str) -> GroupInfo:
        info = await self._api.remove_member(group_id, user_id)
        if user_id == self.user_id:
            self._core.forget_group(group_id)
        else:
            self._update_group(info)
        return info

    async def group_invitations(self) -> list[GroupInvitation]:
        """Invitations to groups waiting for this account's answer (an unverified or
        under-16 account joins a group only by accepting one)."""
        return (await self._api.group_invitations()).invitations

    async def accept_group_invitation(self, invitation_id: str) -> GroupInfo:
        """Join the invitation's group (the contact rules are checked again now)."""
        info = await self._api.accept_group_invitation(invitation_id)
        self._update_group(info)
        return info

    async def decline_group_invitation(self, invitation_id: str) -> None:
        await self._api.decline_group_invitation(invitation_id)

    async def groups(self) -> list[GroupInfo]:
        listed = (await self._api.groups()).groups
        for info in listed:
            self._update_group(info)
        return listed

    # --- age assurance (docs/age-assurance.md) --------------------------------------------

    async def request_age_credential(self, issuer_url: str, evidence: Mapping[str, Any], *,
                                     within_s: float = 600.0,
                                     on_pending: Callable[[str], None] | None = None,
                                     ) -> HeldCredential:
        """Ask an issuer for an age credential (waiting while its operator checks the
        evidence) and keep it in this device's encrypted store."""
        return await self._age.request_credential(issuer_url, evidence, within_s=within_s,
                                                  on_pending=on_pending)

    async def start_age_request(self, issuer_url: str, evidence: Mapping[str, Any]
                                ) -> tuple[str, HeldCredential | None]:
        """Ask an issuer for an age credential without waiting: the ticket, and the
        credential if the issuer decided at once (else collect it with
        `check_age_request`; `age_requests` lists the pending ones)."""
        return await self._age.start_request(issuer_url, evidence)

    def age_requests(self) -> list[dict[str, Any]]:
        return self._age.pending_requests()

    async def check_age_request(self, ticket: str) -> HeldCredential | None:
        return await self._age.check_request(ticket)

    def age_credentials(self) -> list[HeldCredential]:
        return self._age.credentials()

    async def prove_age(self) -> AgeStatus:
        """Prove this account's age band to the server with a fresh zero-knowledge proof."""
        return await self._age.prove()

    async def whoami(self) -> MeResponse:
        """The account as the server sees it: user, devices, age band and its expiry."""
        return await self._api.me()

    def pending_sends(self) -> int:
        return len(self._core.outbox())

    async def flush(self, within_s: float = 30.0) -> None:
        """Wait until the outbox is empty (every message accepted or refused)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while self._core.outbox():
            await self._flush_outbox()
            if not self._core.outbox():
                return
            if loop.time() > deadline:
                raise TimeoutError(f"{len(self._core.outbox())} messages still unsent")
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        self._closed = True
        for task in (self._runner, self._flusher, self._age_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._api.aclose()
        self._core.store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # --- guardians (docs/safety-policy.md#guardians) -----------------------------------

    async def propose_guardian_link(self, user_id: str, *,
                                    role: Literal["guardian", "child"]) -> GuardianLink:
        """Ask `user_id` to link: `role="guardian"` when this (under-16) account asks a
        16+ account to be its guardian, `role="child"` when this 16+ account offers to be
        the guardian of `user_id`. The link is pending until the other side accepts."""
        return await self._api.propose_guardian_link(user_id, role)

    async def accept_guardian_link(self, link_id: str) -> GuardianLink:
        """Accept the other side's proposal."""
        return await self._api.accept_guardian_link(link_id)

    async def remove_guardian_link(self, link_id: str) -> GuardianRemoval:
        """Withdraw or decline a proposal, or end a link. A child under 16 only asks: the
        outcome is `removal_requested` until the guardian approves."""
        return await self._api.remove_guardian_link(link_id)

    async def approve_guardian_removal(self, link_id: str) -> GuardianRemoval:
        """As the guardian, consent to the child's request to remove the link."""
        return await self._api.approve_guardian_removal(link_id)

    async def guardian_links(self) -> list[GuardianLink]:
        """Links and proposals this account is part of, as child or as guardian."""
        return (await self._api.guardian_links()).links

    async def guardian_alerts(self, *, unacknowledged: bool = False,
                              limit: int = 100) -> list[GuardianAlert]:
        """Alerts received as guardian, and those sent about this account as a child,
        newest first. New ones also arrive live as `GuardianAlert` events."""
        listed = await self._api.guardian_alerts(unacknowledged, limit)
        return [GuardianAlert.from_wire(alert) for alert in listed.alerts]

    async def acknowledge_guardian_alerts(self, alert_ids: list[str]) -> int:
        """Mark alerts read; returns how many were newly acknowledged."""
        return await self._api.acknowledge_guardian_alerts(alert_ids)

    # --- sending ------------------------------------------------------------------------

    async def _send(self, to: str, *, text: str = "",
                    attachments: tuple[AttachmentRef, ...] = ()) -> str:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_TEXT_BYTES:
            raise ClientError(f"a message holds at most {MAX_TEXT_BYTES // 1024} KiB of text "
                              f"(this one is {size / 1024:.0f} KiB): split it, or send it as "
                              "a file", code="text_too_long")
        conversation = self._core.conversation_for(to)
        entry: OutboxEntry | None = None
        for _ in range(8):
            try:
                entry = self._core.prepare(to, text=text, attachments=attachments)
                break
            except NeedDeviceLists as need:
                await self._fetch_device_lists(need.users)
            except NeedGroup as need:
                self._update_group(await self._api.group(need.group_id))
            except NeedPolicy as need:
                if is_group_id(need.conversation_id):
                    # The policy is signed for the group's current epoch: a change made by
                    # someone else (an invitee accepting) may not have reached us yet.
                    self._update_group(await self._api.group(need.conversation_id))
                await self._fetch_policy(need.conversation_id)
            except MissingSessions:
                await self._claim(conversation)
        if entry is None:
            raise ClientError(f"could not prepare a message for {to}", code="prepare_failed")
        with contextlib.suppress(Offline):
            await self._flush_outbox()
        refused = self._refused.pop(entry.entry_id, None)
        if refused is not None:
            raise refused
        return entry.entry_id

    async def _fetch_device_lists(self, users: list[str]) -> None:
        for user in users:
            before = self._core.known_device_ids(user)
            problems = self._core.update_device_list(await self._api.device_list(user))
            for problem in problems:
                log.warning("device list of %s: %s", user, problem)
            after = self._core.known_device_ids(user) or set()
            if before is not None and before != after:
                self._emit(DeviceListChanged(user, tuple(sorted(after - before)),
                                             tuple(sorted(before - after))))

    async def _claim(self, conversation_id: str) -> None:
        needed = self._core.devices_needing_sessions(conversation_id)
        if not needed:
            return
        claimed = await self._api.claim(needed)
        for refusal in self._core.add_bundles(claimed.bundles):
            log.warning("refused key bundle: %s", refusal)

    async def _refresh_for(self, conversation_id: str) -> None:
        if is_group_id(conversation_id):
            self._update_group(await self._api.group(conversation_id))
        await self._fetch_device_lists(self._core.participants(conversation_id))
        await self._claim(conversation_id)
        await self._fetch_policy(conversation_id)

    async def _fetch_policy(self, conversation_id: str) -> KnownPolicy:
        """The conversation's signed policy (and, first, the server's pinned keys)."""
        if is_group_id(conversation_id) and self._core.group(conversation_id) is None:
            self._update_group(await self._api.group(conversation_id))
        keys = await self._api.safety_keys()
        if keys != self._core.safety_keys():
            self._core.pin_safety_keys(keys)  # refuses a changed signing key
        known = self._core.update_policy(await self._api.conversation_policy(conversation_id))
        previous = self._shown_policies.get(conversation_id)
        if previous is not None and previous != known.policy.label:
            self._emit(PolicyChanged(conversation_id, known.policy))
        self._shown_policies[conversation_id] = known.policy.label
        return known

    async def _flush_outbox(self) -> None:
        """Send every queued envelope in order. Stops quietly when offline."""
        async with self._send_lock:
            for entry in self._core.outbox():
                try:
                    await self._send_entry(entry)
                except Offline:
                    return
                except ServerError as exc:
                    if exc.status == 429 or exc.status >= 500:
                        return
                    raise

    async def _send_entry(self, entry: OutboxEntry) -> None:
        for _ in range(_MAX_REBUILDS):
            try:
                for envelope in entry.pending:
                    event = self._core.envelope_accepted(entry.entry_id,
                                                         await self._api.send(envelope))
                    if event is not None:
                        self._emit(event)
                return
            except ServerError as exc:
                if exc.status == 429 or exc.status >= 500:
                    raise
                if exc.code not in _REBUILD_CODES:
                    self._refuse(entry, exc)
                    return
                try:
                    await self._refresh_for(entry.conversation_id)
                    entry = self._core.rebuild(entry.entry_id)
                except (NeedDeviceLists, NeedGroup, MissingSessions, NeedPolicy) as again:
                    self._refuse(entry, again)
                    return
                except ServerError as refresh_error:
                    if refresh_error.status in (403, 404):
                        self._refuse(entry, refresh_error)
                        return
                    raise
        self._refuse(entry, ClientError("recipients kept changing", code="too_many_retries"))

    def _refuse(self, entry: OutboxEntry, exc: ClientError) -> None:
        log.warning("message %s refused: %s %s", entry.entry_id, exc.code, exc.message)
        self._refused[entry.entry_id] = exc
        while len(self._refused) > 100:
            self._refused.pop(next(iter(self._refused)))
        event = self._core.envelope_refused(entry.entry_id, exc.code, exc.message)
        if event is not None:
            self._emit(event)

    # --- receiving -------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if isinstance(event, IncomingMessage):
            key = inbox_key(event.conversation_id, event.sender_user, event.message_id)
            if event.sender_user in self._blocked:
                # Blocked people can't reach us directly; in a shared group, hide them.
                self._core.consumed(key)
                return
            if event.sender_user in self._muted:
                event = dataclasses.replace(event, muted=True)
            self._messages.put_nowait((key, event))
            return
        if self._events.full():
            self._events.get_nowait()  # nobody reads events: keep the newest
        self._events.put_nowait(event)

    async def _handle_delivery(self, delivery: Delivery) -> None:
        needed = self._core.sender_device_needed(delivery)
        if needed is not None:
            try:
                await self._fetch_device_lists([needed])
            except ServerError as exc:
                if exc.status >= 500 or exc.status == 429:
                    raise
                log.warning("device list of %s unavailable: %s", needed, exc.code)
        for event in self._core.receive(delivery):
            self._emit(event)
            if (isinstance(event, IncomingMessage)
                    and (self._on_device.active
                         or (self._on_device_mode and event.attachments))
                    and event.sender_user not in self._blocked):  # hidden: no warning
                await self._scan_on_device(event)

    @property
    def safety_rules_version(self) -> str | None:
        """The version of the on-device detector rules in use (None: none, e.g. not in
        mode on-device)."""
        return self._on_device.version

    async def refresh_safety_rules(self) -> bool:
        """Fetch the server's keys and, in mode on-device, its signed detector rules (True
        when new rules were taken into use). Done at each login and, while messages
        arrive, every `rules_refresh_s`; rules that do not verify or build are ignored."""
        self._rules_checked = time.monotonic()
        keys = await self._api.safety_keys()
        if keys != self._core.safety_keys():
            self._core.pin_safety_keys(keys)
        self._on_device_mode = keys.mode == "on-device"
        if keys.mode != "on-device":
            if self._on_device.version is not None:
                self._on_device.clear()
            return False
        rules = await self._api.on_device_rules()
        return self._on_device.update(rules, keys.policy_signing_key)

    async def _load_on_device_rules(self) -> None:
        await self.refresh_safety_rules()

    async def _scan_on_device(self, message: IncomingMessage) -> None:
        """Scan a received message here, on the device, if the conversation's policy says
        this user's client does; a hit is a notice or warning shown to this user, nothing
        more: no detection leaves the device."""
        if time.monotonic() - self._rules_checked >= self.rules_refresh_s:
            try:
                await self.refresh_safety_rules()
            except (ClientError, ServerError, Offline) as exc:
                log.info("on-device rules not refreshed: %s", exc)
        known = self._core.known_policy(message.conversation_id)
        if known is None:
            try:
                known = await self._fetch_policy(message.conversation_id)
            except ClientError as exc:
                log.warning("policy of %s unavailable: %s", message.conversation_id, exc)
                return
        protected = known.policy.on_device_detection_users
        if self.user_id not in protected:
            return
        if self._on_device.active:
            for event in self._on_device.scan(message, self.user_id, protected):
                self._emit(event)
        # Images: no hash bank on the device and no hash leaves it (docs/detection.md,
        # "On-device mode"): each image is shown blurred until tapped, with block-and-
        # report; a report lets the server match it against the banks.
        if any(is_image(ref) for ref in message.attachments):
            self._emit(SafetyWarning(message.conversation_id, message.message_id,
                                     message.sender_user, IMAGE_REVIEW_CODE, "low",
                                     IMAGE_REVIEW_NOTICE))

    def _warned(self, warning_id: int, category: str | None, at_ms: int) -> None:
        """Show a moderator warning once per device (the store remembers it)."""
        key = str(warning_id)
        if self._core.store.has(_WARNINGS_SHOWN, key):
            return
        self._core.store.put(_WARNINGS_SHOWN, key, {"at_ms": at_ms})
        self._emit(ModeratorWarning(warning_id, category, at_ms))

    async def block_and_report(self, notice: SafetyNotice) -> ReportReceiptOut:
        """The notice's one tap: report the message that raised it (grooming or
        enticement, with its context as franked evidence) and block its sender."""
        return await self.report(notice.key, "grooming_or_enticement", block=True)

    async def _after_login(self, token: TokenResponse) -> None:
        await self._replenish_keys(token.one_time_key_count)
        # Warnings given while this device was offline (oldest first).
        with contextlib.suppress(ServerError):
            for warning in reversed((await self._api.moderator_warnings()).warnings):
                self._warned(warning.warning_id, warning.category, warning.created_at_ms)
        # Blocks and mutes are per account: learn what this user's other devices set.
        self._blocked = set((await self._api.blocks()).users)
        self._muted = set((await self._api.mutes()).users)
        await self._load_on_device_rules()

    async def _replenish_keys(self, server_count: int) -> None:
        request = self._core.keys_to_upload(server_count)
        if request is None:
            return
        try:
            await self._api.upload_keys(request)
        except ServerError as exc:
            if exc.status >= 500 or exc.status == 429:
                raise
            log.warning("one-time key upload refused: %s %s", exc.code, exc.message)
            return
        self._core.keys_published()

    def _update_group(self, info: GroupInfo) -> None:
        """Cache the group; tell the user when the contact rules now keep members from
        them in it (`GroupMembersWithheld`)."""
        before = self._core.group(info.group_id)
        self._core.update_group(info)
        was = set(before.withheld) if before is not None else set()
        if set(info.withheld) != was and info.withheld:
            self._emit(GroupMembersWithheld(info.group_id, tuple(sorted(info.withheld))))

    async def _on_frame(self, raw: str | bytes, ws: websockets.ClientConnection) -> None:
        try:
            frame = SERVER_FRAME.validate_json(raw)
        except ValidationError:
            log.warning("ignoring a malformed frame from the server")
            return
        if isinstance(frame, DeliveryFrame):
            await self._handle_delivery(frame.delivery)
            # Acknowledged only now: the core has committed it to the store.
            await ws.send(AckFrame(seqs=[frame.delivery.seq]).model_dump_json())
        elif isinstance(frame, KeysLowFrame):
            await self._replenish_keys(frame.one_time_key_count)
        elif isinstance(frame, GroupChangedFrame):
            before = self._core.group(frame.group_id)
            try:
                info = await self._api.group(frame.group_id)
            except ServerError as exc:
                if exc.status in (403, 404):
                    self._core.forget_group(frame.group_id)
                    if before is not None:
                        self._emit(GroupChanged(frame.group_id, before.name, left=True))
                return
            self._update_group(info)
            changed = group_change(before, info, self.user_id)
            if changed is not None:
                self._emit(changed)
        elif isinstance(frame, AgeProofNeededFrame):
            if self._age_task is None or self._age_task.done():
                self._age_task = asyncio.create_task(self._age.answer_server())
        elif isinstance(frame, GuardianAlertFrame):
            self._emit(GuardianAlert.from_wire(frame.alert))
        elif isinstance(frame, SafetyNoticeFrame):
            n = frame.notice
            self._emit(SafetyNotice(n.notice_id, n.conversation_id, n.message_id,
                                    n.sender_user, n.detector, tuple(n.behaviours), n.text,
                                    n.help_url, n.created_at_ms))
        elif isinstance(frame, ContactRequestFrame):
            self._emit(ContactRequestReceived(frame.request_id, frame.requester,
                                              frame.requester_band))
        elif isinstance(frame, GroupInvitationFrame):
            invitation = frame.invitation
            self._emit(GroupInvited(invitation.invitation_id, invitation.group_id,
                                    invitation.group_name, invitation.invited_by,
                                    invitation.expires_ms))
        elif isinstance(frame, DeviceListChangedFrame):
            with contextlib.suppress(ServerError):  # e.g. no longer visible to us
                await self._fetch_device_lists([frame.user_id])
        elif isinstance(frame, GuardianLinkFrame):
            link = frame.link
            self._emit(GuardianLinkProposed(link.link_id, link.child, link.guardian,
                                            link.proposed_by))
        elif isinstance(frame, ModeratorWarningFrame):
            self._warned(frame.warning.warning_id, frame.warning.category,
                         frame.warning.created_at_ms)
        elif isinstance(frame, ErrorFrame):
            log.warning("server error frame: %s", frame.error.code)

    async def _keep_flushing(self) -> None:
        """While connected: send the outbox now, then retry whatever is left."""
        while True:
            with contextlib.suppress(Offline, ServerError):
                await self._flush_outbox()
            await asyncio.sleep(_FLUSH_RETRY_S)

    async def _run(self) -> None:
        """Stay connected: log in, open the socket, process frames; back off and retry."""
        backoff = _BACKOFF_START_S
        while not self._closed:
            try:
                if self._api.token is None:
                    await self._api.login()
                async with websockets.connect(
                        self._api.ws_url, proxy=None, max_size=2**20, compression=None,
                        additional_headers={"Authorization": f"Bearer {self._api.token}"},
                ) as ws:
                    self._connected.set()
                    backoff = _BACKOFF_START_S
                    self._flusher = asyncio.create_task(self._keep_flushing())
                    try:
                        async for raw in ws:
                            await self._on_frame(raw, ws)
                    finally:
                        self._flusher.cancel()
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                if exc.response.status_code == 401:
                    self._api.token = None
            except (OSError, WebSocketException, Offline, TimeoutError) as exc:
                log.info("connection lost: %s", type(exc).__name__)
            except ServerError as exc:
                log.warning("server error while connected: %s", exc.code)
            except Exception:
                log.exception("unexpected error in the delivery loop")
            finally:
                self._connected.clear()
            if self._closed:
                return
            await asyncio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, _BACKOFF_MAX_S)
