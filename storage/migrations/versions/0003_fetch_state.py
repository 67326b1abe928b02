"""Fetch state: a source's URL after a confirmed permanent move, and the permanent redirect seen on
its latest successful polls (so three in a row can move it, across restarts and instances).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

# Frozen copy of the type in storage/_schema.py: a migration must not change when the models do.
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("sources", sa.Column("moved_to", sa.Text))
    op.add_column("sources", sa.Column("redirect_to", sa.Text))
    op.add_column(
        "sources", sa.Column("redirect_count", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column("sources", sa.Column("redirect_seen_at", Time))


def downgrade() -> None:
    # SQLite drops columns natively since 3.35; older versions would need a table rebuild.
    for column in ("redirect_seen_at", "redirect_count", "redirect_to", "moved_to"):
        op.drop_column("sources", column)
