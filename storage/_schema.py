"""The tables, as SQLAlchemy Core metadata. Migrations create them; a test checks the two agree.

Ids of high-volume tables are BIGINT on PostgreSQL and INTEGER on SQLite, where only
`INTEGER PRIMARY KEY` aliases the rowid (and so autoincrements).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC in and out. SQLite keeps naive text, so values are stored as naive UTC
    there (text comparison then orders correctly) and made aware again on the way out."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(
                f"naive datetime {value!r}: storage takes timezone-aware datetimes only"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQLite text, e.g. from an aggregate
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("tags", Json, nullable=False),
    sa.Column("interval_s", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error_kind", sa.String(64)),
    sa.Column("error_detail", sa.Text),
    sa.Column("consecutive_failures", sa.Integer, nullable=False),
    sa.Column("last_poll_at", UTCDateTime),
    sa.Column("last_success_at", UTCDateTime),
    sa.Column("last_new_item_at", UTCDateTime),
    sa.Column("last_items_at", UTCDateTime),  # the latest fetch that listed any item
    sa.Column("next_poll_at", UTCDateTime, nullable=False),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("body_hash", sa.String(128)),
    sa.Column("polled_before", sa.Boolean, nullable=False),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("last_instance", sa.String(200)),
    # Health (migration 0002): the first failed poll of the current run of failures, cleared by a
    # success; and the first poll ever, which starts the "silent" clock of a source with no item.
    sa.Column("failing_since", UTCDateTime),
    sa.Column("first_poll_at", UTCDateTime),
    # Fetch state (migration 0003): the URL polled instead of `url` once a permanent redirect was
    # seen on 3 successful polls in a row (cleared when the config's URL changes), and the
    # permanent redirect of the latest successful polls, with how many in a row and when last seen.
    sa.Column("moved_to", sa.Text),
    sa.Column("redirect_to", sa.Text),
    sa.Column("redirect_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("redirect_seen_at", UTCDateTime),
    # The feed's <ttl> in seconds from its latest parsed body (migration 0005): an unchanged poll
    # has no body to read it from, and must keep honouring it.
    sa.Column("feed_ttl_s", sa.Float),
    sa.Index("ix_sources_next_poll_at", "next_poll_at"),
)

stories = sa.Table(
    "stories",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("canonical_link", sa.Text),
)

story_keys = sa.Table(
    "story_keys",
    metadata,
    sa.Column("story_id", BigId, sa.ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_story_keys_key_created_at", "key", "created_at"),
)

# A pruned item is a tombstone: its text is gone but (source_id, key) and content_hash stay, so the
# feed repeating it never makes it new again.
items = sa.Table(
    "items",
    metadata,
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
    sa.Column("published_at", UTCDateTime),
    sa.Column("fetched_at", UTCDateTime, nullable=False),
    sa.Column("content_hash", sa.String(128), nullable=False),
    sa.Column("story_id", BigId, sa.ForeignKey("stories.id")),
    sa.Column("pruned", sa.Boolean, nullable=False),
    # When a fetch last listed the item: retention prunes on it, so an entry a feed keeps publishing
    # keeps its text (NULL before migration 0004: fetched_at stands in).
    sa.Column("seen_at", UTCDateTime),
    sa.UniqueConstraint("source_id", "key", name="uq_items_source_key"),
    sa.Index("ix_items_canonical_link", "canonical_link"),
    sa.Index("ix_items_story_id", "story_id"),
    sa.Index("ix_items_fetched_at", "fetched_at"),
    sa.Index("ix_items_seen_at", "seen_at"),
)

# A rule alert points at its item and story. A system alert (rule_id "health") is about a source,
# not an item: it has no item or story and carries its own source, title, link and summary.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.String(200), nullable=False),
    sa.Column("rule_title", sa.Text, nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("story_id", BigId, sa.ForeignKey("stories.id")),
    sa.Column("item_id", BigId, sa.ForeignKey("items.id")),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("spans", Json, nullable=False),
    sa.Column("source_id", sa.String(200), sa.ForeignKey("sources.id")),
    sa.Column("title", sa.Text),
    sa.Column("link", sa.Text),
    sa.Column("summary", sa.Text),
    sa.UniqueConstraint("rule_id", "story_id", name="uq_alerts_rule_story"),
    sa.Index("ix_alerts_created_at", "created_at"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("alert_id", BigId, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("notifier", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("message_id", sa.Text),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_until", UTCDateTime),
    sa.UniqueConstraint("alert_id", "notifier", name="uq_deliveries_alert_notifier"),
    sa.Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
)

instances = sa.Table(
    "instances",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("hostname", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
)

# One row per time a source went failing or silent. `since` is when the condition began, read from
# the source's own state, so every instance computes the same value: the unique key then lets one
# raise win however many check at once. Recovery sets recovered_at, once (WHERE it IS NULL).
health_episodes = sa.Table(
    "health_episodes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("source_id", sa.String(200), sa.ForeignKey("sources.id"), nullable=False),
    sa.Column("condition", sa.String(16), nullable=False),
    sa.Column("since", UTCDateTime, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("raised_at", UTCDateTime, nullable=False),
    sa.Column("recovered_at", UTCDateTime),
    sa.UniqueConstraint(
        "source_id", "condition", "since", name="uq_health_episodes_source_condition_since"
    ),
)
