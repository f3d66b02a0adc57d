"""Known-image matches (see storage/schema_images.py): attachments that matched a hash
bank, the blob withheld and the report filed for each.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "image_matches",
        sa.Column("match_id", sa.String(32), primary_key=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("blob_id", sa.String(80), nullable=False),
        sa.Column("conversation_id", sa.String(80), nullable=False),
        sa.Column("sender_user", sa.String(32), nullable=False),
        sa.Column("sender_device", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("plaintext_sha256", sa.String(64), nullable=False),
        sa.Column("query_pdq", sa.String(64), nullable=False),
        sa.Column("quality", sa.Integer, nullable=False),
        sa.Column("bank", sa.String(64), nullable=False),
        sa.Column("entry_id", sa.BigInteger, nullable=False),
        sa.Column("entry_pdq", sa.String(64), nullable=False),
        sa.Column("entry_meta", sa.Text, nullable=False),
        sa.Column("distance", sa.Integer, nullable=False),
        sa.Column("variant", sa.Integer, nullable=False),
        sa.Column("withheld", sa.Boolean, nullable=False),
        sa.Column("child_present", sa.Boolean, nullable=False),
        sa.Column("report_id", sa.String(32), nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("viewed_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_image_matches_blob", "image_matches", ["blob_id"])
    op.create_index("ix_image_matches_report", "image_matches", ["report_id"])


def downgrade() -> None:
    op.drop_table("image_matches")
