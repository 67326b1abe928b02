"""The feed's own polling hint (`<ttl>`, in seconds) from its latest parsed body, so that a 304 or
an unchanged body keeps honouring it: without it, an unchanged poll fell back to the interval.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sources", sa.Column("feed_ttl_s", sa.Float))


def downgrade() -> None:
    op.drop_column("sources", "feed_ttl_s")
