"""The Store's side of polling: the sources the config names, leasing due ones to pollers, and
recording each poll's outcome (unchanged, failed, gone, rate-limited, redirected, or new items)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from monitor.model import Item
from rules.ast import RuleMatch

from . import _fetchstate, _ingest, _instances, _sources
from ._engine import Database
from ._fetchstate import Redirect
from ._sources import UnchangedPoll
from ._types import IngestResult, SourceSpec, SourceState, StoryMatcher


class PollStore:
    """Store methods for sources and their polls; each runs in its own transaction."""

    _db: Database

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
