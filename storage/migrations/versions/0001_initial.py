"""Initial schema: sources, items (with tombstones), stories and their keys, alerts, deliveries,
instances.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

# Frozen copies of the types in storage/_schema.py: a migration must not change when the models do.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    _sources()
    _stories()
    _items()
    _alerts()
    op.create_table(
        "instances",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("hostname", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", Time, nullable=False),
        sa.Column("heartbeat_at", Time, nullable=False),
    )


def _sources() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("tags", Json, nullable=False),
        sa.Column("interval_s", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_kind", sa.String(64)),
        sa.Column("error_detail", sa.Text),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("last_poll_at", Time),
        sa.Column("last_success_at", Time),
        sa.Column("last_new_item_at", Time),
        sa.Column("next_poll_at", Time, nullable=False),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("body_hash", sa.String(128)),
        sa.Column("polled_before", sa.Boolean, nullable=False),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", Time),
        sa.Column("last_instance", sa.String(200)),
    )
    op.create_index("ix_sources_next_poll_at", "sources", ["next_poll_at"])


def _stories() -> None:
    op.create_table(
        "stories",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("canonical_link", sa.Text),
    )
    op.create_table(
        "story_keys",
        sa.Column(
            "story_id", BigId, sa.ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("created_at", Time, nullable=False),
    )
    op.create_index("ix_story_keys_key_created_at", "story_keys", ["key", "created_at"])


def _items() -> None:
    op.create_table(
        "items",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source_id", sa.String(200), sa.ForeignKey("sources.id"), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("guid", sa.Text),
        sa.Column("link", sa.Text),
        sa.Column("canonical_link", sa.Text),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("tags", Json, nullable=False),
        sa.Column("published_at", Time),
        sa.Column("fetched_at", Time, nullable=False),
        sa.Column("content_hash", sa.String(128), nullable=False),
        sa.Column("story_id", BigId, sa.ForeignKey("stories.id")),
        sa.Column("pruned", sa.Boolean, nullable=False),
        sa.UniqueConstraint("source_id", "key", name="uq_items_source_key"),
    )
    op.create_index("ix_items_canonical_link", "items", ["canonical_link"])
    op.create_index("ix_items_story_id", "items", ["story_id"])
    op.create_index("ix_items_fetched_at", "items", ["fetched_at"])


def _alerts() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("rule_id", sa.String(200), nullable=False),
        sa.Column("rule_title", sa.Text, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("story_id", BigId, sa.ForeignKey("stories.id"), nullable=False),
        sa.Column("item_id", BigId, sa.ForeignKey("items.id"), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("spans", Json, nullable=False),
        sa.UniqueConstraint("rule_id", "story_id", name="uq_alerts_rule_story"),
    )
    op.create_index("ix_alerts_created_at", "alerts", ["created_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "alert_id", BigId, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False
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
    op.create_index(
        "ix_deliveries_status_next_attempt_at", "deliveries", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    for table in ("deliveries", "alerts", "items", "story_keys", "stories", "sources", "instances"):
        op.drop_table(table)
