"""The moderation side: moderator accounts (argon2id), console sessions with a CSRF token,
the queue, report views with re-verified evidence, actions (dismiss, warn, suspend,
escalate), law-enforcement packages, the transparency report and the audit log.
Every view and action is written to the audit log."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from covey.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from covey.moderation import (
    EspContact,
    FileMatch,
    KnownVictim,
    ReportVerification,
    attestation_key_id,
    build_bundle,
    build_cybertip,
    cybertip_schema,
    public_key_pem,
)
from covey.moderation.transparency import (
    ImageMatchCountRow,
    TransparencyRow,
    transparency_counts,
)
from covey.protocol.wire import ModeratorWarning, ModeratorWarningList
from covey.server.files import write_private
from covey.server.services._common import load_or_create_secret_file, now_ms
from covey.server.services.console_guard import LoginBackoff, PasswordSlots, throttled
from covey.server.services.reports import UNDER_16_BAND, ReportService
from covey.server.storage.image_matches import ImageMatchRow, ImageMatchStore
from covey.server.storage.reports_repo import (
    AuditRow,
    ModeratorRow,
    ReportRepository,
    ReportRow,
    SessionRow,
)
from covey.server.storage.scan_jobs import ScanBacklog
from covey.settings import Settings

if TYPE_CHECKING:  # xmlschema takes most of a second to import: loaded on first escalation
    import xmlschema

Role = Literal["moderator", "admin"]
ROLES: tuple[Role, ...] = ("moderator", "admin")
OPEN_STATUSES = ("open",)
ACTIONS = ("dismiss", "warn", "suspend", "escalate")
# Actions that the console confirms, with a reason kept in the audit log.
CONFIRMED_ACTIONS = ("suspend", "escalate")
MAX_REASON_CHARS = 500
# Escalation files are stored sealed under the reports key, as NAME.sealed.
SEALED_SUFFIX = ".sealed"
_REPORT_ID = re.compile(r"rep_[0-9a-f]{24}")
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A fixed hash to verify against for unknown users, so timing does not reveal names.
    Made once per process, on first use (`warm_up` makes it at start-up, off the import)."""
    return _HASHER.hash("covey-no-such-moderator")


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise InvalidInput("passwords need at least 8 characters", code="weak_password")
    return _HASHER.hash(password)


def load_or_create_attestation_key(path: Path) -> Ed25519PrivateKey:
    """The platform's Ed25519 attestation key (PKCS#8 PEM, 0600), created on first use."""
    pem = load_or_create_secret_file(path, lambda: Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"{path} is not an Ed25519 private key")
    return key


async def create_moderator(store: ReportRepository, username: str, password: str,
                           role: str) -> bool:
    """Create a console account, or reset its password and role; True when created."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", code="bad_role")
    if not username or len(username) > 64 or not username.replace("-", "").replace(
            "_", "").replace(".", "").isalnum():
        raise InvalidInput("usernames are 1-64 letters, digits, '.', '-' or '_'")
    return await store.create_moderator(ModeratorRow(username, hash_password(password), role),
                                        now_ms())


async def set_moderator_disabled(store: ReportRepository, username: str,
                                 disabled: bool) -> bool:
    """Disable a console account (its sessions end, login is refused) or enable it again;
    False when there is no such account."""
    found = await store.set_moderator_disabled(username, now_ms() if disabled else None)
    if found:
        await store.audit(AuditRow(now_ms(), "operator", "moderator_disabled" if disabled
                                   else "moderator_enabled", None, f"username {username}"))
    return found


def attestation_key_path(settings: Settings) -> Path:
    return settings.data_dir / "attestation.key"


@dataclass(frozen=True)
class ConsoleSession:
    username: str
    role: Role
    csrf_token: str = field(repr=False)

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.username}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class ReportView:
    row: ReportRow
    verification: ReportVerification | None
    prior: list[ReportRow]
    escalation: tuple[str, str] | None
    # Known-image matches of this report's attachments (bank, entry, distance).
    image_matches: tuple[ImageMatchRow, ...] = ()

    @property
    def matched_digests(self) -> frozenset[str]:
        """Plaintext SHA-256s of matched attachments: the console never shows these
        images unless the moderator asks (`matched_image`)."""
        return frozenset(m.plaintext_sha256 for m in self.image_matches)
    # A detection report's signal (`Signal.to_json()`), and its evidence spans per
    # message as (start, end, behaviour), sorted and non-overlapping, for highlighting.
    signal: dict[str, Any] | None = None
    marks: dict[tuple[str, str], list[tuple[int, int, str]]] = field(default_factory=dict)


def signal_marks(signal: dict[str, Any] | None
                 ) -> dict[tuple[str, str], list[tuple[int, int, str]]]:
    """The spans a detection signal names, per (sender, message id): its own span and a
    conversation detector's evidence; overlapping spans are merged into the first."""
    if not signal:
        return {}
    spans: list[tuple[str, str, int, int, str]] = []
    span = signal.get("span")
    if isinstance(span, dict) and span.get("field") == "text" and span["end"] > span["start"]:
        spans.append((str(signal["sender_user"]), str(signal["message_id"]),
                      int(span["start"]), int(span["end"]), str(signal.get("code", ""))))
    detail = signal.get("detail") or {}
    for entry in detail.get("evidence") or []:
        spans.append((str(entry["sender_user"]), str(entry["message_id"]),
                      int(entry["start"]), int(entry["end"]), str(entry["behaviour"])))
    marks: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
    for sender, message_id, start, end, label in sorted(spans, key=lambda e: e[2]):
        kept = marks.setdefault((sender, message_id), [])
        if kept and start < kept[-1][1]:
            continue
        kept.append((start, end, label))
    return marks


def session_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class ModerationService:
    def __init__(self, settings: Settings, store: ReportRepository, reports: ReportService,
                 detection_backlog: Callable[[], Awaitable[ScanBacklog]] | None = None,
                 ) -> None:
        self._settings = settings
        self.store = store
        self._reports = reports
        self._detection_backlog = detection_backlog
        self._attestation: Ed25519PrivateKey | None = None
        self._schema: xmlschema.XMLSchema | None = None
        self._user_backoff = LoginBackoff(settings.console_login_free_failures,
                                          settings.console_login_backoff_s,
                                          settings.console_login_backoff_max_s)
        self._ip_backoff = LoginBackoff(settings.console_login_ip_free_failures,
                                        settings.console_login_backoff_s,
                                        settings.console_login_backoff_max_s)
        self._password_slots = PasswordSlots(settings.console_password_checks)
        # Set by the relay: tells the warned account's devices (ModeratorWarningFrame).
        self.on_warned: Callable[[str, ModeratorWarning], Awaitable[None]] | None = None
        self.image_matches: ImageMatchStore | None = None  # set by the relay

    @property
    def attestation_key(self) -> Ed25519PrivateKey:
        if self._attestation is None:
            self._attestation = load_or_create_attestation_key(
                attestation_key_path(self._settings))
        return self._attestation

    def attestation_public_pem(self) -> bytes:
        return public_key_pem(self.attestation_key)

    # --- accounts and sessions -------------------------------------------------------

    async def warm_up(self) -> None:
        """Make the unknown-user hash now, so the first failed login costs what others do."""
        await asyncio.to_thread(_dummy_hash)

    async def create_moderator(self, username: str, password: str, role: str) -> bool:
        return await create_moderator(self.store, username, password, role)

    async def login(self, username: str, password: str,
                    client: str = "unknown") -> tuple[str, ConsoleSession]:
        """A new session token and its session; 401 on a wrong name or password, 429
        while this username or client address is backing off, 403 for a disabled one."""
        user_key, ip_key = f"user:{username[:64]}", f"ip:{client}"
        wait = max(self._user_backoff.retry_after(user_key),
                   self._ip_backoff.retry_after(ip_key))
        if wait > 0:
            raise throttled(wait)
        known = 0 < len(username) <= 64 and username.isprintable()
        row = await self.store.get_moderator(username) if known else None
        async with self._password_slots.slot():
            try:
                await asyncio.to_thread(_HASHER.verify,
                                        row.password_hash if row else _dummy_hash(), password)
            except (VerificationError, InvalidHashError):
                row = None
        if row is None:
            self._user_backoff.failed(user_key)
            self._ip_backoff.failed(ip_key)
            await self.store.audit(AuditRow(now_ms(), "anonymous", "login_failed", None,
                                            f"username {_printable(username)!r}"))
            raise Unauthorized("wrong username or password", code="bad_login")
        self._user_backoff.succeeded(user_key)
        if row.disabled:  # said only to someone who knows the password
            await self.store.audit(AuditRow(now_ms(), f"{row.role}:{row.username}",
                                            "login_disabled", None, ""))
            raise Forbidden("this console account is disabled", code="moderator_disabled")
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        await self.store.create_session(session_hash(token), row.username, csrf,
                                        now_ms() + self._settings.console_session_ttl_s * 1000)
        session = ConsoleSession(row.username, _role(row.role), csrf)
        await self.store.audit(AuditRow(now_ms(), session.actor, "login", None, ""))
        return token, session

    async def session(self, token: str | None) -> ConsoleSession | None:
        if not token:
            return None
        row: SessionRow | None = await self.store.get_session(session_hash(token))
        if row is None or row.expires_ms <= now_ms():
            return None
        return ConsoleSession(row.username, _role(row.role), row.csrf_token)

    async def logout(self, token: str, session: ConsoleSession) -> None:
        await self.store.delete_session(session_hash(token))
        await self.store.audit(AuditRow(now_ms(), session.actor, "logout", None, ""))

    @staticmethod
    def csrf_ok(session: ConsoleSession, submitted: str | None) -> bool:
        return submitted is not None and hmac.compare_digest(
            session.csrf_token.encode(), submitted.encode())

    # --- queue and reports -----------------------------------------------------------

    async def queue(self, session: ConsoleSession) -> list[ReportRow]:
        rows = await self.store.queue(OPEN_STATUSES)
        await self.store.audit(AuditRow(now_ms(), session.actor, "view_queue", None,
                                        f"{len(rows)} open reports"))
        return rows

    async def detection_backlog(self) -> ScanBacklog | None:
        """Detections still waiting for their report (failed or overdue), for the banner;
        None when there are none."""
        if self._detection_backlog is None:
            return None
        backlog = await self._detection_backlog()
        return backlog if backlog.failed_total or backlog.overdue else None

    async def view(self, session: ConsoleSession, report_id: str) -> ReportView:
        row = await self._report(report_id)
        if row is None:
            raise NotFound("no such report", code="unknown_report")
        verification = await self._reports.reverify(report_id)
        prior = ([] if row.attributed_user is None else
                 await self.store.reports_against(row.attributed_user, excluding=report_id))
        await self.store.audit(AuditRow(now_ms(), session.actor, "view_report", report_id,
                                        "evidence decrypted" if verification else
                                        "evidence purged"))
        signal = await self._reports.detection_signal(report_id)
        return ReportView(row, verification, prior, await self.store.escalation(report_id),
                          tuple(await self._matches(report_id)), signal,
                          signal_marks(signal))

    async def _matches(self, report_id: str) -> list[ImageMatchRow]:
        return [] if self.image_matches is None else \
            await self.image_matches.for_report(report_id)

    async def matched_image(self, session: ConsoleSession, report_id: str,
                            blob_id: str) -> tuple[ImageMatchRow, str, bytes]:
        """A matched image of a report, decrypted because the moderator asked to see it:
        (match, media type, bytes). Audited, and recorded as viewed (the CyberTipline
        record then says `fileViewedByEsp` true)."""
        matches = [m for m in await self._matches(report_id) if m.blob_id == blob_id]
        verification = await self._reports.reverify(report_id) if matches else None
        found = None if verification is None else next(
            ((check.ref.mime, check.plaintext) for item in verification.verified_items
             for check in item.verified_attachments
             if check.ref.blob_id == blob_id and check.plaintext is not None), None)
        if not matches or found is None:
            raise NotFound("no such matched image", code="unknown_file")
        now = now_ms()
        assert self.image_matches is not None
        await self.image_matches.mark_viewed(report_id, blob_id, now)
        await self.store.audit(AuditRow(now, session.actor, "view_matched_image", report_id,
                                        f"blob {blob_id} (bank {matches[0].bank} entry "
                                        f"{matches[0].entry_id})"))
        mime, data = found
        return matches[0], mime if mime.startswith("image/") else "image/png", data

    async def act(self, session: ConsoleSession, report_id: str, action: str,
                  reason: str = "") -> str:
        """Apply a console action; returns its outcome code (a fixed notice of the page).
        Suspend and escalate need a reason, which the audit log keeps."""
        if action not in ACTIONS:
            raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}",
                               code="bad_action")
        reason = _printable(reason.strip(), MAX_REASON_CHARS)
        if action in CONFIRMED_ACTIONS and not reason:
            raise InvalidInput("give a reason for this action", code="reason_required")
        row = await self._report(report_id)
        if row is None:
            raise NotFound("no such report", code="unknown_report")
        now = now_ms()
        target = row.attributed_user
        detail = (f"reported user {target}" if target else "unverified claim") + (
            f"; reason: {reason}" if reason else "")
        audit = AuditRow(now, session.actor, action, report_id, detail)
        if action == "dismiss":
            await self.store.set_status(report_id, "dismissed", now, audit)
            return "dismissed"
        if target is None:
            # The claimed sender is only a claim: acting on it would let anyone frame
            # anyone with a forged message.
            raise InvalidInput("this report is an unverified claim: its reported message "
                               "did not verify, so no action against a user is possible",
                               code="unverified_claim")
        if action == "warn":
            warning_id = await self.store.warn(target, report_id, session.actor, now, audit)
            if self.on_warned is not None:
                await self.on_warned(target, ModeratorWarning(
                    warning_id=warning_id, category=row.category, created_at_ms=now))
            return "warned"
        if action == "suspend":
            await self.store.suspend(target, report_id, session.actor, now, audit)
            await self._reports.suspend_account(target)
            return "suspended"
        await self.escalate(session, row, reason)
        return "escalated"

    async def warnings_for(self, user_id: str) -> ModeratorWarningList:
        """The moderator warnings an account received, newest first (its own view)."""
        return ModeratorWarningList(warnings=[
            ModeratorWarning(warning_id=i, category=c, created_at_ms=t)
            for i, c, t in await self.store.warnings_for(user_id)])

    async def report_row(self, report_id: str) -> ReportRow:
        """One report's row (no evidence decrypted); 404 `unknown_report`."""
        row = await self._report(report_id)
        if row is None:
            raise NotFound("no such report", code="unknown_report")
        return row

    async def _report(self, report_id: str) -> ReportRow | None:
        if not _REPORT_ID.fullmatch(report_id):
            return None
        return await self.store.get_report(report_id)

    async def escalate(self, session: ConsoleSession, row: ReportRow,
                       reason: str = "") -> tuple[str, str]:
        verification = await self._reports.reverify(row.report_id)
        if verification is None:
            raise InvalidInput("the evidence of this report has been purged",
                               code="evidence_purged")
        now = now_ms()
        bundle = build_bundle(verification, self.attestation_key, created_at_ms=now,
                              escalated_by=session.actor, case_reference=row.report_id)
        bundle_id = str(bundle.manifest["bundle_id"])
        victims = [KnownVictim(row.reporter, "The reporter proved the under-16 age band "
                                             "with an anonymous age credential.")
                   ] if row.reporter_band == UNDER_16_BAND else []
        file_matches = {m.plaintext_sha256: FileMatch(
            pdq=m.query_pdq, bank=m.bank, entry_id=m.entry_id, entry_pdq=m.entry_pdq,
            distance=m.distance, meta=m.entry_meta, viewed=m.viewed_ms is not None)
            for m in await self._matches(row.report_id)}
        if file_matches and not victims and any(
                m.child_present for m in await self._matches(row.report_id)):
            victims = [KnownVictim(row.reporter, "The recipient proved the under-16 age "
                                   "band with an anonymous age credential.")]
        documents = build_cybertip(
            verification, bundle_id=bundle_id, victims=victims, file_matches=file_matches,
            reporting_person=EspContact(
                *_split_name(self._settings.esp_contact_name),
                self._settings.esp_contact_email))
        schema = self._cybertip_schema()
        for document in (documents.report, *documents.file_details):
            schema.validate(document.decode("utf-8"))
        directory = self._settings.data_dir / "escalations" / row.report_id
        files = {"evidence-bundle.zip": bundle.to_zip(),
                 "cybertip-report.xml": documents.report,
                 **{f"cybertip-file-{i}.xml": d
                    for i, d in enumerate(documents.file_details, 1)},
                 "attestation-public-key.pem": self.attestation_public_pem()}
        vault = self._reports.vault
        await asyncio.to_thread(_write_package, directory, {
            name: vault.seal_file(row.report_id, name, data) for name, data in files.items()})
        await self.store.record_escalation(
            row.report_id, bundle_id, session.actor, str(directory), now,
            AuditRow(now, session.actor, "escalate", row.report_id,
                     f"bundle {bundle_id} signed by key "
                     f"{attestation_key_id(self.attestation_key.public_key())}"
                     + (f"; reason: {reason}" if reason else "")))
        return bundle_id, str(directory)

    def _cybertip_schema(self) -> xmlschema.XMLSchema:
        if self._schema is None:
            import xmlschema

            self._schema = xmlschema.XMLSchema(cybertip_schema())
        return self._schema

    async def escalation_file(self, session: ConsoleSession, report_id: str,
                              name: str) -> bytes:
        """One file of the escalation package, decrypted for this download (audited)."""
        found = await self.store.escalation(report_id) if _REPORT_ID.fullmatch(
            report_id) else None
        if found is None or name not in _package_names(Path(found[1])):
            raise NotFound("no such escalation file", code="unknown_file")
        sealed = await asyncio.to_thread((Path(found[1]) / (name + SEALED_SUFFIX)).read_bytes)
        data = self._reports.vault.open_file(report_id, name, sealed)
        await self.store.audit(AuditRow(now_ms(), session.actor, "download", report_id, name))
        return data

    # --- audit and transparency ------------------------------------------------------

    async def audit_log(self, session: ConsoleSession) -> list[AuditRow]:
        if not session.is_admin:
            await self.store.audit(AuditRow(now_ms(), session.actor, "audit_log_denied",
                                            None, ""))
            raise Forbidden("only admins can read the audit log", code="admin_only")
        rows = await self.store.audit_log()
        await self.store.audit(AuditRow(now_ms(), session.actor, "view_audit_log", None, ""))
        return rows

    async def transparency(self, actor: str) -> dict[str, Any]:
        rows = await self.store.all_reports()
        await self.store.audit(AuditRow(now_ms(), actor, "view_transparency", None, ""))
        return transparency_counts(_transparency_rows(rows),
                                   await _match_rows(self.image_matches))


def _transparency_rows(rows: list[ReportRow]) -> list[TransparencyRow]:
    return [TransparencyRow(r.created_ms, r.category,
                            "pending" if r.status == "open" else r.status, r.policy_mode,
                            r.reporter_band, r.reported_verified) for r in rows]


async def _match_rows(store: ImageMatchStore | None) -> list[ImageMatchCountRow]:
    rows = [] if store is None else await store.all_matches()
    return [ImageMatchCountRow(m.created_ms, m.origin, m.bank, m.withheld) for m in rows]


async def transparency_from_store(store: ReportRepository,
                                  image_matches: ImageMatchStore | None = None
                                  ) -> dict[str, Any]:
    """The counts without a console session (the `covey transparency` command)."""
    return transparency_counts(_transparency_rows(await store.all_reports()),
                               await _match_rows(image_matches or
                                                 ImageMatchStore(store.repository)))


def _printable(text: str, limit: int = 64) -> str:
    return "".join(ch for ch in text[:limit] if ch.isprintable())


def _role(value: str) -> Role:
    return "admin" if value == "admin" else "moderator"


def _split_name(name: str) -> tuple[str, str]:
    first, _, last = name.partition(" ")
    return first or "Covey", last or "Safety"


def _package_names(directory: Path) -> set[str]:
    try:
        return {p.name.removesuffix(SEALED_SUFFIX) for p in directory.iterdir()
                if p.is_file() and p.name.endswith(SEALED_SUFFIX)}
    except OSError:
        return set()


def _write_package(directory: Path, sealed: dict[str, bytes]) -> None:
    """Write the sealed files 0600 in a 0700 directory."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, data in sealed.items():
        write_private(directory / (name + SEALED_SUFFIX), data)
