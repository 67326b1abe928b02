"""Several instances on one database: what `monitor status` reads, taking over the leases of an
instance that stopped its heartbeat, a poll whose lease was lost writing nothing, and instances
started together syncing the same new sources."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest

from storage import Store
from tests.storage.storefakes import LEASE, T0, ingest, item, spec
from tests.storage.test_store_concurrency import race

STALE = timedelta(seconds=30)


def needs_several(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("one daemon per SQLite file: registering one drops the others' rows")


def _seed_alerts(store: Store, n: int) -> None:
    """`n` kn23 alerts on source "a", each with pending console and email deliveries; the helper
    leaves no lease behind."""
    store.sync_sources([spec("a")], T0)
    ingest(store, "a", [], now=T0 - timedelta(minutes=1), instance="seed")
    reports = [item("a", f"k{i}", f"KN-23 report {i} {'x' * i}") for i in range(n)]
    result = ingest(store, "a", reports, instance="seed")
    assert result is not None and result.alerts == n


def test_list_instances_counts_the_unexpired_leases_each_holds(store: Store, db_url: str) -> None:
    needs_several(db_url)
    assert store.list_instances(T0) == []
    _seed_alerts(store, 2)
    store.sync_sources([spec(f"s{i}") for i in range(5)], T0)
    store.acquire_instance("old", T0 - timedelta(minutes=10))
    store.acquire_instance("new", T0 - timedelta(minutes=1))
    assert len(store.claim_due_sources("new", T0, limit=3, lease=LEASE)) == 3
    assert len(store.claim_due_sources("old", T0, limit=1, lease=timedelta(seconds=10))) == 1
    jobs = store.claim_deliveries("old", T0, limit=3, lease=LEASE, notifiers=["console", "email"])
    assert len(jobs) == 3

    views = store.list_instances(T0)
    assert [(v.id, v.source_leases, v.delivery_leases) for v in views] == [
        ("old", 1, 3),
        ("new", 3, 0),
    ]
    assert views[0].hostname == socket.gethostname() and views[0].pid == os.getpid()
    assert views[0].started == T0 - timedelta(minutes=10)
    # a lease that ran out is no longer held, even before anyone takes the source
    later = store.list_instances(T0 + timedelta(seconds=11))
    assert [(v.source_leases, v.delivery_leases) for v in later] == [(0, 3), (3, 0)]
    store.release_instance("old")
    assert [v.id for v in store.list_instances(T0)] == ["new"]
    store.release_instance("new")


def test_staleness_is_read_from_the_last_heartbeat(store: Store) -> None:
    store.acquire_instance("i1", T0)
    store.heartbeat("i1", T0 + timedelta(seconds=50))
    (view,) = store.list_instances(T0 + timedelta(seconds=60))
    assert view.heartbeat == T0 + timedelta(seconds=50)
    assert not view.is_stale(T0 + timedelta(seconds=80), STALE)  # exactly 30 s: still alive
    assert view.is_stale(T0 + timedelta(seconds=81), STALE)
    store.release_instance("i1")


def test_a_killed_instance_holds_its_sources_until_the_lease_ends(store: Store) -> None:
    store.sync_sources([spec("s1"), spec("s2")], T0)
    store.acquire_instance("dead", T0)
    store.acquire_instance("alive", T0)
    assert len(store.claim_due_sources("dead", T0, limit=5, lease=LEASE)) == 2
    # "dead" is killed here: it never records a poll nor releases anything
    before_end = T0 + LEASE - timedelta(seconds=1)
    assert store.claim_due_sources("alive", before_end, limit=5, lease=LEASE) == []
    taken = store.claim_due_sources("alive", T0 + LEASE, limit=5, lease=LEASE)
    assert sorted(s.id for s in taken) == ["s1", "s2"]


def test_reaping_a_silent_instance_hands_its_work_over_at_once(store: Store, db_url: str) -> None:
    needs_several(db_url)
    _seed_alerts(store, 3)
    store.sync_sources([spec("a"), spec("s1"), spec("s2")], T0)
    for instance in ("dead", "alive", "quiet"):
        store.acquire_instance(instance, T0)
    assert len(store.claim_due_sources("dead", T0, limit=2, lease=LEASE)) == 2
    notifiers = ["console", "email"]
    assert len(store.claim_deliveries("dead", T0, limit=6, lease=LEASE, notifiers=notifiers)) == 6
    now = T0 + timedelta(seconds=40)
    store.heartbeat("alive", now)
    assert store.claim_deliveries("alive", now, limit=6, lease=LEASE, notifiers=notifiers) == []

    # "quiet" beat 40 s ago as well, but it is the caller: never reaped by itself
    assert store.reap_instances(now, stale_after=STALE, keep="quiet") == ["dead"]
    assert store.reap_instances(now, stale_after=STALE, keep="quiet") == []  # once only
    assert [v.id for v in store.list_instances(now)] == ["alive", "quiet"]
    assert len(store.claim_deliveries("alive", now, limit=6, lease=LEASE, notifiers=notifiers)) == 6
    assert sorted(s.id for s in store.claim_due_sources("alive", now, limit=5, lease=LEASE)) == [
        "s1",
        "s2",
    ]
    # a live instance's leases are left alone by a reap
    assert store.reap_instances(now, stale_after=STALE, keep="alive") == ["quiet"]
    views = store.list_instances(now)
    assert [(v.id, v.source_leases, v.delivery_leases) for v in views] == [("alive", 2, 6)]


def test_a_poll_whose_lease_was_taken_over_writes_nothing(store: Store) -> None:
    store.sync_sources([spec("a")], T0)
    ingest(store, "a", [], now=T0 - timedelta(minutes=1), instance="slow")  # first poll done
    short = timedelta(seconds=30)
    assert len(store.claim_due_sources("slow", T0, limit=1, lease=short, include_not_due=True)) == 1
    late = T0 + short  # "slow" is still fetching; its lease has run out and "fast" takes over
    assert len(store.claim_due_sources("fast", late, limit=1, lease=short, include_not_due=True))

    report = item("a", "k1", "KN-23 launched at Kharkiv")
    lost = ingest(store, "a", [report], now=late, instance="slow", claim=False)
    assert lost is None
    assert not store.record_not_modified("a", "slow", late, next_poll_at=late + LEASE)
    assert not store.record_failure(
        "a", "slow", late, kind="timeout", detail="slow", next_poll_at=late + LEASE
    )
    (source,) = store.list_sources()
    assert source.items == 0 and source.status == "ok" and source.last_instance == "slow"

    won = ingest(store, "a", [report], now=late, instance="fast", claim=False)
    assert won is not None and won.new_items == 1 and won.alerts == 1
    # once "fast" recorded its poll the lease is free, and "slow" still cannot write
    assert ingest(store, "a", [report], now=late, instance="slow", claim=False) is None
    assert len(store.list_alerts(T0)) == 1


def test_a_reaped_instance_that_was_only_slow_writes_nothing(store: Store) -> None:
    store.sync_sources([spec("a")], T0)
    store.acquire_instance("frozen", T0)
    assert len(store.claim_due_sources("frozen", T0, limit=1, lease=LEASE)) == 1
    now = T0 + timedelta(minutes=1)
    assert store.reap_instances(now, stale_after=STALE, keep="other") == ["frozen"]
    # nobody polled the source yet; the frozen poll reporting late still does not count
    report = item("a", "k1", "KN-23 launched at Kharkiv")
    assert ingest(store, "a", [report], now=now, instance="frozen", claim=False) is None
    assert store.list_sources()[0].items == 0


def test_instances_started_together_sync_the_same_new_sources(store: Store, db_url: str) -> None:
    specs = [spec(f"s{i:03}") for i in range(200)]

    def start(instance: str) -> list[str]:
        other = Store.open(db_url)
        try:
            other.sync_sources(specs, T0)
        finally:
            other.close()
        return []

    race(3, start)
    assert [s.id for s in store.list_sources()] == [s.id for s in specs]
