"""The Store: the storage API the daemon and the CLI use. Thread-safe: every method runs in its own
connection and transaction, so the daemon may call it from worker threads (asyncio.to_thread)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta

from monitor.errors import StorageError
from monitor.model import AlertMessage, Item
from rules.ast import RuleMatch

from . import _deliveries, _fetchstate, _health, _ingest, _instances, _retention, _sources, _views
from ._engine import Database, sqlite_path
from ._fetchstate import Redirect
from ._instances import InstanceView
from ._lock import InstanceLock
from ._schema import deliveries, instances, sources
from ._sources import UnchangedPoll
from ._types import (
    AlertView,
    DeliveryJob,
    HealthChange,
    HealthEvent,
    HealthText,
    IngestResult,
    SourceSpec,
    SourceState,
    SourceView,
    StoryMatcher,
)


class Store:
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
                values = {
                    "hostname": socket.gethostname(),
                    "pid": os.getpid(),
                    "started_at": now,
                    "heartbeat_at": now,
                }
                where = instances.c.id == instance_id
                if self._lock is not None:
                    # Holding the file's exclusive lock proves every other instance is gone
                    # (stopped or killed): their leases are stale, and waiting them out would only
                    # delay alerts.
                    conn.execute(instances.delete().where(instances.c.id != instance_id))
                    for table in (sources, deliveries):
                        conn.execute(
                            table.update()
                            .where(table.c.lease_owner.is_not(None))
                            .values(lease_owner=None, lease_until=None)
                        )
                if conn.execute(instances.update().where(where).values(values)).rowcount == 0:
                    conn.execute(instances.insert().values({**values, "id": instance_id}))
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
                conn.execute(instances.delete().where(instances.c.id == instance_id))
                for table in (sources, deliveries):
                    conn.execute(
                        table.update()
                        .where(table.c.lease_owner == instance_id)
                        .values(lease_owner=None, lease_until=None)
                    )
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

    # -- sources -----------------------------------------------------------------------------------

    def sync_sources(self, specs: Sequence[SourceSpec], now: datetime) -> None:
        """Insert new sources (status new, due now), update changed ones, disable those gone from
        the config (their history is kept)."""
        with self._db.write("cannot sync sources") as conn:
            _instances.lock_sync(self._db, conn)
            _sources.sync_sources(conn, specs, now)

    def claim_due_sources(
        self,
        instance_id: str,
        now: datetime,
        *,
        limit: int,
        lease: timedelta,
        include_not_due: bool = False,
    ) -> list[SourceState]:
        """Lease up to `limit` due sources (earliest first) to this instance."""
        with self._db.write("cannot claim sources") as conn:
            return _sources.claim_due_sources(
                self._db,
                conn,
                instance_id,
                now,
                limit=limit,
                lease=lease,
                include_not_due=include_not_due,
            )

    def record_not_modified(
        self,
        source_id: str,
        instance_id: str,
        now: datetime,
        *,
        next_poll_at: datetime,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> bool:
        """A poll that brought nothing new (304, or an unchanged body). False, and nothing written,
        when this instance no longer holds the lease."""
        with self._db.write("cannot record the poll") as conn:
            return _sources.record_not_modified(
                conn,
                source_id,
                instance_id,
                now,
                next_poll_at=next_poll_at,
                etag=etag,
                last_modified=last_modified,
            )

    def record_not_modified_many(
        self, instance_id: str, polls: Sequence[UnchangedPoll]
    ) -> set[str]:
        """Many polls that brought nothing new, in one transaction (one entry per source): the
        daemon's unchanged polls cost one write for a batch, not one each. Returns the ids
        written; a source whose lease this instance lost is left as it was, as by
        record_not_modified."""
        if not polls:
            return set()
        with self._db.write("cannot record the polls") as conn:
            return _sources.record_not_modified_many(conn, instance_id, polls)

    def record_failure(
        self,
        source_id: str,
        instance_id: str,
        now: datetime,
        *,
        kind: str,
        detail: str,
        next_poll_at: datetime,
        count: bool = True,
    ) -> bool:
        """A failed poll. `count=False`: the failure was not the source's (our network was down),
        so its kind is shown but consecutive failures and the failing episode are left as they
        were. False, and nothing written, when this instance lost the lease."""
        with self._db.write("cannot record the failure") as conn:
            return _sources.record_failure(
                conn,
                source_id,
                instance_id,
                now,
                kind=kind,
                detail=detail,
                next_poll_at=next_poll_at,
                count=count,
            )

    def record_gone(self, source_id: str, instance_id: str, now: datetime, *, detail: str) -> bool:
        """HTTP 410: status `gone`, never claimed again until the config gives the source a new
        URL. False, and nothing written, when this instance lost the lease."""
        with self._db.write("cannot record the failure") as conn:
            return _fetchstate.record_gone(conn, source_id, instance_id, now, detail=detail)

    def record_rate_limited(
        self,
        source_id: str,
        instance_id: str,
        now: datetime,
        *,
        kind: str,
        detail: str,
        next_poll_at: datetime,
    ) -> bool:
        """The source's host asked us to wait (429/503 with Retry-After): status `rate_limited`,
        not counted as a failure. False, and nothing written, when this instance lost the lease."""
        with self._db.write("cannot record the poll") as conn:
            return _fetchstate.record_rate_limited(
                conn,
                source_id,
                instance_id,
                now,
                kind=kind,
                detail=detail,
                next_poll_at=next_poll_at,
            )

    def defer_host(self, origin: str, until: datetime) -> list[str]:
        """Pause a host: every polled source whose URL is on the host (and port) of `origin` is
        due at `until` at the earliest. Returns their ids."""
        with self._db.write("cannot defer the host's sources") as conn:
            return _fetchstate.defer_host(conn, origin, until)

    def note_permanent_redirect(
        self,
        source_id: str,
        instance_id: str,
        now: datetime,
        *,
        polled: str,
        target: str,
        move_after: int = _fetchstate.MOVE_AFTER,
    ) -> Redirect | None:
        """A successful poll of `polled` was permanently redirected (301/308) to `target`. The
        same target on `move_after` successful polls in a row moves the source: it is polled at
        `target` until its URL changes in the config. Call before recording the poll's success,
        with the same `now`. None when the lease or the URL changed meanwhile."""
        with self._db.write("cannot record the redirect") as conn:
            return _fetchstate.note_redirect(
                conn,
                source_id,
                instance_id,
                now,
                polled=polled,
                target=target,
                move_after=move_after,
            )

    def moved_sources(self) -> dict[str, str]:
        """Source id -> the URL polled instead of the config's, for sources that moved."""
        with self._db.read("cannot read sources") as conn:
            return _fetchstate.moved_sources(conn)

    def ingest(
        self,
        source_id: str,
        instance_id: str,
        *,
        now: datetime,
        items: Sequence[Item],
        etag: str | None,
        last_modified: str | None,
        body_hash: str | None,
        next_poll_at: datetime,
        backfill: timedelta,
        matcher: Callable[[Item], Sequence[RuleMatch]],
        route: Callable[[RuleMatch], Sequence[str]],
        stories: StoryMatcher,
        dedup_window: timedelta,
        rule_titles: Mapping[str, str] | None = None,
        feed_ttl: float | None = None,
    ) -> IngestResult | None:
        """Store one successful poll in one transaction: new items and edits, story grouping,
        alerts (one per rule per story) and their pending deliveries, source state (`feed_ttl`:
        the body's <ttl> in seconds, which later unchanged polls keep honouring). None, and
        nothing written, when this instance no longer holds the lease."""
        poll = _ingest.Poll(
            source_id=source_id,
            instance_id=instance_id,
            now=now,
            items=items,
            etag=etag,
            last_modified=last_modified,
            body_hash=body_hash,
            next_poll_at=next_poll_at,
            backfill=backfill,
            matcher=matcher,
            route=route,
            stories=stories,
            dedup_window=dedup_window,
            rule_titles=rule_titles or {},
            feed_ttl=feed_ttl,
        )
        with self._db.write(f"cannot store the poll of {source_id}") as conn:
            return _ingest.ingest(self._db, conn, poll)

    # -- deliveries --------------------------------------------------------------------------------

    def claim_deliveries(
        self,
        instance_id: str,
        now: datetime,
        *,
        limit: int,
        lease: timedelta,
        notifiers: Collection[str],
    ) -> list[DeliveryJob]:
        """Lease up to `limit` due pending deliveries for these notifiers, earliest first."""
        with self._db.write("cannot claim deliveries") as conn:
            return _deliveries.claim_deliveries(
                self._db, conn, instance_id, now, limit=limit, lease=lease, notifiers=notifiers
            )

    def alert_message(self, alert_id: int, *, notifier: str | None = None) -> AlertMessage | None:
        """One stored alert as `notifier` is handed it (threaded under its story's first message
        through that notifier), for previews; None when no alert has this id."""
        with self._db.read("cannot read the alert") as conn:
            return _views.alert_message(conn, alert_id, notifier)

    def mark_sent(self, delivery_id: int, now: datetime, *, message_id: str | None = None) -> None:
        values = {
            "status": "sent",
            "sent_at": now,
            "message_id": message_id,
            "next_attempt_at": None,
        }
        self._mark(delivery_id, values, attempted=True)

    def mark_retry(
        self,
        delivery_id: int,
        now: datetime,
        *,
        next_attempt_at: datetime,
        error: str,
        attempted: bool = True,
        instance_id: str | None = None,
    ) -> None:
        """Try again at `next_attempt_at`; attempted=False hands back a delivery that was claimed
        but not tried (its batch stopped at an outage), without counting an attempt. With
        `instance_id`, nothing changes once another instance holds the lease."""
        values = {"next_attempt_at": next_attempt_at, "last_error": error}
        self._mark(delivery_id, values, attempted=attempted, owner=instance_id)

    def mark_failed(
        self, delivery_id: int, now: datetime, *, error: str, attempted: bool = True
    ) -> None:
        """The receiver refused for good (or, with attempted=False, it cannot be sent at all)."""
        values = {"status": "failed", "last_error": error, "next_attempt_at": None}
        self._mark(delivery_id, values, attempted=attempted)

    def mark_dead(
        self, delivery_id: int, now: datetime, *, error: str, attempted: bool = True
    ) -> None:
        """Gave up after retrying for too long."""
        values = {"status": "dead", "last_error": error, "next_attempt_at": None}
        self._mark(delivery_id, values, attempted=attempted)

    def _mark(
        self,
        delivery_id: int,
        values: Mapping[str, object],
        *,
        attempted: bool,
        owner: str | None = None,
    ) -> None:
        with self._db.write("cannot record the delivery") as conn:
            _deliveries.mark(conn, delivery_id, dict(values), attempted=attempted, owner=owner)

    def next_delivery_at(self) -> datetime | None:
        """When the earliest pending delivery can next be claimed; None when none is pending."""
        with self._db.read("cannot read deliveries") as conn:
            return _deliveries.next_delivery_at(conn)

    def oldest_pending(self, notifier: str) -> datetime | None:
        """Creation time of the oldest delivery still pending for `notifier`; None when none is."""
        with self._db.read("cannot read deliveries") as conn:
            return _deliveries.oldest_pending(conn, notifier)

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
