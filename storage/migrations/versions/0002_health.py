"""Source health: when a source started failing and was first polled, system alerts (alerts about a
source rather than an item), and the failing/silent episodes that make each alert happen once.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

# Frozen copies of the types in storage/_schema.py: a migration must not change when the models do.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Time = sa.DateTime(timezone=True)

_ALERT_COLUMNS = "id, rule_id, rule_title, level, story_id, item_id, created_at, spans"
_DELIVERY_COLUMNS = (
    "id, alert_id, notifier, status, attempts, next_attempt_at, last_error, created_at, sent_at, "
    "message_id, lease_owner, lease_until"
)


def upgrade() -> None:
    op.add_column("sources", sa.Column("failing_since", Time))
    op.add_column("sources", sa.Column("first_poll_at", Time))
    # Best estimates for sources polled before this revision: the true first failure and first
    # poll were not recorded. A failing source counts from its last success (or its last poll).
    op.execute(
        "UPDATE sources SET failing_since = COALESCE(last_success_at, last_poll_at) "
        "WHERE status = 'error'"
    )
    op.execute("UPDATE sources SET first_poll_at = last_poll_at")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_alerts_on_sqlite()
    else:
        op.alter_column("alerts", "story_id", existing_type=BigId, nullable=True)
        op.alter_column("alerts", "item_id", existing_type=BigId, nullable=True)
        for column in _system_alert_columns():
            op.add_column("alerts", column)
    op.create_table(
        "health_episodes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source_id", sa.String(200), sa.ForeignKey("sources.id"), nullable=False),
        sa.Column("condition", sa.String(16), nullable=False),
        sa.Column("since", Time, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("raised_at", Time, nullable=False),
        sa.Column("recovered_at", Time),
        sa.UniqueConstraint(
            "source_id", "condition", "since", name="uq_health_episodes_source_condition_since"
        ),
    )


def _system_alert_columns() -> list[sa.Column[str]]:
    return [
        sa.Column("source_id", sa.String(200), sa.ForeignKey("sources.id")),
        sa.Column("title", sa.Text),
        sa.Column("link", sa.Text),
        sa.Column("summary", sa.Text),
    ]


def _rebuild_alerts_on_sqlite() -> None:
    """SQLite cannot drop NOT NULL in place, so alerts is copied into a new table. Migrations run
    in a transaction, where foreign keys cannot be switched off, and dropping the old alerts would
    then cascade into deliveries (ON DELETE CASCADE fires on DROP TABLE): deliveries moves to a
    copy that references the new table first. Renaming a table rewrites the references to it."""
    op.create_table(
        "alerts_new",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("rule_id", sa.String(200), nullable=False),
        sa.Column("rule_title", sa.Text, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("story_id", BigId, sa.ForeignKey("stories.id")),
        sa.Column("item_id", BigId, sa.ForeignKey("items.id")),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("spans", Json, nullable=False),
        *_system_alert_columns(),
        sa.UniqueConstraint("rule_id", "story_id", name="uq_alerts_rule_story"),
    )
    op.execute(f"INSERT INTO alerts_new ({_ALERT_COLUMNS}) SELECT {_ALERT_COLUMNS} FROM alerts")
    op.create_table(
        "deliveries_new",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "alert_id", BigId, sa.ForeignKey("alerts_new.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("notifier", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", Time),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("sent_at", Time),
        sa.Column("message_id", sa.Text),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", Time),
        sa.UniqueConstraint("alert_id", "notifier", name="uq_deliveries_alert_notifier"),
    )
    op.execute(
        f"INSERT INTO deliveries_new ({_DELIVERY_COLUMNS}) "
        f"SELECT {_DELIVERY_COLUMNS} FROM deliveries"
    )
    op.drop_table("deliveries")
    op.drop_table("alerts")
    op.rename_table("alerts_new", "alerts")
    op.rename_table("deliveries_new", "deliveries")
    op.create_index("ix_alerts_created_at", "alerts", ["created_at"])
    op.create_index(
        "ix_deliveries_status_next_attempt_at", "deliveries", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    raise NotImplementedError("0002 cannot be downgraded: system alerts have no item to point at")
