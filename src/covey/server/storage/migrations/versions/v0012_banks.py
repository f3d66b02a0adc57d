"""Hash banks for known-image detection (see storage/schema_banks.py).

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    state = op.create_table(
        "hash_bank_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(state, [{"id": 1, "version": 0}])
    op.create_table(
        "hash_banks",
        sa.Column("bank_id", _ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "hash_bank_entries",
        sa.Column("entry_id", _ID, primary_key=True, autoincrement=True),
        sa.Column("bank_id", _ID, sa.ForeignKey("hash_banks.bank_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("pdq", sa.LargeBinary(32), nullable=False),
        sa.Column("meta", sa.Text, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("added_ms", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("bank_id", "pdq", name="uq_hash_bank_entries_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_hash_bank_entries_version", "hash_bank_entries", ["version"])
    op.create_table(
        "hash_bank_removals",
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("bank_id", sa.BigInteger, nullable=False),
        sa.Column("entry_id", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_hash_bank_removals_version", "hash_bank_removals", ["version"])


def downgrade() -> None:
    op.drop_table("hash_bank_removals")
    op.drop_table("hash_bank_entries")
    op.drop_table("hash_banks")
    op.drop_table("hash_bank_state")
