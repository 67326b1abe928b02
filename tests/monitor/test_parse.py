"""Parsing fetched bytes: formats, encodings, hostile and broken documents, the worker pool."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import FetchError
from monitor.parse import FeedParser, ParsedFeed, parse_feed

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "feeds"
URL = "https://feeds.example.org/world/rss.xml"
XML = {"content-type": "application/rss+xml"}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(body: bytes, headers: dict[str, str] | None = None) -> ParsedFeed:
    return parse_feed("src", body, XML if headers is None else headers, URL)


def kind_of(body: bytes, headers: dict[str, str] | None = None) -> str:
    with pytest.raises(FetchError) as caught:
        parse(body, headers)
    return caught.value.kind


# -- formats -------------------------------------------------------------------------------------


def test_rss20() -> None:
    feed = parse(fixture("rss20.xml"))
    assert (feed.title, feed.link, feed.ttl, feed.bozo) == (
        "Example Defence Desk", "https://news.example.org/defence/", 1800.0, None,
    )  # fmt: skip
    first, second = feed.items
    assert first.key == "guid:example-1001"
    assert first.title == "Russia fires North Korean KN-23 missiles at Kharkiv"
    assert first.canonical_link == "https://news.example.org/defence/kn23-kharkiv"
    assert first.summary == "Officials say the Hwasong-11 missiles struck the city."
    assert (
        first.content
        == "Officials say the Hwasong-11 missiles struck the city overnight.\nMore follows."
    )
    assert first.published == datetime(2025, 1, 7, 7, 30, tzinfo=UTC)
    assert (first.author, first.tags) == ("Desk Reporter", ("Ukraine", "Missiles"))
    # A relative item link is resolved against the channel's site link, not the feed's URL.
    assert second.link == "https://news.example.org/defence/toropets-depot"


def test_atom() -> None:
    feed = parse(fixture("atom.xml"), {"content-type": "application/atom+xml"})
    assert feed.title == "Example Think Tank" and feed.link == "https://thinktank.example.net/"
    first, second = feed.items
    assert first.key == "guid:tag:thinktank.example.net,2025:analysis-17"
    assert first.title == "North Korean troops deployed to Kursk"
    assert first.summary == "Soldiers from the DPRK were seen near Kursk & Sudzha."
    assert (
        first.content == "Soldiers from the DPRK were seen near Kursk.\nCasualties were reported."
    )
    assert first.published == datetime(2025, 2, 1, 9, 0, tzinfo=UTC)
    assert second.published == datetime(2025, 2, 2, 8, 0, tzinfo=UTC)  # from <updated>


def test_rdf_without_guids_uses_its_resource_ids() -> None:
    feed = parse(fixture("rdf.xml"), {"content-type": "application/rdf+xml"})
    assert [i.key for i in feed.items] == [
        "guid:https://radio.example.com/a-1", "guid:https://radio.example.com/a-2",
    ]  # fmt: skip
    assert feed.items[0].canonical_link == "https://radio.example.com/a-1"  # maca= dropped
    assert feed.items[0].published == datetime(2025, 3, 1, 8, 15, tzinfo=UTC)


def test_json_feed() -> None:
    feed = parse(fixture("jsonfeed.json"), {"content-type": "application/feed+json"})
    assert (feed.title, feed.link) == ("Example JSON Desk", "https://json.example.org/")
    first, second = feed.items
    assert first.key == "guid:j-1" and first.title == "Explosions at Tikhoretsk arsenal"
    assert first.content == "An arms depot near Tikhoretsk was hit."
    assert (first.author, first.tags) == ("J. Writer", ("depots", "Russia"))
    assert first.published == datetime(2025, 4, 2, 3, 4, 5, tzinfo=UTC)
    assert second.key == "guid:2" and second.content == "A post without a title."
    assert second.published == datetime(2025, 4, 2, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'{"version": "https://jsonfeed.org/version/1", "items": [', "parse_error"),
        (b'{"name": "an API answer"}', "not_a_feed"),
        (b"[1, 2, 3]", "not_a_feed"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": "no"}', "parse_error"),
        (b"[" * 100_000, "parse_error"),
    ],
)
def test_json_that_is_not_a_json_feed(body: bytes, kind: str) -> None:
    assert kind_of(body, {"content-type": "application/json"}) == kind


def test_no_guids_fall_back_to_links_and_hashes() -> None:
    keys = [i.key for i in parse(fixture("no_guids.xml")).items]
    assert keys[:2] == [
        "link:https://noguid.example.com/s/1",
        "link:https://noguid.example.com/s/2",
    ]
    assert keys[2].startswith("hash:")


def test_repeated_guids_fall_back_per_document() -> None:
    items = parse(fixture("repeated_guids.xml")).items
    assert [i.title for i in items] == ["A", "B", "C", "D", "E", "F"]
    keys = [i.key for i in items]
    assert keys[:4] == [
        "link:https://dupes.example.com/a", "link:https://dupes.example.com/b",
        "link:https://dupes.example.com/c", "guid:unique-d",
    ]  # fmt: skip
    assert keys[4].startswith("hash:") and keys[5].startswith("hash:")
    assert len(set(keys)) == len(keys)


# -- encodings -----------------------------------------------------------------------------------

CYRILLIC = "Удар по арсеналу в Тихорецке"
LATIN = "Frappe sur un dépôt à Toropets, façade détruite"


def encoded_feed(title: str, codec: str, declare_in_xml: bool) -> bytes:
    declaration = f'<?xml version="1.0" encoding="{codec}"?>\n' if declare_in_xml else ""
    text = (
        f'{declaration}<rss version="2.0"><channel><title>{title}</title>'
        f"<link>https://e.example/</link><item><title>{title}</title><guid>g1</guid>"
        f"<description>{title}</description></item></channel></rss>"
    )
    return text.encode(codec)


@pytest.mark.parametrize(("codec", "title"), [("windows-1251", CYRILLIC), ("iso-8859-1", LATIN)])
@pytest.mark.parametrize("where", ["header", "xml"])
def test_declared_non_utf8_encodings_are_decoded(codec: str, title: str, where: str) -> None:
    body = encoded_feed(title, codec, declare_in_xml=where == "xml")
    content_type = (
        f"application/rss+xml; charset={codec}" if where == "header" else "application/xml"
    )
    feed = parse(body, {"content-type": content_type})
    assert feed.title == title
    assert [(i.title, i.summary) for i in feed.items] == [(title, title)]


def test_undeclared_latin1_falls_back_to_a_western_codec() -> None:
    feed = parse(encoded_feed(LATIN, "iso-8859-1", declare_in_xml=False), {})
    assert feed.items[0].title == LATIN
    assert feed.bozo is not None  # the declared (default UTF-8) encoding was overridden


def test_undeclared_windows1251_still_yields_items() -> None:
    # Without a declaration the bytes are ambiguous; the feed must still be read, not rejected.
    feed = parse(encoded_feed(CYRILLIC, "windows-1251", declare_in_xml=False), {})
    assert len(feed.items) == 1 and feed.items[0].key == "guid:g1"
    assert feed.items[0].title and feed.bozo is not None


def test_header_charset_wins_over_a_wrong_xml_declaration() -> None:
    body = encoded_feed(CYRILLIC, "windows-1251", declare_in_xml=False)
    body = b'<?xml version="1.0" encoding="iso-8859-1"?>\n' + body
    feed = parse(body, {"content-type": "text/xml; charset=windows-1251"})
    assert feed.items[0].title == CYRILLIC


def test_utf16_with_bom() -> None:
    body = encoded_feed(CYRILLIC, "utf-16", declare_in_xml=True)
    assert parse(body, {}).items[0].title == CYRILLIC


# -- what is not a feed --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"", "empty"),
        (b"  \r\n\t ", "empty"),
        (b"\xef\xbb\xbf\n", "empty"),
        (b"<!-- nothing but a comment -->\n", "empty"),
        (b"Service temporarily unavailable", "not_a_feed"),
        (b"/etc/passwd", "not_a_feed"),  # never opened as a file name
        (b"\x1f\x8b\x08\x00compressed", "not_a_feed"),
        (
            b'<?xml version="1.0"?><urlset><url><loc>https://e.com/</loc></url></urlset>',
            "not_a_feed",
        ),
        (b"<<<>>>\x00\x01\x02 <not xml", "parse_error"),
    ],
)
def test_bodies_that_are_not_feeds(body: bytes, kind: str) -> None:
    assert kind_of(body) == kind


def test_html_page_is_not_a_feed() -> None:
    with pytest.raises(FetchError) as caught:
        parse(fixture("page.html"), {"content-type": "text/html; charset=utf-8"})
    assert caught.value.kind == "not_a_feed" and "HTML" in caught.value.detail


def test_bot_wall_page_is_blocked() -> None:
    assert kind_of(fixture("botwall.html"), {"content-type": "text/html"}) == "blocked"


def test_feed_served_as_text_html_is_still_a_feed() -> None:
    feed = parse(fixture("rss20.xml"), {"content-type": "text/html"})
    assert len(feed.items) == 2 and feed.bozo is None


def test_valid_feed_without_items_is_an_empty_feed_not_an_error() -> None:
    body = b'<rss version="2.0"><channel><title>Quiet</title><link>https://q.example/</link></channel></rss>'
    feed = parse(body)
    assert (feed.title, feed.items) == ("Quiet", ())


def test_malformed_but_readable_xml_is_accepted_with_bozo() -> None:
    feed = parse(fixture("malformed.xml"))
    assert feed.bozo is not None and "not well-formed" in feed.bozo
    assert [i.title for i in feed.items] == ["Strike on arms depot & fuel store", "Second item"]
    assert feed.items[0].summary == "Unclosed bold text"


@pytest.mark.parametrize("value", ["0", "-5", "soon", "", "nan"])
def test_nonsense_ttl_is_ignored(value: str) -> None:
    body = f'<rss version="2.0"><channel><title>t</title><ttl>{value}</ttl></channel></rss>'
    assert parse(body.encode()).ttl is None


def test_huge_ttl_is_capped_at_a_week() -> None:
    body = b'<rss version="2.0"><channel><title>t</title><ttl>99999999</ttl></channel></rss>'
    assert parse(body).ttl == 7 * 86400.0


# -- hostile documents ---------------------------------------------------------------------------


def _laughs(levels: int) -> bytes:
    lines = ['<!ENTITY lol0 "lol">']
    for n in range(1, levels + 1):
        lines.append(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">')
    dtd = "\n ".join(lines)
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n {dtd}\n]>\n<rss version="2.0"><channel>'
        f"<title>&lol{levels};</title><item><title>&lol{levels};</title></item></channel></rss>"
    ).encode()


def test_billion_laughs_is_refused_quickly() -> None:
    started = time.monotonic()
    assert kind_of(_laughs(9)) == "parse_error"
    assert time.monotonic() - started < 2


def test_billion_laughs_on_one_line_is_refused() -> None:
    body = _laughs(9).replace(b"\n", b"")
    assert kind_of(body) == "parse_error"


def test_quadratic_blowup_is_refused_quickly() -> None:
    # One long entity referenced many times: expat lets the DTD through and feedparser's fallback
    # parser would expand it to gigabytes (measured: a minute, 2 GB) without the guard.
    big = "x" * 100_000
    body = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY big "{big}">\n]>\n<rss version="2.0">'
        f"<channel><title>t</title><item><title>{'&big;' * 20_000}</title></item></channel></rss>"
    ).encode()
    started = time.monotonic()
    assert kind_of(body) == "parse_error"
    assert time.monotonic() - started < 2


def test_utf16_encoded_entity_bomb_is_refused() -> None:
    body = (
        _laughs(9)
        .decode()
        .replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="utf-16"?>')
    )
    assert kind_of(body.encode("utf-16")) == "parse_error"


def test_small_character_entities_still_work() -> None:
    body = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY nbsp "&#160;">\n<!ENTITY co "Co">\n]>\n'
        b'<rss version="2.0"><channel><title>t</title><item><title>A&nbsp;&amp;&nbsp;&co;</title>'
        b"<guid>g</guid></item></channel></rss>"
    )
    assert parse(body).items[0].title == "A & Co"


def test_external_entities_are_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    body = (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "file://{secret}">\n]>\n'
        f'<rss version="2.0"><channel><title>t</title><item><title>a &xxe; b</title>'
        f"<guid>g</guid></item></channel></rss>"
    ).encode()
    try:
        feed = parse(body)
    except FetchError as exc:
        assert exc.kind == "parse_error"
    else:
        assert all("TOP-SECRET" not in i.title + i.summary for i in feed.items)


def test_deeply_nested_xml_does_not_crash() -> None:
    body = b'<rss version="2.0"><channel><title>t</title><item><title>x</title>' + b"<a>" * 20_000
    try:
        feed = parse(body)
    except FetchError as exc:
        assert exc.kind == "parse_error"
    else:
        assert len(feed.items) <= 1


# -- the worker pool -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def process_parser() -> Iterator[FeedParser]:
    parser = FeedParser(workers=2)
    yield parser
    parser.close()


async def test_process_pool_gives_the_same_result_as_parse_feed(process_parser: FeedParser) -> None:
    body = fixture("rss20.xml")
    assert await process_parser.parse("src", body, XML, URL) == parse(body)


async def test_process_pool_keeps_the_error_kind(process_parser: FeedParser) -> None:
    with pytest.raises(FetchError) as caught:
        await process_parser.parse("src", fixture("page.html"), {"content-type": "text/html"}, URL)
    assert caught.value.kind == "not_a_feed" and caught.value.detail


async def test_parsing_does_not_block_the_event_loop() -> None:
    parser = FeedParser(workers=1, processes=False)
    words = "word " * 200
    items = "".join(
        f"<item><title>Item {n}</title><guid>g{n}</guid><description>{words}</description></item>"
        for n in range(600)
    )
    body = f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    beat = asyncio.create_task(heartbeat())
    try:
        feed = await parser.parse("src", body, XML, URL)
    finally:
        beat.cancel()
        parser.close()
    assert len(feed.items) == 600
    assert ticks > 10  # the loop kept running while the worker parsed


async def test_thread_parser_and_close_twice() -> None:
    parser = FeedParser(workers=1, processes=False)
    feed = await parser.parse("src", fixture("atom.xml"), {}, URL)
    assert len(feed.items) == 2
    parser.close()
    parser.close()


# -- real-world corpus ---------------------------------------------------------------------------

_HEADER = re.compile(rb"^\s*Header:\s*([\w-]+):\s*(.+?)\s*$", re.M)
_KINDS = {"empty", "not_a_feed", "parse_error", "blocked"}


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix != ".md")


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is not present")
def test_every_corpus_feed_parses_or_fails_with_a_clear_kind() -> None:
    outcomes: dict[str, int] = {}
    news: dict[str, int] = {}
    for path in _corpus_files():
        body = path.read_bytes()
        # feedparser's own test files carry the HTTP headers they were meant to be served with.
        headers = {k.decode().lower(): v.decode() for k, v in _HEADER.findall(body[:2000])}
        started = time.monotonic()
        try:
            feed = parse_feed("corpus", body, headers, "https://corpus.example/feed")
        except FetchError as exc:
            assert exc.kind in _KINDS, f"{path}: {exc}"
            outcomes[exc.kind] = outcomes.get(exc.kind, 0) + 1
        else:
            keys = [i.key for i in feed.items]
            assert len(keys) == len(set(keys)), path
            assert all(k.split(":", 1)[0] in {"guid", "link", "hash"} for k in keys), path
            assert all(i.published is None or i.published.tzinfo is not None for i in feed.items)
            outcomes["ok"] = outcomes.get("ok", 0) + 1
            if path.parent.name == "benchmark_data":  # real news feeds as served: all have items
                news[path.name] = len(feed.items)
        assert time.monotonic() - started < 10, f"{path} took too long"
    assert outcomes.get("ok", 0) >= 200, outcomes
    assert len(news) >= 20 and all(n > 0 for n in news.values()), news
    assert news.get("960551eca5b5db81") == 300  # The Economist: all 300 items


def test_plain_text_feed_title_keeps_its_angle_brackets() -> None:
    body = b'<rss version="2.0"><channel><title>AT&amp;T &lt;b&gt; news</title></channel></rss>'
    assert parse(body).title == "AT&T <b> news"


def test_a_truncated_feed_with_no_readable_entry_is_a_parse_error() -> None:
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item><title>Cut'
    with pytest.raises(FetchError) as caught:
        parse_feed("s", body, {"content-type": "application/rss+xml"}, "https://x.test/feed")
    assert caught.value.kind == "parse_error"


def test_a_well_formed_empty_feed_is_fine() -> None:
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'
    parsed = parse_feed("s", body, {"content-type": "application/rss+xml"}, "https://x.test/feed")
    assert parsed.items == () and parsed.bozo is None
