"""Story grouping: which story a new item joins, with indexed lookups only.

An item joins the story of an item with the same canonical link fetched within the dedup window;
else a story whose blocking keys it shares and whose title `StoryMatcher.same` accepts; else it
starts a story. Candidates are loaded for the whole batch in two queries, then the batch's own new
stories are added as they are made, so two items of one poll group together too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from monitor.model import Item

from ._engine import chunks
from ._schema import items, stories, story_keys
from ._types import StoryMatcher

_NEW_STORY = stories.insert().returning(stories.c.id)

# Real headlines share a blocking key with a few percent of a 72h window (thousands of stories); the
# same story shares several keys. Comparing only the candidates that share the most keys keeps a
# new item's cost bounded (measured: ~870 comparisons, ~89 ms per item at real density unbounded).
MAX_CANDIDATES = 24


@dataclass
class StoryIndex:
    now: datetime
    matcher: StoryMatcher
    keys_of: dict[str, tuple[str, ...]]
    by_link: dict[str, int] = field(default_factory=dict)
    by_key: defaultdict[str, list[tuple[int, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )

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
            index._load_links(conn, part, cutoff)
        for part in chunks(sorted({key for keys in keys_of.values() for key in keys})):
            index._load_keys(conn, part, cutoff)
        return index

    def _load_links(self, conn: Connection, links: Sequence[str], cutoff: datetime) -> None:
        query = (
            sa.select(items.c.canonical_link, items.c.story_id)
            .where(
                items.c.canonical_link.in_(links),
                items.c.fetched_at >= cutoff,
                items.c.story_id.is_not(None),
            )
            .order_by(items.c.fetched_at, items.c.id)
        )
        for row in conn.execute(query):
            self.by_link.setdefault(row.canonical_link, row.story_id)

    def _load_keys(self, conn: Connection, keys: Sequence[str], cutoff: datetime) -> None:
        query = (
            sa.select(story_keys.c.key, stories.c.id, stories.c.title)
            .join(stories, stories.c.id == story_keys.c.story_id)
            .where(story_keys.c.key.in_(keys), story_keys.c.created_at >= cutoff)
            .order_by(stories.c.created_at, stories.c.id)
        )
        for row in conn.execute(query):
            self.by_key[row.key].append((row.id, row.title))

    def assign(self, conn: Connection, item: Item) -> int:
        link = item.canonical_link
        story_id = self.by_link.get(link) if link else None
        if story_id is None:
            story_id = self._by_title(item)
        if story_id is None:
            story_id = self._create(conn, item)
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

    def _create(self, conn: Connection, item: Item) -> int:
        row = {"created_at": self.now, "title": item.title, "canonical_link": item.canonical_link}
        story_id: int = conn.execute(_NEW_STORY, row).scalar_one()
        keys = self.keys_of[item.key]
        if keys:
            rows = [{"story_id": story_id, "key": k, "created_at": self.now} for k in keys]
            conn.execute(story_keys.insert(), rows)
            for key in keys:
                self.by_key[key].append((story_id, item.title))
        return story_id


def _keys(matcher: StoryMatcher, title: str) -> tuple[str, ...]:
    # Untitled items have nothing to compare: they group by canonical link only.
    return tuple(dict.fromkeys(matcher.keys(title))) if title.strip() else ()
