"""Story grouping: which story a new item joins, with indexed lookups only.

An item joins the story of an item with the same canonical link fetched within the dedup window;
else a story whose blocking keys it shares and whose title `StoryMatcher.same` accepts; else it
starts a story. Candidates are loaded for the whole batch in two queries, then the batch's own new
stories are added as they are made, so two items of one poll group together too. The new stories
and their keys are written together at the end (`save`): two statements per poll, not per story.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from monitor.model import Item

from ._bulk import insert_many, insert_statement
from ._engine import Database, chunks
from ._schema import items, stories, story_keys
from ._types import StoryMatcher

# Real headlines share a blocking key with a few percent of a 72h window (thousands of stories); the
# same story shares several keys. Comparing only the candidates that share the most keys keeps a
# new item's cost bounded (measured: ~870 comparisons, ~89 ms per item at real density unbounded).
MAX_CANDIDATES = 24

# Built once: constructing a statement per call costs more than SQLite's work for a small poll.
_BY_LINK = (
    sa.select(items.c.canonical_link, items.c.story_id)
    .where(
        items.c.canonical_link.in_(sa.bindparam("links", expanding=True)),
        items.c.fetched_at >= sa.bindparam("cutoff", type_=items.c.fetched_at.type),
        items.c.story_id.is_not(None),
    )
    .order_by(items.c.fetched_at, items.c.id)
)
_BY_KEY = (
    sa.select(story_keys.c.key, stories.c.id, stories.c.title)
    .join(stories, stories.c.id == story_keys.c.story_id)
    .where(
        story_keys.c.key.in_(sa.bindparam("keys", expanding=True)),
        story_keys.c.created_at >= sa.bindparam("cutoff", type_=story_keys.c.created_at.type),
    )
    .order_by(stories.c.created_at, stories.c.id)
)
_LAST_STORY = sa.select(sa.func.max(stories.c.id))
_NEW_STORIES = stories.insert().returning(stories.c.id, sort_by_parameter_order=True)
_STORY_COLUMNS = ("id", "title", "canonical_link", "created_at")
_STORY = insert_statement(stories, _STORY_COLUMNS)
_STORY_KEY_COLUMNS = ("story_id", "key", "created_at")
_STORY_KEY = insert_statement(story_keys, _STORY_KEY_COLUMNS)


@dataclass
class StoryIndex:
    """Candidate stories for one batch. Stories the batch starts get placeholder ids (negative,
    in order) until `save` writes them."""

    now: datetime
    matcher: StoryMatcher
    keys_of: dict[str, tuple[str, ...]]
    by_link: dict[str, int] = field(default_factory=dict)
    by_key: defaultdict[str, list[tuple[int, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    new: list[Item] = field(default_factory=list)

    @classmethod
    def load(
        cls,
        conn: Connection,
        fresh: Sequence[Item],
        now: datetime,
        matcher: StoryMatcher,
        window: timedelta,
    ) -> StoryIndex:
        keys_of = {item.key: _keys(matcher, item.title) for item in fresh}
        index = cls(now, matcher, keys_of)
        cutoff = now - window
        links = sorted({item.canonical_link for item in fresh if item.canonical_link})
        for part in chunks(links):
            for link, story_id in conn.execute(_BY_LINK, {"links": part, "cutoff": cutoff}):
                index.by_link.setdefault(link, story_id)
        for part in chunks(sorted({key for keys in keys_of.values() for key in keys})):
            for key, story_id, title in conn.execute(_BY_KEY, {"keys": part, "cutoff": cutoff}):
                index.by_key[key].append((story_id, title))
        return index

    def assign(self, item: Item) -> int:
        """The story `item` joins: a stored story's id, or a new story's placeholder."""
        link = item.canonical_link
        story_id = self.by_link.get(link) if link else None
        if story_id is None:
            story_id = self._by_title(item)
        if story_id is None:
            self.new.append(item)
            story_id = -len(self.new)
            for key in self.keys_of[item.key]:
                self.by_key[key].append((story_id, item.title))
        if link:
            self.by_link.setdefault(link, story_id)
        return story_id

    def _by_title(self, item: Item) -> int | None:
        shared: dict[int, int] = {}
        titles: dict[int, str] = {}
        for key in self.keys_of[item.key]:
            for story_id, title in self.by_key.get(key, ()):
                shared[story_id] = shared.get(story_id, 0) + 1
                titles.setdefault(story_id, title)
        # Most keys in common first; among equals, the oldest story (dicts keep insertion order).
        ranked = sorted(shared, key=lambda s: -shared[s])[:MAX_CANDIDATES]
        for story_id in ranked:
            if self.matcher.same(item.title, titles[story_id]):
                return story_id
        return None

    def save(self, db: Database, conn: Connection) -> Mapping[int, int]:
        """Write the stories the batch started and their keys; placeholder -> stored id."""
        if not self.new:
            return {}
        if db.dialect == "sqlite":
            # One writer at a time (BEGIN IMMEDIATE): the ids after the largest are ours, as SQLite
            # would give them; SQLAlchemy can only bring ids back in order one row at a time there.
            first = (conn.execute(_LAST_STORY).scalar() or 0) + 1
            ids = list(range(first, first + len(self.new)))
            rows = [
                (story_id, item.title, item.canonical_link)
                for story_id, item in zip(ids, self.new, strict=True)
            ]
            insert_many(conn, _STORY, _STORY_COLUMNS, rows, {"created_at": self.now})
        else:
            params = [
                {"created_at": self.now, "title": item.title, "canonical_link": item.canonical_link}
                for item in self.new
            ]
            ids = [row.id for row in conn.execute(_NEW_STORIES, params)]
        keys = [
            (story_id, key)
            for story_id, item in zip(ids, self.new, strict=True)
            for key in self.keys_of[item.key]
        ]
        insert_many(conn, _STORY_KEY, _STORY_KEY_COLUMNS, keys, {"created_at": self.now})
        return {-n: story_id for n, story_id in enumerate(ids, 1)}


def _keys(matcher: StoryMatcher, title: str) -> tuple[str, ...]:
    # Untitled items have nothing to compare: they group by canonical link only.
    return tuple(dict.fromkeys(matcher.keys(title))) if title.strip() else ()
