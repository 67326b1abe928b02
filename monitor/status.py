"""`monitor status`: the daemons running on this database, and how an instance proves it is alive.

Every daemon writes a heartbeat every HEARTBEAT_EVERY; one silent for STALE_AFTER is presumed dead
(killed, frozen, or cut off from the database), and the others release its leases and take its work
over (docs/scaling.md). Six missed heartbeats leave room for a slow database without letting a dead
instance's deliveries wait out their whole lease.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from monitor.config import Config
from storage import InstanceView, Store

HEARTBEAT_EVERY = timedelta(seconds=5)
STALE_AFTER = timedelta(seconds=30)


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def instance_json(view: InstanceView, now: datetime) -> dict[str, Any]:
    return {
        "id": view.id,
        "host": view.hostname,
        "pid": view.pid,
        "started": _iso(view.started),
        "last_heartbeat": _iso(view.heartbeat),
        "heartbeat_age": round((now - view.heartbeat).total_seconds(), 1),
        "source_leases": view.source_leases,
        "delivery_leases": view.delivery_leases,
        "stale": view.is_stale(now, STALE_AFTER),
    }


def print_status(config: Config, *, as_json: bool, now: datetime | None = None) -> None:
    """Print the registered instances as a table, or as a JSON array with `as_json`."""
    now = now or datetime.now(UTC)
    store = Store.open(config.database)
    try:
        views = store.list_instances(now)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([instance_json(v, now) for v in views], indent=2))
        return
    click.echo(
        f"{'INSTANCE':<40} {'HOST':<16} {'PID':>7}  {'STARTED':<19}  {'HEARTBEAT':>9}  "
        f"{'SOURCES':>7} {'DELIVERIES':>10}"
    )
    for v in views:
        age = f"{int((now - v.heartbeat).total_seconds())}s ago"
        mark = "  STALE" if v.is_stale(now, STALE_AFTER) else ""
        click.echo(
            f"{v.id[:40]:<40} {v.hostname[:16]:<16} {v.pid:>7}  "
            f"{v.started.strftime('%Y-%m-%d %H:%M:%S'):<19}  {age:>9}  "
            f"{v.source_leases:>7} {v.delivery_leases:>10}{mark}"
        )
    stale = sum(v.is_stale(now, STALE_AFTER) for v in views)
    click.echo(f"{len(views)} instances, {len(views) - stale} live, {stale} stale")
