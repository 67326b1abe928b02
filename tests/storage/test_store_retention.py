"""Retention: pruned items become tombstones that keep the feed's old entries from coming back as
new; what a source still publishes, failed and empty fetches, and edits of pruned items."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from monitor.model import Item
from storage import IngestResult, SourceState, Store
from tests.storage.storefakes import (
    BACKFILL,
    LEASE,
    RULES,
    T0,
    TITLES,
    WINDOW,
    KeywordMatcher,
    WordStories,
    item,
    route,
    spec,
)

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
RETENTION = timedelta(days=90)


def poll(
    store: Store,
    source: str,
    items: Sequence[Item],
    now: datetime,
    *,
    matcher: KeywordMatcher | None = None,
    etag: str | None = None,
    body_hash: str | None = None,
) -> IngestResult:
    """Claim `source` and store one successful fetch of `items`, as the poller does."""
    claim(store, now)
    result = store.ingest(
        source,
        "i1",
        now=now,
        items=items,
        etag=etag,
        last_modified=None,
        body_hash=body_hash,
        next_poll_at=now + timedelta(minutes=15),
        backfill=BACKFILL,
        matcher=matcher or KeywordMatcher(dict(RULES)),
        route=route,
        stories=WordStories(),
        dedup_window=WINDOW,
        rule_titles=TITLES,
    )
    assert result is not None, f"lost the lease of {source}"
    return result


def claim(store: Store, now: datetime) -> dict[str, SourceState]:
    states = store.claim_due_sources("i1", now, limit=100, lease=LEASE, include_not_due=True)
    return {state.id: state for state in states}


def item_counts(store: Store) -> dict[str, int]:
    return {view.id: view.items for view in store.list_sources()}


def alert_titles(store: Store) -> list[str]:
    return sorted(alert.title for alert in store.list_alerts(T0 - 365 * DAY))


def move_on(store: Store, now: datetime) -> None:
    """Both feeds publish a fresh entry at `now` and stop listing everything before it, so
    nothing older is in a source's latest fetch (which retention must keep)."""
    for source in ("a", "b"):
        assert poll(store, source, [item(source, f"at-{now}", "Fresh")], now).new_items == 1


@pytest.fixture
def polled(store: Store) -> Store:
    """Sources a and b, each past its first poll (one undated item, stored without alerting), so
    every new item may alert."""
    store.sync_sources([spec("a"), spec("b")], T0 - DAY)
    for source in ("a", "b"):
        assert poll(store, source, [item(source, "seed", "Seed", published=None)], T0 - DAY) == (
            IngestResult(1, 0, 0, 0)
        )
    return store


def test_old_items_become_tombstones_that_never_come_back(polled: Store) -> None:
    store = polled
    old = item("a", "a1", "KN-23 launched", summary="long text", link="https://a.example/1")
    assert poll(store, "a", [old, item("a", "a2", "Quiet day")], T0) == IngestResult(2, 0, 1, 2)
    move_on(store, T0 + 60 * DAY)
    # last listed before now - retention: the seeds and the two items of T0
    assert store.prune(T0 + 91 * DAY, RETENTION) == 4  # a: seed, a1, a2; b: seed
    assert store.prune(T0 + 91 * DAY, RETENTION) == 0  # tombstones are pruned once
    assert alert_titles(store) == [""]  # the alert stays, its item's text is gone
    matcher = KeywordMatcher(dict(RULES))
    # the feed still publishes the old entries unchanged: not new, not an edit, not matched
    again = poll(store, "a", [old, item("a", "a2", "Quiet day")], T0 + 92 * DAY, matcher=matcher)
    assert again == IngestResult(0, 0, 0, 0)
    assert matcher.calls == []
    assert item_counts(store) == {"a": 4, "b": 2}  # tombstones still count as stored identities
    (alert,) = store.list_alerts(T0 - DAY)
    assert [(d.notifier, d.status) for d in alert.deliveries] == [
        ("console", "pending"),
        ("email", "pending"),
    ]


def test_prune_cutoff_is_exclusive(polled: Store) -> None:
    store = polled
    poll(store, "a", [item("a", "edge", "Edge")], T0)
    poll(store, "a", [item("a", "after", "After")], T0 + HOUR)
    move_on(store, T0 + 2 * HOUR)
    assert store.prune(T0 + RETENTION, RETENTION) == 2  # the two seeds, fetched at T0 - 1 day
    assert store.prune(T0 + RETENTION + timedelta(seconds=1), RETENTION) == 1  # edge
    assert store.prune(T0 + RETENTION + HOUR, RETENTION) == 0  # after: exactly at the cutoff


def test_pruned_item_reported_again_by_another_source_alerts_as_a_new_story(
    polled: Store,
) -> None:
    store = polled
    link = "https://news.example/kn23"
    poll(store, "a", [item("a", "a1", "KN-23 strike", canonical_link=link)], T0)
    move_on(store, T0 + DAY)
    assert store.prune(T0 + 91 * DAY, RETENTION) == 3
    # long past the dedup window the tombstone's story is closed: a new report is a new story
    late = poll(store, "b", [item("b", "b1", "KN-23 strike", canonical_link=link)], T0 + 92 * DAY)
    assert late == IngestResult(1, 0, 1, 2)
    assert alert_titles(store) == ["", "KN-23 strike"]


def test_failed_or_empty_fetch_keeps_seen_state(polled: Store) -> None:
    store = polled
    batch = [item("a", "a1", "KN-23 one"), item("a", "a2", "Depot two")]
    assert poll(store, "a", batch, T0, etag='"v1"', body_hash="h1") == IngestResult(2, 0, 2, 4)
    claim(store, T0 + HOUR)
    assert store.record_failure(
        "a", "i1", T0 + HOUR, kind="timeout", detail="read timed out", next_poll_at=T0 + 2 * HOUR
    )
    state = claim(store, T0 + 2 * HOUR)["a"]
    assert (state.etag, state.body_hash, state.polled_before) == ('"v1"', "h1", True)
    assert state.consecutive_failures == 1
    assert poll(store, "a", [], T0 + 3 * HOUR) == IngestResult(0, 0, 0, 0)
    assert item_counts(store)["a"] == 3  # the empty fetch forgot nothing
    matcher = KeywordMatcher(dict(RULES))
    back = [*batch, item("a", "a3", "KN-23 three")]
    assert poll(store, "a", back, T0 + 4 * HOUR, matcher=matcher) == IngestResult(1, 0, 1, 2)
    assert matcher.calls == ["a3"]  # the items from before the failure are still known
    assert alert_titles(store) == ["Depot two", "KN-23 one", "KN-23 three"]


def test_failed_fetches_prune_nothing_more(polled: Store) -> None:
    store = polled
    poll(store, "a", [item("a", "a1", "One")], T0)
    for day in range(1, 4):
        claim(store, T0 + day * DAY)
        assert store.record_failure(
            "a", "i1", T0 + day * DAY, kind="http_503", detail="", next_poll_at=T0 + 9 * DAY
        )
    assert store.prune(T0 + 4 * DAY, RETENTION) == 0
    assert item_counts(store)["a"] == 2


def test_an_edit_of_a_pruned_item_neither_realerts_nor_counts_as_new(polled: Store) -> None:
    store = polled
    poll(store, "a", [item("a", "a1", "KN-23 launched", summary="first")], T0)
    move_on(store, T0 + DAY)
    assert store.prune(T0 + 91 * DAY, RETENTION) == 3
    matcher = KeywordMatcher(dict(RULES))
    edited = item("a", "a1", "KN-23 launched at a depot", summary="corrected")
    result = poll(store, "a", [edited], T0 + 92 * DAY, matcher=matcher)
    assert (result.new_items, result.alerts, result.deliveries) == (0, 0, 0)
    assert matcher.calls == []  # the depot rule stays silent: edits are never matched
    assert len(store.list_alerts(T0 - DAY)) == 1


def test_an_edit_of_a_pruned_item_keeps_it_a_tombstone(polled: Store) -> None:
    store = polled
    poll(store, "a", [item("a", "a1", "KN-23 launched", summary="first")], T0)
    move_on(store, T0 + DAY)
    assert store.prune(T0 + 91 * DAY, RETENTION) == 3
    edited = item("a", "a1", "KN-23 launched at a depot", summary="corrected")
    poll(store, "a", [edited], T0 + 92 * DAY)
    assert alert_titles(store) == [""]  # still a tombstone: retention is not undone
    # the edited text is remembered: the same edit next time is no edit at all
    assert poll(store, "a", [edited], T0 + 94 * DAY) == IngestResult(0, 0, 0, 0)


def test_items_in_the_latest_fetch_are_never_pruned(polled: Store) -> None:
    store = polled
    evergreen = item("a", "about", "KN-23 explainer", link="https://a.example/about")
    poll(store, "a", [evergreen, item("a", "a1", "Gone soon")], T0)
    # 100 days on, the feed still lists the evergreen entry; a1 has left it
    later = [evergreen, item("a", "a2", "Fresh")]
    assert poll(store, "a", later, T0 + 100 * DAY).new_items == 1
    assert poll(store, "b", [item("b", "b1", "Fresh")], T0 + 100 * DAY).new_items == 1
    claim(store, T0 + 101 * DAY)  # then the feed answers 304 Not Modified for a while
    assert store.record_not_modified("a", "i1", T0 + 101 * DAY, next_poll_at=T0 + 102 * DAY)
    assert poll(store, "a", [], T0 + 102 * DAY) == IngestResult(0, 0, 0, 0)  # and once, empty
    assert store.prune(T0 + 102 * DAY, RETENTION) == 3  # a1 and the two seeds, not evergreen
    assert alert_titles(store) == ["KN-23 explainer"]


def test_an_empty_first_fetch_leaves_the_first_poll_to_come(store: Store) -> None:
    store.sync_sources([spec("a")], T0)
    assert poll(store, "a", [], T0) == IngestResult(0, 0, 0, 0)
    archive = [
        item("a", f"old{i}", f"KN-23 archive {i}", published=T0 - (10 + i) * DAY) for i in range(3)
    ]
    # the first fetch that brings items is the source's first poll: an archive is not news
    assert poll(store, "a", archive, T0 + HOUR) == IngestResult(3, 0, 0, 0)


def story_key_count(store: Store, db_url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM story_keys")).scalar_one())
    finally:
        engine.dispose()


def test_story_keys_go_once_the_dedup_window_has_passed(polled: Store, db_url: str) -> None:
    store = polled
    poll(store, "a", [item("a", "a1", "KN-23 strike reported near Kharkiv")], T0)
    assert story_key_count(store, db_url) > 0
    assert store.prune(T0 + 2 * DAY, RETENTION, story_window=WINDOW) == 0  # no item is old yet
    assert story_key_count(store, db_url) > 0  # still inside the window
    assert store.prune(T0 + WINDOW + DAY, RETENTION, story_window=WINDOW) == 0
    assert story_key_count(store, db_url) == 0  # no lookup can reach them any more
    # and a report of the same headline after the window starts a story of its own
    late = poll(store, "b", [item("b", "b1", "KN-23 strike reported near Kharkiv")], T0 + 5 * DAY)
    assert late.alerts == 1
