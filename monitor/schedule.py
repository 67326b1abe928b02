"""When to poll a source next. Pure functions: the clock and the randomness are passed in."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

MAX_BACKOFF = timedelta(hours=24)
# A feed's own hint (<ttl>, Cache-Control max-age) may slow us down, but never beyond this.
MAX_HINT = timedelta(hours=6)


def next_poll_after_success(
    now: datetime,
    interval: timedelta,
    rng: random.Random,
    *,
    ttl: float | None = None,
    max_age: float | None = None,
) -> datetime:
    """max(interval, the feed's <ttl>, Cache-Control max-age) within sane bounds, plus up to 5%
    jitter so sources configured together drift apart instead of polling in lock-step."""
    wait = interval
    for hint in (ttl, max_age):
        if hint is not None and hint > 0:
            wait = max(wait, min(timedelta(seconds=hint), MAX_HINT))
    return now + wait + wait * (0.05 * rng.random())


def next_poll_after_failure(
    now: datetime,
    interval: timedelta,
    consecutive_failures: int,
    rng: random.Random,
    *,
    retry_after: float | None = None,
) -> datetime:
    """Exponential backoff on consecutive failures (the first failure waits one interval), capped
    at 24h; a server's Retry-After is honoured when it asks for longer."""
    exponent = max(consecutive_failures - 1, 0)
    wait = min(interval * (1 << min(exponent, 20)), max(MAX_BACKOFF, interval))
    if retry_after is not None and retry_after > 0:
        wait = max(wait, min(timedelta(seconds=retry_after), MAX_BACKOFF))
    return now + wait + wait * (0.05 * rng.random())


def host_paused_until(now: datetime, retry_after: float) -> datetime:
    """When a host that answered 429/503 with Retry-After may be asked again (at most 24h)."""
    return now + min(timedelta(seconds=max(retry_after, 0.0)), MAX_BACKOFF)


def next_poll_after_rate_limit(
    now: datetime, interval: timedelta, retry_after: float, rng: random.Random
) -> datetime:
    """A rate-limited source is not failing: no backoff growth. It waits for its host's pause and
    at least one interval, since being told to slow down must never make us poll more often;
    jitter only adds, so the host is never asked before the time it named."""
    wait = max(interval, host_paused_until(now, retry_after) - now)
    return now + wait + wait * (0.05 * rng.random())
