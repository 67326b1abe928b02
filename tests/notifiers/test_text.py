import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.model import Span
from notifiers._text import (
    ELLIPSIS,
    clean,
    highlight,
    plain_snippet,
    safe_link,
    snippet,
    truncate,
    valid_spans,
)
from tests.notifiers.samples import sample_alert, span_of


def test_clean_removes_control_and_format_characters() -> None:
    text = "a\x00b\x1b[31mred\x07 \u202egnp.exe\u200b\r\nnext\tline"
    assert clean(text) == "ab[31mred gnp.exe next line"


def test_clean_makes_one_line_of_any_line_break() -> None:
    assert clean("one\r\n\r\ntwo\u2028three\x85four\u2029five\vsix\u00a0seven") == (
        "one two three four five six seven"
    )


@given(st.text())
def test_clean_output_never_contains_control_characters(text: str) -> None:
    out = clean(text)
    assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in out)
    assert out == out.strip()
    assert "  " not in out


@given(st.text(), st.integers(min_value=1, max_value=50))
def test_truncate_respects_limit(text: str, limit: int) -> None:
    out = truncate(text, limit)
    assert len(out) <= limit
    if len(text) > limit:
        assert out.endswith(ELLIPSIS)
    else:
        assert out == text


def test_safe_link_only_allows_http_urls() -> None:
    assert safe_link("https://example.org/a?b=1") == "https://example.org/a?b=1"
    assert safe_link("HTTP://EXAMPLE.org") == "HTTP://EXAMPLE.org"
    for bad in [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "data:text/html,x",
        "//example.org/x",
        "https://exa mple.org",
        "https://example.org/\r\nX: y",
        "http://[::1",
        "",
        None,
    ]:
        assert safe_link(bad) is None, bad


def test_snippet_marks_matched_words_and_cleans_each_segment() -> None:
    summary = "Pyongyang sent \x1bKN-23\x07 missiles;\nRussia fired them."
    alert = sample_alert(summary=summary, matches=(span_of(summary, "\x1bKN-23\x07"),))
    assert plain_snippet(snippet(alert)) == "Pyongyang sent *KN-23* missiles; Russia fired them."


def test_snippet_windows_long_summaries_around_the_first_match() -> None:
    summary = "word " * 200 + "Hwasong-11 launched " + "tail " * 200
    alert = sample_alert(summary=summary, matches=(span_of(summary, "Hwasong-11"),))
    text = plain_snippet(snippet(alert, limit=120))
    assert text.startswith(ELLIPSIS) and text.endswith(ELLIPSIS)
    assert "*Hwasong-11*" in text
    assert len(text) < 140


def test_spans_outside_the_text_or_of_other_fields_are_ignored() -> None:
    text = "abc def"
    spans = [
        Span("summary", 4, 7, "def"),
        Span("summary", 5, 99, "x"),
        Span("summary", -1, 2, "x"),
        Span("summary", 3, 3, ""),
        Span("title", 0, 3, "abc"),
    ]
    assert valid_spans(text, spans, "summary") == [(4, 7)]


def test_overlapping_spans_merge() -> None:
    text = "North Korean troops"
    spans = [Span("summary", 0, 12, "North Korean"), Span("summary", 6, 19, "Korean troops")]
    assert [s.text for s in highlight(text, spans, "summary") if s.hit] == ["North Korean troops"]


@given(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=80),
    st.lists(st.tuples(st.integers(0, 80), st.integers(0, 80)), max_size=6),
)
def test_highlight_keeps_the_text_and_marks_only_span_text(
    text: str, pairs: list[tuple[int, int]]
) -> None:
    spans = [Span("summary", a, b, text[a:b]) for a, b in pairs]
    segments = highlight(text, spans, "summary")
    # Same words as cleaning the whole field: splitting at spans loses or adds nothing.
    assert "".join(s.text for s in segments).split() == clean(text).split()
    hits = " ".join(s.text for s in segments if s.hit)
    ranges = valid_spans(text, spans, "summary")
    assert hits.split() == " ".join(clean(text[a:b]) for a, b in ranges).split()


@pytest.mark.parametrize(
    ("text", "pairs", "words"),
    [
        # A hit ending in a space and a dropped (unassigned) character still ends its word.
        ("000000000000 \ud7fc0", [(0, 14)], ["000000000000", "0"]),
        # A dropped character alone between two segments joins them, as cleaning the field does.
        ("ab\u200bcd", [(0, 2), (3, 5)], ["abcd"]),
    ],
)
def test_words_at_segment_joins_are_the_words_of_the_cleaned_field(
    text: str, pairs: list[tuple[int, int]], words: list[str]
) -> None:
    spans = [Span("summary", a, b, text[a:b]) for a, b in pairs]
    assert "".join(s.text for s in highlight(text, spans, "summary")).split() == words
    assert clean(text).split() == words
