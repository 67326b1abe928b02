"""OPML import and export: real-world shapes, hostile documents, a round trip on generated input."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.errors import ConfigError, Location
from monitor.opml import (
    OpmlFeed,
    export_opml,
    parse_opml,
    read_opml,
    slugify,
    suggested_id,
    url_digest,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "config" / "feeds" / "extra.opml"


def problem(data: bytes) -> str:
    with pytest.raises(ConfigError) as info:
        parse_opml(data, "f.opml")
    (only,) = info.value.problems
    return str(only)


def test_nested_folders_categories_and_positions() -> None:
    feeds = read_opml(FIXTURE, "extra.opml")
    assert [f.url for f in feeds] == [
        "https://www.38north.org/feed/",
        "https://www.nknews.org/feed/",
        "https://www.themoscowtimes.com/rss/news",
        "https://www.understandingwar.org/rss.xml",
        "https://mirror.example.org/plain.xml",
        "gopher://example.org/feed",
        "https://www.meduza.io/rss/all",
    ]
    assert feeds[0] == OpmlFeed(
        url="https://www.38north.org/feed/",
        title="38 North",
        location=Location("extra.opml", 9, 7),
        categories=("korea",),
        html_url="https://www.38north.org/",
    )
    # `text` stands in for a missing `title`; a category path contributes its leaf.
    assert (feeds[1].title, feeds[1].categories) == ("NK News", ("korea", "korea-watch"))
    assert feeds[2].categories == ("russia-ukraine",)  # `&amp;` decoded, then slugged
    assert feeds[6].categories == () and feeds[6].title == "Новости"


def test_attribute_names_are_case_insensitive_and_values_trimmed() -> None:
    data = b'<opml><body><outline TEXT=" A " XMLURL=" https://a.example/f "/></body></opml>'
    (feed,) = parse_opml(data, "f.opml")
    assert (feed.title, feed.url) == ("A", "https://a.example/f")


def test_outlines_without_xmlurl_are_folders_not_feeds() -> None:
    data = b"""<opml version="1.0"><body>
      <outline text="Empty"/>
      <outline text="Outer"><outline text="Inner">
        <outline text="F" xmlUrl="https://f.example/rss"/>
      </outline></outline>
      <outline text="G" xmlUrl="https://g.example/rss"/>
    </body></opml>"""
    feeds = parse_opml(data, "f.opml")
    assert [(f.title, f.categories) for f in feeds] == [("F", ("outer", "inner")), ("G", ())]


def test_declared_latin1_encoding() -> None:
    data = '<?xml version="1.0" encoding="ISO-8859-1"?><opml><body><outline title="Café" xmlUrl="https://c.example/"/></body></opml>'
    (feed,) = parse_opml(data.encode("latin-1"), "f.opml")
    assert feed.title == "Café"


def test_billion_laughs_is_refused() -> None:
    data = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<opml><body><outline title="&lol3;" xmlUrl="https://x.example/"/></body></opml>"""
    assert problem(data) == (
        "f.opml:2:16: a DOCTYPE is not allowed in OPML (it could declare entities)"
    )


def test_external_entities_are_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    data = f"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY xxe SYSTEM "file://{secret}">]>
<opml><body><outline title="&xxe;" xmlUrl="https://x.example/"/></body></opml>""".encode()
    found = problem(data)
    assert found.startswith("f.opml:2:16: a DOCTYPE is not allowed") and "TOP-SECRET" not in found


def test_undeclared_entity_is_malformed() -> None:
    data = b'<opml><body><outline title="&nbsp;" xmlUrl="https://x.example/"/></body></opml>'
    assert problem(data) == "f.opml:1:13: invalid OPML: undefined entity"  # expat: the element


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "f.opml:1:1: invalid OPML: no element found"),
        (b"<opml><body>\n<outline", "f.opml:2:1: invalid OPML: unclosed token"),
        (b"<opml><body></opml>", "f.opml:1:15: invalid OPML: mismatched tag"),
        (b"not xml at all", "f.opml:1:1: invalid OPML: syntax error"),
        (
            b'<?xml version="1.0"?>\n<rss version="2.0"><channel/></rss>',
            "f.opml:2:1: not an OPML file: the root element is <rss>, not <opml>",
        ),
    ],
)
def test_malformed_documents(data: bytes, expected: str) -> None:
    assert problem(data) == expected


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_opml(tmp_path / "none.opml")


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Institute for the Study of War", "institute-for-the-study-of-war"),
        ("  Café — Société Générale!  ", "cafe-societe-generale"),
        ("RFE/RL", "rfe-rl"),
        ("38 North", "38-north"),
        ("Новости", ""),
        ("x" * 60, "x" * 48),
        ("a" * 47 + " b", "a" * 47),  # cut at the limit, no trailing '-'
    ],
)
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug


def test_suggested_id_falls_back_to_the_host() -> None:
    feed = OpmlFeed("https://www.meduza.io/rss/all", "Новости", Location("f"))
    assert suggested_id(feed) == "meduza-io"
    nameless = OpmlFeed("https://пример.рф/x", "", Location("f"))
    assert suggested_id(nameless) == "feed-" + url_digest("https://пример.рф/x")
    assert url_digest("https://a.example/") == url_digest("https://a.example/")
    assert url_digest("https://a.example/") != url_digest("https://b.example/")


@dataclass(frozen=True)
class Source:
    url: str
    name: str
    tags: tuple[str, ...] = ()


def test_export_is_valid_escaped_opml() -> None:
    sources = [
        Source("https://a.example/rss?x=1&y=2", 'A & B <"quoted">', ("think-tank", "korea")),
        Source("https://b.example/feed", "Bell\x07 char"),
    ]
    text = export_opml(sources)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    root = ET.fromstring(text)
    outlines = root.findall("./body/outline")
    assert [o.attrib for o in outlines] == [
        {
            "type": "rss",
            "text": 'A & B <"quoted">',
            "title": 'A & B <"quoted">',
            "xmlUrl": "https://a.example/rss?x=1&y=2",
            "category": "think-tank,korea",
        },
        {
            "type": "rss",
            "text": "Bell char",
            "title": "Bell char",
            "xmlUrl": "https://b.example/feed",
        },
    ]
    assert root.findtext("./head/title") == "source-monitor sources"
    assert export_opml(sources) == text  # deterministic: no timestamps


def test_export_of_nothing() -> None:
    assert parse_opml(export_opml([]).encode(), "f.opml") == ()


_names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Co", "Zl", "Zp"), max_codepoint=0xFFFD),
    min_size=1,
    max_size=40,
).filter(lambda s: s == s.strip() and bool(s))
_tags = st.lists(st.from_regex(r"[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,2}", fullmatch=True), max_size=3)
_urls = st.from_regex(r"https://[a-z]{1,10}\.example/[a-z0-9/?=&%.-]{0,30}", fullmatch=True)


@given(st.lists(st.builds(Source, _urls, _names, _tags.map(tuple)), max_size=8))
def test_export_then_import_round_trips(sources: list[Source]) -> None:
    feeds = parse_opml(export_opml(sources).encode("utf-8"), "f.opml")
    unique_tags = [tuple(dict.fromkeys(s.tags)) for s in sources]
    assert [(f.url, f.title, f.categories) for f in feeds] == [
        (s.url, s.name, tags) for s, tags in zip(sources, unique_tags, strict=True)
    ]
