"""`sources:` entries -> `SourceConfig`s: direct entries as written, `opml:` entries expanded.

Direct entries claim their ids first, wherever they stand in the list, so an id written by hand
never changes because an OPML file gained a feed of the same name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from monitor._config_model import SourceConfig
from monitor._config_schema import AnySourceKeys, OpmlEntry, SourceEntry
from monitor.errors import ConfigError, Location, Problem
from monitor.opml import OpmlFeed, read_opml, suggested_id, url_digest
from rules._yaml import Positioned, problems_from_validation


@dataclass
class SourcesResult:
    sources: list[SourceConfig] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


@dataclass
class _Builder:
    doc: Positioned
    base: Path  # the config folder
    shown_base: str  # the same folder as the user named it, for messages
    default_interval: timedelta
    out: SourcesResult = field(default_factory=SourcesResult)
    ids: dict[str, str] = field(default_factory=dict)  # id -> where it was defined
    urls: dict[str, str] = field(default_factory=dict)  # url -> source id

    def entry(self, i: int, raw: Any) -> SourceEntry | OpmlEntry | None:
        where = ("sources", i)
        if not isinstance(raw, dict):
            msg = f"sources.{i}: expected a mapping with 'id' and 'url' (or 'opml')"
            self.out.problems.append(Problem(self.doc.location(where), msg))
            return None
        model: type[BaseModel] = OpmlEntry if "opml" in raw else SourceEntry
        try:
            parsed = model.model_validate(raw)
        except ValidationError as e:
            found = problems_from_validation(e, self.doc, AnySourceKeys, prefix=where)
            self.out.problems.extend(found)
            return None
        assert isinstance(parsed, SourceEntry | OpmlEntry)
        return parsed

    def claim(self, i: int, entry: SourceEntry) -> None:
        here = self.doc.location(("sources", i, "id"))
        if entry.id in self.ids:
            msg = f"duplicate source id '{entry.id}' (first defined at {self.ids[entry.id]})"
            self.out.problems.append(Problem(here, msg))
            return
        self.ids[entry.id] = f"line {here.line}"

    def direct(self, i: int, entry: SourceEntry) -> None:
        if entry.url in self.urls:
            msg = f"source '{entry.id}' polls the same URL as source '{self.urls[entry.url]}'"
            self.out.warnings.append(Problem(self.doc.location(("sources", i, "url")), msg))
        self.urls.setdefault(entry.url, entry.id)
        source = SourceConfig(
            id=entry.id,
            url=entry.url,
            name=entry.name or entry.id,
            tags=tuple(entry.tags),
            interval=entry.interval or self.default_interval,
        )
        self.out.sources.append(source)

    def opml(self, i: int, entry: OpmlEntry) -> None:
        feeds = self._read(i, entry.opml)
        if feeds is None:
            return
        if not feeds:
            msg = f"no feeds (outlines with xmlUrl) in '{entry.opml}'"
            self.out.warnings.append(Problem(self.doc.location(("sources", i, "opml")), msg))
        for feed in feeds:
            self._imported(feed, entry)

    def _read(self, i: int, name: str) -> tuple[OpmlFeed, ...] | None:
        path = self.base / os.path.expanduser(name)
        try:
            return read_opml(path, os.path.join(self.shown_base, name))
        except ConfigError as e:
            self.out.problems.extend(e.problems)
        except OSError as e:
            msg = f"cannot read OPML file '{name}': {e.strerror or e}"
            self.out.problems.append(Problem(self.doc.location(("sources", i, "opml")), msg))
        return None

    def _imported(self, feed: OpmlFeed, entry: OpmlEntry) -> None:
        try:
            url = SourceEntry.model_validate({"id": "x", "url": feed.url}).url
        except ValidationError:
            msg = f"skipped '{feed.title or feed.url}': not an http(s) URL: {feed.url!r}"
            self.out.warnings.append(Problem(feed.location, msg))
            return
        if url in self.urls:
            msg = f"skipped '{feed.title or url}': the same URL as source '{self.urls[url]}'"
            self.out.warnings.append(Problem(feed.location, msg))
            return
        source_id = self._unique_id(suggested_id(feed), url, feed.location)
        self.urls[url] = source_id
        tags = tuple(dict.fromkeys([*entry.tags, *feed.categories]))
        source = SourceConfig(
            id=source_id,
            url=url,
            name=feed.title or source_id,
            tags=tags,
            interval=entry.interval or self.default_interval,
        )
        self.out.sources.append(source)

    def _unique_id(self, base: str, url: str, where: Location) -> str:
        # A digest of the URL rather than a counter: the id of a feed does not depend on which other
        # feeds of the same name come before it.
        candidate = base if base not in self.ids else f"{base}-{url_digest(url)}"
        n = 2
        while candidate in self.ids:
            candidate = f"{base}-{url_digest(url)}-{n}"
            n += 1
        self.ids[candidate] = str(where)
        return candidate


def build_sources(
    doc: Positioned,
    entries: Sequence[Any],
    *,
    base: Path,
    shown_base: str,
    default_interval: timedelta,
) -> SourcesResult:
    """Validate every entry, report all problems, expand OPML imports in place."""
    builder = _Builder(doc, base, shown_base, default_interval)
    parsed = [builder.entry(i, raw) for i, raw in enumerate(entries)]
    for i, entry in enumerate(parsed):
        if isinstance(entry, SourceEntry):
            builder.claim(i, entry)
    for i, entry in enumerate(parsed):
        if isinstance(entry, SourceEntry):
            builder.direct(i, entry)
        elif isinstance(entry, OpmlEntry):
            builder.opml(i, entry)
    return builder.out


__all__ = ["SourcesResult", "build_sources"]
