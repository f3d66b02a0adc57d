"""Tables for the safety policy (docs/safety-policy.md): contact requests and contacts,
mutes, the under-16 accounts' blocks and reports that bar an account from contacting
children, group invite links, and safeguarded conversations' safety copies with the log
of every read.

Safety copies are stored exactly as the client sealed them (RFC 9180 HPKE to the safety
service's X25519 key, which lives in a key file outside the database), so a copy of the
database alone reads nothing; they are deleted when their retention ends."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
)

from covey.server.storage.schema import metadata

_BIGPK = BigInteger().with_variant(Integer(), "sqlite")

contact_requests = Table(
    "contact_requests",
    metadata,
    Column("request_id", String(32), primary_key=True),
    Column("requester", String(32), nullable=False),
    Column("target", String(32), nullable=False),
    # pending, accepted, declined, cancelled
    Column("status", String(16), nullable=False),
    # The target was under 16 when the request was sent (the per-sender limit counts these).
    Column("to_under_age", SmallInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("decided_ms", BigInteger, nullable=True),
    Index("ix_contact_requests_target", "target", "status"),
    Index("ix_contact_requests_requester", "requester", "created_ms"),
)

# One row per pair, user_a < user_b.
contacts = Table(
    "contacts",
    metadata,
    Column("user_a", String(32), primary_key=True),
    Column("user_b", String(32), primary_key=True),
    Column("since_ms", BigInteger, nullable=False),
    Index("ix_contacts_user_b", "user_b"),
)

mutes = Table(
    "mutes",
    metadata,
    Column("muter", String(32), primary_key=True),
    Column("muted", String(32), primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
)

# An under-16 account (`flagger`) blocked or reported `flagged`; distinct flaggers count
# toward the bar on contacting under-16 accounts.
under_age_flags = Table(
    "under_age_flags",
    metadata,
    Column("flagged", String(32), primary_key=True),
    Column("flagger", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),  # block, report
    Column("created_ms", BigInteger, nullable=False),
)

group_invites = Table(
    "group_invites",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),  # SHA-256 of the token
    Column("group_id", String(40), nullable=False),
    Column("created_by", String(32), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Index("ix_group_invites_group", "group_id"),
)

safety_copies = Table(
    "safety_copies",
    metadata,
    Column("id", _BIGPK, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),
    Column("conversation_id", String(64), nullable=False),
    Column("sender_user", String(32), nullable=False),
    Column("sender_device", String(32), nullable=False),
    Column("participants", Text, nullable=False),  # JSON list
    Column("commitment", String(64), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("sealed", LargeBinary, nullable=False),  # HPKE enc ‖ ciphertext, as sent
    Column("server_ts_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Index("ix_safety_copies_expires", "expires_ms"),
    Index("ix_safety_copies_conversation", "conversation_id", "server_ts_ms"),
    Index("ix_safety_copies_message", "sender_user", "message_id"),
)

# Every time anything opens a stored safety copy: who, why, when.
safety_copy_reads = Table(
    "safety_copy_reads",
    metadata,
    Column("id", _BIGPK, primary_key=True, autoincrement=True),
    Column("copy_id", BigInteger, nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("conversation_id", String(64), nullable=False),
    # With message and conversation, the read copy's message key (NULL before 0007).
    Column("sender_user", String(32), nullable=True),
    Column("reader", String(64), nullable=False),  # detector:<name>, moderator:<id>, ...
    Column("purpose", String(128), nullable=False),
    Column("read_ms", BigInteger, nullable=False),
    Index("ix_safety_copy_reads_read", "read_ms"),
)
