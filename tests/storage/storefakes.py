"""Small, honest stand-ins for what the daemon core passes to the Store: items, a keyword matcher,
a router and a story matcher. Written for these tests; no corpus text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.model import Item, Level, Span
from rules.ast import RuleMatch
from storage import IngestResult, SourceSpec, Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
WINDOW = timedelta(hours=72)
BACKFILL = timedelta(hours=24)


def spec(source_id: str, url: str | None = None, **kw: Any) -> SourceSpec:
    return SourceSpec(
        id=source_id,
        url=url or f"https://{source_id}.example/feed.xml",
        name=kw.get("name", source_id.upper()),
        tags=tuple(kw.get("tags", ())),
        interval=kw.get("interval", timedelta(minutes=15)),
    )


def item(source_id: str, key: str, title: str, **kw: Any) -> Item:
    link = kw.get("link")
    text = f"{title}|{kw.get('summary', '')}|{kw.get('content', '')}"
    return Item(
        source_id=source_id,
        key=key,
        title=title,
        link=link,
        canonical_link=kw.get("canonical_link", link),
        summary=kw.get("summary", ""),
        content=kw.get("content", ""),
        author=kw.get("author", ""),
        tags=tuple(kw.get("tags", ())),
        published=kw.get("published", T0),
        content_hash=kw.get("content_hash", str(hash(text))),
        guid=kw.get("guid"),
    )


@dataclass
class KeywordMatcher:
    """rule id -> (word, level): matches when the word is in the title; counts its calls."""

    rules: dict[str, tuple[str, Level]]
    calls: list[str] = field(default_factory=list)

    def __call__(self, it: Item) -> Sequence[RuleMatch]:
        self.calls.append(it.key)
        found = []
        for rule_id, (word, level) in self.rules.items():
            hit = re.search(re.escape(word), it.title, re.IGNORECASE)
            if hit:
                span = Span("title", hit.start(), hit.end(), hit.group())
                found.append(RuleMatch(rule_id, level, (span,)))
        return found


def route(match: RuleMatch) -> Sequence[str]:
    return [] if match.level == "info" else ["console", "email", "console"]


class WordStories:
    """Blocking keys: the title's long words; same story: at least 80% of words shared."""

    def keys(self, title: str) -> Sequence[str]:
        return sorted(w for w in _words(title) if len(w) >= 5)

    def same(self, a: str, b: str) -> bool:
        wa, wb = _words(a), _words(b)
        return bool(wa | wb) and len(wa & wb) / len(wa | wb) >= 0.8


def _words(title: str) -> set[str]:
    return set(re.findall(r"\w+", title.lower()))


RULES: dict[str, tuple[str, Level]] = {
    "kn23": ("KN-23", "high"),
    "depot": ("depot", "medium"),
    "note": ("note", "info"),
}
TITLES = {rule_id: f"Rule {rule_id}" for rule_id in RULES}


def ingest(
    store: Store,
    source_id: str,
    items: Sequence[Item],
    *,
    now: datetime = T0,
    instance: str = "i1",
    matcher: KeywordMatcher | None = None,
    claim: bool = True,
) -> IngestResult | None:
    """Claim the source (as the poller would) and store a poll of `items`."""
    if claim:  # sources this instance already holds stay held; the rest are leased to it now
        store.claim_due_sources(instance, now, limit=100, lease=LEASE, include_not_due=True)
    return store.ingest(
        source_id,
        instance,
        now=now,
        items=items,
        etag=None,
        last_modified=None,
        body_hash=None,
        next_poll_at=now + timedelta(minutes=15),
        backfill=BACKFILL,
        matcher=matcher or KeywordMatcher(dict(RULES)),
        route=route,
        stories=WordStories(),
        dedup_window=WINDOW,
        rule_titles=TITLES,
    )
