"""Retention: old items become tombstones instead of disappearing.

A tombstone keeps (source_id, key), links, dates, story and content hash, so a feed that still lists
an old entry never makes it new again (no repeated alert), nor counts it as an edit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ._schema import items, sources, story_keys


def prune(
    conn: Connection, now: datetime, retention: timedelta, story_window: timedelta | None = None
) -> int:
    """Items no fetch has listed for `retention` lose their text. What a source's latest fetch with
    items listed is kept however old (the feed still publishes it), and a failed, empty or 304
    fetch changes nothing, since only fetches that list items move `seen_at`."""
    cutoff = now - retention
    seen = sa.func.coalesce(items.c.seen_at, items.c.fetched_at)
    latest = (
        sa.select(sources.c.last_items_at)
        .where(sources.c.id == items.c.source_id)
        .scalar_subquery()
    )
    result = conn.execute(
        items.update()
        .where(
            items.c.pruned.is_(False),
            seen < cutoff,
            sa.or_(latest.is_(None), seen < latest),
        )
        .values(title="", summary="", content="", author="", tags=[], pruned=True)
    )
    # Blocking keys only serve lookups within the dedup window (measured: at 1M items they weigh
    # more than the items themselves), so they go once the window has passed.
    keys_cutoff = now - story_window if story_window is not None else cutoff
    conn.execute(story_keys.delete().where(story_keys.c.created_at < max(cutoff, keys_cutoff)))
    return result.rowcount
