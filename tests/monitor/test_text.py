"""HTML to text: the fast paths of `monitor._text` give exactly what the stdlib-HTMLParser
implementation (`_slow_text`, the definition) gives, on generated markup and on real feeds."""

from __future__ import annotations

import re
import time
from html import unescape
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import _text
from monitor._text import collapse_whitespace, html_to_text

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "feeds"
NEWS = CORPUS / "fastfeedparser" / "benchmark_data"

# -- generated markup ----------------------------------------------------------------------------

_NAMES = [
    "p", "P", "div", "br", "li", "ul", "h2", "table", "tr", "td", "TH", "img", "a", "b", "span",
    "em", "pre", "section", "script", "SCRIPT", "style", "noscript", "svg", "iframe", "template",
    "o:p", "x-y", "font", "summary", "sup",
]  # fmt: skip
_VALUES = ['"x"', "'y'", "bare", '"a>b"', '"a<b>"', "'<!--'", '""', "a/", '"q\'s"', "=x", 'x"y']
_SPACES = [" ", "  ", "\n", "\t", "\xa0", "\u2028", "\r\n", "\x0b", ""]
_TEXT = [
    "word", "KN-23", "caf\u00e9", "a\nb", " ", "\n\n", "\t", "\xa0", "&amp;", "&amp", "&lt;p&gt;",
    "&#233;", "&#x41;", "&#0;", "&nbsp;", "&unknown;", "&", "&#", "&am", "&ampx", "5 < 6",
    "<3", "< p", "<", ">", "x>y", "]]>", "\u2028", "--", "\x00",
]  # fmt: skip
_MARKUP = [
    "<!-- c -->", "<!---->", "<!-->", "<!--->", "<!-- a --!> b -->", "<!-- unclosed",
    "<!-- <p>in comment</p> -->", "<!DOCTYPE html>", "<!doctype x", "<?php x ?>", "<?pi",
    "<![CDATA[cdata]]>", "<!bogus>", "</>", "</ p>", "</3>", "</p x>", "</", "<p/>", "<br />",
    "<br/ >", "<a href=x/>", "<img src=a.jpg/>", "<p\u00a0x>", "<\u00e9>", "</script >",
    "</scr", "</SCRIPT>", "</style\n>",
]  # fmt: skip


@st.composite
def _tag(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(_NAMES))
    if draw(st.booleans()):
        return f"</{draw(st.sampled_from(['', ' ']))}{name}{draw(st.sampled_from(_SPACES))}>"
    attrs = ""
    for _ in range(draw(st.integers(0, 3))):
        attr = draw(st.sampled_from(["href", "class", "data-x", "xml:lang", "checked", 'a"b']))
        value = draw(st.sampled_from(["", *("=" + v for v in _VALUES), " = 'v'"]))
        attrs += draw(st.sampled_from([" ", "\n", "  ", "\t", "", "/"])) + attr + value
    close = draw(st.sampled_from([">", "/>", " />", " >", ""]))
    return f"<{name}{attrs}{close}"


_html = st.lists(
    st.one_of(st.sampled_from(_TEXT), st.sampled_from(_MARKUP), _tag(), st.text(max_size=4)),
    max_size=25,
).map("".join)


def _reference(html: str) -> str:
    """`html_to_text` as it was before the fast paths: text without `<` keeps its line breaks."""
    if not html:
        return ""
    if "<" not in html:
        return _collapse_by_definition(unescape(html) if "&" in html else html)
    return _text._slow_text(html)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_html)
def test_every_fast_path_agrees_with_htmlparser(html: str) -> None:
    assert html_to_text(html) == _reference(html)
    if "<" in html:
        expected = _text._slow_text(html)
        for fast in (_text._fast_text, _text._stateless_text):
            got = fast(html)
            assert got is None or got == expected, fast.__name__


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_agrees_with_htmlparser(text: str) -> None:
    assert html_to_text(text) == _reference(text)


def test_fast_paths_handle_ordinary_markup_themselves() -> None:
    html = (
        '<p class="lead">North&nbsp;Korean <a href="https://e.com/a?x=1&amp;y=2">KN-23</a></p>'
        "<!-- ad --><ul><li>one</li><li>two<br/>three</li></ul><table><tr><td>x</td><td>y</td>"
        "</tr></table><img src=a.jpg alt='pic'>caption"
    )
    expected = "North Korean KN-23\none\ntwo\nthree\nx y\ncaption"
    assert _text._stateless_text(html) == _text._slow_text(html) == expected
    script = html + "<script>var s = '<p>no</p>';</script><svg><p>in svg</p></svg>after"
    assert _text._stateless_text(script) is None  # skipped elements need the tokenizer's state
    assert _text._fast_text(script) == _text._slow_text(script)


@pytest.mark.parametrize(
    "html",
    [
        '<p class=x"y">odd attribute</p>',  # outside the fast grammar: HTMLParser decides
        "<![CDATA[kept?]]> text",
        "text <!-- unclosed comment <p>x</p>",
        "<script>unterminated <p>dropped",
        "<a title='<!--'>x</a><!-- y -->z",
    ],
)
def test_markup_outside_the_fast_grammar_gives_htmlparsers_answer(html: str) -> None:
    assert html_to_text(html) == _text._slow_text(html)


@pytest.mark.parametrize(
    "unit", ['<a title="', "<!--", "<p ", "<a b=", "</a", "<![", "<?", "<!-- a --!>", "<a b='x"]
)
def test_hostile_markup_costs_linear_time(unit: str) -> None:
    # HTMLParser needs quadratic time for these (4.6 s for 20 KB of `<p `), and raises on `<![`.
    html = unit * (200_000 // len(unit))
    started = time.process_time()
    assert isinstance(html_to_text(html), str)
    assert time.process_time() - started < 3


def test_markup_htmlparser_cannot_read_still_gives_text() -> None:
    # HTMLParser raises AssertionError here; the tolerant reading keeps what it cannot read.
    assert html_to_text("<![<![<![ x") == "<![<![<![ x"
    assert html_to_text("<p " * 3000 + "<b>kept</b>").endswith("<p kept")


# -- collapse_whitespace -------------------------------------------------------------------------


def _collapse_by_definition(text: str) -> str:
    return re.sub(r"\s*\n\s*", "\n", re.sub(r"[^\S\n]+", " ", text)).strip()


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from([*"ab \n\t\r\x0b\x0c\x1c\x85\xa0", "\u2028", "\u3000"])))
def test_collapse_whitespace_matches_its_regex_definition(text: str) -> None:
    assert collapse_whitespace(text) == _collapse_by_definition(text)


# -- real feeds ----------------------------------------------------------------------------------


def _news_html() -> list[str]:
    from monitor._fastparse import parse_fast

    found: list[str] = []
    for path in sorted(NEWS.iterdir()):
        result = parse_fast(path.read_bytes(), {})
        assert result is not None, path
        for entry in result.entries:
            blocks = [b.get("value") for b in entry.get("content", ())]
            for value in [entry.get("summary"), entry.get("title"), *blocks]:
                if isinstance(value, str) and "<" in value:
                    found.append(value)
    return found


@pytest.mark.skipif(not NEWS.is_dir(), reason="the shared corpus is not present")
def test_real_feed_html_gives_the_same_text_and_mostly_skips_htmlparser() -> None:
    documents = _news_html()
    assert len(documents) > 300
    stateless = tokenized = 0
    for html in documents:
        expected = _text._slow_text(html)
        assert html_to_text(html) == expected
        if (text := _text._stateless_text(html)) is not None:
            assert text == expected
            stateless += 1
        elif (text := _text._fast_text(html)) is not None:
            assert text == expected
            tokenized += 1
    assert stateless + tokenized == len(documents)  # none needed HTMLParser
    assert stateless > len(documents) * 0.7
