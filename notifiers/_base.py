"""The notifier contract: what the delivery loop calls, and what each send reports back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from monitor.errors import DeliveryError
from monitor.model import AlertMessage
from notifiers.settings import NotifierSettings


@dataclass(frozen=True)
class SendOutcome:
    """The result of sending one alert: `error` None means the receiver accepted it."""

    error: DeliveryError | None = None
    message_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Notifier(Protocol):
    """One configured notifier. `send` returns one outcome per alert, in order; it never retries
    (the delivery loop owns retries) and never raises for a delivery failure."""

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> NotifierSettings: ...

    async def send(self, alerts: Sequence[AlertMessage]) -> list[SendOutcome]: ...

    async def aclose(self) -> None: ...


OutcomeHook = Callable[[int, SendOutcome], None]


@runtime_checkable
class RecordsEachOutcome(Protocol):
    """A notifier that sends a batch over one connection (email) and reports each outcome, by index,
    as soon as the receiver answered, so the delivery loop records it before the next message goes
    out: a crash then repeats at most the one message in flight. The hook may run in a worker
    thread."""

    async def send_recording(
        self, alerts: Sequence[AlertMessage], on_outcome: OutcomeHook
    ) -> list[SendOutcome]: ...


@runtime_checkable
class Previewable(Protocol):
    def preview(self, alert: AlertMessage) -> str: ...


class Clock(Protocol):
    """Monotonic time and sleeping, injectable so tests of pacing never wait."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Pacer:
    """At most one send per `interval` for one notifier; concurrent senders queue on the lock. Local
    to the notifier so one slow Slack webhook never delays another notifier."""

    def __init__(self, interval: float, clock: Clock) -> None:
        self._interval = interval
        self._clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = self._clock.monotonic()
            if now < self._next:
                await self._clock.sleep(self._next - now)
                now = self._clock.monotonic()
            self._next = max(now, self._next) + self._interval

    def hold(self, seconds: float) -> None:
        """Push the next send back, e.g. after the receiver asked for a pause with Retry-After."""
        self._next = max(self._next, self._clock.monotonic() + seconds)


def not_attempted(cause: DeliveryError) -> DeliveryError:
    """The outcome for the rest of a batch after a failure that would hit them too (rate limit,
    unreachable server): retry them all later, at the receiver's pace."""
    return DeliveryError(
        f"not attempted: {cause}", retryable=cause.retryable, retry_after=cause.retry_after
    )


__all__ = [
    "Clock",
    "Notifier",
    "OutcomeHook",
    "Pacer",
    "Previewable",
    "RecordsEachOutcome",
    "SendOutcome",
    "SystemClock",
    "not_attempted",
]
