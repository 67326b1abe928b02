"""Feed entries (feedparser's dictionaries) to `Item`s: plain text, canonical links, identity keys.

Identity (DESIGN §6) is decided here, once, in this order:
  1. `guid:` the entry's GUID / Atom id, verbatim (trimmed);
  2. `link:` its canonical link (see `canonical_link`);
  3. `hash:` sha256 of its normalised title and content (summary when it has no content).
A key that is empty, or that several entries of the same document share, says nothing about which
entry is which (CMSs that stamp one GUID on every item, "#" links), so those entries fall back to
the next key. Entries of one document that still share a key after the fallbacks are the same entry:
the first is kept.
"""

from __future__ import annotations

import calendar
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor._links import canonical_link, resolve_link
from monitor._text import collapse_whitespace, html_to_text
from monitor.model import Item

# A date this far ahead of now is a publisher's clock or time-zone bug, not a schedule: such an item
# is treated as undated (DESIGN §6 first-poll rule) rather than being "newest" for days. One day of
# slack absorbs every real time-zone mistake (at most +14h) without guessing.
FUTURE_SLACK = timedelta(days=1)
# GUIDs longer than this are hashed so keys stay index-friendly; real GUIDs are URLs or UUIDs.
_MAX_GUID = 512
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _sha256(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _get(entry: Mapping[str, Any], name: str) -> Any:
    # feedparser's FeedParserDict aliases missing keys (`updated_parsed` -> `published_parsed`) and
    # warns while doing so; the stored values are all we want, so read the dict itself.
    if isinstance(entry, dict):
        return dict.get(entry, name)
    return entry.get(name)


def _text_of(value: Any, detail: Any) -> str:
    """Plain text of a feedparser text construct, honouring its declared type: a `text/plain` title
    such as `AT&T <b>` keeps its angle brackets."""
    if not isinstance(value, str):
        return ""
    kind = detail.get("type", "text/html") if isinstance(detail, Mapping) else "text/html"
    if kind in _HTML_TYPES:
        return html_to_text(value)
    return collapse_whitespace(value)


def _content_text(entry: Mapping[str, Any]) -> str:
    blocks = _get(entry, "content") or ()
    texts = [_text_of(b.get("value"), b) for b in blocks if isinstance(b, Mapping)]
    return "\n".join(t for t in texts if t)


def _published(entry: Mapping[str, Any], now: datetime) -> datetime | None:
    for name in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = _get(entry, name)
        if isinstance(parsed, time.struct_time | tuple) and len(parsed) >= 6:
            try:
                # feedparser's *_parsed are UTC struct_times; timegm avoids the local-time trap.
                seconds = calendar.timegm(tuple(parsed))
                when = datetime.fromtimestamp(seconds, UTC)
            except (OverflowError, ValueError, OSError, TypeError):
                continue
            return None if when > now + FUTURE_SLACK else when
    return None


def _tags(entry: Mapping[str, Any]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for tag in _get(entry, "tags") or ():
        if isinstance(tag, Mapping):
            term = collapse_whitespace(str(_get(tag, "term") or _get(tag, "label") or ""))
            if term:
                seen.setdefault(term, None)
    return tuple(seen)


def _guid(entry: Mapping[str, Any]) -> str | None:
    raw = _get(entry, "id")
    guid = raw.strip() if isinstance(raw, str) else ""
    return guid or None


def _guid_key(guid: str) -> str:
    if len(guid) > _MAX_GUID:
        return "guid:sha256:" + _sha256(guid)
    return "guid:" + guid


def _link(entry: Mapping[str, Any], feed_link: str | None) -> str | None:
    raw = _get(entry, "link")
    return resolve_link(raw if isinstance(raw, str) else None, feed_link)


# An entry's GUID, its link (made absolute) and that link's canonical form: computed once per
# entry, since the repeated-key check of its whole document needs them too.
_Identity = tuple[str | None, str | None, str | None]


def _identity(entry: Mapping[str, Any], feed_link: str | None) -> _Identity:
    link = _link(entry, feed_link)
    return _guid(entry), link, canonical_link(link)


def entry_to_item(
    source_id: str,
    entry: Mapping[str, Any],
    feed_link: str | None,
    *,
    allow_guid: bool = True,
    allow_link: bool = True,
    now: Clock = _utcnow,
) -> Item | None:
    """One entry as an `Item`, or None when it has neither text nor link. `feed_link` is the base
    for relative links; `items_from_entries` clears `allow_guid`/`allow_link` for keys repeated
    within their document (see module docstring)."""
    identity = _identity(entry, feed_link)
    return _to_item(source_id, entry, identity, allow_guid, allow_link, now)


def _to_item(
    source_id: str,
    entry: Mapping[str, Any],
    identity: _Identity,
    allow_guid: bool,
    allow_link: bool,
    now: Clock,
) -> Item | None:
    guid, link, canonical = identity
    title = _text_of(_get(entry, "title"), _get(entry, "title_detail"))
    summary = _text_of(_get(entry, "summary"), _get(entry, "summary_detail"))
    content = _content_text(entry)
    if content == summary:
        content = ""  # RSS readers often copy one into the other; matching it twice adds nothing
    if not (title or summary or content or link):
        return None
    if guid and allow_guid:
        key = _guid_key(guid)
    elif canonical and allow_link:
        key = "link:" + canonical
    else:  # the last resort of the identity chain (module docstring)
        key = "hash:" + _sha256(title, content or summary)
    author = _text_of(_get(entry, "author"), _get(entry, "author_detail"))
    return Item(
        source_id=source_id,
        key=key,
        title=title,
        link=link,
        canonical_link=canonical,
        summary=summary,
        content=content,
        author=author,
        tags=_tags(entry),
        published=_published(entry, now()),
        content_hash=_sha256(title, summary, content),
        guid=guid,
    )


def _repeated(values: Sequence[str | None]) -> set[str]:
    return {v for v, n in Counter(v for v in values if v).items() if n > 1}


def items_from_entries(
    source_id: str,
    entries: Sequence[Mapping[str, Any]],
    feed_link: str | None,
    *,
    now: Clock = _utcnow,
) -> list[Item]:
    """Every usable entry of one document as an `Item`, in document order, keys unique."""
    identities = [_identity(e, feed_link) for e in entries]
    bad_guids = _repeated([guid for guid, _, _ in identities])
    bad_links = _repeated([canonical for _, _, canonical in identities])
    items: list[Item] = []
    seen: set[str] = set()
    for entry, identity in zip(entries, identities, strict=True):
        guid, _, canonical = identity
        allow_guid, allow_link = guid not in bad_guids, canonical not in bad_links
        item = _to_item(source_id, entry, identity, allow_guid, allow_link, now)
        if item is not None and item.key not in seen:
            seen.add(item.key)
            items.append(item)
    return items


__all__ = ["FUTURE_SLACK", "canonical_link", "entry_to_item", "html_to_text", "items_from_entries"]
