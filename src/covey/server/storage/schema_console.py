"""Tables of the moderation console's own work: who a report is assigned to, and the
moderators' notes on it. They share `metadata` with the relay's tables."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from covey.server.storage.schema import metadata

_BIGPK = BigInteger().with_variant(Integer(), "sqlite")

report_assignments = Table(
    "report_assignments",
    metadata,
    Column("report_id", String(32), primary_key=True),
    Column("moderator", String(64), nullable=False),
    Column("assigned_by", String(64), nullable=False),
    Column("assigned_ms", BigInteger, nullable=False),
    Index("ix_report_assignments_moderator", "moderator"),
)

report_notes = Table(
    "report_notes",
    metadata,
    Column("id", _BIGPK, primary_key=True, autoincrement=True),
    Column("report_id", String(32), nullable=False),
    Column("author", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_report_notes_report", "report_id", "id"),
    sqlite_autoincrement=True,
)
