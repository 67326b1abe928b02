"""Ingesting a poll: new vs seen, edits, first-poll backfill, stories, alerts and deliveries in one
transaction, lost leases, retention tombstones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
import sqlalchemy as sa

from monitor.model import Item
from rules.ast import RuleMatch
from storage import IngestResult, Store
from storage import _ingest as storage_ingest
from storage._schema import alerts, items, stories, story_keys
from tests.storage.storefakes import (
    BACKFILL,
    LEASE,
    RULES,
    T0,
    WINDOW,
    KeywordMatcher,
    ingest,
    item,
    spec,
)

HOUR = timedelta(hours=1)


@pytest.fixture
def two_sources(store: Store) -> Store:
    store.sync_sources([spec("a"), spec("b")], T0)
    return store


def later_polls(store: Store) -> None:
    """Make both sources past their first poll (one that listed an item: an empty fetch does not
    end the first poll), so every new item may alert."""
    for source in ("a", "b"):
        seed = [item(source, f"{source}-seed", "Weather in Seoul", published=T0 - 30 * HOUR)]
        assert ingest(store, source, seed, now=T0 - HOUR) == IngestResult(1, 0, 0, 0)


def test_new_versus_seen(two_sources: Store) -> None:
    store = two_sources
    matcher = KeywordMatcher(dict(RULES))
    first = [item("a", "guid:1", "One"), item("a", "guid:2", "Two"), item("a", "guid:1", "Dup")]
    assert ingest(store, "a", first, matcher=matcher) == IngestResult(2, 0, 0, 0)
    second = [item("a", "guid:2", "Two"), item("a", "guid:3", "Three")]
    assert ingest(store, "a", second, now=T0 + HOUR, matcher=matcher) == IngestResult(1, 0, 0, 0)
    assert matcher.calls == ["guid:1", "guid:2", "guid:3"]  # only new items are matched
    # the same key in another source is another item
    assert ingest(store, "b", [item("b", "guid:1", "One")]) == IngestResult(1, 0, 0, 0)
    assert {v.id: v.items for v in store.list_sources()} == {"a": 3, "b": 1}


def test_edit_updates_text_without_realerting(two_sources: Store) -> None:
    store = two_sources
    later_polls(store)
    original = item(
        "a", "guid:1", "KN-23 launched", summary="first text", link="https://a.example/1"
    )
    assert ingest(store, "a", [original]) == IngestResult(1, 0, 1, 2)
    matcher = KeywordMatcher(dict(RULES))
    edited = item("a", "guid:1", "KN-23 launched at a depot", summary="corrected")
    result = ingest(store, "a", [edited], now=T0 + HOUR, matcher=matcher)
    assert result == IngestResult(0, 1, 0, 0)
    assert matcher.calls == []  # an edit is never matched again: the depot rule stays silent
    same_again = ingest(store, "a", [edited], now=T0 + 2 * HOUR, matcher=matcher)
    assert same_again == IngestResult(0, 0, 0, 0)
    (alert,) = store.list_alerts(T0 - HOUR)
    assert alert.title == "KN-23 launched at a depot"  # the stored text follows the edit


def test_first_poll_backfill(two_sources: Store) -> None:
    store = two_sources
    batch = [
        item("a", "recent", "KN-23 recent", published=T0 - BACKFILL + HOUR),
        item("a", "edge", "KN-23 edge", published=T0 - BACKFILL),
        item("a", "old", "KN-23 old", published=T0 - BACKFILL - HOUR),
        item("a", "undated", "KN-23 undated", published=None),
    ]
    result = ingest(store, "a", batch)
    assert result == IngestResult(new_items=4, updated_items=0, alerts=2, deliveries=4)
    assert sorted(a.title for a in store.list_alerts(T0 - HOUR)) == ["KN-23 edge", "KN-23 recent"]
    # later polls alert every new item, whatever its date (feeds backdate and omit dates)
    later = [
        item("a", "old2", "KN-23 backdated", published=T0 - 30 * BACKFILL),
        item("a", "undated2", "KN-23 undated again", published=None),
    ]
    assert ingest(store, "a", later, now=T0 + HOUR) == IngestResult(2, 0, 2, 4)


def test_backfill_zero_alerts_nothing_on_first_poll(two_sources: Store) -> None:
    store = two_sources
    store.claim_due_sources("i1", T0, limit=10, lease=LEASE)
    result = store.ingest(
        "a",
        "i1",
        now=T0,
        items=[item("a", "k", "KN-23 fired", published=T0 - timedelta(seconds=1))],
        etag='"e1"',
        last_modified="Sun, 01 Mar 2026 12:00:00 GMT",
        body_hash="h1",
        next_poll_at=T0 + HOUR,
        backfill=timedelta(0),
        matcher=KeywordMatcher(dict(RULES)),
        route=lambda m: ["console"],
        stories=_NoStories(),
        dedup_window=WINDOW,
    )
    assert result == IngestResult(1, 0, 0, 0)
    states = store.claim_due_sources("i1", T0 + HOUR, limit=10, lease=LEASE)
    state = next(s for s in states if s.id == "a")
    assert (state.etag, state.last_modified, state.body_hash) == (
        '"e1"',
        "Sun, 01 Mar 2026 12:00:00 GMT",
        "h1",
    )
    assert state.polled_before and state.status == "ok"


class _NoStories:
    def keys(self, title: str) -> Sequence[str]:
        return []

    def same(self, a: str, b: str) -> bool:
        raise AssertionError("never called without keys")


def test_one_alert_per_rule_per_story_by_canonical_link(two_sources: Store) -> None:
    store = two_sources
    later_polls(store)
    link = "https://news.example/story?id=7"
    a = item("a", "a1", "Depot hit by KN-23", link=link + "&utm_source=x", canonical_link=link)
    b = item("b", "b1", "Completely different headline about KN-23", canonical_link=link)
    assert ingest(store, "a", [a]) == IngestResult(1, 0, 2, 4)  # kn23 + depot rules
    assert ingest(store, "b", [b], now=T0 + HOUR) == IngestResult(1, 0, 0, 0)
    alerts = store.list_alerts(T0 - HOUR)
    assert {x.rule for x in alerts} == {"kn23", "depot"}
    for alert in alerts:
        assert alert.source == "a"
        assert [(x.source_id, x.source_name, x.title) for x in alert.also] == [
            ("b", "B", "Completely different headline about KN-23")
        ]


def test_one_alert_per_rule_per_story_by_title(two_sources: Store) -> None:
    store = two_sources
    later_polls(store)
    a = item("a", "a1", "Russia fires KN-23 missiles at Kharkiv", link="https://a.example/1")
    b = item("b", "b1", "Russia fires KN-23 missiles at Kharkiv!", link="https://b.example/9")
    other = item("b", "b2", "KN-23 missiles seen in Kursk region", link="https://b.example/10")
    assert ingest(store, "a", [a]) == IngestResult(1, 0, 1, 2)
    assert ingest(store, "b", [b, other], now=T0 + HOUR) == IngestResult(2, 0, 1, 2)
    alerts = store.list_alerts(T0 - HOUR)
    assert [(x.title, x.source) for x in alerts] == [
        ("KN-23 missiles seen in Kursk region", "b"),
        ("Russia fires KN-23 missiles at Kharkiv", "a"),
    ]
    assert [x.source_id for x in alerts[1].also] == ["b"]
    assert alerts[0].also == ()


def test_stories_expire_after_the_dedup_window(two_sources: Store) -> None:
    store = two_sources
    later_polls(store)
    link = "https://news.example/kn23"
    first = ingest(store, "a", [item("a", "a1", "KN-23 strike", canonical_link=link)])
    assert first == IngestResult(1, 0, 1, 2)
    late = T0 + WINDOW + HOUR
    b_items = [item("b", "b1", "KN-23 strike", canonical_link=link)]
    assert ingest(store, "b", b_items, now=late) == IngestResult(1, 0, 1, 2)


def test_items_of_one_poll_group_together(two_sources: Store) -> None:
    store = two_sources
    later_polls(store)
    batch = [
        item("a", "a1", "KN-23 strike on depot", canonical_link="https://x.example/1"),
        item("a", "a2", "KN-23 strike on depot", canonical_link="https://x.example/2"),
    ]
    assert ingest(store, "a", batch) == IngestResult(2, 0, 2, 4)  # kn23 + depot, once each


def test_deliveries_are_one_per_notifier_and_none_for_info(two_sources: Store) -> None:
    store = two_sources
    later_polls(store)
    result = ingest(store, "a", [item("a", "a1", "A note on KN-23")])
    assert result == IngestResult(1, 0, 2, 2)  # the info rule alerts but notifies nobody
    views = {a.rule: a for a in store.list_alerts(T0 - HOUR)}
    assert [d.notifier for d in views["kn23"].deliveries] == ["console", "email"]
    assert all(d.status == "pending" and d.next_attempt == T0 for d in views["kn23"].deliveries)
    assert views["note"].deliveries == ()
    assert views["kn23"].rule_title == "Rule kn23" and views["kn23"].level == "high"


def test_a_failing_poll_writes_nothing(two_sources: Store) -> None:
    store = two_sources
    later_polls(store)

    def exploding(it: Item) -> Sequence[RuleMatch]:
        if it.key == "a2":
            raise RuntimeError("matcher bug")
        return KeywordMatcher(dict(RULES))(it)

    batch = [item("a", "a1", "KN-23 one"), item("a", "a2", "KN-23 two")]
    store.claim_due_sources("i1", T0, limit=10, lease=LEASE, include_not_due=True)
    with pytest.raises(RuntimeError, match="matcher bug"):
        store.ingest(
            "a",
            "i1",
            now=T0,
            items=batch,
            etag=None,
            last_modified=None,
            body_hash=None,
            next_poll_at=T0,
            backfill=BACKFILL,
            matcher=exploding,
            route=lambda m: ["console"],
            stories=_NoStories(),
            dedup_window=WINDOW,
        )
    assert store.list_alerts(T0 - HOUR) == []
    assert {v.id: v.items for v in store.list_sources()}["a"] == 1  # the seed of later_polls only
    # nothing was lost: the same poll stored again alerts both items
    assert ingest(store, "a", batch, claim=False) == IngestResult(2, 0, 2, 4)


def test_lost_lease_writes_nothing(two_sources: Store) -> None:
    store = two_sources
    later_polls(store)
    store.claim_due_sources("i1", T0, limit=10, lease=LEASE, include_not_due=True)
    store.claim_due_sources("i2", T0 + LEASE, limit=10, lease=LEASE, include_not_due=True)
    before = store.list_sources()
    stale = ingest(store, "a", [item("a", "a1", "KN-23 one")], instance="i1", claim=False)
    assert stale is None
    assert store.list_sources() == before
    assert store.list_alerts(T0 - HOUR) == []
    assert ingest(store, "a", [item("a", "a1", "KN-23 one")], instance="i2", claim=False) == (
        IngestResult(1, 0, 1, 2)
    )


def test_unknown_source_is_not_ingested(two_sources: Store) -> None:
    assert ingest(two_sources, "ghost", [item("ghost", "k", "KN-23")]) is None


def test_prune_keeps_identity(two_sources: Store) -> None:
    store = two_sources
    later_polls(store)
    old = item("a", "a1", "KN-23 old news", summary="long text", content="more", author="me")
    ingest(store, "a", [old])
    ingest(store, "a", [item("a", "a2", "Fresh")], now=T0 + 10 * HOUR)
    # a1 and a's seed (no longer listed); b's seed stays: b's latest fetch still lists it
    assert store.prune(T0 + 20 * HOUR, timedelta(hours=15)) == 2
    assert store.prune(T0 + 20 * HOUR, timedelta(hours=15)) == 0  # already tombstones
    (alert,) = store.list_alerts(T0 - HOUR)
    assert (alert.title, alert.source) == ("", "a")  # the text is gone, the alert stays
    matcher = KeywordMatcher(dict(RULES))
    again = ingest(store, "a", [old, item("a", "a2", "Fresh")], now=T0 + 21 * HOUR, matcher=matcher)
    assert again == IngestResult(0, 0, 0, 0)  # the feed still lists it: not new, not an edit
    assert matcher.calls == []
    assert {v.id: v.items for v in store.list_sources()}["a"] == 3


def test_naive_published_dates_are_read_as_utc(two_sources: Store) -> None:
    store = two_sources
    naive = (T0 - HOUR).replace(tzinfo=None)
    result = ingest(store, "a", [item("a", "a1", "KN-23 naive", published=naive)])
    assert result == IngestResult(1, 0, 1, 2)


def _stories_of(db_url: str) -> tuple[dict[str, int], dict[int, str], dict[int, set[str]]]:
    """Item key -> story id, story id -> title, story id -> blocking keys, as stored."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            story_of = {
                key: story for key, story in conn.execute(sa.select(items.c.key, items.c.story_id))
            }
            titles = {
                story: title
                for story, title in conn.execute(sa.select(stories.c.id, stories.c.title))
            }
            keys: dict[int, set[str]] = {}
            for story_id, key in conn.execute(sa.select(story_keys.c.story_id, story_keys.c.key)):
                keys.setdefault(story_id, set()).add(key)
    finally:
        engine.dispose()
    return story_of, titles, keys


def test_stories_a_poll_starts_are_written_with_their_own_titles_and_keys(
    two_sources: Store, db_url: str
) -> None:
    # Stories are written once per poll after grouping: each item must get the id of the story
    # it started or joined, and each story its first item's title and keys, also after others.
    store = two_sources
    later_polls(store)
    link = "https://y.example/floods"
    batch = [
        item("a", "a1", "Drone strike hits fuel depot near Kursk"),
        item("a", "a2", "Heavy storms flood Seoul suburbs", canonical_link=link),
        item("a", "a3", "Drone strike hits fuel depot near Kursk"),  # joins a1 by title
        item("a", "a4", "Rivers rise", canonical_link=link),  # joins a2 by link
        item("a", "a5", "Ministers gather for budget talks"),
        item("a", "a6", ""),  # no title, no link: a story of its own, without keys
    ]
    assert ingest(store, "a", batch) == IngestResult(6, 0, 1, 2)  # depot, once
    story_of, titles, keys = _stories_of(db_url)
    assert story_of["a1"] == story_of["a3"] and story_of["a2"] == story_of["a4"]
    started = [story_of[k] for k in ("a1", "a2", "a5", "a6")]
    assert len(set(started) | {story_of["a-seed"]}) == 5  # both seeds are one story
    assert [titles[s] for s in started] == [batch[i].title for i in (0, 1, 4, 5)]
    assert keys[story_of["a5"]] == {"ministers", "gather", "budget", "talks"}
    assert story_of["a6"] not in keys
    # times are stored as SQLAlchemy writes them (SQLite compares them as text)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        for column, written in [(items.c.fetched_at, 6), (items.c.seen_at, 6)]:
            at_t0 = sa.select(sa.func.count()).where(column == T0)
            assert conn.execute(at_t0).scalar_one() == written
        at_t0 = sa.select(sa.func.count()).where(stories.c.created_at == T0)
        assert conn.execute(at_t0).scalar_one() == len(started)
        at_t0 = sa.select(sa.func.count()).where(story_keys.c.created_at == T0)
        assert conn.execute(at_t0).scalar_one() == sum(len(keys[s]) for s in started if s in keys)
    engine.dispose()
    # the keys written serve the next poll: another source's report joins the story
    later = [item("b", "b1", "Ministers gather for budget talks")]
    assert ingest(store, "b", later, now=T0 + HOUR) == IngestResult(1, 0, 0, 0)
    assert _stories_of(db_url)[0]["b1"] == story_of["a5"]


def test_an_item_stored_between_the_read_and_the_insert_is_neither_new_nor_alerted(
    two_sources: Store, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One writer at a time makes this impossible on SQLite, and PostgreSQL's unique key decides
    # it there; both must still count only the rows they wrote. `_see_stored` is made to miss a
    # stored key, as if another writer had stored it just after the read: SQLite then reads its
    # new rows' ids back instead of assigning them, and the alert points at the item written.
    store = two_sources
    later_polls(store)
    assert ingest(store, "a", [item("a", "a1", "KN-23 launch")], now=T0) == IngestResult(1, 0, 1, 2)
    monkeypatch.setattr(storage_ingest, "_see_stored", lambda conn, poll, keys: {})
    polled = [item("a", "a1", "KN-23 launch"), item("a", "a2", "Depot fire near Toropets")]
    assert ingest(store, "a", polled, now=T0 + HOUR) == IngestResult(1, 0, 1, 2)
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            ids = {key: id_ for key, id_ in conn.execute(sa.select(items.c.key, items.c.id))}
            query = sa.select(alerts.c.rule_id, alerts.c.item_id)
            alerted = {rule: item_id for rule, item_id in conn.execute(query)}
    finally:
        engine.dispose()
    assert alerted == {"kn23": ids["a1"], "depot": ids["a2"]}
