"""What a poll that did not bring new items leaves on its source: failures, pauses, ends, moves.

`PollRecords` writes each outcome of `monitor.pipeline.Poller` that is not an ingest or an
unchanged poll, with its log line:
- a failure, counted or not (the Poller decides: not when every host of the tick failed), and the
  next poll after the backoff it implies;
- a host's request to wait (429/503 with Retry-After), written once per pause for every source on
  that host, and never counted as a failure;
- HTTP 410: the source is `gone`;
- a permanent redirect, counted until the source moves to its new URL.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from monitor.errors import FetchError
from monitor.fetch import RateLimited, safe_url
from monitor.schedule import (
    host_paused_until,
    next_poll_after_failure,
    next_poll_after_rate_limit,
)
from storage import SourceState, Store

log = logging.getLogger("monitor.pipeline")  # one logger for a poll's lines, wherever written


class PollRecords:
    def __init__(
        self,
        store: Store,
        *,
        instance_id: str,
        clock: Callable[[], datetime],
        rng: random.Random,
    ) -> None:
        self._store = store
        self._instance = instance_id
        self._clock = clock
        self._rng = rng
        self._paused: dict[str, datetime] = {}  # host origin -> until, as written to the store

    async def _write(
        self,
        record: Callable[..., object],
        state: SourceState,
        error: FetchError,
        now: datetime,
        **fields: Any,
    ) -> None:
        """One of the Store's `record_*` writes for this poll, in a worker thread."""
        await asyncio.to_thread(
            record, state.id, self._instance, now, detail=error.detail[:500], **fields
        )

    async def failure(self, state: SourceState, error: FetchError, *, count: bool) -> None:
        now = self._clock()
        # An uncounted failure keeps the backoff where it was: the wait of the last failure, or
        # one interval.
        failures = state.consecutive_failures + (1 if count else 0)
        next_poll = next_poll_after_failure(
            now, state.interval, failures, self._rng, retry_after=error.retry_after
        )
        if count:
            log.warning("source %s: %s", state.id, error)
        else:
            log.warning("source %s: %s (not counted: every host failed)", state.id, error)
        await self._write(
            self._store.record_failure, state, error, now,
            kind=error.kind, next_poll_at=next_poll, count=count,
        )  # fmt: skip

    async def rate_limited(self, state: SourceState, error: RateLimited) -> None:
        now = self._clock()
        until = host_paused_until(now, error.retry_after)
        known = self._paused.get(error.origin)
        if known is None or known < until - timedelta(seconds=1):
            # Only the first answer of a pause needs to reach the store: the requests queued
            # behind it were never sent and only echo the same pause.
            self._paused = {o: t for o, t in self._paused.items() if t > now}
            self._paused[error.origin] = until
            deferred = await asyncio.to_thread(self._store.defer_host, error.origin, until)
            log.warning(
                "source %s: %s asks us to wait (%s); this and %d other source(s) on that host "
                "wait until %s, not counted as failures",
                state.id,
                safe_url(error.origin),
                error.kind,
                len(set(deferred) - {state.id}),
                until.isoformat(timespec="seconds"),
            )
        next_poll = next_poll_after_rate_limit(now, state.interval, error.retry_after, self._rng)
        await self._write(
            self._store.record_rate_limited, state, error, now,
            kind=error.kind, next_poll_at=next_poll,
        )  # fmt: skip

    async def gone(self, state: SourceState, error: FetchError) -> None:
        log.warning(
            "source %s: %s; it will not be polled again until its url changes in the config",
            state.id,
            error,
        )
        await self._write(self._store.record_gone, state, error, self._clock())

    async def redirect(self, state: SourceState, target: str, now: datetime) -> None:
        note = await asyncio.to_thread(
            self._store.note_permanent_redirect,
            state.id,
            self._instance,
            now,
            polled=state.url,
            target=target,
        )
        if note is None:
            return
        if note.moved:
            log.warning(
                "source %s: %s has moved permanently to %s (seen on %d polls in a row); polling "
                "the new URL from now on: update the source's url in config.yaml",
                state.id,
                safe_url(state.url),
                safe_url(target),
                note.seen,
            )
        else:
            log.info(
                "source %s: permanently redirected to %s (%d polls in a row)",
                state.id,
                safe_url(target),
                note.seen,
            )
