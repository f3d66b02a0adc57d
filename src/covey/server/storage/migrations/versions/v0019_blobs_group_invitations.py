"""Blob references and group invitations.

Blob references: which conversations a blob was declared in (`blob_refs`, written when
the message commits), so only their participants may download it and a blob nobody
references any more can be purged; and `messages.blob_ids`, the ids the envelope declared,
delivered with the message so clients fetch no other blob for it.

Group invitations (`group_invitations`): an unverified or under-16 account added to a
group is invited, and becomes a member only when it accepts.

Revision ID: 0019
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blob_refs",
        sa.Column("blob_id", sa.String(80), primary_key=True),
        sa.Column("conversation_id", sa.String(80), primary_key=True),
        sa.Column("last_ref_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_blob_refs_last", "blob_refs", ["last_ref_ms"])
    op.create_index("ix_blobs_created", "blobs", ["created_ms"])
    op.add_column("messages", sa.Column("blob_ids", sa.Text, nullable=True))
    op.create_table(
        "group_invitations",
        sa.Column("invitation_id", sa.String(32), primary_key=True),
        sa.Column("group_id", sa.String(80), sa.ForeignKey("groups.group_id"),
                  nullable=False),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.user_id"), nullable=False),
        sa.Column("invited_by", sa.String(32), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("group_id", "user_id", name="uq_group_invitations_group_user"),
    )
    op.create_index("ix_group_invitations_user", "group_invitations", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_group_invitations_user", table_name="group_invitations")
    op.drop_table("group_invitations")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("blob_ids")
    op.drop_index("ix_blobs_created", table_name="blobs")
    op.drop_index("ix_blob_refs_last", table_name="blob_refs")
    op.drop_table("blob_refs")
