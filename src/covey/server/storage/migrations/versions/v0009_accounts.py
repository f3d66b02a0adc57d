"""Accounts and the console: a unique look-alike skeleton per handle (filled in for
existing accounts, oldest first; a later look-alike of an earlier handle keeps none) and
`moderators.disabled_ms` (storage/schema.py, storage/schema_reports.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
# moderators comes from 0003, earlier in the chain.
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from covey.server.services.handles import handle_skeleton

    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("handle_skeleton", sa.String(32), nullable=True))
    users = sa.table("users", sa.column("user_id", sa.String), sa.column("created_ms"),
                     sa.column("handle_skeleton", sa.String))
    conn = op.get_bind()
    taken: set[str] = set()
    for (user_id,) in conn.execute(sa.select(users.c.user_id).order_by(
            users.c.created_ms, users.c.user_id)).all():
        skeleton = handle_skeleton(user_id)
        if skeleton not in taken:
            taken.add(skeleton)
            conn.execute(users.update().where(users.c.user_id == user_id).values(
                handle_skeleton=skeleton))
    op.create_index("ux_users_handle_skeleton", "users", ["handle_skeleton"], unique=True)
    with op.batch_alter_table("moderators") as batch:
        batch.add_column(sa.Column("disabled_ms", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("moderators") as batch:
        batch.drop_column("disabled_ms")
    op.drop_index("ux_users_handle_skeleton", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("handle_skeleton")
