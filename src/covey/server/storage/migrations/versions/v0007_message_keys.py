"""Message keys: an index on messages (conversation, message id), so the relay can refuse
a message id that the conversation already holds from another sender device; and the
sender on every safety-copy read, so a read names exactly one message (conversation,
sender user, message id). Reads logged before this revision have no sender.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
# safety_copy_reads comes from 0004, earlier in the chain.
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_messages_conversation_msgid", "messages",
                    ["conversation_id", "message_id"])
    op.add_column("safety_copy_reads", sa.Column("sender_user", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("safety_copy_reads") as batch:
        batch.drop_column("sender_user")
    op.drop_index("ix_messages_conversation_msgid", table_name="messages")
