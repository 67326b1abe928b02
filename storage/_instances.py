"""Several daemons on one database: who is running, what each holds, and taking over the leases of
an instance that stopped proving it is alive.

A lease alone already hands a dead instance's work to the others, but only once it runs out (a
delivery lease lasts minutes). Heartbeats let the survivors act sooner: an instance whose last
heartbeat is older than `stale_after` is presumed dead, its row is removed and its leases are
released. Should it be alive after all (a long stall), nothing it writes later counts: ingest and
the poll records only write while `lease_owner` names their instance.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ._engine import Database
from ._schema import deliveries, instances, sources

# Any constant shared by every process of this application ("srcmon" + 3; +0..+2 are taken by the
# migration, story and health locks).
_SYNC_LOCK_KEY = 0x7372636D6F6E + 3


@dataclass(frozen=True)
class InstanceView:
    """One registered daemon, for `monitor status`."""

    id: str
    hostname: str
    pid: int
    started: datetime
    heartbeat: datetime
    source_leases: int  # sources it is polling now (unexpired leases)
    delivery_leases: int  # deliveries it is sending now (unexpired leases)

    def is_stale(self, now: datetime, after: timedelta) -> bool:
        """No heartbeat for `after`: presumably killed, or cut off from the database."""
        return now - self.heartbeat > after


def register(conn: Connection, instance_id: str, now: datetime, *, take_over: bool) -> None:
    """Insert or refresh this instance's row. `take_over`: the caller holds the database file's
    exclusive lock."""
    values = {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": now,
        "heartbeat_at": now,
    }
    where = instances.c.id == instance_id
    if take_over:
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


def release(conn: Connection, instance_id: str) -> None:
    """Remove this instance's row and hand back its leases."""
    conn.execute(instances.delete().where(instances.c.id == instance_id))
    for table in (sources, deliveries):
        conn.execute(
            table.update()
            .where(table.c.lease_owner == instance_id)
            .values(lease_owner=None, lease_until=None)
        )


def list_instances(conn: Connection, now: datetime) -> list[InstanceView]:
    held = {
        name: _lease_counts(conn, table, now)
        for name, table in (("sources", sources), ("deliveries", deliveries))
    }
    rows = conn.execute(sa.select(instances).order_by(instances.c.started_at, instances.c.id))
    return [
        InstanceView(
            id=row.id,
            hostname=row.hostname,
            pid=row.pid,
            started=row.started_at,
            heartbeat=row.heartbeat_at,
            source_leases=held["sources"].get(row.id, 0),
            delivery_leases=held["deliveries"].get(row.id, 0),
        )
        for row in rows
    ]


def _lease_counts(conn: Connection, table: sa.Table, now: datetime) -> dict[str, int]:
    query = (
        sa.select(table.c.lease_owner, sa.func.count().label("n"))
        .where(table.c.lease_owner.is_not(None), table.c.lease_until > now)
        .group_by(table.c.lease_owner)
    )
    return {row.lease_owner: int(row.n) for row in conn.execute(query)}


def reap(conn: Connection, now: datetime, stale_after: timedelta, keep: str) -> list[str]:
    """Remove the instances silent for longer than `stale_after` (never `keep`, the caller) and
    release their leases. Two instances reaping at once each get the rows they removed: the loser
    waits on the row locks and then finds them gone."""
    gone = [
        row.id
        for row in conn.execute(
            instances.delete()
            .where(instances.c.heartbeat_at < now - stale_after, instances.c.id != keep)
            .returning(instances.c.id)
        )
    ]
    if gone:
        for table in (sources, deliveries):
            conn.execute(
                table.update()
                .where(table.c.lease_owner.in_(gone))
                .values(lease_owner=None, lease_until=None)
            )
    return sorted(gone)


def lock_sync(db: Database, conn: Connection) -> None:
    """Serialise syncing the sources with the config until the transaction ends. Instances started
    together would otherwise each find a new source missing and each insert it: all but one fail on
    the primary key. SQLite's BEGIN IMMEDIATE already admits one writer at a time."""
    if db.dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SYNC_LOCK_KEY})
