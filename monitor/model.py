"""Typed data that crosses package boundaries. A leaf module: imports nothing of the project."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Level = Literal["info", "low", "medium", "high", "critical"]
LEVELS: tuple[Level, ...] = ("info", "low", "medium", "high", "critical")


def level_rank(level: str) -> int:
    """Order of severity; unknown levels rank lowest."""
    ranks: dict[str, int] = {name: i for i, name in enumerate(LEVELS)}
    return ranks.get(level, -1)


@dataclass(frozen=True)
class Item:
    """One normalised feed entry, ready to store and match.

    `key` is the identity within its source (DESIGN §6): GUID/Atom id, else canonical link, else a
    hash of title+content, prefixed by which of the three it is (`guid:`, `link:`, `hash:`).
    Text fields are plain text (HTML already stripped) for matching and display.
    """

    source_id: str
    key: str
    title: str
    link: str | None
    canonical_link: str | None
    summary: str = ""
    content: str = ""
    author: str = ""
    tags: tuple[str, ...] = ()
    published: datetime | None = None
    content_hash: str = ""
    guid: str | None = None


@dataclass(frozen=True)
class Span:
    """A matched span: offsets into the field's text as stored/given."""

    field: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class AlsoReported:
    """Another source that reported the same story."""

    source_id: str
    source_name: str
    title: str
    link: str | None


@dataclass(frozen=True)
class AlertMessage:
    """Everything a notifier needs to render one alert. All text is untrusted feed text, unescaped:
    each notifier escapes it for its own output."""

    alert_id: int
    rule_id: str
    rule_title: str
    level: Level
    title: str
    link: str | None
    source_id: str
    source_name: str
    published: datetime | None
    created: datetime
    summary: str = ""
    matches: tuple[Span, ...] = ()
    also: tuple[AlsoReported, ...] = ()
    story_id: int | None = None
    # For email threading: Message-ID of the first alert sent for this story by this rule, if any.
    thread_root: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


__all__ = ["LEVELS", "AlertMessage", "AlsoReported", "Item", "Level", "Span", "level_rank"]
