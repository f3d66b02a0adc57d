"""Tables for known-image hash banks (docs/detection.md#hash-banks).

Every change to banks or entries takes the next `hash_bank_state.version` in the same
transaction (the row lock orders writers), stamps new entries with it and logs removals
with it, so a process holding version v catches up by reading only what is newer."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from covey.server.storage.schema import metadata

_ID = BigInteger().with_variant(Integer, "sqlite")

hash_bank_state = Table(
    "hash_bank_state",
    metadata,
    Column("id", Integer, primary_key=True),  # one row, id 1
    Column("version", BigInteger, nullable=False),
)

hash_banks = Table(
    "hash_banks",
    metadata,
    Column("bank_id", _ID, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

hash_bank_entries = Table(
    "hash_bank_entries",
    metadata,
    Column("entry_id", _ID, primary_key=True, autoincrement=True),
    Column("bank_id", _ID, ForeignKey("hash_banks.bank_id", ondelete="CASCADE"),
           nullable=False),
    Column("pdq", LargeBinary(32), nullable=False),
    Column("meta", Text, nullable=False),  # a JSON object: the list's own metadata
    Column("source", String(200), nullable=False),  # file name, image path, operator
    Column("added_ms", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),  # hash_bank_state.version that added it
    UniqueConstraint("bank_id", "pdq", name="uq_hash_bank_entries_hash"),
    Index("ix_hash_bank_entries_version", "version"),
    sqlite_autoincrement=True,
)

# Removed entries (entry_id) or whole banks (entry_id null), by the version that removed them.
hash_bank_removals = Table(
    "hash_bank_removals",
    metadata,
    Column("version", BigInteger, nullable=False),
    Column("bank_id", BigInteger, nullable=False),
    Column("entry_id", BigInteger, nullable=True),
    Index("ix_hash_bank_removals_version", "version"),
)
