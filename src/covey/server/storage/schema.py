"""Table definitions (SQLAlchemy Core) shared by the repository and the migrations.

The alembic revisions create exactly these tables; the repository builds its
statements from them. Times are integer milliseconds since the Unix epoch.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("user_id", String(32), primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
    # Look-alike handles share a skeleton (services/handles.py); unique, so two
    # registrations of look-alikes cannot both win a race.
    Column("handle_skeleton", String(32), nullable=True),
    Index("ux_users_handle_skeleton", "handle_skeleton", unique=True),
)

devices = Table(
    "devices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(32), ForeignKey("users.user_id"), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("identity_key", String(64), nullable=False),
    Column("signing_key", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    # Set when another device of the account unlinks it (a lost phone): it is left out
    # of device lists, cannot log in, and gets nothing more; its sent messages stay.
    Column("removed_ms", BigInteger, nullable=True),
    UniqueConstraint("user_id", "device_id", name="uq_devices_user_device"),
    sqlite_autoincrement=True,
)

one_time_keys = Table(
    "one_time_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_pk", Integer, ForeignKey("devices.id"), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("key", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
    UniqueConstraint("device_pk", "key_id", name="uq_otk_device_key"),
    sqlite_autoincrement=True,
)

fallback_keys = Table(
    "fallback_keys",
    metadata,
    Column("device_pk", Integer, ForeignKey("devices.id"), primary_key=True),
    Column("key_id", String(64), nullable=False),
    Column("key", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("device_pk", Integer, ForeignKey("devices.id"), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)

challenges = Table(
    "challenges",
    metadata,
    Column("challenge_id", String(64), primary_key=True),
    Column("device_pk", Integer, ForeignKey("devices.id"), nullable=False),
    Column("challenge", String(64), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("used", SmallInteger, nullable=False, default=0),
)

link_tokens = Table(
    "link_tokens",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.user_id"), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("used", SmallInteger, nullable=False, default=0),
)

groups = Table(
    "groups",
    metadata,
    Column("group_id", String(80), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", String(80), ForeignKey("groups.group_id"), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.user_id"), primary_key=True),
    Column("role", String(16), nullable=False),
    Index("ix_group_members_user", "user_id"),
)

group_invitations = Table(
    "group_invitations",
    metadata,
    # An unverified or under-16 account joins a group only by accepting: until then it is
    # invited, not a member (one pending invitation per group and account).
    Column("invitation_id", String(32), primary_key=True),
    Column("group_id", String(80), ForeignKey("groups.group_id"), nullable=False),
    Column("user_id", String(32), ForeignKey("users.user_id"), nullable=False),
    Column("invited_by", String(32), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    UniqueConstraint("group_id", "user_id", name="uq_group_invitations_group_user"),
    Index("ix_group_invitations_user", "user_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("sender_device_pk", Integer, ForeignKey("devices.id"), nullable=False),
    Column("sender_user", String(32), nullable=False),
    Column("sender_device", String(64), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("conversation_id", String(80), nullable=False),
    Column("commitment", String(64), nullable=False),
    Column("server_ts_ms", BigInteger, nullable=False),
    Column("participants", Text, nullable=False),
    Column("group_session_id", String(128), nullable=True),
    Column("group_body", Text, nullable=True),
    # JSON list of the blob ids the envelope declared (NULL: none), delivered with it.
    Column("blob_ids", Text, nullable=True),
    UniqueConstraint("sender_device_pk", "message_id", name="uq_messages_sender_msgid"),
    Index("ix_messages_server_ts", "server_ts_ms"),
    # The relay refuses an id the conversation already holds from another sender device.
    Index("ix_messages_conversation_msgid", "conversation_id", "message_id"),
    sqlite_autoincrement=True,
)

mailbox = Table(
    "mailbox",
    metadata,
    # AUTOINCREMENT on SQLite so a seq is never reused after the newest entry is acked.
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("device_pk", Integer, ForeignKey("devices.id"), nullable=False),
    Column("message_pk", BigInteger, ForeignKey("messages.id"), nullable=False),
    Column("olm_type", SmallInteger, nullable=True),
    Column("body", Text, nullable=True),
    Column("franking_tag", String(64), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Index("ix_mailbox_device_seq", "device_pk", "seq"),
    Index("ix_mailbox_expires", "expires_ms"),
    Index("ix_mailbox_message", "message_pk"),
    sqlite_autoincrement=True,
)

blobs = Table(
    "blobs",
    metadata,
    Column("blob_id", String(80), primary_key=True),
    Column("owner_user", String(32), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_blobs_owner", "owner_user"),  # the per-account quota sums by owner
    Index("ix_blobs_created", "created_ms"),  # the purge looks for old unreferenced blobs
)

blob_refs = Table(
    "blob_refs",
    metadata,
    # A blob declared in a conversation's message (SendEnvelope.blob_ids), recorded when
    # the message commits: that conversation's participants may download it, and the
    # blob is kept until `blob_retention_s` after its newest reference.
    Column("blob_id", String(80), primary_key=True),
    Column("conversation_id", String(80), primary_key=True),
    Column("last_ref_ms", BigInteger, nullable=False),
    Index("ix_blob_refs_last", "last_ref_ms"),
)
