"""Retention: old items become tombstones instead of disappearing.

A tombstone keeps (source_id, key), links, dates, story and content hash, so a feed that still lists
an old entry never makes it new again (no repeated alert), nor counts it as an edit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from ._schema import items, story_keys


def prune(conn: Connection, now: datetime, retention: timedelta) -> int:
    cutoff = now - retention
    result = conn.execute(
        items.update()
        .where(items.c.fetched_at < cutoff, items.c.pruned.is_(False))
        .values(title="", summary="", content="", author="", tags=[], pruned=True)
    )
    # Blocking keys only serve lookups within the dedup window, which retention exceeds.
    conn.execute(story_keys.delete().where(story_keys.c.created_at < cutoff))
    return result.rowcount
