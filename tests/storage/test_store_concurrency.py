"""Several daemons on one database: the SQLite instance lock, and claims that never overlap."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.errors import StorageError
from storage import Store
from tests.storage.storefakes import LEASE, T0, ingest, item, spec

REPO = Path(__file__).resolve().parents[2]

HOLD_LOCK = """
import sys
from datetime import UTC, datetime
from storage import Store
store = Store.open(sys.argv[1])
try:
    store.acquire_instance("other", datetime.now(UTC))
except Exception as error:
    print(error)
    sys.exit(3)
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin
store.close()
"""


def run_other(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, url],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_second_instance_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    with run_other(url) as other:
        assert other.stdout is not None and other.stdin is not None
        assert other.stdout.readline().strip() == "locked"
        store = Store.open(url)
        try:
            with pytest.raises(StorageError) as refused:
                store.acquire_instance("me", T0)
            expected = f"another monitor instance (pid {other.pid}) is running on "
            assert str(refused.value).startswith(expected)
            assert str(refused.value).endswith("monitor.db")
            store.list_sources()  # read-only use needs no lock
        finally:
            store.close()
        other.stdin.close()
        assert other.wait(timeout=30) == 0
    # the other process is gone, and its lock with it
    store = Store.open(url)
    try:
        store.acquire_instance("me", T0)
        with run_other(url) as blocked:
            out, _ = blocked.communicate(timeout=30)
        assert blocked.returncode == 3 and "another monitor instance" in out
        store.release_instance("me")
    finally:
        store.close()


def instance_rows(db_url: str) -> list[tuple[str, int, datetime, datetime]]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            query = "SELECT id, pid, started_at, heartbeat_at FROM instances ORDER BY id"
            return [tuple(row) for row in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


def test_acquire_heartbeat_release_cycle(store: Store, db_url: str) -> None:
    store.acquire_instance("i1", T0)
    store.acquire_instance("i1", T0)  # re-acquiring one's own instance is harmless
    store.heartbeat("i1", T0 + timedelta(seconds=30))
    ((iid, pid, started, beat),) = instance_rows(db_url)
    assert (iid, pid) == ("i1", os.getpid())
    assert str(started)[:19] == "2026-03-01 12:00:00" and str(beat)[:19] == "2026-03-01 12:00:30"
    store.release_instance("i1")
    assert instance_rows(db_url) == []
    store.acquire_instance("i1", T0 + timedelta(minutes=1))
    assert len(instance_rows(db_url)) == 1
    store.release_instance("i1")


def race(workers: int, work: Callable[[str], list[str]]) -> list[list[str]]:
    """Run `work(instance_id)` in several threads released at the same moment."""
    barrier = threading.Barrier(workers)
    results: list[list[str]] = [[] for _ in range(workers)]
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait()
            results[n] = work(f"i{n}")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    return results


def test_concurrent_source_claims_never_overlap(store: Store) -> None:
    ids = [f"s{n:03}" for n in range(60)]
    store.sync_sources([spec(i) for i in ids], T0)

    def work(instance: str) -> list[str]:
        got: list[str] = []
        while batch := store.claim_due_sources(instance, T0, limit=3, lease=LEASE):
            got.extend(s.id for s in batch)
        return got

    results = race(3, work)
    claimed = [i for r in results for i in r]
    assert sorted(claimed) == ids  # each source handed out exactly once


def test_concurrent_delivery_claims_never_overlap(store: Store) -> None:
    store.sync_sources([spec("a")], T0)
    ingest(store, "a", [], now=T0 - timedelta(minutes=1))
    batch = [item("a", f"k{n}", f"KN-23 report number {n} {'x' * n}") for n in range(20)]
    ingest(store, "a", batch)

    def work(instance: str) -> list[str]:
        got: list[str] = []
        while jobs := store.claim_deliveries(
            instance, T0, limit=2, lease=LEASE, notifiers=["console", "email"]
        ):
            got.extend(str(job.delivery_id) for job in jobs)
        return got

    claimed = [d for r in race(3, work) for d in r]
    assert len(claimed) == 40 and len(set(claimed)) == 40


def test_simultaneous_reports_of_one_story_alert_once(store: Store) -> None:
    """Two instances store two sources' reports of one story at the same moment, eight times."""
    store.sync_sources([spec("a"), spec("b")], T0)
    for source in ("a", "b"):
        ingest(store, source, [], now=T0 - timedelta(minutes=1))
    store.release_instance("i1")  # the helper leased every source to i1
    rounds = 8
    for r in range(rounds):
        now = T0 + timedelta(minutes=r)
        holder: dict[str, str] = {}
        for instance in ("i0", "i1"):
            (state,) = store.claim_due_sources(
                instance, now, limit=1, lease=LEASE, include_not_due=True
            )
            holder[instance] = state.id

        def work(
            instance: str, now: datetime = now, r: int = r, holder: dict[str, str] = holder
        ) -> list[str]:
            source = holder[instance]
            link = f"https://news.example/story-{r}"
            report = item(source, f"{source}{r}", f"KN-23 story {r} by {source}", link=link)
            result = ingest(store, source, [report], now=now, instance=instance, claim=False)
            assert result is not None and result.new_items == 1
            return []

        race(2, work)
    alerts = store.list_alerts(T0)
    assert len(alerts) == rounds  # one kn23 alert per story, whichever source stored it first
    assert all(len(a.also) == 1 for a in alerts)


def test_sqlite_restart_after_a_kill_takes_back_the_dead_instances_leases(tmp_path: Path) -> None:
    """A SIGKILLed daemon never releases its leases; the next one on the same SQLite file holds the
    exclusive lock, so it knows the old one is gone and must not wait the leases out."""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    first = Store.open(url)
    first.acquire_instance("dead", T0)
    first.sync_sources([spec("s1")], T0)
    assert [s.id for s in first.claim_due_sources("dead", T0, limit=5, lease=LEASE)] == ["s1"]
    first._release_lock()  # as the kernel does for a killed process: the lock goes, rows stay
    first.close()

    second = Store.open(url)
    try:
        assert second.claim_due_sources("alive", T0, limit=5, lease=LEASE) == []  # lease still held
        second.acquire_instance("alive", T0)
        assert [s.id for s in second.claim_due_sources("alive", T0, limit=5, lease=LEASE)] == ["s1"]
    finally:
        second.release_instance("alive")
        second.close()
