"""Sources: config sync, leasing due sources, recording poll outcomes, health views."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from storage import Store
from tests.storage.storefakes import LEASE, T0, ingest, item, spec

MIN = timedelta(minutes=1)


def claim_ids(
    store: Store,
    now: datetime = T0,
    *,
    instance: str = "i1",
    limit: int = 10,
    include_not_due: bool = False,
) -> list[str]:
    claimed = store.claim_due_sources(
        instance, now, limit=limit, lease=LEASE, include_not_due=include_not_due
    )
    return [s.id for s in claimed]


def test_sync_inserts_updates_and_disables(store: Store) -> None:
    store.sync_sources([spec("a"), spec("b", tags=["news"])], T0)
    views = {v.id: v for v in store.list_sources()}
    assert views["a"].status == "new" and views["a"].next_poll == T0
    assert views["b"].tags == ("news",) and views["b"].name == "B"

    store.sync_sources([spec("b", name="Bee", tags=["x", "y"])], T0 + MIN)
    views = {v.id: v for v in store.list_sources()}
    assert views["a"].status == "disabled"
    assert (views["b"].name, views["b"].tags, views["b"].status) == ("Bee", ("x", "y"), "new")
    assert claim_ids(store, T0 + MIN) == ["b"]  # disabled sources are never handed out

    store.sync_sources([spec("a"), spec("b")], T0 + 2 * MIN)
    assert {v.id: v.status for v in store.list_sources()} == {"a": "new", "b": "new"}


def test_claim_orders_by_due_time_and_leases(store: Store) -> None:
    store.sync_sources([spec("a")], T0 + 2 * MIN)
    store.sync_sources([spec("a"), spec("b")], T0)
    store.sync_sources([spec("a"), spec("b"), spec("c")], T0 + MIN)
    assert claim_ids(store, T0 + MIN) == ["b", "c"]  # a is not due until T0+2m
    assert claim_ids(store, T0 + 2 * MIN, instance="i2") == ["a"]  # b, c are leased
    # a lease that ran out is free again
    assert claim_ids(store, T0 + MIN + LEASE, instance="i2") == ["b", "c"]


def test_claim_limit_and_include_not_due(store: Store) -> None:
    store.sync_sources([spec(f"s{n}") for n in range(5)], T0)
    assert claim_ids(store, T0 - MIN) == []
    assert len(claim_ids(store, T0 - MIN, include_not_due=True, limit=3)) == 3
    assert len(claim_ids(store, T0 - MIN, include_not_due=True, limit=3)) == 2
    assert claim_ids(store, T0, limit=0) == []


def test_each_claim_binds_its_own_instance_limit_and_lease(store: Store) -> None:
    # The claim statement is built once and reused: nothing of one call may stick to the next.
    store.sync_sources([spec(f"s{n}") for n in range(4)], T0)
    assert claim_ids(store, T0, limit=1) == ["s0"]
    short = store.claim_due_sources("i2", T0, limit=2, lease=MIN)
    assert [s.id for s in short] == ["s1", "s2"]
    # i2's one-minute lease has run out, i1's has not
    assert claim_ids(store, T0 + MIN, instance="i3") == ["s1", "s2", "s3"]
    assert not store.record_not_modified(
        "s1", "i2", T0 + MIN, next_poll_at=T0 + 9 * MIN, etag=None, last_modified=None
    )
    assert store.record_not_modified(
        "s1", "i3", T0 + MIN, next_poll_at=T0 + 9 * MIN, etag=None, last_modified=None
    )


def test_claim_returns_what_the_poller_needs(store: Store) -> None:
    store.sync_sources([spec("a", tags=["t"], interval=timedelta(minutes=30))], T0)
    (state,) = store.claim_due_sources("i1", T0, limit=5, lease=LEASE)
    assert (state.url, state.name, state.tags, state.interval) == (
        "https://a.example/feed.xml",
        "A",
        ("t",),
        timedelta(minutes=30),
    )
    assert (state.etag, state.last_modified, state.body_hash) == (None, None, None)
    assert (state.polled_before, state.consecutive_failures, state.status) == (False, 0, "new")


def test_record_failure_then_not_modified(store: Store) -> None:
    store.sync_sources([spec("a")], T0)
    claim_ids(store)
    assert store.record_failure(
        "a", "i1", T0, kind="timeout", detail="no answer in 20s", next_poll_at=T0 + MIN
    )
    (view,) = store.list_sources()
    assert (view.status, view.error, view.error_detail) == ("error", "timeout", "no answer in 20s")
    assert (view.consecutive_failures, view.last_poll, view.last_success) == (1, T0, None)
    assert view.next_poll == T0 + MIN and view.last_instance == "i1"

    # the lease was released: the source is claimable again once due
    assert claim_ids(store, T0 + MIN) == ["a"]
    assert store.record_failure("a", "i1", T0 + MIN, kind="http_500", detail="", next_poll_at=T0)
    assert store.list_sources()[0].consecutive_failures == 2

    claim_ids(store, T0 + 2 * MIN)
    assert store.record_not_modified(
        "a", "i1", T0 + 2 * MIN, next_poll_at=T0 + 20 * MIN, etag='"v2"'
    )
    (view,) = store.list_sources()
    assert (view.status, view.error, view.consecutive_failures) == ("ok", None, 0)
    assert view.last_success == T0 + 2 * MIN and view.next_poll == T0 + 20 * MIN
    (state,) = store.claim_due_sources("i1", T0 + 20 * MIN, limit=1, lease=LEASE)
    assert state.etag == '"v2"'


def test_outcomes_without_the_lease_write_nothing(store: Store) -> None:
    store.sync_sources([spec("a")], T0)
    assert claim_ids(store, instance="i1") == ["a"]
    # i1 stalls past its lease; i2 takes the source over
    assert claim_ids(store, T0 + LEASE, instance="i2") == ["a"]
    before = store.list_sources()
    assert not store.record_failure("a", "i1", T0, kind="timeout", detail="", next_poll_at=T0)
    assert not store.record_not_modified("a", "i1", T0, next_poll_at=T0)
    assert not store.record_not_modified("nope", "i1", T0, next_poll_at=T0)
    assert store.list_sources() == before
    assert store.record_not_modified("a", "i2", T0 + LEASE, next_poll_at=T0 + LEASE)


def test_source_disabled_mid_poll_stays_disabled(store: Store) -> None:
    store.sync_sources([spec("a"), spec("b")], T0)
    claim_ids(store)
    store.sync_sources([spec("b")], T0)
    # disabling releases the lease, so the late report is dropped
    assert not store.record_failure("a", "i1", T0, kind="timeout", detail="", next_poll_at=T0)
    assert store.record_failure("b", "i1", T0, kind="timeout", detail="", next_poll_at=T0)
    assert {v.id: v.status for v in store.list_sources()} == {"a": "disabled", "b": "error"}


def test_url_change_forgets_validators_and_first_poll(store: Store) -> None:
    store.sync_sources([spec("a")], T0)
    ingest(store, "a", [item("a", "k1", "Hello")])
    store.sync_sources([spec("a")], T0)  # unchanged: keeps state
    (state,) = store.claim_due_sources("i1", T0, limit=1, lease=LEASE, include_not_due=True)
    assert state.polled_before
    store.release_instance("i1")
    store.sync_sources([spec("a", url="https://elsewhere.example/rss")], T0)
    (state,) = store.claim_due_sources("i1", T0, limit=1, lease=LEASE, include_not_due=True)
    assert (state.url, state.polled_before) == ("https://elsewhere.example/rss", False)


def test_shorter_interval_brings_the_next_poll_forward(store: Store) -> None:
    store.sync_sources([spec("a", interval=timedelta(hours=6))], T0)
    claim_ids(store)
    store.record_not_modified("a", "i1", T0, next_poll_at=T0 + timedelta(hours=6))
    store.sync_sources([spec("a", interval=timedelta(minutes=10))], T0 + MIN)
    assert store.list_sources()[0].next_poll == T0 + 10 * MIN


def test_list_sources_counts_items(store: Store) -> None:
    store.sync_sources([spec("a"), spec("b")], T0)
    ingest(store, "a", [item("a", "k1", "One"), item("a", "k2", "Two")])
    counts = {v.id: (v.items, v.status, v.last_new_item) for v in store.list_sources()}
    assert counts == {"a": (2, "ok", T0), "b": (0, "new", None)}


@pytest.mark.parametrize("detail_size", [10, 50_000])
def test_failure_detail_is_bounded(store: Store, detail_size: int) -> None:
    store.sync_sources([spec("a")], T0)
    claim_ids(store)
    store.record_failure(
        "a", "i1", T0, kind="parse_error", detail="x" * detail_size, next_poll_at=T0
    )
    detail = store.list_sources()[0].error_detail
    assert detail is not None and len(detail) == min(detail_size, 2000)
