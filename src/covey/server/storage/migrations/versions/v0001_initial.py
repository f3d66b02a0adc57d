"""Initial relay schema: accounts, devices, keys, auth, groups, messages, mailbox, blobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.user_id"), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("identity_key", sa.String(64), nullable=False),
        sa.Column("signing_key", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("user_id", "device_id", name="uq_devices_user_device"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "one_time_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_pk", sa.Integer, sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.UniqueConstraint("device_pk", "key_id", name="uq_otk_device_key"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "fallback_keys",
        sa.Column("device_pk", sa.Integer, sa.ForeignKey("devices.id"), primary_key=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("device_pk", sa.Integer, sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "challenges",
        sa.Column("challenge_id", sa.String(64), primary_key=True),
        sa.Column("device_pk", sa.Integer, sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("challenge", sa.String(64), nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("used", sa.SmallInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "link_tokens",
        sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.user_id"), nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("used", sa.SmallInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "groups",
        sa.Column("group_id", sa.String(80), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(80), sa.ForeignKey("groups.group_id"), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.user_id"), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
    )
    op.create_index("ix_group_members_user", "group_members", ["user_id"])
    op.create_table(
        "messages",
        sa.Column("id", _BIGPK, primary_key=True, autoincrement=True),
        sa.Column("sender_device_pk", sa.Integer, sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("sender_user", sa.String(32), nullable=False),
        sa.Column("sender_device", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(80), nullable=False),
        sa.Column("commitment", sa.String(64), nullable=False),
        sa.Column("server_ts_ms", sa.BigInteger, nullable=False),
        sa.Column("participants", sa.Text, nullable=False),
        sa.Column("group_session_id", sa.String(128), nullable=True),
        sa.Column("group_body", sa.Text, nullable=True),
        sa.UniqueConstraint("sender_device_pk", "message_id", name="uq_messages_sender_msgid"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_messages_server_ts", "messages", ["server_ts_ms"])
    op.create_table(
        "mailbox",
        sa.Column("seq", _BIGPK, primary_key=True, autoincrement=True),
        sa.Column("device_pk", sa.Integer, sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("message_pk", sa.BigInteger, sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("olm_type", sa.SmallInteger, nullable=True),
        sa.Column("body", sa.Text, nullable=True),
        sa.Column("franking_tag", sa.String(64), nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_mailbox_device_seq", "mailbox", ["device_pk", "seq"])
    op.create_index("ix_mailbox_expires", "mailbox", ["expires_ms"])
    op.create_index("ix_mailbox_message", "mailbox", ["message_pk"])
    op.create_table(
        "blobs",
        sa.Column("blob_id", sa.String(80), primary_key=True),
        sa.Column("owner_user", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("blobs", "mailbox", "messages", "group_members", "groups", "link_tokens",
                  "challenges", "tokens", "fallback_keys", "one_time_keys", "devices", "users"):
        op.drop_table(table)
