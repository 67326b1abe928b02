"""The Store: the storage API the daemon and the CLI use. Thread-safe: every method runs in its own
connection and transaction, so the daemon may call it from worker threads (asyncio.to_thread).

Its methods for polling sources are in _store_polls.py, those for deliveries in
_store_deliveries.py."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from monitor.errors import StorageError

from . import _health, _instances, _retention, _sources, _views
from ._engine import Database, sqlite_path
from ._instances import InstanceView
from ._lock import InstanceLock
from ._schema import instances
from ._store_deliveries import DeliveryStore
from ._store_polls import PollStore
from ._types import AlertView, HealthChange, HealthEvent, HealthText, SourceView


class Store(PollStore, DeliveryStore):
    def __init__(self, db: Database) -> None:
        self._db = db
        path = sqlite_path(db.url)
        self._lock = InstanceLock(path.resolve()) if path is not None else None
        self._lock_guard = threading.Lock()

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect, set SQLite pragmas and migrate the schema to the newest revision.
        Raises StorageError with the reason (the URL's password never appears)."""
        return cls(Database.open(url))

    def close(self) -> None:
        with self._lock_guard:
            if self._lock is not None:
                self._lock.release()
        self._db.close()

    # -- instances ---------------------------------------------------------------------------------

    def acquire_instance(self, instance_id: str, now: datetime) -> None:
        """Register this daemon. On SQLite also take the file's exclusive lock: one daemon per
        database file. Read-only commands never call this."""
        with self._lock_guard:
            if self._lock is not None:
                self._lock.acquire()
        try:
            with self._db.write("cannot register the instance") as conn:
                _instances.register(conn, instance_id, now, take_over=self._lock is not None)
        except BaseException:
            self._release_lock()
            raise

    def heartbeat(self, instance_id: str, now: datetime) -> None:
        with self._db.write("cannot record the heartbeat") as conn:
            conn.execute(
                instances.update().where(instances.c.id == instance_id).values(heartbeat_at=now)
            )

    def release_instance(self, instance_id: str) -> None:
        """Unregister, and hand back this instance's leases so a restart need not wait them out."""
        try:
            with self._db.write("cannot release the instance") as conn:
                _instances.release(conn, instance_id)
        finally:
            self._release_lock()

    def list_instances(self, now: datetime) -> list[InstanceView]:
        """Registered instances, oldest first, with the leases each holds at `now`."""
        with self._db.read("cannot read instances") as conn:
            return _instances.list_instances(conn, now)

    def reap_instances(self, now: datetime, *, stale_after: timedelta, keep: str) -> list[str]:
        """Unregister every instance (but `keep`) with no heartbeat for `stale_after`, and release
        its leases so the others take its work over now; returns their ids."""
        with self._db.write("cannot reap instances") as conn:
            return _instances.reap(conn, now, stale_after, keep)

    def _release_lock(self) -> None:
        with self._lock_guard:
            if self._lock is not None:
                self._lock.release()

    # -- source health -----------------------------------------------------------------------------

    def check_health(
        self,
        now: datetime,
        *,
        failing_after: timedelta | None,
        silent_after: timedelta | None,
        notify: Sequence[str],
        describe: Callable[[HealthChange], HealthText],
    ) -> list[HealthEvent]:
        """Raise one system alert (rule id "health") for each source that has failed for
        `failing_after` or had no new item for `silent_after`, and one when it recovers; None or
        zero switches a check off. Alerts and their pending deliveries (one per `notify` notifier)
        are written in one transaction. Each alert happens once however many instances check;
        returns those this call raised."""
        if now.tzinfo is None:  # compared with stored times in Python, not only bound to SQL
            raise StorageError(
                f"naive datetime {now!r}: storage takes timezone-aware datetimes only"
            )
        check = _health.Check(now, failing_after, silent_after, notify, describe)
        with self._db.write("cannot check source health") as conn:
            return _health.check_health(self._db, conn, check)

    # -- reading and retention ---------------------------------------------------------------------

    def list_sources(self) -> list[SourceView]:
        with self._db.read("cannot read sources") as conn:
            return _sources.list_sources(conn)

    def list_alerts(self, since: datetime, *, limit: int | None = None) -> list[AlertView]:
        """Alerts created at or after `since`, newest first."""
        with self._db.read("cannot read alerts") as conn:
            return _views.list_alerts(conn, since, limit)

    def prune(
        self, now: datetime, retention: timedelta, *, story_window: timedelta | None = None
    ) -> int:
        """Turn items no fetch has listed since now - retention into tombstones (never what a
        source's latest fetch listed); drop story keys older than `story_window` (the dedup
        window), which only serve lookups within it. Returns how many items were pruned."""
        with self._db.write("cannot prune") as conn:
            return _retention.prune(conn, now, retention, story_window)
