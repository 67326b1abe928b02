"""Poll outcomes beyond plain success and failure: a source that moved (the same permanent redirect
on 3 successful polls in a row), one that is gone (HTTP 410), one whose host rate-limited it, and a
whole host paused until the time it asked for.

- Moved: the config's URL stays in `url`; the daemon polls `moved_to` instead until the config's
  URL changes, so a restart keeps the move and editing config.yaml ends it.
- Gone: never polled again until its URL changes in the config; then it is a new feed.
- Rate-limited: not a failure (the host is busy, the feed is fine), so no backoff and no failing
  episode; the source waits, and so does every other source on that host.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ._engine import chunks
from ._schema import UTCDateTime, sources

MOVE_AFTER = 3  # successful polls in a row that must agree before a source's URL changes
NOT_POLLED = ("disabled", "gone")
_DETAIL_MAX = 2000
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Redirect:
    """A permanent redirect (301/308) seen on a successful poll."""

    target: str
    seen: int  # successful polls in a row, this one included, permanently redirected to `target`
    moved: bool  # this poll completed the run: the source is polled at `target` from now on


def _status(outcome: str) -> sa.ColumnElement[str]:
    # A source disabled while one of its polls was in flight stays disabled when that poll reports.
    return sa.case((sources.c.status == "disabled", "disabled"), else_=sa.literal(outcome))


def _first(column: sa.Column[datetime], now: datetime) -> sa.ColumnElement[datetime]:
    return sa.func.coalesce(column, sa.literal(now, UTCDateTime), type_=UTCDateTime)


def _held(source_id: str, instance_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(sources.c.id == source_id, sources.c.lease_owner == instance_id)


def polled_url(url: str, moved_to: str | None) -> str:
    """The URL the daemon fetches for a source: where it moved, else the config's."""
    return moved_to or url


def host_key(url: str) -> str | None:
    """`host:port` of a URL (default ports filled in, IDN hosts in ASCII), to find the sources
    that share a host; None for a URL without one."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    with contextlib.suppress(UnicodeError):  # not a valid IDN: compared as written
        host = host.encode("idna").decode("ascii")
    return f"{host}:{port or _DEFAULT_PORTS.get(parts.scheme.lower(), '')}"


def sync_changes(row: Row[Any], url: str, now: datetime) -> dict[str, Any]:
    """What syncing with the config changes in a source's fetch state. A new URL in the config ends
    a move and any run of redirects, and brings a gone source back, as a new feed."""
    gone = row.status == "gone" or (row.status == "disabled" and row.error_kind == "gone")
    if row.url == url:
        return {"status": "gone"} if gone else {}
    changes: dict[str, Any] = {
        "moved_to": None,
        "redirect_to": None,
        "redirect_count": 0,
        "redirect_seen_at": None,
    }
    if gone:
        changes.update(
            status="new",
            error_kind=None,
            error_detail=None,
            consecutive_failures=0,
            failing_since=None,
            next_poll_at=now,
        )
    return changes


def note_redirect(
    conn: Connection,
    source_id: str,
    instance_id: str,
    now: datetime,
    *,
    polled: str,
    target: str,
    move_after: int = MOVE_AFTER,
) -> Redirect | None:
    """Count a permanent redirect seen by the poll of `polled`, made at `now`; that poll's success
    must be recorded with the same `now` afterwards. None, and nothing written, when the lease is
    lost or the source's URL changed meanwhile."""
    row = conn.execute(
        sa.select(
            sources.c.url,
            sources.c.moved_to,
            sources.c.redirect_to,
            sources.c.redirect_count,
            sources.c.redirect_seen_at,
            sources.c.last_success_at,
        ).where(_held(source_id, instance_id))
    ).first()
    if row is None or polled_url(row.url, row.moved_to) != polled:
        return None
    # In a row: the previous successful poll is the one that saw this redirect. A successful poll
    # that was not redirected has since moved last_success_at past it; failed polls change neither.
    in_a_row = (
        row.redirect_to == target
        and row.redirect_seen_at is not None
        and row.redirect_seen_at == row.last_success_at
    )
    seen = row.redirect_count + 1 if in_a_row else 1
    moved = seen >= move_after
    values: dict[str, Any] = {
        "redirect_to": target,
        "redirect_count": seen,
        "redirect_seen_at": now,
    }
    if moved:
        values = {"redirect_to": None, "redirect_count": 0, "redirect_seen_at": None}
        values["moved_to"] = None if target == row.url else target
    conn.execute(sources.update().where(_held(source_id, instance_id)).values(values))
    return Redirect(target=target, seen=seen, moved=moved)


def record_gone(
    conn: Connection, source_id: str, instance_id: str, now: datetime, *, detail: str
) -> bool:
    """HTTP 410: the source is `gone` and is not polled again until its URL changes in the config.
    It counts as a failure, so the health check reports it once it has been gone long enough."""
    result = conn.execute(
        sources.update()
        .where(_held(source_id, instance_id))
        .values(
            status=_status("gone"),
            error_kind="gone",
            error_detail=detail[:_DETAIL_MAX],
            consecutive_failures=sources.c.consecutive_failures + 1,
            failing_since=_first(sources.c.failing_since, now),
            first_poll_at=_first(sources.c.first_poll_at, now),
            last_poll_at=now,
            last_instance=instance_id,
            lease_owner=None,
            lease_until=None,
        )
    )
    return result.rowcount == 1


def record_rate_limited(
    conn: Connection,
    source_id: str,
    instance_id: str,
    now: datetime,
    *,
    kind: str,
    detail: str,
    next_poll_at: datetime,
) -> bool:
    """The host asked us to wait: shown as `rate_limited` with the answer's kind, without counting
    a failure (no backoff growth, no failing episode started)."""
    result = conn.execute(
        sources.update()
        .where(_held(source_id, instance_id))
        .values(
            status=_status("rate_limited"),
            error_kind=kind,
            error_detail=detail[:_DETAIL_MAX],
            first_poll_at=_first(sources.c.first_poll_at, now),
            last_poll_at=now,
            next_poll_at=next_poll_at,
            last_instance=instance_id,
            lease_owner=None,
            lease_until=None,
        )
    )
    return result.rowcount == 1


def defer_host(conn: Connection, origin: str, until: datetime) -> list[str]:
    """Move the next poll of every polled source on the host of `origin` to `until` at the
    earliest; returns their ids. Hosts are compared in Python: a pause is rare, a host column
    would have to follow every move and config edit."""
    key = host_key(origin)
    if key is None:
        return []
    rows = conn.execute(
        sa.select(sources.c.id, sources.c.url, sources.c.moved_to).where(
            sources.c.status.not_in(NOT_POLLED), sources.c.next_poll_at < until
        )
    )
    ids: Sequence[str] = [
        row.id for row in rows if host_key(polled_url(row.url, row.moved_to)) == key
    ]
    for part in chunks(ids):
        conn.execute(
            sources.update()
            .where(sources.c.id.in_(part), sources.c.next_poll_at < until)
            .values(next_poll_at=until)
        )
    return list(ids)


def moved_sources(conn: Connection) -> dict[str, str]:
    rows = conn.execute(
        sa.select(sources.c.id, sources.c.moved_to).where(sources.c.moved_to.is_not(None))
    )
    return {row.id: row.moved_to for row in rows}
