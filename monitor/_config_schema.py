"""config.yaml as written (DESIGN §3): what the file may say, before paths, defaults and OPML
imports are resolved into `Config`. Sections whose file form equals their resolved form are the
public models.

`sources` entries and `notifiers` are checked one by one (see `_config_sources`, `_config_load`), so
an entry with errors does not hide the problems of the others and a notifier can be switched off
alone.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from monitor._config_model import (
    Dedup,
    Delivery,
    FeedUrl,
    FirstPoll,
    Polling,
    PositiveDuration,
    SourceId,
    Tag,
)
from monitor.units import Duration
from notifiers.settings import NotifierSettings

DEFAULT_DATABASE = "sqlite:///data/monitor.db"
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})\Z")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthFile(_Strict):
    failing_after: Duration = timedelta(hours=6)
    silent_after: Duration = timedelta(days=7)
    notify: list[str] | None = None  # None: the same as default_notify


class ConfigFile(_Strict):
    database: str = DEFAULT_DATABASE
    polling: Polling = Polling()
    first_poll: FirstPoll = FirstPoll()
    dedup: Dedup = Dedup()
    sources: list[Any] | None = None
    rules: list[str] | None = None
    notifiers: dict[str, Any] | None = None
    default_notify: list[str] | None = None
    delivery: Delivery = Delivery()
    retention: PositiveDuration = timedelta(days=90)
    health: HealthFile = HealthFile()
    metrics: str | None = None

    @field_validator("database")
    @classmethod
    def _database_url(cls, v: str) -> str:
        # The URL may hold a password: never echo it back.
        if not _URL_SCHEME.match(v):
            raise ValueError(
                "expected an SQLAlchemy URL such as sqlite:///data/monitor.db "
                "or postgresql+psycopg://user@host/dbname"
            )
        return v

    @field_validator("rules", mode="before")
    @classmethod
    def _one_path(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("metrics", mode="before")
    @classmethod
    def _host_port(cls, v: Any) -> Any:
        if v is None:
            return v
        m = _HOST_PORT.match(v) if isinstance(v, str) else None
        if not m or not 1 <= int(m.group(2)) <= 65535:
            raise ValueError(f"expected host:port such as 127.0.0.1:9108, got {v!r}")
        return v


class SourceEntry(_Strict):
    id: SourceId
    url: FeedUrl
    name: str | None = None
    tags: list[Tag] = []
    interval: PositiveDuration | None = None


class OpmlEntry(_Strict):
    opml: str
    tags: list[Tag] = []
    interval: PositiveDuration | None = None


class AnySourceKeys(_Strict):
    """Every key a `sources` entry may have, for did-you-mean (`opm` -> `opml`); never validated."""

    id: str
    url: str
    name: str
    tags: list[str]
    interval: str
    opml: str


class NotifiersSection(_Strict):
    """Wraps one notifier so located problems and key suggestions follow its `type`."""

    notifiers: dict[str, NotifierSettings]


__all__ = [
    "DEFAULT_DATABASE",
    "AnySourceKeys",
    "ConfigFile",
    "HealthFile",
    "NotifiersSection",
    "OpmlEntry",
    "SourceEntry",
]
