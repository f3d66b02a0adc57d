"""Age bands: band, expiry, issuer and verification time per account.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "age_bands",
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.user_id"), primary_key=True),
        sa.Column("band", sa.String(16), nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("issuer_id", sa.String(255), nullable=False),
        sa.Column("verified_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("age_bands")
