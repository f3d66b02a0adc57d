"""The scan queue (`scan_jobs`, see storage/schema_safety.py): messages the detectors
still have to see, retried with backoff until every report they raise is filed; and an
index on `blobs.owner_user` for the per-account blob quota.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "scan_jobs",
        sa.Column("id", _BIGPK, primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("sender_user", sa.String(32), nullable=False),
        sa.Column("sender_device", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("alerted", sa.SmallInteger, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_scan_jobs_due", "scan_jobs", ["next_attempt_ms"])
    op.create_index("ix_scan_jobs_message", "scan_jobs",
                    ["conversation_id", "sender_user", "message_id"])
    op.create_index("ix_blobs_owner", "blobs", ["owner_user"])


def downgrade() -> None:
    op.drop_index("ix_blobs_owner", table_name="blobs")
    op.drop_table("scan_jobs")
