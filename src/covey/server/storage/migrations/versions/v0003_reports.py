"""Reports, blocks, suspensions, warnings, moderators and their sessions, escalations and
the audit log (see storage/schema_reports.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("report_id", sa.String(32), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("reporter", sa.String(32), nullable=False),
        sa.Column("reported_user", sa.String(32), nullable=False),
        sa.Column("category", sa.String(48), nullable=False),
        sa.Column("priority", sa.SmallInteger, nullable=False),
        sa.Column("reporter_band", sa.String(16), nullable=False),
        sa.Column("policy_mode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("verified_count", sa.SmallInteger, nullable=False),
        sa.Column("total_count", sa.SmallInteger, nullable=False),
        sa.Column("reported_verified", sa.SmallInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("actioned_ms", sa.BigInteger, nullable=True),
        sa.Column("preserve_until_ms", sa.BigInteger, nullable=False),
        sa.Column("sealed_evidence", sa.LargeBinary, nullable=True),
    )
    op.create_index("ix_reports_queue", "reports", ["status", "priority", "created_ms"])
    op.create_index("ix_reports_reported_user", "reports", ["reported_user"])
    op.create_table(
        "blocks",
        sa.Column("blocker", sa.String(32), primary_key=True),
        sa.Column("blocked", sa.String(32), primary_key=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "suspensions",
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("report_id", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "warnings",
        sa.Column("id", _BIGPK, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("report_id", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "moderators",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "moderator_sessions",
        sa.Column("session_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "escalations",
        sa.Column("report_id", sa.String(32), primary_key=True),
        sa.Column("bundle_id", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("directory", sa.Text, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", _BIGPK, primary_key=True, autoincrement=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(48), nullable=False),
        sa.Column("report_id", sa.String(32), nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at_ms"])


def downgrade() -> None:
    for name in ("audit_log", "escalations", "moderator_sessions", "moderators", "warnings",
                 "suspensions", "blocks", "reports"):
        op.drop_table(name)
