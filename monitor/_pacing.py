"""Politeness towards each host, in this process: a minimum gap between the requests started to it,
and a pause when it asks for one (HTTP 429/503 with Retry-After).

Both are decided here from a monotonic clock that is passed in, so the maths is tested without
sleeping; `monitor.fetch` does the waiting. The pause also reaches the database (the pipeline
defers the host's sources there), so it outlives a restart; this copy covers the requests already
queued or in flight in this process, and the hops of redirect chains through the host.

A host is `host:port` (the key of the fetcher's per-host slots), so two servers on one machine
behind different ports are paced apart, as they are served apart.

`Slots` are the fetcher's limits on requests in flight (global and per host).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

Monotonic = Callable[[], float]

MIN_SPACING = 1.0  # seconds between two requests we start to one host
MAX_PAUSE = 24 * 3600.0  # a Retry-After longer than this is honoured only this long
_FORGET_EVERY = 60.0  # how often hosts that no longer constrain anything are dropped


@dataclass(frozen=True)
class Pause:
    """A host asked us to wait: until when (on the pacer's clock), and what it answered."""

    until: float
    kind: str  # the failure kind of the answer that asked, e.g. http_429
    origin: str  # scheme://host[:port]/ of that host, for messages and the database


class HostPacer:
    def __init__(self, spacing: float = MIN_SPACING, *, clock: Monotonic = time.monotonic) -> None:
        if spacing < 0:
            raise ValueError(f"spacing must be >= 0, got {spacing}")
        self.spacing = spacing
        self._clock = clock
        self._next_start: dict[str, float] = {}
        self._pauses: dict[str, Pause] = {}
        self._forgotten_at = clock()

    def reserve(self, host: str) -> float:
        """Take the next start slot of `host`: how many seconds to wait before sending. Every call
        moves the host's next free slot one `spacing` further, so requests that ask together start
        `spacing` apart, in the order they asked."""
        now = self._clock()
        self._forget(now)
        start = max(now, self._next_start.get(host, now))
        self._next_start[host] = start + self.spacing
        return start - now

    def pause(self, host: str, seconds: float, *, kind: str, origin: str) -> Pause:
        """The host asked us to wait `seconds` (capped at MAX_PAUSE). A shorter request never
        shortens a pause already running: each answer only adds to what the host asked before."""
        until = self._clock() + min(max(seconds, 0.0), MAX_PAUSE)
        current = self._pauses.get(host)
        if current is None or current.until < until:
            current = Pause(until, kind, origin)
            self._pauses[host] = current
        return current

    def paused(self, host: str) -> tuple[Pause, float] | None:
        """The host's running pause and the seconds left of it, or None."""
        pause = self._pauses.get(host)
        if pause is None:
            return None
        left = pause.until - self._clock()
        if left <= 0:
            del self._pauses[host]
            return None
        return pause, left

    def tracked(self) -> int:
        """How many hosts the pacer remembers (bounded: idle hosts are forgotten)."""
        return len(self._next_start) + len(self._pauses)

    def _forget(self, now: float) -> None:
        # Thousands of sources, most on hosts of their own: a host whose next slot has passed and
        # whose pause has ended constrains nothing, and is dropped once a minute.
        if now - self._forgotten_at < _FORGET_EVERY:
            return
        self._forgotten_at = now
        self._next_start = {h: t for h, t in self._next_start.items() if t > now}
        self._pauses = {h: p for h, p in self._pauses.items() if p.until > now}


class Slots:
    """At most `limit` holders at once (`async with slots:`), the others served first come, first
    served. asyncio.Semaphore of Python 3.11 looks through its queue on every acquire
    (`locked()`); here acquire and release are O(1), with thousands of polls queued at the start
    of a cycle. A waiter cancelled while queued is skipped; one cancelled after it was handed a
    slot hands it on."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self._free = limit
        self._queue: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        return self._free

    async def __aenter__(self) -> None:
        if self._free > 0:  # never while anyone queues: a release hands its slot on directly
            self._free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # handed a slot, cancelled before using it
                self._release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def _release(self) -> None:
        queue = self._queue
        while queue:
            turn = queue.popleft()
            if not turn.done():  # a cancelled waiter's turn is done already: skip it
                turn.set_result(None)
                return
        self._free += 1


__all__ = ["MAX_PAUSE", "MIN_SPACING", "HostPacer", "Monotonic", "Pause", "Slots"]
