"""The delivery loop: claim due deliveries, send them, record what the receiver said.

Retry policy lives here and only here (notifiers classify an answer, they never retry on their own).
A delivery is marked sent only after the receiver accepted it, so a crash between "receiver
accepted" and "we recorded it" is the one window in which an alert can be sent twice (at-least-once,
DESIGN §6). Each notifier is claimed and sent on its own task, so one slow or failing notifier never
holds back another.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.errors import DeliveryError
from monitor.metrics import Metrics
from notifiers import DigestCapable, Notifier, RecordsEachOutcome, SendOutcome
from storage import DeliveryJob, Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# One digest email lists at most this many alerts (the notifier caps what it shows anyway).
DIGEST_BATCH = 500


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: the n-th retry waits about `first * 2**(n-1)`, at most
    `max`; a delivery still failing `give_up` after it was created is dead."""

    first: timedelta
    max: timedelta
    give_up: timedelta

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        base = min(self.first * (1 << min(max(attempts - 1, 0), 30)), self.max)
        # "Equal jitter": never less than half the base, so retries spread without collapsing to 0.
        return base / 2 + base / 2 * rng.random()


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    dead: int = 0

    def add(self, other: DeliveryStats) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.dead += other.dead


class Deliverer:
    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        policy: RetryPolicy,
        *,
        instance_id: str,
        clock: Clock,
        rng: random.Random | None = None,
        batch: int = 20,
        lease: timedelta = timedelta(minutes=5),
        digests: Mapping[str, timedelta] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._notifiers = dict(notifiers)
        self._policy = policy
        self._instance = instance_id
        self._clock = clock
        self._rng = rng or random.Random()
        self._batch = batch
        self._lease = lease
        self._locks = {name: asyncio.Lock() for name in notifiers}
        self._tasks: dict[str, asyncio.Task[DeliveryStats]] = {}
        self._digests = {
            name: period
            for name, period in (digests or {}).items()
            if isinstance(self._notifiers.get(name), DigestCapable)
        }
        self._metrics = metrics
        # A receiver's Retry-After speaks for the receiver (a Slack webhook is rate limited as a
        # whole), so nothing goes to it before then, whichever delivery asked.
        self._paused_until: dict[str, datetime] = {}

    async def run_once(self) -> DeliveryStats:
        """Send every delivery due now, each notifier independently, and wait for all of them."""
        results = await asyncio.gather(
            *(self._drain(name) for name in self._notifiers), return_exceptions=True
        )
        total = DeliveryStats()
        for name, result in zip(self._notifiers, results, strict=True):
            if isinstance(result, BaseException):
                log.error("delivery through %s failed unexpectedly: %r", name, result)
            else:
                total.add(result)
        return total

    def tick(self) -> None:
        """Start draining every notifier that is not already busy, without waiting: a notifier
        stuck on a slow receiver never holds back the others (each has its own task)."""
        for name in self._notifiers:
            task = self._tasks.get(name)
            if task is None or task.done():
                self._tasks[name] = asyncio.create_task(self._drain(name), name=f"deliver-{name}")

    async def close(self, grace: float = 30.0) -> None:
        """Wait for sends in flight. A receiver that never answers is cut off by the notifier's own
        timeout, at worst by `grace` here: its delivery stays pending for the next start."""
        running = [t for t in self._tasks.values() if not t.done()]
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _drain(self, name: str) -> DeliveryStats:
        stats = DeliveryStats()
        lock = self._locks[name]
        if lock.locked():  # already sending through this notifier
            return stats
        async with lock:
            paused = self._paused_until.get(name)
            if paused is not None and self._clock() < paused:
                return stats
            if name in self._digests:
                return await self._digest(name, self._digests[name])
            while True:
                jobs = await self._claim(name, self._batch)
                if not jobs:
                    return stats
                stats.add(await self._send(self._notifiers[name], jobs))
                if name in self._paused_until and self._clock() < self._paused_until[name]:
                    return stats

    async def _claim(self, name: str, limit: int) -> list[DeliveryJob]:
        return await asyncio.to_thread(
            self._store.claim_deliveries,
            self._instance,
            self._clock(),
            limit=limit,
            lease=self._lease,
            notifiers=[name],
        )

    async def _digest(self, name: str, period: timedelta) -> DeliveryStats:
        """A digest goes out once its oldest pending alert has waited a whole period: at most one
        email per period, and no alert waits much longer than one period."""
        oldest = await asyncio.to_thread(self._store.oldest_pending, name)
        if oldest is None or self._clock() - oldest < period:
            return DeliveryStats()
        jobs = await self._claim(name, DIGEST_BATCH)
        if not jobs:
            return DeliveryStats()
        notifier = self._notifiers[name]
        assert isinstance(notifier, DigestCapable)
        started = time.monotonic()
        try:
            outcome = await notifier.send_digest([job.alert for job in jobs], period=period)
        except Exception as e:
            log.exception("notifier %s raised instead of reporting an outcome", name)
            outcome = SendOutcome(
                error=DeliveryError(f"{type(e).__name__} in {name}", retryable=True)
            )
        return await self._record_all(name, jobs, [outcome] * len(jobs), started)

    async def _send(self, notifier: Notifier, jobs: Sequence[DeliveryJob]) -> DeliveryStats:
        """Send a claimed batch, recording each outcome as soon as the receiver answered: a crash
        can then repeat at most the one message in flight per notifier (docs/delivery.md)."""
        stats = DeliveryStats()
        recorded: set[int] = set()
        started = time.monotonic()

        def record(i: int, outcome: SendOutcome) -> None:
            if i in recorded or not 0 <= i < len(jobs):
                return
            recorded.add(i)
            self._count(notifier.name, self._record(jobs[i], outcome, stats), started)

        try:
            if isinstance(notifier, RecordsEachOutcome):
                await notifier.send_recording([job.alert for job in jobs], record)
            else:
                await self._send_one_by_one(notifier, jobs, record)
        except Exception as e:  # a notifier bug must not lose the batch: retry it later
            log.exception("notifier %s raised instead of reporting an outcome", notifier.name)
            err = DeliveryError(f"{type(e).__name__} in notifier {notifier.name}", retryable=True)
            for i in range(len(jobs)):
                if i not in recorded:
                    await asyncio.to_thread(record, i, SendOutcome(error=err))
        return stats

    async def _send_one_by_one(
        self,
        notifier: Notifier,
        jobs: Sequence[DeliveryJob],
        record: Callable[[int, SendOutcome], None],
    ) -> None:
        for i, job in enumerate(jobs):
            [outcome] = await notifier.send([job.alert])
            await asyncio.to_thread(record, i, outcome)
            if outcome.error is not None and outcome.error.retryable:
                # The rest would meet the same outage or rate limit: hand them back, untried.
                for rest in jobs[i + 1 :]:
                    await asyncio.to_thread(self._hand_back, rest, outcome.error)
                return

    def _hand_back(self, job: DeliveryJob, cause: DeliveryError) -> None:
        now = self._clock()
        wait = self._policy.delay(job.attempts + 1, self._rng)
        if cause.retry_after is not None:
            wait = max(wait, timedelta(seconds=cause.retry_after))
        self._store.mark_retry(
            job.delivery_id,
            now,
            next_attempt_at=now + wait,
            error=f"not attempted: {cause}",
            attempted=False,
            instance_id=self._instance,
        )

    def _count(self, name: str, result: str, started: float) -> None:
        if self._metrics is not None:
            self._metrics.delivery(name, result, time.monotonic() - started)

    async def _record_all(
        self,
        name: str,
        jobs: Sequence[DeliveryJob],
        outcomes: Sequence[SendOutcome],
        started: float,
    ) -> DeliveryStats:
        seconds = (time.monotonic() - started) / max(len(jobs), 1)
        stats = DeliveryStats()
        for job, outcome in zip(jobs, outcomes, strict=True):
            result = await asyncio.to_thread(self._record, job, outcome, stats)
            if self._metrics is not None:
                self._metrics.delivery(name, result, seconds)
        return stats

    def _record(self, job: DeliveryJob, outcome: SendOutcome, stats: DeliveryStats) -> str:
        """Write what the receiver said; returns the outcome's name for the metrics."""
        now = self._clock()
        err = outcome.error
        alert = job.alert.alert_id
        if err is None:
            self._store.mark_sent(job.delivery_id, now, message_id=outcome.message_id)
            stats.sent += 1
            log.info("alert %d delivered via %s", alert, job.notifier)
            return "sent"
        if not err.retryable:
            self._store.mark_failed(job.delivery_id, now, error=str(err))
            stats.failed += 1
            log.error("alert %d refused by %s: %s", alert, job.notifier, err)
            return "failed"
        if now - job.created >= self._policy.give_up:
            self._store.mark_dead(job.delivery_id, now, error=str(err))
            stats.dead += 1
            log.error("alert %d gave up on %s: %s", alert, job.notifier, err)
            return "dead"
        wait = self._policy.delay(job.attempts + 1, self._rng)
        if err.retry_after is not None:
            wait = max(wait, timedelta(seconds=err.retry_after))
            until = now + timedelta(seconds=err.retry_after)
            self._paused_until[job.notifier] = max(
                self._paused_until.get(job.notifier, until), until
            )
        self._store.mark_retry(
            job.delivery_id,
            now,
            next_attempt_at=now + wait,
            error=str(err),
            instance_id=self._instance,
        )
        stats.retried += 1
        log.warning(
            "alert %d via %s failed (%s); retry in %ds",
            alert,
            job.notifier,
            err,
            int(wait.total_seconds()),
        )
        return "retry"
