"""Safety policy: contact requests, contacts, mutes, under-16 blocks and reports, group
invite links, safety copies and their read log (see storage/schema_safety.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "contact_requests",
        sa.Column("request_id", sa.String(32), primary_key=True),
        sa.Column("requester", sa.String(32), nullable=False),
        sa.Column("target", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("to_under_age", sa.SmallInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("decided_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_contact_requests_target", "contact_requests", ["target", "status"])
    op.create_index("ix_contact_requests_requester", "contact_requests",
                    ["requester", "created_ms"])
    op.create_table(
        "contacts",
        sa.Column("user_a", sa.String(32), primary_key=True),
        sa.Column("user_b", sa.String(32), primary_key=True),
        sa.Column("since_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_contacts_user_b", "contacts", ["user_b"])
    op.create_table(
        "mutes",
        sa.Column("muter", sa.String(32), primary_key=True),
        sa.Column("muted", sa.String(32), primary_key=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "under_age_flags",
        sa.Column("flagged", sa.String(32), primary_key=True),
        sa.Column("flagger", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "group_invites",
        sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("group_id", sa.String(40), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_group_invites_group", "group_invites", ["group_id"])
    op.create_table(
        "safety_copies",
        sa.Column("id", _BIGPK, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("sender_user", sa.String(32), nullable=False),
        sa.Column("sender_device", sa.String(32), nullable=False),
        sa.Column("participants", sa.Text, nullable=False),
        sa.Column("commitment", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
        sa.Column("server_ts_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_safety_copies_expires", "safety_copies", ["expires_ms"])
    op.create_index("ix_safety_copies_conversation", "safety_copies",
                    ["conversation_id", "server_ts_ms"])
    op.create_index("ix_safety_copies_message", "safety_copies", ["sender_user", "message_id"])
    op.create_table(
        "safety_copy_reads",
        sa.Column("id", _BIGPK, primary_key=True, autoincrement=True),
        sa.Column("copy_id", sa.BigInteger, nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("reader", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(128), nullable=False),
        sa.Column("read_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_safety_copy_reads_read", "safety_copy_reads", ["read_ms"])


def downgrade() -> None:
    for table in ("safety_copy_reads", "safety_copies", "group_invites", "under_age_flags",
                  "mutes", "contacts", "contact_requests"):
        op.drop_table(table)
