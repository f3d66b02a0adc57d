"""Sending, delivery and acknowledgement. `accept` validates an envelope against the
exact target device set, computes a franking tag per recipient user and hands the message
to the group-commit writer; deliveries go to connected devices through the fanout as soon
as the batch has committed, and stay in the mailbox until acked or expired."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

from covey.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge
from covey.protocol.franking import TagContext, server_tag
from covey.protocol.ids import dm_participants
from covey.protocol.secrets import FrankingCommitment, ServerFrankingKey
from covey.protocol.wire import (
    AckResponse,
    Delivery,
    DeliveryFrame,
    GroupCiphertext,
    PendingResponse,
    SendEnvelope,
    SendReceipt,
)
from covey.server.fanout import DeviceAddress, Fanout, PushFrame
from covey.server.services._common import Principal, now_ms, reject_nul
from covey.server.services.accounts import DeviceDirectory
from covey.server.services.blobs import check_declared_blobs
from covey.server.services.groups import GroupService
from covey.server.services.image_matching import ImageMatchService
from covey.server.services.policy import PolicyService
from covey.server.services.safety_copies import (
    OpenedCopy,
    SafetyCopyService,
    check_attachment_refs,
)
from covey.server.storage.image_matches import ImageMatchRow
from covey.server.storage.repository import (
    MailboxEntry,
    NewMessage,
    PendingRow,
    Repository,
    StoreResult,
)
from covey.settings import Settings

log = logging.getLogger(__name__)



class AcceptedSend:
    """A send queued for the group commit; `receipt()` once `future` is done."""

    __slots__ = ("future", "message_id")

    def __init__(self, message_id: str, future: asyncio.Future[Any]) -> None:
        self.message_id = message_id
        self.future = future

    def receipt(self) -> SendReceipt:
        """The receipt, or the error that the commit raised (`CoveyError`)."""
        result: StoreResult = self.future.result()
        if result.outcome == "conflict":
            raise Conflict("this message id was already used with another commitment",
                           code="message_id_conflict", details={"message_id": self.message_id})
        if result.outcome == "taken":
            raise Conflict("this conversation already holds a message with this id from "
                           "another sender: send it with a fresh message id",
                           code="message_id_in_use", details={"message_id": self.message_id})
        return SendReceipt.model_construct(
            message_id=self.message_id, server_ts_ms=result.server_ts_ms,
            duplicate=result.outcome == "duplicate")


def _olm_type(value: int | None) -> Literal[0, 1] | None:
    return None if value is None else (0 if value == 0 else 1)


def _delivery(seq: int, m: NewMessage, e: MailboxEntry,
              group: GroupCiphertext | None) -> Delivery:
    # Built without re-validation: every field was validated on the way in.
    return Delivery.model_construct(
        seq=seq, message_id=m.message_id, conversation_id=m.conversation_id,
        sender_user=m.sender_user, sender_device=m.sender_device,
        server_ts_ms=m.server_ts_ms, commitment=m.commitment, franking_tag=e.franking_tag,
        participants=m.participants, olm_type=_olm_type(e.olm_type), body=e.body, group=group,
        blob_ids=m.blob_ids)


def pending_delivery(row: PendingRow) -> Delivery:
    group = None
    if row.group_session_id is not None and row.group_body is not None:
        group = GroupCiphertext.model_construct(session_id=row.group_session_id,
                                                body=row.group_body)
    return Delivery.model_construct(
        seq=row.seq, message_id=row.message_id, conversation_id=row.conversation_id,
        sender_user=row.sender_user, sender_device=row.sender_device,
        server_ts_ms=row.server_ts_ms, commitment=row.commitment,
        franking_tag=row.franking_tag, participants=row.participants,
        olm_type=_olm_type(row.olm_type), body=row.body, group=group,
        blob_ids=row.blob_ids)


def declared_blob_ids(env: SendEnvelope, opened: OpenedCopy | None) -> list[str]:
    """The blobs this message references: the envelope's `blob_ids`; an envelope without
    them (an older client) declares none, unless its safety copy names attachments. Every
    attachment a safety copy names must be declared (400 `attachment_not_declared`)."""
    named = [] if opened is None else [ref.blob_id for ref in opened.content.attachments]
    if env.blob_ids is None:
        return list(dict.fromkeys(named))
    for index, blob_id in enumerate(named):
        if blob_id not in env.blob_ids:
            raise InvalidInput(
                f"attachment {blob_id} is not in the envelope's blob_ids: declare every "
                "attachment's blob", code="attachment_not_declared",
                details={"blob_id": blob_id, "index": index, "field": "blob_ids"})
    return list(env.blob_ids)


def _valid_seqs(seqs: list[int]) -> list[int]:
    # Seqs outside a signed 64-bit range match nothing and would not bind in SQL.
    return sorted({s for s in seqs if 0 < s < 2**63})


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("an acknowledgement could not be stored: %s", future.exception())


class MessageService:
    def __init__(self, settings: Settings, repo: Repository, directory: DeviceDirectory,
                 groups: GroupService, fanout: Fanout, server_key: ServerFrankingKey,
                 policy: PolicyService, copies: SafetyCopyService) -> None:
        self._settings = settings
        self._policy = policy
        self._copies = copies
        self._repo = repo
        self._directory = directory
        self._groups = groups
        self._fanout = fanout
        self._server_key = server_key
        # Blocks and suspensions (set by the reporting service); None lets every send by.
        self.send_gate: Callable[[str, str, list[str]], frozenset[str]] | None = None
        # Known-image matching of safeguarded attachments (set by `build_services`).
        self.images: ImageMatchService | None = None

    # --- sending ---------------------------------------------------------------------

    async def send(self, principal: Principal, envelope: SendEnvelope) -> SendReceipt:
        accepted = await self.accept(principal, envelope)
        await asyncio.shield(accepted.future)
        return accepted.receipt()

    async def accept(self, principal: Principal, envelope: SendEnvelope) -> AcceptedSend:
        """Validate and queue the envelope; `future` resolves once the message is durable.
        Callers that queue in order get seqs in that order."""
        message, opened, matches = await self._prepare(principal, envelope)
        future = self._repo.submit_message(message)
        # Publishing hangs off the commit, not off the sender's waiter, so a sender that
        # disconnects after sending still gets its message delivered live.
        future.add_done_callback(lambda f: self._after_commit(message, opened, f, matches))
        return AcceptedSend(envelope.message_id, future)

    def _after_commit(self, message: NewMessage, opened: OpenedCopy | None,
                      future: asyncio.Future[Any],
                      matches: Sequence[ImageMatchRow] = ()) -> None:
        failed = future.cancelled() or future.exception() is not None
        outcome = None if failed else future.result().outcome
        if matches and self.images is not None and opened is not None:
            if outcome == "stored":
                self.images.report_soon(message, opened.content, matches)
            elif outcome == "duplicate":  # reported as first stored and delivered
                self.images.report_stored_soon(matches)
            else:  # refused at commit: the message does not exist
                self.images.forget_soon(matches)
        if outcome != "stored":
            return
        if opened is not None:
            self._copies.scan_soon(message, opened.content)
        group = None
        if message.group_session_id is not None and message.group_body is not None:
            group = GroupCiphertext.model_construct(session_id=message.group_session_id,
                                                    body=message.group_body)
        items: list[tuple[DeviceAddress, PushFrame]] = [
            (DeviceAddress(e.user_id, e.device_id),
             DeliveryFrame.model_construct(type="delivery",
                                           delivery=_delivery(e.seq, message, e, group)))
            for e in message.entries]
        self._fanout.publish(items)

    async def _prepare(self, principal: Principal, env: SendEnvelope
                       ) -> tuple[NewMessage, OpenedCopy | None, list[ImageMatchRow]]:
        if len(env.recipients) > self._settings.max_recipient_devices:
            raise TooLarge(f"at most {self._settings.max_recipient_devices} recipients",
                           details={"field": "recipients"})
        if env.group is not None:
            reject_nul(env.group.session_id, field="group.session_id")
        conversation = env.conversation_id
        dm = dm_participants(conversation)
        if dm is not None:
            if dm[0] == dm[1]:
                raise InvalidInput("a direct conversation needs two different users",
                                   details={"field": "conversation_id"})
            if principal.user_id not in dm:
                raise Forbidden("you are not a participant of this conversation",
                                code="not_a_participant")
            if env.group is not None or env.group_epoch is not None:
                raise InvalidInput("group and group_epoch are only for group conversations",
                                   details={"field": "group"})
            participants = list(dm)
        else:
            participants = await self._group_participants(principal, env)
        blocked_by = (frozenset() if self.send_gate is None else
                      self.send_gate(principal.user_id, conversation, participants))
        if blocked_by:
            # Accepted as usual, delivered only to the sender's own devices: refusing (or
            # the contact rules' answer after a block) would tell the blocked sender.
            env = env.model_copy(update={"recipients": [
                r for r in env.recipients if r.user_id not in blocked_by]})
        elif dm is not None:
            await self._policy.check_direct(principal.user_id, conversation)
        policy = await self._policy.for_participants(participants)
        if env.group is None:
            for r in env.recipients:
                if r.olm_type is None or r.body is None:
                    raise InvalidInput(
                        "every recipient needs olm_type and body when there is no group "
                        "ciphertext", details={"field": "recipients",
                                               "device": f"{r.user_id}/{r.device_id}"})
        withheld: list[str] = []
        if dm is None:
            # The contact rules, per recipient on every group message: a member they no
            # longer let the sender reach (or be reached by) gets nothing from it.
            withheld = await self._policy.withheld_in(principal.user_id, participants)
            listed = sorted({r.user_id for r in env.recipients} & set(withheld))
            if listed:
                await self._groups.notify_withheld(conversation, [principal.user_id, *listed])
                raise Conflict("the contact rules no longer let you and these members "
                               "message each other in this group; leave them out",
                               code="recipients_withheld",
                               details={"users": listed, "reason": "contact_rules"})
        entries = await self._target_entries(
            principal, env, [p for p in participants if p not in withheld and p not in blocked_by])
        server_ts = now_ms()
        opened = self._copies.check(principal, env, participants, policy, server_ts)
        matches: list[ImageMatchRow] = []
        if opened is not None:
            await check_attachment_refs(opened.content, self._repo.get_blob)
        blob_ids = declared_blob_ids(env, opened)
        await check_declared_blobs(self._repo, principal.user_id, blob_ids)
        if opened is not None and self.images is not None and opened.content.attachments:
            # Before the message is stored: a matched blob is withheld before anyone
            # is told of the message (docs/detection.md, "Acting on a match").
            matches = await self.images.check(principal.user_id, principal.device_id,
                                              opened.content, participants)
        commitment = FrankingCommitment.from_b64(env.commitment)
        tags: dict[str, str] = {}
        for entry in entries:
            tag = tags.get(entry.user_id)
            if tag is None:
                tag = server_tag(self._server_key, commitment, TagContext(
                    sender_user=principal.user_id, sender_device=principal.device_id,
                    recipient_user=entry.user_id, conversation_id=conversation,
                    server_ts_ms=server_ts, message_id=env.message_id)).to_b64()
                tags[entry.user_id] = tag
            entry.franking_tag = tag
        return NewMessage(
            safety_copy=None if opened is None else opened.record,
            sender_device_pk=principal.device_pk, sender_user=principal.user_id,
            sender_device=principal.device_id, message_id=env.message_id,
            conversation_id=conversation, commitment=env.commitment, server_ts_ms=server_ts,
            participants=participants,
            group_session_id=None if env.group is None else env.group.session_id,
            group_body=None if env.group is None else env.group.body,
            expires_ms=server_ts + self._settings.mailbox_ttl_s * 1000, entries=entries,
            blob_ids=blob_ids), opened, matches

    async def _group_participants(self, principal: Principal, env: SendEnvelope) -> list[str]:
        group = await self._groups.current(env.conversation_id)
        if group is None:
            raise NotFound("no such group", code="unknown_group")
        if principal.user_id not in group.members:
            raise Forbidden("you are not a member of this group", code="not_a_participant")
        if env.group_epoch is None:
            raise InvalidInput("group sends need group_epoch", details={"field": "group_epoch"})
        if env.group_epoch != group.epoch:
            raise Conflict("the group has changed: rotate the group session and retry",
                           code="stale_group_epoch",
                           details={"epoch": group.epoch, "sent_epoch": env.group_epoch})
        return sorted(group.members)

    async def _target_entries(self, principal: Principal, env: SendEnvelope,
                              participants: list[str]) -> list[MailboxEntry]:
        given: dict[tuple[str, str], int] = {}
        for i, r in enumerate(env.recipients):
            if (r.user_id, r.device_id) in given:
                raise InvalidInput("a device is listed twice in recipients",
                                   details={"field": "recipients",
                                            "device": f"{r.user_id}/{r.device_id}"})
            given[(r.user_id, r.device_id)] = i
        for attempt in (0, 1):
            expected: dict[tuple[str, str], int] = {}
            for user in participants:
                for device_id, row in (await self._directory.devices(user)).items():
                    if user == principal.user_id and device_id == principal.device_id:
                        continue
                    expected[(user, device_id)] = row.pk
            if expected.keys() == given.keys():
                break
            if attempt == 0:
                # Our cached lists may be behind another process: read them again once.
                for user in participants:
                    self._directory.invalidate(user)
                continue
            missing = [{"user_id": u, "device_id": d} for (u, d) in expected
                       if (u, d) not in given]
            extra = [{"user_id": u, "device_id": d} for (u, d) in given
                     if (u, d) not in expected]
            raise Conflict("recipients must be exactly the conversation's other devices",
                           code="device_list_mismatch",
                           details={"missing": missing, "extra": extra})
        return [MailboxEntry(device_pk=expected[(r.user_id, r.device_id)], user_id=r.user_id,
                             device_id=r.device_id, olm_type=r.olm_type, body=r.body,
                             franking_tag="") for r in env.recipients]

    # --- mailbox ---------------------------------------------------------------------

    async def pending(self, principal: Principal, after: int, limit: int) -> PendingResponse:
        rows = await self._repo.pending(principal.device_pk, after, limit, now_ms())
        return PendingResponse.model_construct(deliveries=[pending_delivery(r) for r in rows])

    async def pending_rows(self, principal: Principal, after: int,
                           limit: int) -> list[PendingRow]:
        return await self._repo.pending(principal.device_pk, after, limit, now_ms())

    async def ack(self, principal: Principal, seqs: list[int]) -> AckResponse:
        valid = _valid_seqs(seqs)
        removed = await self._repo.ack(principal.device_pk, valid) if valid else 0
        return AckResponse(removed=removed)

    def ack_nowait(self, principal: Principal, seqs: list[int]) -> None:
        """Queue an ack without waiting for its commit (WebSocket acks need no answer)."""
        valid = _valid_seqs(seqs)
        if valid:
            future = self._repo.submit_ack(principal.device_pk, valid)
            future.add_done_callback(_log_failure)

    async def purge_loop(self) -> None:
        """Drop expired mailbox entries (and stale auth rows) now and then, forever."""
        interval = max(1.0, min(60.0, self._settings.mailbox_ttl_s / 4))
        retention_ms = self._settings.mailbox_ttl_s * 1000
        while True:
            try:
                removed = await self._repo.purge_expired(now_ms(), retention_ms)
                if removed:
                    log.info("purged %d expired mailbox entries", removed)
            except Exception:
                log.exception("mailbox purge failed")
            await asyncio.sleep(interval)
