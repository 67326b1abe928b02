"""Write-behind batching: many coroutines each hand over one entry and wait for it to be stored,
while the store sees one call (one thread hop, one transaction) per batch.

An all-304 cycle of 2,000 sources used to cost 2,000 write transactions and 2,000
`asyncio.to_thread` calls competing with the event loop for the GIL; batched, it is a few dozen.

A batch is written when it holds `max_size` entries, or `linger` seconds after its first entry
came in, whichever is first. One batch is written at a time: entries that arrive meanwhile wait
for the next batch, which is written as soon as the running write ends if it is due by then (so a
slow database makes batches bigger, not writers more numerous).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Batch(Generic[T, R]):
    def __init__(self, loop: asyncio.AbstractEventLoop, linger: float) -> None:
        self.entries: list[T] = []
        # One future per entry rather than one shared future shielded for each waiter: a cancelled
        # waiter cancels only its own (its entry is written all the same), and waking a waiter
        # takes the loop half the work (every unchanged poll comes through here).
        self.waiters: list[asyncio.Future[R]] = []
        self.due = loop.time() + linger
        self.full = asyncio.Event()

    def set_result(self, result: R) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(result)

    def set_exception(self, error: BaseException) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(error)

    def cancel(self) -> None:
        for waiter in self.waiters:
            waiter.cancel()


class Batcher(Generic[T, R]):
    """Collects entries and writes them with `write` (a blocking call, run in a worker thread).
    Each `add` returns the result of the write its entry was part of, or raises its error: every
    entry of a failed batch sees the failure."""

    def __init__(self, write: Callable[[Sequence[T]], R], *, max_size: int, linger: float) -> None:
        if max_size < 1 or linger < 0:
            raise ValueError(f"max_size must be >= 1 and linger >= 0 (got {max_size}, {linger})")
        self._write = write
        self._max = max_size
        self._linger = linger
        self._queue: deque[_Batch[T, R]] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def add(self, entry: T) -> R:
        """Queue `entry` and wait until the batch holding it is written."""
        loop = asyncio.get_running_loop()
        if not self._queue or len(self._queue[-1].entries) >= self._max:
            self._queue.append(_Batch(loop, self._linger))
        batch = self._queue[-1]
        batch.entries.append(entry)
        done: asyncio.Future[R] = loop.create_future()
        batch.waiters.append(done)
        if len(batch.entries) >= self._max:
            batch.full.set()
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain(), name="write-behind batch")
        return await done

    async def _drain(self) -> None:
        """Write the queued batches one after another, each when it is full or due."""
        while self._queue:
            batch = self._queue[0]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(batch.due):
                    await batch.full.wait()
            self._queue.popleft()
            try:
                result = await asyncio.to_thread(self._write, batch.entries)
            except Exception as error:
                batch.set_exception(error)
            except BaseException:
                # Cancelled (the loop is going away): nobody will write what is still queued.
                for waiting in (batch, *self._queue):
                    waiting.cancel()
                self._queue.clear()
                raise
            else:
                batch.set_result(result)
