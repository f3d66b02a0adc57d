"""Tables for reporting and moderation: reports (evidence sealed with AES-256-GCM under a
key file outside the database), blocks, suspensions, moderator accounts and sessions,
escalations and the audit log. They share `metadata` with the relay's tables."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
)

from covey.server.storage.schema import metadata

_BIGPK = BigInteger().with_variant(Integer(), "sqlite")

reports = Table(
    "reports",
    metadata,
    Column("report_id", String(32), primary_key=True),
    # One report per (reported message, reporter): replays land on the same row.
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("reporter", String(32), nullable=False),
    Column("reported_user", String(32), nullable=False),
    Column("category", String(48), nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("reporter_band", String(16), nullable=False),
    Column("policy_mode", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("verified_count", SmallInteger, nullable=False),
    Column("total_count", SmallInteger, nullable=False),
    Column("reported_verified", SmallInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("actioned_ms", BigInteger, nullable=True),
    Column("preserve_until_ms", BigInteger, nullable=False),
    # AES-256-GCM(report key, JSON of the report, transcript and attachment blobs); NULL
    # once the preservation period is over and the purge task has deleted it.
    Column("sealed_evidence", LargeBinary, nullable=True),
    Index("ix_reports_queue", "status", "priority", "created_ms"),
    Index("ix_reports_reported_user", "reported_user"),
)

blocks = Table(
    "blocks",
    metadata,
    Column("blocker", String(32), primary_key=True),
    Column("blocked", String(32), primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
)

suspensions = Table(
    "suspensions",
    metadata,
    Column("user_id", String(32), primary_key=True),
    Column("report_id", String(32), nullable=True),
    Column("actor", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

warnings = Table(
    "warnings",
    metadata,
    Column("id", _BIGPK, primary_key=True, autoincrement=True),
    Column("user_id", String(32), nullable=False),
    Column("report_id", String(32), nullable=True),
    Column("actor", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

moderators = Table(
    "moderators",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(256), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    # Set by `covey admin disable-user`: no login, no session.
    Column("disabled_ms", BigInteger, nullable=True),
)

moderator_sessions = Table(
    "moderator_sessions",
    metadata,
    Column("session_hash", LargeBinary(32), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)

escalations = Table(
    "escalations",
    metadata,
    Column("report_id", String(32), primary_key=True),
    Column("bundle_id", String(32), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("directory", Text, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", _BIGPK, primary_key=True, autoincrement=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(48), nullable=False),
    Column("report_id", String(32), nullable=True),
    Column("detail", Text, nullable=False),
    Index("ix_audit_log_at", "at_ms"),
    sqlite_autoincrement=True,
)
