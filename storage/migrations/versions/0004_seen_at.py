"""Retention by presence: when a fetch last listed each item, and each source's latest fetch that
listed any item, so nothing a feed still publishes is pruned.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

# Frozen copy of the type in storage/_schema.py: a migration must not change when the models do.
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("items", sa.Column("seen_at", Time))
    op.create_index("ix_items_seen_at", "items", ["seen_at"])
    op.add_column("sources", sa.Column("last_items_at", Time))


def downgrade() -> None:
    op.drop_column("sources", "last_items_at")
    op.drop_index("ix_items_seen_at", table_name="items")
    op.drop_column("items", "seen_at")
