"""Prometheus metrics and a liveness check, served on `/metrics` and `/healthz` (config `metrics:`).

Each `Metrics` owns a private `CollectorRegistry`: the global one would make two daemons (or two
tests) in one process count into each other.

Cardinality: series are labelled by outcome, error kind, rule, notifier and state (small, closed
sets), never by item or URL. The only per-source series are three gauges (last poll, last success,
last new item), one sample per source each: 2,000 sources cost 6,000 samples, enough to alert on one
stuck source without per-source counters and histograms that would multiply that by a dozen.
Label values are checked (`_label`): a URL or free text never becomes a label, so no secret leaks.

prometheus_client is imported by the first `Metrics` only: a daemon without `metrics:` builds none
and saves the import (about 1 MB resident, DESIGN §7).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from monitor import __version__
from monitor._metrics_http import MetricsServer, split_address

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

POLL_OK_OUTCOMES = frozenset({"ok", "not_modified", "unchanged"})
DELIVERY_OUTCOMES = frozenset({"sent", "retry", "failed", "dead"})
DELIVERY_STATES = ("pending", "sent", "failed", "dead")
SOURCE_STATUSES = ("ok", "error", "disabled", "new")

# Ids are operator-chosen names; a value with a slash (every URL has one), a control character or
# unbounded length is a caller's mistake, and could carry a secret, so it is replaced, not exported.
_SAFE_LABEL = re.compile(r"[^\x00-\x1f\x7f/\\]{1,100}\Z")
_ERROR_KIND = re.compile(r"[a-z0-9_]{1,40}\Z")
INVALID_LABEL = "_invalid"
OTHER_KIND = "other"

_POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
_DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _label(value: str) -> str:
    return value if _SAFE_LABEL.match(value) else INVALID_LABEL


def _kind(value: str) -> str:
    return value if _ERROR_KIND.match(value) else OTHER_KIND


class _Snapshots:
    """Gauges that are replaced or forgotten as a whole, kept as plain dicts and exported on scrape.

    prometheus_client's labelled `Gauge` keeps a child per label set forever: a removed source, or a
    state that dropped to no rows, would go on reporting its last value.
    """

    def __init__(self) -> None:
        self.last_poll: dict[str, float] = {}
        self.last_success: dict[str, float] = {}
        self.last_new_item: dict[str, float] = {}
        self.sources: dict[str, int] = {}
        self.deliveries: dict[tuple[str, str], int] = {}

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        return self._families(filled=True)

    def forget(self, keep: set[str]) -> None:
        for per_source in (self.last_poll, self.last_success, self.last_new_item):
            for source in [s for s in per_source if s not in keep]:
                per_source.pop(source, None)

    def _families(self, filled: bool = False) -> list[Metric]:
        from prometheus_client.metrics_core import GaugeMetricFamily

        per_source = [
            ("monitor_source_last_poll_timestamp", "Unix time of the last poll", self.last_poll),
            (
                "monitor_source_last_success_timestamp",
                "Unix time of the last good poll",
                self.last_success,
            ),
            (
                "monitor_source_last_new_item_timestamp",
                "Unix time of the last new item",
                self.last_new_item,
            ),
        ]
        out: list[Metric] = []
        for name, doc, values in per_source:
            family = GaugeMetricFamily(name, f"{doc}, per source", labels=["source"])
            # copy() runs in C under the GIL, so a scrape from the server's thread never sees
            # the dict change size mid-iteration.
            for source, value in values.copy().items() if filled else ():
                family.add_metric([source], value)
            out.append(family)
        sources = GaugeMetricFamily("monitor_sources", "Sources by status", labels=["status"])
        deliveries = GaugeMetricFamily(
            "monitor_deliveries_by_state",
            "Deliveries by notifier and state",
            labels=["notifier", "state"],
        )
        for status, count in self.sources.copy().items() if filled else ():
            sources.add_metric([status], count)
        for (notifier, state), count in self.deliveries.copy().items() if filled else ():
            deliveries.add_metric([notifier, state], count)
        return [*out, sources, deliveries]


class Metrics:
    """Every metric the daemon exports. Calls are cheap and never do I/O."""

    def __init__(self, instance_id: str = "", *, clock: Callable[[], float] = time.time) -> None:
        from prometheus_client import CollectorRegistry, Info
        from prometheus_client.process_collector import ProcessCollector

        self.registry = CollectorRegistry()
        self._clock = clock
        self._last_tick: float | None = None
        self._snapshots = _Snapshots()
        self._define(self.registry)
        self.registry.register(self._snapshots)
        ProcessCollector(registry=self.registry)
        info = Info("monitor_build", "Version and instance of this daemon", registry=self.registry)
        info.info({"version": __version__, "instance_id": instance_id[:100]})

    def _define(self, r: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self._polls = Counter("monitor_polls_total", "Polls by outcome", ["outcome"], registry=r)
        self._poll_errors = Counter(
            "monitor_poll_errors_total", "Failed polls by error kind", ["kind"], registry=r
        )
        self._poll_seconds = Histogram(
            "monitor_poll_duration_seconds",
            "Time to poll one source",
            buckets=_POLL_BUCKETS,
            registry=r,
        )
        self._items = Counter("monitor_items_new_total", "New items stored", registry=r)
        self._alerts = Counter(
            "monitor_alerts_total", "Alerts raised by rule", ["rule"], registry=r
        )
        self._deliveries = Counter(
            "monitor_deliveries_total", "Delivery attempts", ["notifier", "outcome"], registry=r
        )
        self._delivery_seconds = Histogram(
            "monitor_delivery_duration_seconds",
            "Time to deliver one alert",
            ["notifier"],
            buckets=_DELIVERY_BUCKETS,
            registry=r,
        )
        self._rules_loaded = Gauge("monitor_rules_loaded", "Rules in force", registry=r)
        self._rules_reload_ok = Gauge(
            "monitor_rules_reload_ok", "1 if the last rule (re)load succeeded", registry=r
        )
        self._last_tick_gauge = Gauge(
            "monitor_last_tick_timestamp", "Unix time of the daemon's last loop tick", registry=r
        )

    def poll(self, source_id: str, outcome: str, seconds: float) -> None:
        """`outcome`: "ok", "not_modified", "unchanged" or a `FetchError.kind` such as "timeout"."""
        source, now = _label(source_id), self._clock()
        self._poll_seconds.observe(seconds)
        self._snapshots.last_poll[source] = now
        if outcome in POLL_OK_OUTCOMES:
            self._polls.labels(outcome).inc()
            self._snapshots.last_success[source] = now
        else:
            # Error kinds stay out of the outcome label so `sum by (outcome)` has four values.
            self._polls.labels("error").inc()
            self._poll_errors.labels(_kind(outcome)).inc()

    def items(self, source_id: str, new: int) -> None:
        self._items.inc(new)
        if new > 0:
            self._snapshots.last_new_item[_label(source_id)] = self._clock()

    def matches(self, rule_id: str, n: int) -> None:
        self._alerts.labels(_label(rule_id)).inc(n)

    def delivery(self, notifier: str, outcome: str, seconds: float) -> None:
        """`outcome`: "sent", "retry", "failed" (refused for good) or "dead" (gave up)."""
        if outcome not in DELIVERY_OUTCOMES:
            raise ValueError(
                f"delivery outcome must be one of {sorted(DELIVERY_OUTCOMES)}: {outcome!r}"
            )
        name = _label(notifier)
        self._deliveries.labels(name, outcome).inc()
        self._delivery_seconds.labels(name).observe(seconds)

    def set_deliveries_by_state(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Replace `monitor_deliveries_by_state`; each notifier named reports all four states."""
        table = {(_label(n), s): 0 for n, _ in counts for s in DELIVERY_STATES}
        for (notifier, state), count in counts.items():
            key = (_label(notifier), state if state in DELIVERY_STATES else OTHER_KIND)
            table[key] = table.get(key, 0) + count
        self._snapshots.deliveries = table

    def set_sources_by_status(self, counts: Mapping[str, int]) -> None:
        table = dict.fromkeys(SOURCE_STATUSES, 0)
        for status, count in counts.items():
            key = status if status in SOURCE_STATUSES else OTHER_KIND
            table[key] = table.get(key, 0) + count
        self._snapshots.sources = table

    def retain_sources(self, source_ids: Iterable[str]) -> None:
        """Drop per-source series of sources no longer configured (call after a config reload)."""
        self._snapshots.forget({_label(s) for s in source_ids})

    def set_rules(self, loaded: int, reload_ok: bool) -> None:
        self._rules_loaded.set(loaded)
        self._rules_reload_ok.set(1 if reload_ok else 0)

    def heartbeat(self, now: float) -> None:
        self._last_tick = now
        self._last_tick_gauge.set(now)

    @property
    def last_tick(self) -> float | None:
        return self._last_tick

    def render(self) -> bytes:
        """The text exposition format; safe to call from another thread than the one updating."""
        from prometheus_client.exposition import generate_latest

        return generate_latest(self.registry)


__all__ = [
    "DELIVERY_OUTCOMES",
    "DELIVERY_STATES",
    "INVALID_LABEL",
    "OTHER_KIND",
    "POLL_OK_OUTCOMES",
    "SOURCE_STATUSES",
    "Metrics",
    "MetricsServer",
    "split_address",
]
