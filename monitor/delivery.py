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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.errors import DeliveryError
from notifiers import Notifier, SendOutcome
from storage import DeliveryJob, Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


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
            while True:
                jobs = await asyncio.to_thread(
                    self._store.claim_deliveries,
                    self._instance,
                    self._clock(),
                    limit=self._batch,
                    lease=self._lease,
                    notifiers=[name],
                )
                if not jobs:
                    return stats
                stats.add(await self._send(self._notifiers[name], jobs))

    async def _send(self, notifier: Notifier, jobs: Sequence[DeliveryJob]) -> DeliveryStats:
        try:
            outcomes = await notifier.send([job.alert for job in jobs])
        except Exception as e:  # a notifier bug must not lose the batch: retry it later
            log.exception("notifier %s raised instead of reporting an outcome", notifier.name)
            err = DeliveryError(f"{type(e).__name__} in notifier {notifier.name}", retryable=True)
            outcomes = [SendOutcome(error=err) for _ in jobs]
        stats = DeliveryStats()
        for job, outcome in zip(jobs, outcomes, strict=True):
            await asyncio.to_thread(self._record, job, outcome, stats)
        return stats

    def _record(self, job: DeliveryJob, outcome: SendOutcome, stats: DeliveryStats) -> None:
        now = self._clock()
        err = outcome.error
        if err is None:
            self._store.mark_sent(job.delivery_id, now, message_id=outcome.message_id)
            stats.sent += 1
            log.info("alert %d delivered via %s", job.alert.alert_id, job.notifier)
        elif not err.retryable:
            self._store.mark_failed(job.delivery_id, now, error=str(err))
            stats.failed += 1
            log.error("alert %d refused by %s: %s", job.alert.alert_id, job.notifier, err)
        elif now - job.created >= self._policy.give_up:
            self._store.mark_dead(job.delivery_id, now, error=str(err))
            stats.dead += 1
            log.error("alert %d gave up on %s: %s", job.alert.alert_id, job.notifier, err)
        else:
            wait = self._policy.delay(job.attempts + 1, self._rng)
            if err.retry_after is not None:
                wait = max(wait, timedelta(seconds=err.retry_after))
            self._store.mark_retry(job.delivery_id, now, next_attempt_at=now + wait, error=str(err))
            stats.retried += 1
            log.warning(
                "alert %d via %s failed (%s); retry in %ds",
                job.alert.alert_id,
                job.notifier,
                err,
                wait.total_seconds(),
            )
