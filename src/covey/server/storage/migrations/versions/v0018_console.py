"""The console's assignments of reports to moderators and its notes
(storage/schema_console.py).

Revision ID: 0018
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
# Reports come from 0003, a sibling branch.
depends_on: str | Sequence[str] | None = ("0003",)

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "report_assignments",
        sa.Column("report_id", sa.String(32), primary_key=True),
        sa.Column("moderator", sa.String(64), nullable=False),
        sa.Column("assigned_by", sa.String(64), nullable=False),
        sa.Column("assigned_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_report_assignments_moderator", "report_assignments", ["moderator"])
    op.create_table(
        "report_notes",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("report_id", sa.String(32), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_report_notes_report", "report_notes", ["report_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_report_notes_report", table_name="report_notes")
    op.drop_table("report_notes")
    op.drop_index("ix_report_assignments_moderator", table_name="report_assignments")
    op.drop_table("report_assignments")
