"""OPML import (`sources: - opml: FILE`) and export (`monitor sources --opml`).

Parsed with the stdlib expat parser, which `xml.etree` itself uses, driven directly for two reasons:
every outline keeps its line and column for error messages, and a DOCTYPE is refused before anything
in it is read. With no DOCTYPE there can be no entity declarations, so neither entity expansion
bombs nor external entities (local files, URLs) can reach us: the guarantee defusedxml gives.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit
from xml.parsers import expat

from monitor.errors import ConfigError, Location, Problem

# Characters XML 1.0 cannot carry at all, even escaped.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class OpmlFeed:
    """One outline with an `xmlUrl`. `categories` are the enclosing folder outlines (outermost
    first) followed by the outline's own `category` entries, all as slugs usable as source tags."""

    url: str
    title: str
    location: Location
    categories: tuple[str, ...] = ()
    html_url: str | None = None


class _Refused(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


@dataclass
class _Reader:
    parser: expat.XMLParserType
    feeds: list[OpmlFeed] = field(default_factory=list)
    folders: list[str | None] = field(default_factory=list)  # one entry per open <outline>
    root: str | None = None
    file: str = ""

    def here(self) -> Location:
        # Read inside a handler: once Parse() returns, expat's position has moved past the event.
        line, column = self.parser.CurrentLineNumber, self.parser.CurrentColumnNumber
        return Location(self.file, line, column + 1)

    def refuse(self, message: str) -> None:
        raise _Refused(Problem(self.here(), message))

    def doctype(self, *_: object) -> None:
        # Called at the start of the DOCTYPE, before its internal subset: no entity is declared yet.
        self.refuse("a DOCTYPE is not allowed in OPML (it could declare entities)")

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if self.root is None:
            self.root = name
            if name.lower() != "opml":
                self.refuse(f"not an OPML file: the root element is <{name}>, not <opml>")
        if name.lower() != "outline":
            return
        lowered = {k.lower(): v for k, v in attrs.items()}
        title = (lowered.get("title") or lowered.get("text") or "").strip()
        url = (lowered.get("xmlurl") or "").strip()
        if not url:
            self.folders.append(slugify(title) or None)
            return
        self.folders.append(None)
        where = self.here()
        own = (_category_tag(c) for c in lowered.get("category", "").split(","))
        tags = _unique([f for f in self.folders[:-1] if f] + [t for t in own if t])
        html_url = lowered.get("htmlurl") or None
        self.feeds.append(OpmlFeed(url, title, where, tuple(tags), html_url))

    def end(self, name: str) -> None:
        if name.lower() == "outline" and self.folders:
            self.folders.pop()


def parse_opml(data: bytes, file: str) -> tuple[OpmlFeed, ...]:
    """Every feed outline of an OPML document, in document order, nested folders included.
    Raises ConfigError (located in `file`) for malformed XML, a DOCTYPE, or a non-OPML document."""
    parser = expat.ParserCreate()
    reader = _Reader(parser, file=file)
    parser.StartDoctypeDeclHandler = reader.doctype
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    try:
        parser.Parse(data, True)
    except _Refused as e:
        raise ConfigError(e.problem) from None
    except expat.ExpatError as e:
        where = Location(file, e.lineno, e.offset + 1)
        raise ConfigError(Problem(where, f"invalid OPML: {expat.ErrorString(e.code)}")) from None
    return tuple(reader.feeds)


def read_opml(path: Path, shown: str | None = None) -> tuple[OpmlFeed, ...]:
    """`parse_opml` on a file; problems name it `shown` (default: the path). OSError propagates."""
    return parse_opml(path.read_bytes(), shown or str(path))


def slugify(text: str, max_length: int = 48) -> str:
    """`Institute for the Study of War` -> `institute-for-the-study-of-war`; accents folded,
    anything that is not an ASCII letter or digit becomes one `-`. Empty when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].rstrip("-")


def suggested_id(feed: OpmlFeed) -> str:
    """A source id for a feed: the slug of its title, else of its host (without `www.`)."""
    slug = slugify(feed.title)
    if slug:
        return slug
    host = (urlsplit(feed.url).hostname or "").removeprefix("www.")
    return slugify(host.replace(".", "-")) or "feed-" + url_digest(feed.url)


def url_digest(url: str) -> str:
    """Six hex digits that depend only on the URL: suffixes that keep ids unique and stable."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:6]


def _category_tag(category: str) -> str:
    # OPML 2.0: `category` is a comma-separated list of slash-delimited paths; the leaf names it.
    leaf = [part for part in category.split("/") if part.strip()]
    return slugify(leaf[-1]) if leaf else ""


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


class ExportedSource(Protocol):
    """What `export_opml` reads from each source (`monitor.config.SourceConfig` has it)."""

    @property
    def url(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def tags(self) -> tuple[str, ...]: ...


def export_opml(sources: Iterable[ExportedSource], *, title: str = "source-monitor sources") -> str:
    """An OPML 2.0 document with one `rss` outline per source; tags go to `category`, so an export
    imported again (`sources: - opml: ...`) keeps them."""
    root = ET.Element("opml", version="2.0")
    ET.SubElement(ET.SubElement(root, "head"), "title").text = _xml_text(title)
    body = ET.SubElement(root, "body")
    for source in sources:
        attrs = {
            "type": "rss",
            "text": _xml_text(source.name),
            "title": _xml_text(source.name),
            "xmlUrl": _xml_text(source.url),
        }
        if source.tags:
            attrs["category"] = _xml_text(",".join(source.tags))
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _xml_text(text: str) -> str:
    return _XML_ILLEGAL.sub("", text)


__all__ = [
    "ExportedSource",
    "OpmlFeed",
    "export_opml",
    "parse_opml",
    "read_opml",
    "slugify",
    "suggested_id",
    "url_digest",
]
