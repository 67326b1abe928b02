"""Bytes and response headers to a `ParsedFeed`: feedparser (RSS 0.9x/1.0/2.0, Atom) and JSON Feed.

Most feeds never reach feedparser itself: `monitor._fastparse` reads them with lxml and replays
feedparser's handlers, giving the same entries about 6x faster (DESIGN §7-8), and hands back
every document it cannot replay exactly (ill-formed, DTDs, XHTML content, ...), which feedparser
then parses as before. `check_entities` runs before either parser sees the body.

feedparser runs with `sanitize_html=False, resolve_relative_uris=False` (DESIGN §8: 2.3x faster).
That is safe here because feed HTML is never rendered as HTML: `monitor.normalize` extracts its
text, and every notifier escapes that text for its own output. Relative entry links are made
absolute in `monitor.normalize`, against the channel's site link (or the document URL when there is
none).

Parsing is CPU-bound, so `FeedParser` runs it in worker processes, keeping the event loop free and
both cores busy. Only picklable values cross the process boundary: the worker returns an `_Outcome`
instead of raising, because `FetchError` does not survive pickling with its `kind`.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import os
from collections.abc import Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from monitor._jsonfeed import looks_like_json, parse_json_feed
from monitor._links import resolve_link
from monitor._sniff import check_entities, has_element, is_bot_wall, is_html, starts_like_markup
from monitor._text import collapse_whitespace, html_to_text
from monitor.errors import FetchError
from monitor.model import Item
from monitor.normalize import items_from_entries

_MAX_TTL = 7 * 86400.0  # a <ttl> of weeks is a typo; the scheduler should not go silent for longer


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    link: str | None
    ttl: float | None  # seconds, from RSS <ttl> (minutes in the document)
    items: tuple[Item, ...]
    bozo: str | None  # why feedparser found the document ill-formed, when it was read anyway


def _ttl(value: Any) -> float | None:
    try:
        minutes = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    if minutes != minutes or minutes <= 0:  # NaN or nonsense
        return None
    return min(minutes * 60.0, _MAX_TTL)


def _base_for_items(feed_link: str | None, url: str) -> str:
    # Relative item links are relative to the site (the channel <link>) in practice, as miniflux and
    # most readers assume; the document URL is the fallback when the channel link is missing or
    # relative.
    if feed_link and feed_link.startswith(("http://", "https://")):
        return feed_link
    return url


def _reject_non_feed(body: bytes, bozo: bool) -> None:
    """Decide why a document without entries and without a known format is not a feed."""
    if is_html(body):
        if is_bot_wall(body):
            raise FetchError("blocked", "a bot-wall or challenge page instead of the feed")
        raise FetchError("not_a_feed", "an HTML page, not a feed")
    if body.startswith(b"\x1f\x8b"):
        raise FetchError("not_a_feed", "a gzip file (compressed without Content-Encoding)")
    if not starts_like_markup(body):
        raise FetchError("not_a_feed", "neither XML nor JSON")
    if not has_element(body):
        raise FetchError("empty", "the document has no element")
    if bozo:
        raise FetchError("parse_error", "unreadable XML")
    raise FetchError("not_a_feed", "XML, but not RSS, Atom or RDF")


def _headers_for_feedparser(headers: Mapping[str, str]) -> dict[str, str]:
    lowered = {k.lower(): v for k, v in headers.items()}
    # No Content-Location: feedparser would resolve relative item links against the document URL,
    # before we can resolve them against the site (see `_base_for_items`). xml:base still applies.
    lowered.pop("content-location", None)
    lowered.pop("content-encoding", None)  # the body is already decoded
    return lowered


def _bozo_reason(result: Mapping[str, Any]) -> str | None:
    from feedparser.exceptions import NonXMLContentType  # see _read_xml

    exc = result.get("bozo_exception")
    if not result.get("bozo") or isinstance(exc, NonXMLContentType):
        return None  # a missing or odd Content-Type says nothing about the document
    return str(exc or "ill-formed")[:300]


def _feed_title(feed: Mapping[str, Any]) -> str:
    title = feed.get("title")
    if not isinstance(title, str):
        return ""
    detail = feed.get("title_detail")
    kind = detail.get("type") if isinstance(detail, Mapping) else None
    return collapse_whitespace(title) if kind == "text/plain" else html_to_text(title)


def _parse_json(source_id: str, body: bytes) -> ParsedFeed:
    doc = parse_json_feed(body)
    items = tuple(items_from_entries(source_id, doc.entries, doc.link))
    return ParsedFeed(doc.title, doc.link, None, items, None)


def _read_xml(body: bytes, headers: Mapping[str, str]) -> Mapping[str, Any]:
    """feedparser's result for the document: replayed from lxml when possible (module docstring).
    A document without entries always goes to feedparser, which says best why it has none."""
    # Imported here, in the parse workers: the daemon's own process never parses, and feedparser
    # and lxml would cost it ~15 MB of its memory budget (DESIGN §7).
    import feedparser

    from monitor._fastparse import parse_fast

    headers = _headers_for_feedparser(headers)
    fast = parse_fast(body, headers)
    if fast is not None and fast.entries:
        return {
            "feed": fast.feed,
            "entries": fast.entries,
            "bozo": fast.bozo,
            "bozo_exception": fast.bozo_exception,
        }
    result: Mapping[str, Any] = feedparser.parse(
        io.BytesIO(body),  # never the bytes themselves: feedparser would treat them as a file name
        response_headers=headers,
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    return result


def _parse_xml(source_id: str, body: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed:
    check_entities(body)
    result = _read_xml(body, headers)
    entries = result.get("entries") or []
    if not entries and not result.get("version"):
        _reject_non_feed(body, bool(result.get("bozo")))
    feed = result.get("feed") or {}
    link = resolve_link(feed.get("link") if isinstance(feed.get("link"), str) else None, url)
    title = _feed_title(feed)
    items = tuple(items_from_entries(source_id, entries, _base_for_items(link, url)))
    reason = _bozo_reason(result)
    if not items and reason:
        # A feed root followed by XML the parser cannot read (truncated, broken) yields nothing:
        # that is a failure to report, not a feed that has gone quiet.
        raise FetchError("parse_error", f"ill-formed feed with no readable entries: {reason}")
    return ParsedFeed(title, link, _ttl(feed.get("ttl")), items, reason)


def parse_feed(source_id: str, body: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed:
    """Parse one fetched document. Pure and synchronous.

    Raises FetchError `empty` (nothing but whitespace), `not_a_feed` (an HTML page, plain text,
    other XML or JSON), `blocked` (a bot-wall page), `parse_error` (XML or JSON it cannot read, or a
    DTD that could expand out of proportion). Ill-formed feeds that still yield entries are
    accepted, with `bozo` saying what was wrong.
    """
    if not body.strip(b" \t\r\n\x00\xef\xbb\xbf\xfe\xff"):
        raise FetchError("empty", "the body is empty")
    if looks_like_json(body):
        return _parse_json(source_id, body)
    return _parse_xml(source_id, body, headers, url)


@dataclass(frozen=True)
class _Outcome:
    feed: ParsedFeed | None = None
    kind: str = ""
    detail: str = ""


def _parse_in_worker(source_id: str, body: bytes, headers: dict[str, str], url: str) -> _Outcome:
    try:
        return _Outcome(feed=parse_feed(source_id, body, headers, url))
    except FetchError as exc:
        return _Outcome(kind=exc.kind, detail=exc.detail)
    except RecursionError:
        return _Outcome(kind="parse_error", detail="document nested too deeply")
    except Exception as exc:  # a parser bug on hostile input must fail this feed, not the daemon
        return _Outcome(kind="parse_error", detail=f"{type(exc).__name__}: {str(exc)[:200]}")


class FeedParser:
    """Runs `parse_feed` off the event loop thread.

    `workers`: processes (default: one per core), started on first use. `processes=False` uses
    threads instead: they only keep the loop responsive (feedparser holds the GIL) but start
    instantly. Workers come from a forkserver, so, as with any non-fork pool, a script that creates
    a FeedParser must guard its entry point with `if __name__ == "__main__":` (`python -m monitor`
    and console scripts are safe).
    """

    def __init__(self, workers: int | None = None, *, processes: bool = True) -> None:
        self._workers = workers or os.cpu_count() or 1
        self._processes = processes
        self._executor: Executor | None = None

    @property
    def workers(self) -> int:
        """How many feeds it parses at once."""
        return self._workers

    def _pool(self) -> Executor:
        if self._executor is None:
            if self._processes:
                # forkserver, not fork: the daemon has threads (DB, HTTP) that a fork would copy
                # mid-flight.
                context = multiprocessing.get_context("forkserver")
                self._executor = ProcessPoolExecutor(self._workers, mp_context=context)
            else:
                self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="feedparse")
        return self._executor

    async def parse(
        self, source_id: str, body: bytes, headers: Mapping[str, str], url: str
    ) -> ParsedFeed:
        loop = asyncio.get_running_loop()
        try:
            outcome = await loop.run_in_executor(
                self._pool(), _parse_in_worker, source_id, body, dict(headers), url
            )
        except BrokenProcessPool:
            # A worker died (killed, out of memory): start a fresh pool for the next feeds.
            self._discard_pool()
            raise FetchError("parse_error", "the parser process died on this document") from None
        if outcome.feed is None:
            raise FetchError(outcome.kind, outcome.detail)
        return outcome.feed

    def _discard_pool(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


__all__ = ["FeedParser", "ParsedFeed", "parse_feed"]
