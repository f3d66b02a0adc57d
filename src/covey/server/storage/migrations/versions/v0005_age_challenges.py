"""Age challenges in the database, shared by every relay process (storage/schema_age.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "age_challenges",
        sa.Column("nonce_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("subject", sa.String(32), nullable=False),
        sa.Column("challenge", sa.Text, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("used", sa.SmallInteger, nullable=False),
    )
    op.create_index("ix_age_challenges_expires", "age_challenges", ["expires_ms"])


def downgrade() -> None:
    op.drop_index("ix_age_challenges_expires", table_name="age_challenges")
    op.drop_table("age_challenges")
