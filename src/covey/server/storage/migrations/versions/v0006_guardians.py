"""Guardians: links between an under-16 account and its guardians, and the guardians'
alerts (see storage/schema_guardians.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guardian_links",
        sa.Column("link_id", sa.String(40), primary_key=True),
        sa.Column("child", sa.String(32), nullable=False),
        sa.Column("guardian", sa.String(32), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("proposed_by", sa.String(32), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("accepted_ms", sa.BigInteger, nullable=True),
        sa.Column("removal_requested_ms", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("child", "guardian", name="uq_guardian_links_pair"),
    )
    op.create_index("ix_guardian_links_guardian", "guardian_links", ["guardian"])
    op.create_table(
        "guardian_alerts",
        sa.Column("alert_id", sa.String(40), primary_key=True),
        sa.Column("guardian", sa.String(32), nullable=False),
        sa.Column("child", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("other_user", sa.String(32), nullable=True),
        sa.Column("conversation_id", sa.String(80), nullable=True),
        sa.Column("detector", sa.String(64), nullable=True),
        sa.Column("code", sa.String(64), nullable=True),
        sa.Column("severity", sa.String(8), nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("acknowledged_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_guardian_alerts_guardian", "guardian_alerts",
                    ["guardian", "created_ms"])
    op.create_index("ix_guardian_alerts_child", "guardian_alerts", ["child", "created_ms"])


def downgrade() -> None:
    op.drop_table("guardian_alerts")
    op.drop_table("guardian_links")
