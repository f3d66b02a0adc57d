"""Per-conversation detector state (see storage/schema_detectors.py).

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "detector_states",
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("detector", sa.String(64), nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "detector"),
    )
    op.create_index("ix_detector_states_updated_ms", "detector_states", ["updated_ms"])


def downgrade() -> None:
    op.drop_index("ix_detector_states_updated_ms", table_name="detector_states")
    op.drop_table("detector_states")
