"""Typed data that crosses the storage boundary: what callers hand in and what they get back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from monitor.model import AlertMessage, AlsoReported, Span


@dataclass(frozen=True)
class SourceSpec:
    """A source as the configuration describes it."""

    id: str
    url: str
    name: str
    tags: tuple[str, ...]
    interval: timedelta


@dataclass(frozen=True)
class SourceState:
    """What the poller needs to fetch one claimed source (conditional GET validators included)."""

    id: str
    url: str
    name: str
    tags: tuple[str, ...]
    interval: timedelta
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    polled_before: bool
    consecutive_failures: int
    status: str
    feed_ttl: float | None = None  # the <ttl> of its latest parsed body, in seconds


class StoryMatcher(Protocol):
    """Decides which titles tell the same story (implemented by the daemon core)."""

    def keys(self, title: str) -> Sequence[str]:
        """Blocking keys: two titles of one story share at least one key."""
        ...

    def same(self, a: str, b: str) -> bool:
        """Whether two titles tell the same story."""
        ...


@dataclass(frozen=True)
class IngestResult:
    new_items: int
    updated_items: int
    alerts: int
    deliveries: int


@dataclass(frozen=True)
class DeliveryJob:
    """One claimed delivery: send `alert` through `notifier`, then mark it."""

    delivery_id: int
    notifier: str
    attempts: int
    created: datetime
    alert: AlertMessage


@dataclass(frozen=True)
class DeliveryView:
    notifier: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt: datetime | None
    sent_at: datetime | None


@dataclass(frozen=True)
class AlertView:
    """One alert with its item and per-notifier delivery state, for `monitor alerts`."""

    id: int
    rule: str
    rule_title: str
    level: str
    created: datetime
    title: str
    link: str | None
    source: str
    also: tuple[AlsoReported, ...]
    deliveries: tuple[DeliveryView, ...]
    spans: tuple[Span, ...]
    source_name: str = ""
    story_id: int | None = None


@dataclass(frozen=True)
class SourceView:
    """Per-source health, for `monitor sources`."""

    id: str
    url: str
    name: str
    status: str
    error: str | None
    error_detail: str | None
    consecutive_failures: int
    last_poll: datetime | None
    last_success: datetime | None
    last_new_item: datetime | None
    next_poll: datetime | None
    last_instance: str | None
    items: int
    tags: tuple[str, ...] = ()


HealthKind = Literal["failing", "silent", "recovered"]
Condition = Literal["failing", "silent"]


@dataclass(frozen=True)
class HealthChange:
    """A source crossing a health threshold: the facts its system alert states."""

    kind: HealthKind
    condition: Condition  # what began (failing, silent), or what ended (recovered)
    source_id: str
    source_name: str
    url: str
    since: datetime  # when the condition began
    at: datetime  # when the check saw the change
    error: str | None  # the stable error kind of a failing source, also kept for its recovery
    error_detail: str | None
    last_success: datetime | None
    last_new_item: datetime | None


@dataclass(frozen=True)
class HealthText:
    """How a system alert reads (worded by the daemon core, stored with the alert)."""

    rule_title: str
    title: str
    summary: str = ""


@dataclass(frozen=True)
class HealthEvent:
    """A system alert that a health check raised."""

    source_id: str
    kind: HealthKind
    detail: str  # the alert's title: one sentence
    condition: Condition  # the condition that began, or ended for a recovery
    alert_id: int
