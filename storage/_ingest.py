"""Storing one successful poll in one transaction: new items, edits, stories, alerts, deliveries.

Everything a poll produces is written together or not at all, so a crash can neither lose an alert
(items stored, alert not) nor repeat one (alert stored twice): the unique keys (source_id, key) and
(rule_id, story_id) make every step idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from monitor.model import Item
from rules.ast import RuleMatch

from ._bulk import insert_many
from ._deliveries import pending as pending_delivery
from ._engine import Database, chunks
from ._schema import UTCDateTime, alerts, deliveries, items, sources
from ._sources import success_values
from ._stories import StoryIndex
from ._types import IngestResult, StoryMatcher

_EDIT = items.update().where(
    items.c.source_id == sa.bindparam("b_source"), items.c.key == sa.bindparam("b_key")
)
# The statements every poll runs, built once: building one per call cost more than SQLite's own
# work for a poll of a few new items (profiled).
_LEASE = (
    sa.select(sources.c.polled_before)
    .where(
        sources.c.id == sa.bindparam("b_source"), sources.c.lease_owner == sa.bindparam("b_owner")
    )
    .with_for_update()
)
# Known items the feed still lists: retention counts from the last time they were listed. The same
# statement reads their content hashes, to tell edits from repeats.
_SEEN = (
    items.update()
    .where(
        items.c.source_id == sa.bindparam("b_source"),
        items.c.key.in_(sa.bindparam("b_keys", expanding=True)),
    )
    .values(seen_at=sa.bindparam("b_now", type_=UTCDateTime))
    .returning(items.c.key, items.c.content_hash)
)


def _source_update(*, listed: bool, new_items: bool) -> sa.Update:
    now = sa.bindparam("b_now", type_=UTCDateTime)
    values = success_values(
        sa.bindparam("b_owner", type_=sources.c.last_instance.type),
        now,
        sa.bindparam("b_next", type_=UTCDateTime),
    )
    values.update(
        etag=sa.bindparam("b_etag", type_=sa.Text),
        last_modified=sa.bindparam("b_last_modified", type_=sa.Text),
        body_hash=sa.bindparam("b_body_hash", type_=sources.c.body_hash.type),
        feed_ttl_s=sa.bindparam("b_feed_ttl", type_=sources.c.feed_ttl_s.type),
    )
    if listed:
        # Only a fetch that listed items ends the first poll: after an empty first fetch, the first
        # one with items is still judged by the backfill window (an archive is not news).
        values.update(polled_before=True, last_items_at=now)
    if new_items:
        values["last_new_item_at"] = now
    return sources.update().where(sources.c.id == sa.bindparam("b_source")).values(values)


_LAST_ITEM = sa.select(sa.func.max(items.c.id))
# The SQLite insert of new items: values in this order, the last four the same for every row.
_ITEM_COLUMNS = (
    "id",
    "key",
    "guid",
    "link",
    "canonical_link",
    "title",
    "summary",
    "content",
    "author",
    "tags",
    "published_at",
    "content_hash",
    "story_id",
    "source_id",
    "fetched_at",
    "seen_at",
    "pruned",
)
_NEW_ITEM = sqlite.insert(items).values({name: sa.bindparam(name) for name in _ITEM_COLUMNS})
_NEW_ITEM = _NEW_ITEM.on_conflict_do_nothing(index_elements=["source_id", "key"])

_SOURCE_UPDATES = {
    (listed, new): _source_update(listed=listed, new_items=new)
    for listed in (False, True)
    for new in (False, True)
}


@dataclass(frozen=True)
class Poll:
    """What one successful fetch brought and how to judge it."""

    source_id: str
    instance_id: str
    now: datetime
    items: Sequence[Item]
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    next_poll_at: datetime
    backfill: timedelta
    matcher: Callable[[Item], Sequence[RuleMatch]]
    route: Callable[[RuleMatch], Sequence[str]]
    stories: StoryMatcher
    dedup_window: timedelta
    rule_titles: Mapping[str, str]
    feed_ttl: float | None = None  # the body's <ttl> in seconds, kept for the unchanged polls


def ingest(db: Database, conn: Connection, poll: Poll) -> IngestResult | None:
    lease = {"b_source": poll.source_id, "b_owner": poll.instance_id}
    polled_before = conn.execute(_LEASE, lease).scalar_one_or_none()
    if polled_before is None:
        return None  # the lease went to another instance: its poll wins, ours is dropped
    batch = list(_first_per_key(poll.items))
    stored = _see_stored(conn, poll, [item.key for item in batch])
    edits = [item for item in batch if item.key in stored and stored[item.key] != item.content_hash]
    _update_edits(conn, poll.source_id, edits)
    fresh = [item for item in batch if item.key not in stored]
    story_of: dict[str, int] = {}
    if fresh:
        db.lock_stories(conn)
        index = StoryIndex.load(conn, fresh, poll.now, poll.stories, poll.dedup_window)
        assigned = {item.key: index.assign(item) for item in fresh}
        saved = index.save(db, conn)
        story_of = {key: saved.get(story_id, story_id) for key, story_id in assigned.items()}
    inserted = _insert_items(db, conn, poll, fresh, story_of)
    wanted: dict[tuple[str, int], tuple[int, RuleMatch]] = {}
    for item in fresh:
        if item.key in inserted and _alertable(item, poll, polled_before):
            for match in poll.matcher(item):
                # the first item of the poll that a rule matched in a story is the one alerted
                wanted.setdefault((match.rule_id, story_of[item.key]), (inserted[item.key], match))
    n_alerts, n_deliveries = _alert(db, conn, poll, wanted)
    _update_source(conn, poll, new_items=bool(inserted), listed=bool(batch))
    return IngestResult(len(inserted), len(edits), n_alerts, n_deliveries)


def _update_edits(conn: Connection, source_id: str, edits: Sequence[Item]) -> None:
    """New text for known items. Never matched again: DESIGN §6, edits do not re-alert. A
    tombstone stays one: only its content hash follows the edit, so the same edit next time is no
    edit at all and retention is not undone."""
    if edits:
        rows = [{**_text(item), "b_source": source_id, "b_key": item.key} for item in edits]
        conn.execute(_EDIT.where(items.c.pruned.is_(False)), rows)
        hashes = [
            {"content_hash": item.content_hash, "b_source": source_id, "b_key": item.key}
            for item in edits
        ]
        conn.execute(_EDIT.where(items.c.pruned.is_(True)), hashes)


def _first_per_key(batch: Sequence[Item]) -> Iterator[Item]:
    seen: set[str] = set()
    for item in batch:
        if item.key not in seen:
            seen.add(item.key)
            yield item


def aware(value: datetime | None) -> datetime | None:
    """Feeds give naive dates; the normaliser should have fixed them, UTC is the safe reading."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _see_stored(conn: Connection, poll: Poll, keys: Sequence[str]) -> dict[str, str]:
    """Mark the stored items among `keys` seen now; their content hashes by key."""
    found: dict[str, str] = {}
    for part in chunks(keys):
        params = {"b_source": poll.source_id, "b_keys": part, "b_now": poll.now}
        found.update({row.key: row.content_hash for row in conn.execute(_SEEN, params)})
    return found


def _text(item: Item) -> dict[str, Any]:
    return {
        "guid": item.guid,
        "link": item.link,
        "canonical_link": item.canonical_link,
        "title": item.title,
        "summary": item.summary,
        "content": item.content,
        "author": item.author,
        "tags": list(item.tags),
        "published_at": aware(item.published),
        "content_hash": item.content_hash,
    }


def _insert_items(
    db: Database, conn: Connection, poll: Poll, fresh: Sequence[Item], story_of: Mapping[str, int]
) -> dict[str, int]:
    """Insert ON CONFLICT DO NOTHING; the rows that come back are the new ones."""
    if not fresh:
        return {}
    if db.dialect == "sqlite":
        return _insert_items_sqlite(conn, poll, fresh, story_of)
    inserted: dict[str, int] = {}
    for part in chunks(fresh, 200):
        rows = [
            {
                **_text(item),
                "source_id": poll.source_id,
                "key": item.key,
                "fetched_at": poll.now,
                "seen_at": poll.now,
                "story_id": story_of[item.key],
                "pruned": False,
            }
            for item in part
        ]
        stmt = db.insert_ignore(items, ["source_id", "key"], [items.c.id, items.c.key])
        for row in conn.execute(stmt, rows):
            inserted[row.key] = row.id
    return inserted


def _insert_items_sqlite(
    conn: Connection, poll: Poll, fresh: Sequence[Item], story_of: Mapping[str, int]
) -> dict[str, int]:
    """SQLite admits one writer at a time (BEGIN IMMEDIATE): the ids after the largest are ours to
    give, as SQLite would give them, so the rows go through the driver's executemany with nothing
    to read back."""
    first = (conn.execute(_LAST_ITEM).scalar() or 0) + 1
    rows = [
        (
            first + n,
            item.key,
            item.guid,
            item.link,
            item.canonical_link,
            item.title,
            item.summary,
            item.content,
            item.author,
            list(item.tags),
            aware(item.published),
            item.content_hash,
            story_of[item.key],
        )
        for n, item in enumerate(fresh)
    ]
    same = {
        "source_id": poll.source_id,
        "fetched_at": poll.now,
        "seen_at": poll.now,
        "pruned": False,
    }
    if insert_many(conn, _NEW_ITEM, _ITEM_COLUMNS, rows, same) == len(rows):
        return {item.key: first + n for n, item in enumerate(fresh)}
    # A key stored since `stored` was read in this very transaction: impossible with one writer,
    # but the unique key stays the guard it is on PostgreSQL. Only the rows written are new.
    ours = sa.select(items.c.key, items.c.id).where(
        items.c.source_id == poll.source_id, items.c.id >= first
    )
    return {key: item_id for key, item_id in conn.execute(ours)}


def _alertable(item: Item, poll: Poll, polled_before: bool) -> bool:
    """DESIGN §6: a first poll alerts only dated items within the backfill window; later polls alert
    every new item, whatever its date (feeds backdate and omit dates)."""
    if polled_before:
        return True
    published = aware(item.published)
    return published is not None and published >= poll.now - poll.backfill


def _alert(
    db: Database,
    conn: Connection,
    poll: Poll,
    wanted: Mapping[tuple[str, int], tuple[int, RuleMatch]],
) -> tuple[int, int]:
    """Insert the alerts ON CONFLICT (rule_id, story_id) DO NOTHING: a rule that already alerted on
    a story stays silent. Each alert that is new gets one pending delivery per routed notifier."""
    if not wanted:
        return 0, 0
    rows = [
        {
            "rule_id": match.rule_id,
            "rule_title": poll.rule_titles.get(match.rule_id, match.rule_id),
            "level": match.level,
            "story_id": story_id,
            "item_id": item_id,
            "created_at": poll.now,
            "spans": [
                {"field": s.field, "start": s.start, "end": s.end, "text": s.text}
                for s in match.spans
            ],
        }
        # a fixed order of unique-key inserts across transactions rules out deadlocks
        for (_, story_id), (item_id, match) in sorted(wanted.items(), key=lambda kv: kv[0])
    ]
    returning = [alerts.c.id, alerts.c.rule_id, alerts.c.story_id]
    stmt = db.insert_ignore(alerts, ["rule_id", "story_id"], returning)
    created = conn.execute(stmt, rows).all()
    pending = [
        pending_delivery(row.id, notifier, poll.now)
        for row in created
        for notifier in dict.fromkeys(poll.route(wanted[(row.rule_id, row.story_id)][1]))
    ]
    if pending:
        conn.execute(deliveries.insert(), pending)
    return len(created), len(pending)


def _update_source(conn: Connection, poll: Poll, *, new_items: bool, listed: bool) -> None:
    params = {
        "b_source": poll.source_id,
        "b_owner": poll.instance_id,
        "b_now": poll.now,
        "b_next": poll.next_poll_at,
        "b_etag": poll.etag,
        "b_last_modified": poll.last_modified,
        "b_body_hash": poll.body_hash,
        "b_feed_ttl": poll.feed_ttl,
    }
    conn.execute(_SOURCE_UPDATES[(listed, new_items)], params)
