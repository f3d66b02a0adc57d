"""Message keys: an index on messages (conversation, message id), so the relay can refuse
a message id that the conversation already holds from another sender device.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_messages_conversation_msgid", "messages",
                    ["conversation_id", "message_id"])


def downgrade() -> None:
    op.drop_index("ix_messages_conversation_msgid", table_name="messages")
