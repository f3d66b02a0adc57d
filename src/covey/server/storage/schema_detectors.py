"""Tables for conversation detectors (docs/detection.md): what a detector that follows
a conversation (the grooming scorer) remembers between its messages. Numbers, behaviour
names and message ids, never message text; purged with the safety copies' retention."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, PrimaryKeyConstraint, String, Table, Text

from covey.server.storage.schema import metadata

detector_states = Table(
    "detector_states",
    metadata,
    Column("conversation_id", String(64), nullable=False),
    Column("detector", String(64), nullable=False),
    Column("state", Text, nullable=False),
    Column("updated_ms", BigInteger, nullable=False, index=True),
    PrimaryKeyConstraint("conversation_id", "detector"),
)
