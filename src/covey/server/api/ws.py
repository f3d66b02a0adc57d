"""The delivery WebSocket, one per device: drains the mailbox in seq order, then streams
live deliveries (subscribed before draining, duplicates dropped by seq), and accepts
`send` and `ack` frames. A bad frame gets an `error` frame; the socket stays open."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from covey.errors import CoveyError, Forbidden, TooLarge, Unauthorized
from covey.protocol.ids import MESSAGE_ID_PATTERN
from covey.protocol.wire import (
    CLIENT_FRAME,
    AckFrame,
    DeliveryFrame,
    ErrorBody,
    ErrorFrame,
    KeysLowFrame,
    SendFrame,
    SentFrame,
)
from covey.server.api.errors import (
    DATABASE_UNAVAILABLE,
    describe_validation_errors,
    is_database_outage,
)
from covey.server.fanout import DeviceAddress, Resync, Subscription
from covey.server.metrics import Metrics
from covey.server.ratelimit import RateLimiter
from covey.server.services import Principal, Services
from covey.server.services._common import now_ms
from covey.server.services.messages import AcceptedSend, pending_delivery

log = logging.getLogger(__name__)
_MESSAGE_ID = re.compile(MESSAGE_ID_PATTERN.strip("^$"))
router = APIRouter()

_DRAIN_PAGE = 500
_MAX_IN_FLIGHT = 4096
_FRAME_OVERHEAD = 1024  # the frame wrapper around an envelope
# Close codes in the private range: 4401 token expired, 4403 account suspended.
SUSPENDED_CLOSE = 4403


def _error_frame(exc: CoveyError, message_id: str | None) -> str:
    return ErrorFrame(message_id=message_id, error=ErrorBody(
        code=exc.code, message=exc.message, details=exc.details or None)).model_dump_json()


def _guess_message_id(text: str) -> str | None:
    """The message id of a frame that failed validation, when it can be read and is a
    well-formed id (so it is safe to echo)."""
    try:
        raw = json.loads(text)
        mid = raw["envelope"]["message_id"]
    except (ValueError, KeyError, TypeError, IndexError, RecursionError):
        return None
    return mid if isinstance(mid, str) and _MESSAGE_ID.fullmatch(mid) else None


@router.websocket("/v1/ws")
async def delivery_socket(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send Authorization: Bearer <token>", code="missing_token")
        principal = await services.auth.authenticate(token.strip())
    except CoveyError as exc:
        await websocket.send_denial_response(
            JSONResponse(exc.to_json(), status_code=exc.status))
        return
    await websocket.accept()
    ip = websocket.client.host if websocket.client else "unknown"
    await _Connection(websocket, services, websocket.app.state.limiter, principal, ip).run()


class _Connection:
    def __init__(self, ws: WebSocket, services: Services, limiter: RateLimiter,
                 principal: Principal, ip: str) -> None:
        self.ws = ws
        self.services = services
        self.limiter = limiter
        self.principal = principal
        self.ip = ip
        self.out: asyncio.Queue[str] = asyncio.Queue()
        self.in_flight = 0
        self.sent: set[int] = set()  # seqs sent on this connection and not known acked
        self.metrics: Metrics | None = getattr(ws.app.state, "metrics", None)
        self.max_text = services.settings.max_envelope_bytes + _FRAME_OVERHEAD

    async def run(self) -> None:
        addr = DeviceAddress(self.principal.user_id, self.principal.device_id)
        subscription = self.services.fanout.subscribe(addr)  # before draining: no gaps
        sender = asyncio.create_task(self._send_loop())
        pump = asyncio.create_task(self._deliver(subscription))
        if self.metrics is not None:
            self.metrics.websocket_connections.inc()
        reader = asyncio.create_task(self._read_loop())
        revoked = asyncio.Event()
        unwatch = self.services.auth.watch_revocation(self.principal.user_id, revoked.set)
        revocation = asyncio.create_task(revoked.wait())
        try:
            # The socket lives as long as the token that opened it.
            remaining = (self.principal.token_expires_ms - now_ms()) / 1000
            done, _ = await asyncio.wait({reader, pump, revocation},
                                         timeout=max(0.0, remaining),
                                         return_when=asyncio.FIRST_COMPLETED)
            if revocation in done:
                await self._close_with(Forbidden("this account is suspended",
                                                 code="account_suspended"), SUSPENDED_CLOSE)
            elif reader in done:
                with contextlib.suppress(WebSocketDisconnect):
                    reader.result()
            elif pump in done:
                # Delivery broke (e.g. the database went away): make the client reconnect
                # rather than leave it connected and deaf.
                log.warning("delivery stopped: %r", pump.exception())
                with contextlib.suppress(RuntimeError, OSError):
                    await self.ws.close(code=1011)
            else:
                await self._close_with(Unauthorized("the bearer token has expired",
                                                    code="token_expired"), 4401)
        finally:
            if self.metrics is not None:
                self.metrics.websocket_connections.dec()
            unwatch()
            subscription.close()
            for task in (reader, pump, sender, revocation):
                task.cancel()
            for task in (reader, pump, sender, revocation):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _close_with(self, exc: CoveyError, code: int) -> None:
        """An error frame naming why, then a close frame with `code` and the error code."""
        self._reply_error(exc, None)
        await asyncio.sleep(0.05)  # let the sender flush the error frame
        with contextlib.suppress(RuntimeError, OSError):
            await self.ws.close(code=code, reason=exc.code)

    async def _send_loop(self) -> None:
        out = self.out
        send = self.ws.send
        try:
            while True:
                text = await out.get()
                await send({"type": "websocket.send", "text": text})
                # Under load many frames are ready at once: send them without a wake-up each.
                while not out.empty():
                    await send({"type": "websocket.send", "text": out.get_nowait()})
        except (WebSocketDisconnect, RuntimeError, OSError):
            return

    async def _deliver(self, subscription: Subscription) -> None:
        await subscription.ready()  # before draining: nothing committed meanwhile is missed
        count = await self.services.keys.count(self.principal)
        if count.one_time_key_count < self.services.settings.one_time_keys_low:
            self.out.put_nowait(KeysLowFrame(
                one_time_key_count=count.one_time_key_count).model_dump_json())
        age_frame = await self.services.age.proof_needed(self.principal.user_id)
        if age_frame is not None:
            self.out.put_nowait(age_frame.model_dump_json())
        await self._drain()
        live = subscription.queue
        while True:
            frame = await live.get()
            while True:
                if isinstance(frame, Resync):
                    await self._drain()
                elif isinstance(frame, DeliveryFrame):
                    self._send_delivery(frame, "live")
                else:
                    self.out.put_nowait(frame.model_dump_json())
                if live.empty():
                    break
                frame = live.get_nowait()

    async def _drain(self) -> None:
        """Send every mailbox entry this connection has not sent yet, in seq order. Rows
        sent and since acked are forgotten, so `sent` stays as small as the mailbox."""
        messages = self.services.messages
        after = 0
        pending: set[int] = set()
        while True:
            rows = await messages.pending_rows(self.principal, after, _DRAIN_PAGE)
            for row in rows:
                pending.add(row.seq)
                if row.seq not in self.sent:
                    self._send_delivery(DeliveryFrame.model_construct(
                        type="delivery", delivery=pending_delivery(row)), "mailbox")
            if len(rows) < _DRAIN_PAGE:
                break
            after = rows[-1].seq
        # Everything sent and no longer pending was acked (or expired): forget it. Live
        # frames wait in the queue meanwhile, so none committed after the read is lost.
        self.sent.intersection_update(pending)

    def _send_delivery(self, frame: DeliveryFrame, source: str) -> None:
        seq = frame.delivery.seq
        if seq in self.sent:
            return  # drained already, or the same notification twice
        self.sent.add(seq)
        self.out.put_nowait(frame.model_dump_json())
        if self.metrics is not None:
            self.metrics.deliveries.labels(source=source).inc()
            if source == "live":
                self.metrics.commit_to_delivery.observe(
                    max(0.0, (now_ms() - frame.delivery.server_ts_ms) / 1000))

    async def _read_loop(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                data = message.get("bytes") or b""
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    self._reply_error(CoveyError("frames are UTF-8 JSON text",
                                                 code="invalid_request"), None)
                    continue
            if len(text) > self.max_text:
                self._reply_error(TooLarge(
                    f"frames are at most {self.max_text} bytes"), _guess_message_id(text))
                continue
            try:
                frame = CLIENT_FRAME.validate_json(text)
            except ValidationError as exc:
                msg, errors = describe_validation_errors(exc.errors())
                self._reply_error(CoveyError(msg, code="invalid_request",
                                             details={"errors": errors}),
                                  _guess_message_id(text))
                continue
            except (ValueError, RecursionError):  # input the parser itself gives up on
                self._reply_error(CoveyError("the frame is not valid JSON",
                                             code="invalid_request"), None)
                continue
            try:
                if isinstance(frame, SendFrame):
                    await self._on_send(frame)
                elif isinstance(frame, AckFrame):
                    self.services.messages.ack_nowait(self.principal, frame.seqs)
                    self.sent.difference_update(frame.seqs)
            except Exception as exc:  # a bug must cost one frame, not the connection
                if is_database_outage(exc):
                    self._reply_error(DATABASE_UNAVAILABLE, frame.envelope.message_id
                                      if isinstance(frame, SendFrame) else None)
                    continue
                log.exception("unexpected error handling a %s frame", frame.type)
                self._reply_error(CoveyError("internal error", code="internal_error",
                                             status=500),
                                  frame.envelope.message_id
                                  if isinstance(frame, SendFrame) else None)

    async def _on_send(self, frame: SendFrame) -> None:
        envelope = frame.envelope
        if self.in_flight >= _MAX_IN_FLIGHT:
            self._reply_error(CoveyError("too many sends in flight", code="rate_limited",
                                         status=429), envelope.message_id)
            return
        try:
            self.limiter.check("send", f"user:{self.principal.user_id}", f"ip:{self.ip}")
            accepted = await self.services.messages.accept(self.principal, envelope)
        except CoveyError as exc:
            self._reply_error(exc, envelope.message_id)
            return
        self.in_flight += 1
        started = time.perf_counter()
        accepted.future.add_done_callback(lambda _f: self._on_committed(accepted, started))

    def _on_committed(self, accepted: AcceptedSend, started: float) -> None:
        self.in_flight -= 1
        if accepted.future.cancelled():
            return
        if self.metrics is not None and accepted.future.exception() is None:
            self.metrics.send_to_commit.observe(time.perf_counter() - started)
        try:
            receipt = accepted.receipt()
        except CoveyError as exc:
            self._reply_error(exc, accepted.message_id)
            return
        except Exception as exc:  # the commit failed: the sender must hear it and resend
            if not is_database_outage(exc):
                log.error("a send's commit failed: %s", type(exc).__name__, exc_info=exc)
            self._reply_error(DATABASE_UNAVAILABLE if is_database_outage(exc) else
                              CoveyError("internal error", code="internal_error",
                                         status=500), accepted.message_id)
            return
        self.out.put_nowait(SentFrame.model_construct(type="sent",
                                                      receipt=receipt).model_dump_json())
        if self.metrics is not None and not receipt.duplicate:
            self.metrics.messages_accepted.inc()

    def _reply_error(self, exc: CoveyError, message_id: str | None) -> None:
        self.out.put_nowait(_error_frame(exc, message_id))
