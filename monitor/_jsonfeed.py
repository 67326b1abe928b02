"""JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1), which feedparser 6.0 does not read.

The document is turned into the same shapes feedparser produces (`feed` and `entries` mappings with
`*_detail` types and UTC `*_parsed` struct_times), so that `monitor.normalize` has one input format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from time import struct_time
from typing import Any

from monitor.errors import FetchError


@dataclass(frozen=True)
class JsonFeedDocument:
    title: str
    link: str | None
    entries: tuple[dict[str, Any], ...]


def looks_like_json(body: bytes) -> bool:
    return body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[")


def _str(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _parsed_date(value: Any) -> struct_time | None:
    text = _str(value)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # RFC 3339 requires an offset; UTC is the honest guess
    return when.astimezone(UTC).timetuple()


def _author(item: Mapping[str, Any]) -> str | None:
    authors = item.get("authors")
    candidates = authors if isinstance(authors, list) else [item.get("author")]
    for author in candidates:
        if isinstance(author, Mapping) and _str(author.get("name")):
            return _str(author.get("name"))
    return None


def _entry(item: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    raw_id = item.get("id")
    # The spec says ids are strings, but integers are common in the wild.
    if isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
        entry["id"] = str(raw_id)
    for key, source in (("link", "url"), ("title", "title"), ("summary", "summary")):
        if (value := _str(item.get(source))) is not None:
            entry[key] = value
    entry["title_detail"] = {"type": "text/plain"}
    entry["summary_detail"] = {"type": "text/plain"}
    if "link" not in entry and (external := _str(item.get("external_url"))):
        entry["link"] = external
    content = []
    if html := _str(item.get("content_html")):
        content.append({"type": "text/html", "value": html})
    elif text := _str(item.get("content_text")):
        content.append({"type": "text/plain", "value": text})
    entry["content"] = content
    if (author := _author(item)) is not None:
        entry["author"] = author
        entry["author_detail"] = {"type": "text/plain"}
    tags = item.get("tags")
    if isinstance(tags, list):
        entry["tags"] = [{"term": t} for t in tags if isinstance(t, str)]
    entry["published_parsed"] = _parsed_date(item.get("date_published"))
    entry["updated_parsed"] = _parsed_date(item.get("date_modified"))
    return entry


def parse_json_feed(body: bytes) -> JsonFeedDocument:
    """Raises FetchError `parse_error` (not JSON) or `not_a_feed` (JSON, but not a JSON Feed)."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FetchError("parse_error", f"invalid JSON: {str(exc)[:200]}") from None
    version = doc.get("version") if isinstance(doc, dict) else None
    items = doc.get("items") if isinstance(doc, dict) else None
    if not (isinstance(version, str) and "jsonfeed.org/version/" in version):
        raise FetchError("not_a_feed", "JSON document is not a JSON Feed (no jsonfeed.org version)")
    if not isinstance(items, list):
        raise FetchError("parse_error", "JSON Feed has no 'items' list")
    entries = tuple(_entry(i) for i in items if isinstance(i, Mapping))
    return JsonFeedDocument(_str(doc.get("title")) or "", _str(doc.get("home_page_url")), entries)


__all__ = ["JsonFeedDocument", "looks_like_json", "parse_json_feed"]
