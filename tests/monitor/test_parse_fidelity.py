"""The fast XML path (`monitor._fastparse`) gives exactly the items feedparser gives.

Every comparison parses the same bytes twice through `parse_feed`: as shipped, and with the fast
path switched off, which is the feedparser path the project used before. Identity keys above
all must not change (a changed key re-alerts every item of every source after an upgrade).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import _fastparse
from monitor import parse as parse_module
from monitor._fastparse import parse_fast
from monitor.errors import FetchError
from monitor.parse import ParsedFeed, parse_feed

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "feeds"
URL = "https://feeds.example.org/world/rss.xml"


@dataclass(frozen=True)
class Outcome:
    feed: ParsedFeed | None
    kind: str | None  # FetchError kind when the document was refused
    fast: bool  # whether the fast path produced the feed


class Both(Protocol):
    def __call__(
        self, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[Outcome, Outcome]: ...


def _parse(body: bytes, headers: dict[str, str]) -> tuple[ParsedFeed | None, str | None]:
    try:
        return parse_feed("src", body, headers, URL), None
    except FetchError as exc:
        return None, exc.kind


@pytest.fixture
def both(monkeypatch: pytest.MonkeyPatch) -> Iterator[Both]:
    def run(body: bytes, headers: dict[str, str] | None = None) -> tuple[Outcome, Outcome]:
        headers = {} if headers is None else headers
        fast = parse_fast(body, parse_module._headers_for_feedparser(headers))
        used = fast is not None and bool(fast.entries)
        shipped = Outcome(*_parse(body, headers), fast=used)
        with monkeypatch.context() as patch:
            # monitor.parse imports it when it parses (in the workers only): patch it at its source.
            patch.setattr(_fastparse, "parse_fast", lambda body, headers: None)
            reference = Outcome(*_parse(body, headers), fast=False)
        return shipped, reference

    yield run


def assert_same(shipped: Outcome, reference: Outcome) -> None:
    assert shipped.kind == reference.kind
    assert shipped.feed == reference.feed  # title, link, ttl, bozo and every Item field


# -- named cases ---------------------------------------------------------------------------------

_NS = (
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/"'
)


def rss(items: str, channel: str = "", declaration: str = "utf-8") -> bytes:
    head = f'<?xml version="1.0" encoding="{declaration}"?>\n' if declaration else ""
    return (
        f'{head}<rss version="2.0" {_NS}><channel><title>Desk</title>'
        f"<link>https://site.example/news/</link>{channel}{items}</channel></rss>"
    ).encode()


CASES: dict[str, tuple[bytes, dict[str, str]]] = {
    "guid-permalink-default-is-the-link": (
        rss("<item><title>A</title><guid>a-1</guid></item>"),
        {},
    ),
    "guid-not-permalink": (
        rss('<item><title>A</title><guid isPermaLink="false">https://x.example/?p=1</guid></item>'),
        {},
    ),
    "guid-permalink-capitalised-is-not-true": (
        rss('<item><title>A</title><guid isPermaLink="True">a-2</guid></item>'),
        {},
    ),
    "empty-guid-falls-back-to-the-link": (
        rss(
            '<item><title>A</title><link>https://site.example/a</link><guid isPermaLink="false">'
            "</guid></item><item><title>B</title><link>https://site.example/b</link></item>"
        ),
        {},
    ),
    "relative-links-and-guids": (
        rss("<item><title>A</title><link>/news/a?utm_source=rss</link><guid>b/2</guid></item>"),
        {},
    ),
    "link-with-escaped-ampersands": (
        rss(
            "<item><title>A</title><link>https://site.example/?a=1&amp;amp;b=2&amp;c;</link></item>"
        ),
        {},
    ),
    "charset-only-in-the-header": (
        rss("<item><title>Удар по арсеналу</title><guid>g</guid></item>", declaration="")
        .decode()
        .encode("windows-1251"),
        {"content-type": "application/rss+xml; charset=windows-1251"},
    ),
    "header-charset-beats-the-declaration": (
        rss("<item><title>Тихорецк</title><guid>g</guid></item>", declaration="iso-8859-1")
        .decode()
        .encode("windows-1251"),
        {"content-type": "text/xml; charset=windows-1251"},
    ),
    "undeclared-latin-1": (
        rss("<item><title>Dépôt à Toropets</title><guid>g</guid></item>", declaration="")
        .decode()
        .encode("iso-8859-1"),
        {},
    ),
    "undeclared-windows-1251": (
        rss("<item><title>Удар</title><guid>g</guid></item>", declaration="")
        .decode()
        .encode("windows-1251"),
        {},
    ),
    "rdf": (
        b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        b'xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        b'<channel rdf:about="https://r.example/"><title>R</title><link>https://r.example/</link>'
        b'</channel><item rdf:about="https://r.example/1"><title>One &amp; two</title>'
        b"<link>https://r.example/1?maca=x</link><dc:date>2025-03-01T09:15:00+01:00</dc:date>"
        b"<dc:subject>Depots</dc:subject></item><item><title>No about</title>"
        b"<link>https://r.example/2</link></item></rdf:RDF>",
        {"content-type": "application/rdf+xml"},
    ),
    "atom-xml-base-and-text-types": (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
        b'xml:base="https://blog.example/posts/"><title type="html">Think &amp;amp; Tank</title>'
        b'<link href="/"/><link rel="self" href="feed.xml"/><entry><id>tag:b,2025:1</id>'
        b'<title type="html">AT&amp;amp;T &lt;b&gt;bold&lt;/b&gt;</title><link href="one"/>'
        b'<updated>2025-02-02T08:00:00Z</updated><summary type="text">5 &lt; 6 &amp; 7</summary>'
        b'<content type="html">&lt;p&gt;Body&lt;/p&gt;</content><author><name>A</name>'
        b'<email>a@b.example</email></author><category term="Kursk" label="K"/></entry>'
        b'<entry xml:base="https://other.example/"><title type="text">AT&amp;T &lt;b&gt;</title>'
        b'<link rel="alternate" type="text/html" href="two"/><link rel="enclosure" href="x.mp3"/>'
        b"<published>2025-02-01T09:00:00+01:00</published></entry></feed>",
        {"content-type": "application/atom+xml"},
    ),
    "atom-entry-without-alternate-link-takes-its-id": (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><entry><id>urn:x:1</id>'
        b'<title>t</title><link rel="self" href="https://e.example/1.xml"/></entry></feed>',
        {},
    ),
    "rss-title-that-looks-like-html": (
        rss(
            "<item><title>Tom &amp;amp; Jerry &lt;/b&gt;</title><guid>1</guid></item>"
            "<item><title>a &lt; b &amp;&amp; c</title><guid>2</guid></item>"
            "<item><title>&lt;script&gt;x&lt;/script&gt; y</title><guid>3</guid></item>"
        ),
        {},
    ),
    "ttl-and-channel": (rss("<item><title>A</title><guid>1</guid></item>", "<ttl>45</ttl>"), {}),
    "dates-and-zones": (
        rss(
            "".join(
                f"<item><title>{n}</title><guid>{n}</guid><pubDate>{d}</pubDate></item>"
                for n, d in enumerate(
                    [
                        "Tue, 07 Jan 2025 07:30:00 EST",
                        "Tue, 07 Jan 2025 07:30:00 PDT",
                        "Tue, 07 Jan 2025 07:30:00 +0530",
                        "2025-01-07T07:30:00Z",
                        "07 Jan 2025",
                        "not a date",
                        "Tue, 07 Jan 2025 07:30:00 XYZ",
                        "2099-01-01T00:00:00Z",
                    ]
                )
            )
            + "<item><title>u</title><guid>u</guid><dc:date>2025-01-01</dc:date>"
            "<pubDate>bogus</pubDate></item>"
        ),
        {},
    ),
    "content-and-summary": (
        rss(
            "<item><title>same</title><guid>1</guid><description>&lt;p&gt;Text&lt;/p&gt;"
            "</description><content:encoded><![CDATA[<p>Text</p>]]></content:encoded></item>"
            "<item><title>content first</title><guid>2</guid><content:encoded>Long &lt;b&gt;"
            "body&lt;/b&gt;</content:encoded><description>Short</description></item>"
            "<item><title>content only</title><guid>3</guid><content:encoded>&lt;p&gt;Only"
            "&lt;/p&gt;</content:encoded></item>"
            "<item><title>two descriptions</title><guid>4</guid><description>one</description>"
            "<description>two</description></item>"
        ),
        {},
    ),
    "media-description-changes-the-summary-type": (
        rss(
            "<item><title>m</title><guid>1</guid><content:encoded>c</content:encoded>"
            "<description>&lt;b&gt;bold&lt;/b&gt; summary</description><media:content url='u'>"
            "<media:description>plain</media:description><media:title>mt</media:title>"
            "</media:content></item><item><guid>2</guid><media:title>only media</media:title>"
            "<description>d</description><media:description>becomes content</media:description>"
            "</item>"
        ),
        {},
    ),
    "authors-and-tags": (
        rss(
            "<item><title>a</title><guid>1</guid><author>desk@news.example (Desk Reporter)"
            "</author><dc:creator>Second</dc:creator><category domain='d'>Ukraine</category>"
            "<category>Missiles</category><category>Ukraine</category><dc:subject>DPRK"
            "</dc:subject><media:keywords>a, b,,c</media:keywords></item>"
        ),
        {},
    ),
    "mis-decoded-utf8-and-c1-controls": (
        rss(
            "<item><title>CafÃ© crÃ¨me</title><guid>1</guid></item>"
            "<item><title>Caf\u00e9 \u0080 \u0093quoted\u0094</title><guid>2</guid></item>"
        ),
        {},
    ),
    "image-and-source-inside-items": (
        rss(
            "<item><title>t</title><image>https://img.example/a.jpg</image><guid>1</guid>"
            "<source url='https://s.example/'>Wire</source><media:title>later</media:title>"
            "</item>",
            "<image><url>https://img.example/logo.png</url><title>Logo</title>"
            "<link>https://img.example/</link></image>",
        ),
        {},
    ),
    "served-as-text-html": (
        rss("<item><title>A</title><guid>1</guid></item>"),
        {"content-type": "text/html"},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_named_case_takes_the_fast_path_with_the_same_items(both: Both, name: str) -> None:
    body, headers = CASES[name]
    shipped, reference = both(body, headers)
    assert shipped.fast, f"{name} fell back to feedparser"
    assert_same(shipped, reference)
    assert shipped.feed is not None and shipped.feed.items


def test_named_cases_pin_feedparsers_rules(both: Both) -> None:
    def items(name: str) -> ParsedFeed:
        shipped, _ = both(*CASES[name])
        assert shipped.feed is not None
        return shipped.feed

    first = items("guid-permalink-default-is-the-link").items[0]
    assert (first.key, first.link) == ("guid:a-1", "https://site.example/news/a-1")
    assert items("guid-not-permalink").items[0].link is None
    empty, plain = items("empty-guid-falls-back-to-the-link").items
    assert (empty.key, plain.key) == ("link:https://site.example/a", "link:https://site.example/b")
    atom = items("atom-xml-base-and-text-types")
    assert atom.title == "Think & Tank" and atom.link == "https://blog.example/"
    one, two = atom.items
    assert (one.title, one.link, one.summary) == (
        "AT&T bold",
        "https://blog.example/posts/one",
        "5 < 6 & 7",
    )
    assert (two.title, two.link) == ("AT&T <b>", "https://other.example/two")
    assert two.published == datetime(2025, 2, 1, 8, 0, tzinfo=UTC)
    est, pdt = items("dates-and-zones").items[:2]
    assert est.published == datetime(2025, 1, 7, 12, 30, tzinfo=UTC)
    assert pdt.published == datetime(2025, 1, 7, 14, 30, tzinfo=UTC)
    mojibake, controls = items("mis-decoded-utf8-and-c1-controls").items
    assert (mojibake.title, controls.title) == ("Café crème", "Café € “quoted”")
    assert items("ttl-and-channel").ttl == 45 * 60.0


# -- what the fast path leaves to feedparser -----------------------------------------------------

FALLBACKS = {
    "doctype": b'<!DOCTYPE rss [<!ENTITY co "Co">]><rss version="2.0"><channel><item>'
    b"<title>A &co;</title><guid>g</guid></item></channel></rss>",
    "doctype-after-a-comment": b'<!-- <b> --><!DOCTYPE rss [<!ENTITY co "Co">]><rss version="2.0">'
    b"<channel><item><title>A &co;</title><guid>g</guid></item></channel></rss>",
    "xhtml-content": b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id><title>t</title>'
    b'<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>x</p></div></content>'
    b"</entry></feed>",
    "markup-inside-a-title": b'<rss version="2.0"><channel><item><title>a <b>b</b></title>'
    b"<guid>1</guid></item></channel></rss>",
    "ill-formed": b'<rss version="2.0"><channel><item><title>A & B</title><guid>1</guid>'
    b"</item></channel></rss>",
    "atom-0.3": b'<feed version="0.3" xmlns="http://purl.org/atom/ns#"><entry><id>1</id>'
    b"<title>t</title></entry></feed>",
    "georss": b'<rss version="2.0" xmlns:georss="http://www.georss.org/georss"><channel><item>'
    b"<title>t</title><guid>1</guid><georss:point>45 -71</georss:point></item></channel></rss>",
    "base64-content": b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id>'
    b'<content type="image/png">aGVsbG8=</content></entry></feed>',
    "standard-prefix-rebound": b'<rss version="2.0" xmlns:dc="http://purl.org/dc/terms/"><channel>'
    b"<item><title>t</title><guid>1</guid><dc:modified>2025-01-01</dc:modified></item>"
    b"</channel></rss>",
    "no-items": b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>',
}


@pytest.mark.parametrize("name", sorted(FALLBACKS))
def test_documents_outside_the_replay_go_to_feedparser(both: Both, name: str) -> None:
    shipped, reference = both(FALLBACKS[name])
    assert not shipped.fast
    assert_same(shipped, reference)


# -- generated documents -------------------------------------------------------------------------

_TEXTS = [
    "Depot hit", " spaced  out ", "AT&amp;T", "&lt;b&gt;bold&lt;/b&gt; text", "café", "Ã©té",
    "\u0080euro", "<![CDATA[<p>Para</p> & more]]>", "", "  ", "x &#233; y",
    "http://e.example/a?x=1&amp;y=2", "/rel/path", "tag:e.example,2025:1", "a, b, c",
    "Tue, 07 Jan 2025 07:30:00 EST", "2025-01-07T07:30:00+02:00", "not a date",
    "mail@e.example (Name)", "Name", "https://e.example/x#frag", "日本",
]  # fmt: skip
_DATES = ["pubDate", "dc:date", "dcterms:modified", "dcterms:issued", "dcterms:created",
          "lastBuildDate", "published", "updated", "expirationDate"]  # fmt: skip
_ATTRS = {
    "title": ["", ' type="html"', ' type="text"'],
    "guid": ["", ' isPermaLink="false"', ' isPermaLink="true"', ' isPermaLink="True"'],
    "description": ["", ' type="text"'],
    "summary": ["", ' type="html"'],
    "content": ["", ' type="html"', ' type="text"', ' src="http://e.example/c"'],
    "category": ["", ' domain="d"', ' term="T"', ' term="T" label="L"'],
    "media:keywords": ["", ' x="1"'],
    "source": [' url="http://s.example/"'],
}
_SIMPLE = [
    "title", "link", "guid", "id", "description", "summary", "content:encoded", "content",
    "author", "dc:creator", "category", "dc:subject", "media:description", "media:title",
    "media:keywords", "itunes:keywords", "image", "source", "comments", "foo:bar",
    "itunes:summary", "dc:title", "abstract",
]  # fmt: skip
_GEN_NS = (
    f'{_NS} xmlns:dcterms="http://purl.org/dc/terms/" xmlns:foo="http://foo.example/ns" '
    'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"'
)


def _element(r: random.Random, name: str) -> str:
    return f"<{name}{r.choice(_ATTRS.get(name, ['']))}>{r.choice(_TEXTS)}</{name}>"


def _item(r: random.Random) -> str:
    children = []
    for _ in range(r.randint(0, 9)):
        roll = r.random()
        if roll < 0.6:
            children.append(_element(r, r.choice(_SIMPLE)))
        elif roll < 0.75:
            children.append(_element(r, r.choice(_DATES)))
        elif roll < 0.85:
            rel = r.choice(["", ' rel="alternate"', ' rel="self"', ' rel="enclosure"'])
            href = r.choice(["https://e.example/1", "/rel", "", "x?a=1&amp;b=2"])
            children.append(f'<link href="{href}"{rel}/>')
        elif roll < 0.95:
            media = _element(r, "media:title") + _element(r, "media:description")
            children.append(f'<media:content url="u">{media}</media:content>')
        else:
            email = r.choice(["", "<email>e@e.example</email>"])
            children.append(f"<author><name>{r.choice(_TEXTS)}</name>{email}</author>")
    return "".join(children)


def generated_feed(r: random.Random) -> bytes:
    base = r.choice(["", ' xml:base="http://base.example/dir/"'])
    items = [_item(r) for _ in range(r.randint(1, 4))]
    kind = r.choice(["rss", "atom", "rdf"])
    if kind == "rss":
        channel = _element(r, "title") + r.choice(["", _element(r, "link"), _element(r, "ttl")])
        body = "".join(f"<item{r.choice(['', base])}>{i}</item>" for i in items)
        text = f'<rss version="2.0" {_GEN_NS}{base}><channel>{channel}{body}</channel></rss>'
    elif kind == "atom":
        body = "".join(f"<entry>{i}</entry>" for i in items)
        text = f'<feed xmlns="http://www.w3.org/2005/Atom" {_GEN_NS}{base}>{body}</feed>'
    else:
        about = [r.choice(["http://e.example/r1", "r2", ""]) for _ in items]
        body = "".join(
            f'<item rdf:about="{a}">{i}</item>' for a, i in zip(about, items, strict=True)
        )
        text = (
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            f'xmlns="http://purl.org/rss/1.0/" {_GEN_NS}><channel rdf:about="x">'
            f"{_element(r, 'title')}{_element(r, 'link')}</channel>{body}</rdf:RDF>"
        )
    return ('<?xml version="1.0" encoding="utf-8"?>' + text).encode()


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.randoms(use_true_random=False))
def test_generated_feeds_give_the_same_items(both: Both, r: random.Random) -> None:
    shipped, reference = both(generated_feed(r))
    assert_same(shipped, reference)


def test_generated_feeds_mostly_take_the_fast_path(both: Both) -> None:
    fast = sum(both(generated_feed(random.Random(seed)))[0].fast for seed in range(200))
    assert fast > 150


# -- the shared corpus ---------------------------------------------------------------------------

_HEADER = re.compile(rb"^\s*Header:\s*([\w-]+):\s*(.+?)\s*$", re.M)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is not present")
def test_every_corpus_document_gives_the_same_result_on_both_paths(both: Both) -> None:
    fast: list[str] = []
    for path in sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix != ".md"):
        body = path.read_bytes()
        headers = {k.decode().lower(): v.decode() for k, v in _HEADER.findall(body[:2000])}
        shipped, reference = both(body, headers)
        assert shipped.kind == reference.kind, path
        assert shipped.feed == reference.feed, path
        if shipped.fast:
            fast.append(path.name)
    news = CORPUS / "fastfeedparser" / "benchmark_data"
    assert {p.name for p in news.iterdir()} <= set(fast)  # every real news feed: the fast path
    assert len(fast) >= 120
