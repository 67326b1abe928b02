"""Folding text for matching, and the way back to the original offsets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.text import _normalize_clusters, fold, normalize, squeeze


@pytest.mark.parametrize(
    ("original", "folded"),
    [
        ("KN-23", "kn 23"),
        ("kn\u201123", "kn 23"),  # non-breaking hyphen
        ("KN\u201423", "kn 23"),  # em dash
        ("North\u00a0Korean", "north korean"),  # no-break space
        ("Pyongyang\u2019s", "pyongyang's"),
        ("Pyongyang\u02bcs", "pyongyang's"),  # modifier letter apostrophe is a letter: not any more
        ("Tikhorétsk", "tikhoretsk"),
        ("ŁÓDŹ", "lodz"),
        ("КН-23 КНДР", "кн 23 кндр"),
        ("Ёжик", "ежик"),
        ("Йошкар-Ола", "йошкар ола"),  # й keeps its mark: only Latin accents fold
        ("Straße", "strasse"),
        ("ﬁre", "fire"),
        ("ＫＮ２３", "kn23"),  # full width
        ("Tikho\u00adretsk", "tikhoretsk"),  # soft hyphen
        ("zero\u200bwidth", "zerowidth"),
        ("tab\tand\nline", "tab and line"),
        ("", ""),
    ],
)
def test_fold_examples(original: str, folded: str) -> None:
    assert normalize(original).text == folded


def test_combining_marks_fold_with_their_letter_and_map_back_to_both() -> None:
    nt = normalize("e\u0301cole")
    assert nt.text == "ecole"
    assert nt.to_original(0, 1) == (0, 2)  # the folded "e" is the "e" and its accent
    assert nt.to_original(0, 5) == (0, 6)


def test_expansions_map_back_to_the_one_original_character() -> None:
    nt = normalize("Große Straße")
    assert nt.text == "grosse strasse"
    start, end = nt.to_original(*_find(nt.text, "strasse"))
    assert nt.original[start:end] == "Straße"
    assert nt.to_original(3, 4) == (3, 4)  # the second "s" of "ss" is still the "ß"


def _find(text: str, part: str) -> tuple[int, int]:
    i = text.index(part)
    return i, i + len(part)


def test_words_and_word_ranges_are_in_original_offsets() -> None:
    nt = normalize("Straße, KN-23! ½")
    assert nt.word_texts == ("strasse", "kn", "23", "1", "2")
    assert nt.word_span(0, 0) == (0, 6)
    assert nt.word_span(1, 2) == (8, 13)
    assert nt.word_range(8, 13) == (1, 2)
    assert nt.word_range(6, 7) == (1, 1)  # punctuation only: at the next word


def test_every_ascii_character_folds_as_the_per_cluster_definition_says() -> None:
    text = "".join(map(chr, range(128)))
    assert normalize(text).text == _normalize_clusters(text).text


def test_hostile_text_does_not_break_folding() -> None:
    for text in ["\udcff lone surrogate", "\u0301 leading mark", "\x00\x07-\x1f", "\U0010ffff" * 3]:
        nt = normalize(text)
        assert nt.to_original(0, len(nt.text))[1] <= len(text)


def test_fold_collapses_separators_and_squeeze_keeps_where_they_were() -> None:
    assert fold("  North -- Korean  ") == "north korean"
    assert squeeze("north korean") == ("northkorean", frozenset({5}))
    assert squeeze("kn23") == ("kn23", frozenset())


ALPHABET = st.sampled_from(
    [
        *"aZé-‑— '’ʼ`\t\n.,ßﬁЁёйКН½İ",
        *("\u0301", "\u00ad", "\u200b", "\udcff", "\x1f", "ǅ"),
        # Characters that fold to themselves (quotes, bullets, private use), to a character that
        # folds again (full-width grave accent -> "`" -> "'"), or by context (capital sigma); and
        # enough distinct ones to pass the limit of the replacing path.
        *"“”•\ue000｀Σςкн",
        *"αβγδεζηθικλμνξοπρστυφχψω",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.text(ALPHABET, max_size=30))
def test_fast_path_equals_the_per_cluster_definition(text: str) -> None:
    fast, slow = normalize(text), _normalize_clusters(text)
    assert fast.text == slow.text
    for i in range(len(slow.text) + 1):
        for j in range(i, len(slow.text) + 1):
            assert fast.to_original(i, j) == slow.to_original(i, j)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_folds_and_maps_inside_itself(text: str) -> None:
    nt = normalize(text)
    for start, end in nt.words:
        a, b = nt.to_original(start, end)
        assert 0 <= a < b <= len(text)
    assert normalize(nt.text).text == nt.text  # folding a folded text changes nothing


@settings(max_examples=300, deadline=None)
@given(st.text(ALPHABET, max_size=30) | st.text(max_size=40))
def test_word_keys_are_the_words_encoded(text: str) -> None:
    nt = normalize(text)
    assert nt.word_keys() == [w.encode("utf-8", "surrogatepass") for w in nt.word_texts]


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


@settings(max_examples=300, deadline=None)
@given(st.text(ALPHABET, max_size=20))
def test_hit_range_counts_the_words_as_word_range_finds_them(text: str) -> None:
    """For a text folded without moving offsets, and a span with no word character just before or
    at its end (a term found)."""
    nt = normalize(text)
    if nt.starts is not None:
        return
    folded = nt.text
    ends = [i for i in range(len(folded) + 1) if i == len(folded) or not _is_word_char(folded[i])]
    starts = [i for i in range(len(folded)) if i == 0 or not _is_word_char(folded[i - 1])]
    for i in starts:
        for j in ends:
            if i < j:
                assert nt.hit_range(i, j) == nt.word_range(i, j)
