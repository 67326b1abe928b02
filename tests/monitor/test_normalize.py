"""Canonical links, HTML to text, and entries to items with their identity keys (DESIGN §6)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.normalize import (
    FUTURE_SLACK,
    canonical_link,
    entry_to_item,
    html_to_text,
    items_from_entries,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def parsed(when: datetime) -> time.struct_time:
    return when.astimezone(UTC).timetuple()


# -- canonical_link ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://News.Example.COM/World/Story-1", "https://news.example.com/World/Story-1"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com/a#comments", "https://example.com/a"),
        ("https://example.com", "https://example.com/"),
        ("https://user:secret@example.com/a", "https://example.com/a"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("https://example.com./a", "https://example.com/a"),
        ("https://example.com/a?", "https://example.com/a"),
        ("https://[2001:DB8::1]:8080/a", "https://[2001:db8::1]:8080/a"),
    ],
)
def test_canonical_link_normalises_scheme_host_port_fragment(raw: str, expected: str) -> None:
    assert canonical_link(raw) == expected


def test_canonical_link_removes_tracking_parameters_and_sorts_the_rest() -> None:
    raw = (
        "https://example.com/story?utm_source=rss&b=2&UTM_Medium=x&fbclid=1&gclid=2&dclid=3"
        "&msclkid=4&mc_cid=5&mc_eid=6&_ga=7&yclid=8&igshid=9&ref_src=twsrc&a=1"
    )
    assert canonical_link(raw) == "https://example.com/story?a=1&b=2"


def test_canonical_link_keeps_query_bytes_and_repeated_names_as_written() -> None:
    raw = "https://example.com/s?q=a%2Fb&id=7&id=3&x=%C3%A9"
    assert canonical_link(raw) == "https://example.com/s?id=3&id=7&q=a%2Fb&x=%C3%A9"


def test_canonical_link_keeps_parameters_that_select_content() -> None:
    raw = "https://example.com/view?id=42&page=2&ref=home"
    assert canonical_link(raw) == "https://example.com/view?id=42&page=2&ref=home"


def test_canonical_link_path_is_case_sensitive() -> None:
    assert canonical_link("https://e.com/A") != canonical_link("https://e.com/a")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://e.com/world/story-1/amp/", "https://e.com/world/story-1/"),
        ("https://e.com/world/story-1/amp", "https://e.com/world/story-1"),
        ("https://e.com/world/story-1?amp", "https://e.com/world/story-1"),
        ("https://e.com/world/story-1?amp=1&id=2", "https://e.com/world/story-1?id=2"),
        ("https://www.google.com/amp/s/e.com/world/story-1", "https://e.com/world/story-1"),
        ("https://e-com.cdn.ampproject.org/c/s/e.com/story?utm_source=x", "https://e.com/story"),
        # Not certain, so left alone: a page at /amp, a real `amp` value, an amp. host.
        ("https://e.com/amp", "https://e.com/amp"),
        ("https://e.com/guitar?amp=fender", "https://e.com/guitar?amp=fender"),
        ("https://amp.e.com/story", "https://amp.e.com/story"),
    ],
)
def test_canonical_link_amp_variants_only_where_safe(raw: str, expected: str) -> None:
    assert canonical_link(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [None, "", "   ", "/relative/path", "mailto:desk@example.com", "ftp://e.com/f", "urn:uuid:1",
     "https://e.com:99999/", "http://[broken/", "javascript:alert(1)"],
)  # fmt: skip
def test_canonical_link_is_none_for_what_is_not_an_absolute_web_link(raw: str | None) -> None:
    assert canonical_link(raw) is None


_hosts = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}\.(com|org|NET)", fullmatch=True)
_segments = st.lists(st.from_regex(r"[A-Za-z0-9._~-]{1,8}", fullmatch=True), max_size=4)
_params = st.lists(
    st.tuples(
        st.sampled_from(["id", "page", "q", "utm_source", "fbclid", "amp", "x", "Utm_Campaign"]),
        st.from_regex(r"[A-Za-z0-9%]{0,5}", fullmatch=True),
    ),
    max_size=5,
)


def _url(scheme: str, host: str, segments: list[str], params: list[tuple[str, str]]) -> str:
    query = "&".join(f"{k}={v}" for k, v in params)
    return f"{scheme}://{host}/{'/'.join(segments)}" + (f"?{query}" if query else "")


@given(st.sampled_from(["http", "HTTPS"]), _hosts, _segments, _params)
def test_canonical_link_is_idempotent(
    scheme: str, host: str, segments: list[str], params: list[tuple[str, str]]
) -> None:
    once = canonical_link(_url(scheme, host, segments, params))
    assert once is not None
    assert canonical_link(once) == once


@given(_hosts, _segments, _params, st.randoms(use_true_random=False))
def test_canonical_link_ignores_parameter_order(
    host: str, segments: list[str], params: list[tuple[str, str]], rnd: Any
) -> None:
    shuffled = list(params)
    rnd.shuffle(shuffled)
    a = canonical_link(_url("https", host, segments, params))
    b = canonical_link(_url("https", host, segments, shuffled))
    assert a == b
    assert a is not None and "utm_" not in a.lower() and "fbclid" not in a


# -- html_to_text --------------------------------------------------------------------------------


def test_html_to_text_drops_tags_and_decodes_entities() -> None:
    html = "<p>North&nbsp;Korean <b>KN-23</b> &amp; &#8220;Hwasong-11&#8221; &eacute;</p>"
    assert html_to_text(html) == "North Korean KN-23 & \u201cHwasong-11\u201d \u00e9"


def test_html_to_text_drops_script_style_and_similar_contents() -> None:
    html = (
        "<style>p{color:red}</style><p>Before</p><script>var x = '<p>no</p>';</script>"
        "<noscript>enable js</noscript><template><p>tpl</p></template><svg><text>svg</text></svg>"
        "<p>After</p>"
    )
    assert html_to_text(html) == "Before\nAfter"


def test_html_to_text_block_elements_break_lines_and_cells_get_spaces() -> None:
    html = (
        "<h1>Title</h1><div>One<br>Two<br/>Three</div><ul><li>a</li><li>b</li></ul>"
        "<table><tr><td>x</td><td>y</td></tr></table>word<span>joined</span>"
    )
    assert html_to_text(html) == "Title\nOne\nTwo\nThree\na\nb\nx y\nwordjoined"


def test_html_to_text_collapses_whitespace() -> None:
    html = "  <p>  many \t\n  spaces\u00a0here </p>\n\n\n<p> next </p>  "
    assert html_to_text(html) == "many spaces here\nnext"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("", ""),
        ("plain text", "plain text"),
        ("AT&amp;T", "AT&T"),
        ("5 < 6 and 7 > 3", "5 < 6 and 7 > 3"),
        ("R&D &unknown; &", "R&D &unknown; &"),
        ("<p>unclosed <b>bold", "unclosed bold"),
        ("<p class='x' <b>broken attrs</b>", "broken attrs"),
        ("<!-- comment --><p>kept</p>", "kept"),
        ("<![CDATA[x]]>text", "text"),
        ("<img src=x alt='picture'>caption", "caption"),
    ],
)
def test_html_to_text_is_tolerant(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


@given(st.text(max_size=200))
def test_html_to_text_never_fails_and_never_leaves_runs_of_spaces(text: str) -> None:
    out = html_to_text(text)
    assert "  " not in out
    assert out == out.strip()


# -- entries to items ----------------------------------------------------------------------------


def entry(**fields: Any) -> dict[str, Any]:
    return fields


def test_identity_prefers_guid_then_canonical_link_then_hash() -> None:
    with_guid = entry(id=" g-1 ", link="https://e.com/1", title="T")
    with_link = entry(link="https://E.com/2?utm_source=x#top", title="T")
    bare = entry(title="Only a title", summary="and a summary")
    items = items_from_entries("src", [with_guid, with_link, bare], None, now=clock)
    assert [i.key for i in items[:2]] == ["guid:g-1", "link:https://e.com/2"]
    assert items[2].key.startswith("hash:") and len(items[2].key) == len("hash:") + 64
    assert items[0].guid == "g-1" and items[1].guid is None


def test_repeated_or_empty_guids_fall_back_to_links_and_repeated_links_to_hashes() -> None:
    entries = [
        entry(id="same", link="https://e.com/a", title="A"),
        entry(id="same", link="https://e.com/b", title="B"),
        entry(id="   ", link="https://e.com/c", title="C"),
        entry(id="unique", link="https://e.com/shared", title="D"),
        entry(link="https://e.com/shared#x", title="E"),
        entry(link="https://e.com/shared", title="F"),
    ]
    keys = [i.key for i in items_from_entries("src", entries, None, now=clock)]
    assert keys[:4] == ["link:https://e.com/a", "link:https://e.com/b", "link:https://e.com/c",
                        "guid:unique"]  # fmt: skip
    assert keys[4].startswith("hash:") and keys[5].startswith("hash:") and keys[4] != keys[5]


def test_exact_duplicates_in_one_document_are_kept_once() -> None:
    twin = entry(title="Same", summary="Same text")
    items = items_from_entries("src", [twin, dict(twin), entry(title="Other")], None, now=clock)
    assert [i.title for i in items] == ["Same", "Other"]


def test_keys_are_stable_across_polls_and_content_hash_tracks_edits() -> None:
    first = entry(id="g", title="Depot hit", summary="Early report")
    edited = entry(id="g", title="Depot hit", summary="Updated report with casualties")
    a = entry_to_item("src", first, None, now=clock)
    b = entry_to_item("src", edited, None, now=clock)
    again = entry_to_item("src", dict(first), None, now=clock)
    assert a is not None and b is not None and again is not None
    assert a.key == b.key
    assert a.content_hash != b.content_hash
    assert a.content_hash == again.content_hash


def test_hash_key_ignores_markup_and_whitespace_differences() -> None:
    a = entry_to_item("s", entry(title="<b>Depot</b>  hit", summary="x"), None, now=clock)
    b = entry_to_item("s", entry(title="Depot hit", summary="x"), None, now=clock)
    assert a is not None and b is not None and a.key == b.key


def test_text_fields_are_plain_text_honouring_declared_types() -> None:
    item = entry_to_item(
        "s",
        entry(
            title="AT&T <b> deal",
            title_detail={"type": "text/plain"},
            summary="<p>Summary <i>here</i></p>",
            summary_detail={"type": "text/html"},
            content=[{"type": "text/html", "value": "<p>Body</p><script>x()</script>"}],
            author="<b>Reporter</b>",
            author_detail={"type": "text/html"},
            tags=[{"term": " Ukraine "}, {"term": "Ukraine"}, {"label": "DPRK"}, {"term": ""}],
        ),
        None,
        now=clock,
    )
    assert item is not None
    assert item.title == "AT&T <b> deal"
    assert (item.summary, item.content, item.author) == ("Summary here", "Body", "Reporter")
    assert item.tags == ("Ukraine", "DPRK")


def test_content_equal_to_summary_is_not_kept_twice() -> None:
    same = "<p>Same words</p>"
    item = entry_to_item(
        "s", entry(title="t", summary=same, content=[{"value": same}]), None, now=clock
    )
    assert item is not None and item.summary == "Same words" and item.content == ""


def test_relative_links_resolve_against_the_feed_link() -> None:
    item = entry_to_item("s", entry(title="t", link=" ../b/2 "), "https://e.com/a/1", now=clock)
    assert item is not None
    assert item.link == "https://e.com/b/2"
    assert item.canonical_link == "https://e.com/b/2"
    assert item.key == "link:https://e.com/b/2"


def test_relative_link_without_base_is_kept_but_not_canonical() -> None:
    item = entry_to_item("s", entry(title="t", link="/only/path"), None, now=clock)
    assert item is not None and item.link == "/only/path" and item.canonical_link is None
    assert item.key.startswith("hash:")


def test_published_is_utc_aware_from_published_then_updated() -> None:
    when = datetime(2025, 5, 31, 8, 30, tzinfo=UTC)
    a = entry_to_item("s", entry(title="t", published_parsed=parsed(when)), None, now=clock)
    b = entry_to_item(
        "s", entry(title="t", published_parsed=None, updated_parsed=parsed(when)), None, now=clock
    )
    assert a is not None and b is not None
    assert a.published == when and a.published.tzinfo is not None
    assert b.published == when


@pytest.mark.parametrize(
    ("offset", "kept"),
    [(timedelta(hours=-48), True), (FUTURE_SLACK - timedelta(minutes=1), True),
     (FUTURE_SLACK + timedelta(minutes=1), False), (timedelta(days=400), False)],
)  # fmt: skip
def test_dates_far_in_the_future_are_treated_as_undated(offset: timedelta, kept: bool) -> None:
    when = NOW + offset
    item = entry_to_item("s", entry(title="t", published_parsed=parsed(when)), None, now=clock)
    assert item is not None
    assert item.published == (when if kept else None)


@pytest.mark.parametrize(
    "bad", [None, "Tue, 07 Jan", (2025, 13, 45), (99999, 1, 1, 0, 0, 0, 0, 1, 0)]
)
def test_missing_or_unparseable_dates_are_none(bad: Any) -> None:
    item = entry_to_item("s", entry(title="t", published_parsed=bad), None, now=clock)
    assert item is not None and item.published is None


def test_entry_with_nothing_to_show_is_skipped() -> None:
    assert entry_to_item("s", entry(id="g-only"), None, now=clock) is None
    assert entry_to_item("s", entry(title="   ", summary="<p> </p>"), None, now=clock) is None
    assert items_from_entries("s", [entry(id="x"), entry(title="kept")], None, now=clock)[
        0
    ].title == ("kept")


def test_very_long_guids_are_hashed_into_the_key() -> None:
    item = entry_to_item("s", entry(id="g" * 5000, title="t"), None, now=clock)
    assert item is not None and item.key.startswith("guid:sha256:") and len(item.key) < 100
    assert item.guid == "g" * 5000


def test_non_string_values_from_odd_feeds_do_not_break_normalisation() -> None:
    odd = entry(id=12, title=["not", "text"], link=None, summary="ok", tags=["bare-string"])
    item = entry_to_item("s", odd, None, now=clock)
    assert item is not None and item.title == "" and item.summary == "ok"
    assert item.key.startswith("hash:") and item.tags == ()
