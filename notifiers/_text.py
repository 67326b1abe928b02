"""Output-neutral text preparation shared by every notifier: cleaning untrusted feed text, cutting
it to a length, and building the matched snippet as segments that each notifier marks up in its own
syntax.

Nothing here escapes for a target format: Slack, HTML and email headers each escape in their own
module.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from monitor.model import AlertMessage, Span

ELLIPSIS = "…"
SNIPPET_CHARS = 320  # about three lines of a mail client: enough context, short enough to scan
_CONTEXT_BEFORE = 80

_WHITESPACE = re.compile(r"\s+")
# Bidi overrides and zero-width characters are format characters (Cf) that can disguise text
# (`moc.live` shown as `evil.com`), so they go with the control characters (Cc); unassigned,
# private-use and lone surrogate code points have no business in a title either.
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def clean(text: str) -> str:
    """One line of displayable text: control and format characters (ANSI escapes, NUL, bidi
    overrides) removed, every kind of line break and space collapsed to one space."""
    return _WHITESPACE.sub(" ", _kept(text)).strip()


def _kept(text: str) -> str:
    """`text` without the characters `clean` drops, each space or line break made one space."""
    return "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in _DROPPED
    )


def truncate(text: str, limit: int) -> str:
    """Cut to at most `limit` characters, ending with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1].rstrip() + ELLIPSIS


def safe_link(link: str | None) -> str | None:
    """The link if it is an absolute http(s) URL without whitespace or control characters, else
    None: a feed must not make us render `javascript:` or `file:` links."""
    if not link:
        return None
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in link):
        return None
    try:
        parts = urlsplit(link)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return link


def iso_time(moment: datetime | None) -> str:
    """`2026-11-26 15:04 UTC`; naive datetimes are taken as UTC."""
    if moment is None:
        return "unknown time"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Segment:
    """A piece of the snippet; `hit` pieces are matched words, to be emphasised."""

    text: str
    hit: bool = False


def valid_spans(text: str, spans: Sequence[Span], field: str) -> list[tuple[int, int]]:
    """The spans of `field` that lie inside `text`, sorted, overlaps merged."""
    ranges = sorted(
        (s.start, s.end) for s in spans if s.field == field and 0 <= s.start < s.end <= len(text)
    )
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def highlight(text: str, spans: Sequence[Span], field: str) -> list[Segment]:
    """The whole field text split into plain and matched segments, each cleaned."""
    return _segments(text, valid_spans(text, spans, field), 0, len(text))


def snippet(alert: AlertMessage, limit: int = SNIPPET_CHARS) -> list[Segment]:
    """A window of the summary around the first match (or its start), with matched words marked; for
    an item without summary, the title when it holds the match. Cleaning happens per segment because
    span offsets refer to the raw text."""
    field, text = "summary", alert.summary
    if not text.strip():
        if not valid_spans(alert.title, alert.matches, "title"):
            return []
        field, text = "title", alert.title
    ranges = valid_spans(text, alert.matches, field)
    start = max(0, ranges[0][0] - _CONTEXT_BEFORE) if ranges else 0
    if start:
        # Start on a word boundary so the snippet does not open with half a word.
        space = text.find(" ", start, ranges[0][0])
        start = space + 1 if space != -1 else start
    end = min(len(text), start + limit)
    segments = _segments(text, ranges, start, end)
    if start > 0:
        segments.insert(0, Segment(ELLIPSIS))
    if end < len(text):
        segments.append(Segment(ELLIPSIS))
    return segments


def _segments(text: str, ranges: list[tuple[int, int]], start: int, end: int) -> list[Segment]:
    out: list[Segment] = []
    pos = start
    for s, e in ranges:
        s, e = max(s, start), min(e, end)
        if s >= e:
            continue
        if s > pos:
            out.append(Segment(text[pos:s]))
        out.append(Segment(text[s:e], hit=True))
        pos = e
    if pos < end:
        out.append(Segment(text[pos:end]))
    return _cleaned(out)


def _cleaned(segments: list[Segment]) -> list[Segment]:
    """Clean each segment but keep single spaces at the joins, so `a <hit> b` stays readable."""
    out: list[Segment] = []
    for seg in segments:
        # Judged on what cleaning keeps: a space followed by a dropped character still ends a
        # word, and a dropped character alone joins its neighbours as it does in `clean`.
        kept = _kept(seg.text)
        body = kept.strip()
        if not body:
            if kept and out and not out[-1].text.endswith(" "):
                out.append(Segment(" "))
            continue
        body = _WHITESPACE.sub(" ", body)
        lead = " " if kept[:1] == " " and out else ""
        trail = " " if kept[-1:] == " " else ""
        if seg.hit:
            if lead:
                out.append(Segment(lead))
            out.append(Segment(body, hit=True))
            if trail:
                out.append(Segment(trail))
        else:
            out.append(Segment(lead + body + trail))
    return out


def plain_snippet(segments: Sequence[Segment], mark: str = "*") -> str:
    """The snippet as plain text with matched words between `mark`s."""
    return "".join(f"{mark}{s.text}{mark}" if s.hit else s.text for s in segments).strip()


def matched_terms(alert: AlertMessage, limit: int = 10) -> list[str]:
    """Distinct matched texts, cleaned, in order of appearance (case-insensitively distinct)."""
    seen: dict[str, str] = {}
    for span in alert.matches:
        term = clean(span.text)
        if term and term.casefold() not in seen:
            seen[term.casefold()] = term
    return list(seen.values())[:limit]


def level_label(alert: AlertMessage) -> str:
    return alert.level.upper()


__all__ = [
    "ELLIPSIS",
    "Segment",
    "clean",
    "highlight",
    "iso_time",
    "level_label",
    "matched_terms",
    "plain_snippet",
    "safe_link",
    "snippet",
    "truncate",
    "valid_spans",
]
