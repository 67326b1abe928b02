"""Sources: syncing with the config, leasing due ones to pollers, recording poll outcomes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Row

from ._engine import Database, chunks
from ._fetchstate import NOT_POLLED, polled_url, sync_changes
from ._schema import UTCDateTime, items, sources
from ._types import SourceSpec, SourceState, SourceView

_DETAIL_MAX = 2000


# A source disabled while one of its polls was in flight stays disabled when that poll reports.
def _status(outcome: str) -> sa.ColumnElement[str]:
    return sa.case((sources.c.status == "disabled", "disabled"), else_=sa.literal(outcome))


def sync_sources(conn: Connection, specs: Sequence[SourceSpec], now: datetime) -> None:
    existing = {row.id: row for row in conn.execute(sa.select(sources))}
    for spec in specs:
        row = existing.get(spec.id)
        if row is None:
            conn.execute(sources.insert().values(_new_source(spec, now)))
        else:
            conn.execute(
                sources.update().where(sources.c.id == spec.id).values(_changes(row, spec, now))
            )
    configured = {spec.id for spec in specs}
    gone = [
        sid for sid, row in existing.items() if sid not in configured and row.status != "disabled"
    ]
    if gone:
        conn.execute(
            sources.update()
            .where(sources.c.id.in_(gone))
            .values(status="disabled", lease_owner=None, lease_until=None)
        )


def _new_source(spec: SourceSpec, now: datetime) -> dict[str, Any]:
    return {
        "id": spec.id,
        "url": spec.url,
        "name": spec.name,
        "tags": list(spec.tags),
        "interval_s": _seconds(spec.interval),
        "status": "new",
        "consecutive_failures": 0,
        "next_poll_at": now,
        "polled_before": False,
    }


def _changes(row: Row[Any], spec: SourceSpec, now: datetime) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "url": spec.url,
        "name": spec.name,
        "tags": list(spec.tags),
        "interval_s": _seconds(spec.interval),
    }
    if row.url != spec.url:
        # Validators and the body hash describe the old URL; a new URL is a new feed, so its first
        # poll gets the first-poll backfill rule instead of alerting its whole archive.
        changes.update(
            etag=None, last_modified=None, body_hash=None, polled_before=False, feed_ttl_s=None
        )
    if row.status == "disabled":
        changes["status"] = _status_after_disabled(row)
    if row.last_poll_at is not None and changes["interval_s"] < row.interval_s:
        changes["next_poll_at"] = min(row.next_poll_at, row.last_poll_at + spec.interval)
    changes.update(sync_changes(row, spec.url, now))
    return changes


def _status_after_disabled(row: Row[Any]) -> str:
    if not row.polled_before:
        return "new"
    return "error" if row.error_kind else "ok"


def _seconds(interval: timedelta) -> int:
    return max(1, round(interval.total_seconds()))


# What a poller needs of a claimed row (see _state), and next_poll_at to hand them out earliest
# first: returning every column would convert eight more timestamps per row for nothing.
_CLAIMED = (
    sources.c.id,
    sources.c.url,
    sources.c.moved_to,
    sources.c.name,
    sources.c.tags,
    sources.c.interval_s,
    sources.c.etag,
    sources.c.last_modified,
    sources.c.body_hash,
    sources.c.polled_before,
    sources.c.consecutive_failures,
    sources.c.status,
    sources.c.feed_ttl_s,
    sources.c.next_poll_at,
)


def _claim(db: Database, include_not_due: bool) -> sa.Update:
    now = sa.bindparam("b_now", type_=UTCDateTime)
    due = sa.select(sources.c.id).where(
        sources.c.status.not_in(NOT_POLLED),
        sa.or_(sources.c.lease_owner.is_(None), sources.c.lease_until <= now),
    )
    if not include_not_due:
        due = due.where(sources.c.next_poll_at <= now)
    order = due.order_by(sources.c.next_poll_at, sources.c.id).limit(sa.bindparam("b_limit"))
    return (
        sources.update()
        .where(sources.c.id.in_(db.lock_rows(order).scalar_subquery()))
        .values(
            lease_owner=sa.bindparam("b_owner", type_=sources.c.lease_owner.type),
            lease_until=sa.bindparam("b_until", type_=UTCDateTime),
        )
        .returning(*_CLAIMED)
    )


# Built once per dialect and kind, as the claim runs every second in the daemon.
_CLAIMS: dict[tuple[str, bool], sa.Update] = {}


def claim_due_sources(
    db: Database,
    conn: Connection,
    instance_id: str,
    now: datetime,
    *,
    limit: int,
    lease: timedelta,
    include_not_due: bool,
) -> list[SourceState]:
    if limit <= 0:
        return []
    key = (db.dialect, include_not_due)
    statement = _CLAIMS.get(key)
    if statement is None:
        statement = _CLAIMS[key] = _claim(db, include_not_due)
    params = {"b_now": now, "b_limit": limit, "b_owner": instance_id, "b_until": now + lease}
    rows = sorted(conn.execute(statement, params), key=lambda row: (row.next_poll_at, row.id))
    return [_state(row) for row in rows]


def _state(row: Sequence[Any]) -> SourceState:
    # In _CLAIMED's order: unpacking the row takes half the time of reading it by column names.
    (sid, url, moved_to, name, tags, interval_s, etag, last_modified, body_hash, polled_before,
     failures, status, feed_ttl_s, _next) = row  # fmt: skip
    return SourceState(
        id=sid,
        url=polled_url(url, moved_to),
        name=name,
        tags=tuple(tags),
        interval=timedelta(seconds=interval_s),
        etag=etag,
        last_modified=last_modified,
        body_hash=body_hash,
        polled_before=polled_before,
        consecutive_failures=failures,
        status=status,
        feed_ttl=feed_ttl_s,
    )


def held(source_id: str, instance_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(sources.c.id == source_id, sources.c.lease_owner == instance_id)


def _first(
    column: sa.Column[datetime], now: datetime | sa.ColumnElement[datetime]
) -> sa.ColumnElement[datetime]:
    """The column's value if set, else now: the start of something that may already be going on."""
    if isinstance(now, datetime):
        now = sa.literal(now, UTCDateTime)
    return sa.func.coalesce(column, now, type_=UTCDateTime)


def success_values(
    instance_id: str | sa.ColumnElement[str],
    now: datetime | sa.ColumnElement[datetime],
    next_poll_at: datetime | sa.ColumnElement[datetime],
) -> dict[str, Any]:
    """Source state after a successful poll (new body or not); also releases the lease. Takes
    values, or bound parameters for a statement executed with many parameter sets."""
    return {
        "status": _status("ok"),
        "error_kind": None,
        "error_detail": None,
        "consecutive_failures": 0,
        "failing_since": None,
        "first_poll_at": _first(sources.c.first_poll_at, now),
        "last_poll_at": now,
        "last_success_at": now,
        "next_poll_at": next_poll_at,
        "last_instance": instance_id,
        "lease_owner": None,
        "lease_until": None,
    }


@dataclass(frozen=True)
class UnchangedPoll:
    """A poll that brought nothing new (304, or 200 with the same ETag or body), to be recorded
    with others in one transaction. None validators keep the stored ones."""

    source_id: str
    now: datetime
    next_poll_at: datetime
    etag: str | None = None
    last_modified: str | None = None


def record_not_modified(
    conn: Connection,
    source_id: str,
    instance_id: str,
    now: datetime,
    *,
    next_poll_at: datetime,
    etag: str | None,
    last_modified: str | None,
) -> bool:
    values = success_values(instance_id, now, next_poll_at)
    # A 304 may carry fresh validators (RFC 9110 §15.4.5); absent ones keep the stored values.
    if etag is not None:
        values["etag"] = etag
    if last_modified is not None:
        values["last_modified"] = last_modified
    result = conn.execute(sources.update().where(held(source_id, instance_id)).values(values))
    return result.rowcount == 1


class _Stamped(sa.TypeDecorator[Any]):
    """A UTCDateTime parameter that _stamp has already converted for the driver."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


def _not_modified_many() -> sa.Update:
    # The timestamps come converted (see _stamp): SQLAlchemy would convert each once for every
    # place it appears in the statement, on every row.
    when = sa.bindparam("b_now", type_=_Stamped())
    owner = sa.bindparam("b_owner", type_=sources.c.lease_owner.type)
    values = success_values(owner, when, sa.bindparam("b_next", type_=_Stamped()))
    # COALESCE keeps a stored validator the answer did not repeat, as record_not_modified does.
    values["etag"] = sa.func.coalesce(sa.bindparam("b_etag", type_=sa.Text), sources.c.etag)
    values["last_modified"] = sa.func.coalesce(
        sa.bindparam("b_last_modified", type_=sa.Text), sources.c.last_modified
    )
    held_row = sa.and_(sources.c.id == sa.bindparam("b_id"), sources.c.lease_owner == owner)
    return sources.update().where(held_row).values(values)


# One statement for every batch, executed with one parameter set per poll: building and compiling
# an UPDATE per row would cost more than the database's own work.
_NOT_MODIFIED_MANY = _not_modified_many()


def record_not_modified_many(
    conn: Connection, instance_id: str, polls: Sequence[UnchangedPoll]
) -> set[str]:
    """Record many unchanged polls; returns the ids written: those whose lease this instance still
    holds. One entry per source. The held rows are read (and on PostgreSQL locked, in id order so
    two batches cannot deadlock) first, because executemany reports no per-row count everywhere;
    FOR UPDATE waits for a row another transaction is writing, as a plain UPDATE would, where
    SKIP LOCKED would take a busy row for a lost lease."""
    by_id = {poll.source_id: poll for poll in polls}
    written: set[str] = set()
    for part in chunks(sorted(by_id)):
        query = (
            sa.select(sources.c.id)
            .where(sources.c.id.in_(part), sources.c.lease_owner == instance_id)
            .order_by(sources.c.id)
            .with_for_update()
        )
        written.update(conn.execute(query).scalars())
    if written:
        stamp = _stamp(conn.dialect)
        try:
            rows = [_not_modified_params(instance_id, by_id[sid], stamp) for sid in sorted(written)]
        except ValueError as error:  # a naive datetime: fails the batch as the statement would
            raise sa.exc.StatementError(str(error), None, None, error) from error
        conn.execute(_NOT_MODIFIED_MANY, rows)
    return written


def _not_modified_params(
    instance_id: str, poll: UnchangedPoll, stamp: Callable[[datetime], Any]
) -> dict[str, Any]:
    return {
        "b_id": poll.source_id,
        "b_owner": instance_id,
        "b_now": stamp(poll.now),
        "b_next": stamp(poll.next_poll_at),
        "b_etag": poll.etag,
        "b_last_modified": poll.last_modified,
    }


def _stamp(dialect: Dialect) -> Callable[[datetime], Any]:
    """UTCDateTime's conversion of a value for the driver, as its columns store it."""
    process = _STAMPS.get(type(dialect))
    if process is None:
        converter = UTCDateTime().dialect_impl(dialect)
        process = _STAMPS[type(dialect)] = converter.bind_processor(dialect) or (lambda v: v)
    return process


_STAMPS: dict[type[Dialect], Callable[[datetime], Any]] = {}


def record_failure(
    conn: Connection,
    source_id: str,
    instance_id: str,
    now: datetime,
    *,
    kind: str,
    detail: str,
    next_poll_at: datetime,
    count: bool = True,
) -> bool:
    # An uncounted failure (ours, not the source's: the network was down) shows its kind but
    # neither grows the backoff nor starts a failing episode.
    failures = sources.c.consecutive_failures + (1 if count else 0)
    failing_since = _first(sources.c.failing_since, now) if count else sources.c.failing_since
    result = conn.execute(
        sources.update()
        .where(held(source_id, instance_id))
        .values(
            status=_status("error"),
            error_kind=kind,
            error_detail=detail[:_DETAIL_MAX],
            consecutive_failures=failures,
            failing_since=failing_since,
            first_poll_at=_first(sources.c.first_poll_at, now),
            last_poll_at=now,
            next_poll_at=next_poll_at,
            last_instance=instance_id,
            lease_owner=None,
            lease_until=None,
        )
    )
    return result.rowcount == 1


def list_sources(conn: Connection) -> list[SourceView]:
    counts = (
        sa.select(items.c.source_id, sa.func.count().label("n"))
        .group_by(items.c.source_id)
        .subquery()
    )
    query = (
        sa.select(sources, sa.func.coalesce(counts.c.n, 0).label("item_count"))
        .outerjoin(counts, counts.c.source_id == sources.c.id)
        .order_by(sources.c.id)
    )
    return [_view(row) for row in conn.execute(query)]


def _view(row: Row[Any]) -> SourceView:
    return SourceView(
        id=row.id,
        url=row.url,
        name=row.name,
        status=row.status,
        error=row.error_kind,
        error_detail=row.error_detail,
        consecutive_failures=row.consecutive_failures,
        last_poll=row.last_poll_at,
        last_success=row.last_success_at,
        last_new_item=row.last_new_item_at,
        next_poll=row.next_poll_at,
        last_instance=row.last_instance,
        items=int(row.item_count),
        tags=tuple(row.tags),
    )
