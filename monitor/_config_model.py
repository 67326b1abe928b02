"""The validated configuration: frozen models the daemon and CLI read, never raw YAML.

Each section model is also the schema of its section in config.yaml (same keys, same defaults), so
the file and the objects cannot drift apart. `Config` itself is built by the loader with every path,
default and OPML import resolved.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor import USER_AGENT
from monitor.units import Duration, Size, format_duration
from notifiers.settings import NotifierSettings

HttpClient = Literal["aiohttp", "httpx"]
SOURCE_ID = re.compile(r"[a-z0-9][a-z0-9_.-]*\Z")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0")
    return value


def _source_id(value: str) -> str:
    if not SOURCE_ID.match(value):
        raise ValueError(
            f"invalid source id {value!r}: use lower-case letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return value


def _feed_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    if any(c.isspace() for c in value):
        raise ValueError(f"a URL cannot contain spaces: {value!r}")
    return value


def _tag(value: str) -> str:
    if not value or any(c.isspace() or c == "," for c in value):
        raise ValueError(f"invalid tag {value!r}: a tag is one word (letters, digits, '-', '_')")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
SourceId = Annotated[str, AfterValidator(_source_id)]
FeedUrl = Annotated[str, AfterValidator(_feed_url)]
Tag = Annotated[str, AfterValidator(_tag)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Polling(_Section):
    interval: PositiveDuration = timedelta(minutes=15)  # default for every source
    timeout: PositiveDuration = timedelta(seconds=20)
    max_bytes: Annotated[Size, Field(ge=1)] = 10 * 1024**2
    concurrency: Annotated[int, Field(ge=1)] = 32  # fetches in flight, whole daemon
    per_host: Annotated[int, Field(ge=1)] = 2  # fetches in flight per host
    host_spacing: Duration = timedelta(seconds=1)  # least time between two requests to one host
    user_agent: str = USER_AGENT
    http_client: HttpClient = "aiohttp"  # whose connection pool fetches use (monitor._transport)

    @field_validator("user_agent")
    @classmethod
    def _header_safe(cls, v: str) -> str:
        # The value goes verbatim into an HTTP header: CR/LF would split it.
        if not v.strip() or any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise ValueError("user_agent must be one non-empty line")
        return v


class FirstPoll(_Section):
    backfill: Duration = timedelta(hours=24)  # 0 = the first poll of a source never alerts


class Dedup(_Section):
    window: Duration = timedelta(hours=72)


class Delivery(_Section):
    retry_first: PositiveDuration = timedelta(seconds=30)
    retry_max: PositiveDuration = timedelta(hours=1)
    give_up: PositiveDuration = timedelta(hours=24)

    @model_validator(mode="after")
    def _ordered(self) -> Delivery:
        if self.retry_max < self.retry_first:
            raise ValueError(
                f"retry_max ({format_duration(self.retry_max)}) is shorter than "
                f"retry_first ({format_duration(self.retry_first)})"
            )
        return self


class Health(_Section):
    failing_after: Duration = timedelta(hours=6)  # 0 = never raise a "failing" system alert
    silent_after: Duration = timedelta(days=7)  # 0 = never raise a "silent" system alert
    notify: tuple[str, ...] = ()


class SourceConfig(_Section):
    """One feed to poll, from a `sources:` entry or an outline of an imported OPML file."""

    id: SourceId
    url: FeedUrl
    name: str
    tags: tuple[Tag, ...] = ()
    interval: PositiveDuration


class Config(_Section):
    """The whole validated configuration. Paths are absolute; defaults are filled in."""

    path: Path
    database: str
    polling: Polling = Polling()
    first_poll: FirstPoll = FirstPoll()
    dedup: Dedup = Dedup()
    sources: tuple[SourceConfig, ...] = ()
    rules: tuple[Path, ...] = ()
    notifiers: Mapping[str, NotifierSettings] = {}
    default_notify: tuple[str, ...] = ()
    delivery: Delivery = Delivery()
    retention: PositiveDuration = timedelta(days=90)
    health: Health = Health()
    metrics: str | None = None
    # Not errors, but worth telling the user: notifiers switched off for want of an environment
    # variable, OPML outlines skipped, ... Each is `file:line:col: message`.
    warnings: tuple[str, ...] = ()
    # Notifiers left out of `notifiers` because they reference unset variables: name -> why.
    disabled_notifiers: Mapping[str, str] = {}

    def summary(self) -> str:
        """One line for `monitor check`, e.g.
        `config.yaml: 24 sources, 3 rule paths, 3 notifiers (console, analysts-slack, ...)`."""
        parts = [
            _count(len(self.sources), "source"),
            _count(len(self.rules), "rule path"),
            _count(len(self.notifiers), "notifier")
            + (f" ({', '.join(self.notifiers)})" if self.notifiers else ""),
        ]
        line = f"{_shown(self.path)}: {', '.join(parts)}"
        if self.disabled_notifiers:
            line += f"; disabled: {', '.join(self.disabled_notifiers)}"
        return line


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _shown(path: Path) -> str:
    """The path relative to the working directory when it lies below it, else absolute."""
    try:
        return str(path.relative_to(Path(os.getcwd())))
    except ValueError:
        return str(path)


__all__ = [
    "SOURCE_ID",
    "Config",
    "Dedup",
    "Delivery",
    "FeedUrl",
    "FirstPoll",
    "Health",
    "HttpClient",
    "Polling",
    "PositiveDuration",
    "SourceConfig",
    "SourceId",
    "Tag",
]
