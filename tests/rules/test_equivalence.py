"""The fast matcher gives exactly the answers and spans of the reference matcher, on generated rules
and texts built from one small vocabulary (so that they meet often) with its spelling variants:
dashes, spaces and nothing inside terms, case, accents, combining marks, ligatures, Cyrillic,
apostrophes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz

from rules._fuzzy import WordMemo, fuzzy_spec, is_anchor
from rules._near import taking_part
from rules._state import fuzzy_token
from rules.ast import (
    FIELD_NAMES,
    Bool,
    Document,
    FieldName,
    Fuzzy,
    Near,
    Node,
    Regex,
    Rule,
    Term,
)
from rules.matcher import compile_rules
from rules.reference import reference_match

WORDS = [
    "kn",
    "23",
    "KN23",
    "north",
    "korea",
    "korean",
    "koreans",
    "pyongyang",
    "Pyongyang's",
    "tikhoretsk",
    "tihoretsk",
    "Tikhorétsk",
    "troops",
    "depot",
    "ammo",
    "war",
    "кн",
    "кндр",
    "ёж",
    "straße",
    "strasse",
    "ﬁre",
    "fire",
    "e\u0301cole",
    "école",
    "a",
    "aa",
]
NOISE = ["the", "in", "of", "x", "said", "2024", "hwasong", "11", "hwasng"]
SEPARATORS = [" ", " ", "-", "", "\u2011", " — ", ", ", "'s ", ". ", "\u00ad", "  ", "\n", "/"]
FIELD_CHOICES: list[tuple[FieldName, ...] | None] = [
    None,
    None,
    None,
    ("title",),
    ("summary",),
    ("title", "content"),
    ("tags",),
    ("link",),
    ("source",),
    ("author",),
    FIELD_NAMES,
]
REGEXES = [
    r"kn-?\d+",
    r"(?-i)KN",
    r"\bwar\b",
    r"korea\w*",
    r"[0-9]+",
    r"x*",
    r"(?i:É)cole",
    r"^the",
    r"depot|ammo",
]


def _cased(draw: st.DrawFn, word: str) -> str:
    return draw(st.sampled_from([word, word.upper(), word.capitalize(), word.lower()]))


Vocab = list[str]


@st.composite
def phrase(draw: st.DrawFn, vocab: Vocab, min_words: int = 1, max_words: int = 3) -> str:
    words = draw(st.lists(st.sampled_from(vocab), min_size=min_words, max_size=max_words))
    out = _cased(draw, words[0])
    for word in words[1:]:
        out += draw(st.sampled_from([" ", "-", "", "\u2011", "  "])) + _cased(draw, word)
    return out


@st.composite
def leaf(draw: st.DrawFn, vocab: Vocab) -> Node:
    kind = draw(st.sampled_from(["term", "term", "term", "fuzzy", "regex"]))
    if kind == "term":
        return Term(draw(phrase(vocab)))
    if kind == "fuzzy":
        score = draw(st.sampled_from([60, 75, 80, 85, 90, 95, 100]))
        return Fuzzy(draw(phrase(vocab, max_words=2)), score)
    return Regex(draw(st.sampled_from(REGEXES)))


@st.composite
def near_operand(draw: st.DrawFn, vocab: Vocab) -> Node:
    if draw(st.booleans()):
        return draw(leaf(vocab))
    children = tuple(draw(st.lists(leaf(vocab), min_size=1, max_size=3)))
    return Bool(any=children, fields=draw(st.sampled_from(FIELD_CHOICES)), label="list")


@st.composite
def near(draw: st.DrawFn, vocab: Vocab) -> Node:
    operands = tuple(draw(st.lists(near_operand(vocab), min_size=1, max_size=3)))
    within = draw(st.integers(min_value=0, max_value=5))
    return Near(operands, within, draw(st.sampled_from(FIELD_CHOICES)))


def _bool(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    group = st.none() | st.lists(children, min_size=0, max_size=3).map(tuple)

    @st.composite
    def build(draw: st.DrawFn) -> Node:
        return Bool(
            any=draw(group),
            all=draw(group),
            none=draw(st.none() | st.lists(children, max_size=2).map(tuple)),
            fields=draw(st.sampled_from(FIELD_CHOICES)),
        )

    return build()


def nodes(vocab: Vocab) -> st.SearchStrategy[Node]:
    return st.recursive(leaf(vocab) | near(vocab), _bool, max_leaves=8)


# Each example draws its own few words, so that rules and texts meet often.
vocabularies = st.lists(st.sampled_from(WORDS), min_size=1, max_size=5, unique=True)


@st.composite
def rule_list(draw: st.DrawFn, vocab: Vocab) -> list[Rule]:
    count = draw(st.integers(min_value=1, max_value=4))
    rules = []
    for i in range(count):
        sources = draw(st.sampled_from([None, None, ("src1",), ("tag:news", "src2"), ()]))
        rules.append(Rule(f"r{i}", "t", "high", draw(nodes(vocab)), sources=sources))
    return rules


@st.composite
def text(draw: st.DrawFn, vocab: Vocab) -> str:
    pool = st.sampled_from(vocab) | st.sampled_from(vocab) | st.sampled_from(WORDS + NOISE)
    out = ""
    for word in draw(st.lists(pool, max_size=12)):
        out += _cased(draw, word) + draw(st.sampled_from(SEPARATORS))
    return out


@st.composite
def document(draw: st.DrawFn, vocab: Vocab) -> Document:
    return Document(
        id="d",
        title=draw(text(vocab)),
        summary=draw(text(vocab)),
        content=draw(st.sampled_from(["", ""]) | text(vocab)),
        author=draw(st.sampled_from(["", "Kim Tikhoretsk", "war desk"])),
        tags=tuple(draw(st.lists(st.sampled_from(vocab), max_size=3))),
        link=draw(st.sampled_from(["", "https://example.org/kn-23/korea", "https://x.org/a"])),
        source=draw(st.sampled_from(["src1", "src2", "korea-news"])),
        source_tags=draw(st.sampled_from([(), ("news",), ("war", "news")])),
    )


@st.composite
def case(draw: st.DrawFn) -> tuple[list[Rule], Document]:
    vocab = draw(vocabularies)
    return draw(rule_list(vocab)), draw(document(vocab))


@st.composite
def many_documents(draw: st.DrawFn) -> tuple[list[Rule], list[Document]]:
    vocab = draw(vocabularies)
    return draw(rule_list(vocab)), draw(st.lists(document(vocab), min_size=2, max_size=5))


@st.composite
def one_leaf(draw: st.DrawFn, kind: str) -> tuple[Node, Document]:
    vocab = draw(vocabularies)
    if kind == "term":
        node: Node = Term(draw(phrase(vocab)))
    elif kind == "fuzzy":
        node = Fuzzy(draw(phrase(vocab, max_words=2)), draw(st.integers(50, 100)))
    else:
        node = draw(near(vocab))
    return node, draw(document(vocab))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(example=case())
def test_matcher_equals_reference(example: tuple[list[Rule], Document]) -> None:
    rules, doc = example
    assert compile_rules(rules).match(doc) == reference_match(rules, doc)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(example=many_documents())
def test_one_compiled_matcher_serves_many_documents(
    example: tuple[list[Rule], list[Document]],
) -> None:
    rules, docs = example
    matcher = compile_rules(rules)
    assert [matcher.match(d) for d in docs] == [reference_match(rules, d) for d in docs]


@pytest.mark.parametrize("kind", ["term", "fuzzy", "near"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_kind_of_leaf_agrees(kind: str, data: st.DataObject) -> None:
    node, doc = data.draw(one_leaf(kind))
    rules = [Rule("x", "t", "low", node)]
    assert compile_rules(rules).match(doc) == reference_match(rules, doc)


word_ranges = st.lists(
    st.tuples(st.integers(0, 12), st.integers(0, 3)).map(lambda p: (p[0], p[0] + p[1])),
    min_size=1,
    max_size=4,
)


@settings(max_examples=500, deadline=None)
@given(
    operands=st.lists(word_ranges, min_size=1, max_size=4),
    within=st.integers(-1, 6),
)
def test_near_sweep_finds_exactly_the_occurrences_of_some_close_choice(
    operands: list[list[tuple[int, int]]], within: int
) -> None:
    expected: set[tuple[int, int]] = set()
    for choice in itertools.product(*[list(enumerate(op)) for op in operands]):
        if max(s for _, (s, _) in choice) - min(e for _, (_, e) in choice) - 1 <= within:
            expected.update((i, j) for i, (j, _) in enumerate(choice))
    assert taking_part(operands, within) == expected
    assert bool(taking_part(operands, within, first=True)) == bool(expected)


# The fuzzy short cuts of `rules._fuzzy`, checked against their definitions on their own: letters
# from a small alphabet, so that near misses and hits are common.
fuzzy_words = st.text(alphabet="abcdeko1", min_size=1, max_size=7)


@settings(max_examples=1000, deadline=None)
@given(
    term=st.lists(fuzzy_words, min_size=2, max_size=3),
    window=st.lists(fuzzy_words, min_size=3, max_size=3),
    score=st.integers(1, 100),
)
def test_a_window_that_scores_always_holds_an_anchor(
    term: list[str], window: list[str], score: int
) -> None:
    spec = fuzzy_spec(" ".join(term), score)
    b = " ".join(window[: spec.n])
    if spec.filtered and fuzz.ratio(spec.a, b) >= score:
        assert any(is_anchor(spec, w) for w in window[: spec.n])


fuzzy_terms = st.lists(fuzzy_words, min_size=1, max_size=2).map(" ".join)


@settings(max_examples=500, deadline=None)
@given(
    terms=st.lists(st.tuples(fuzzy_terms, st.integers(0, 100)), min_size=1, max_size=4),
    word=fuzzy_words,
)
def test_the_word_memo_gives_the_definition(terms: list[tuple[str, int]], word: str) -> None:
    """One-word terms: the word scores; terms of several words: the word is an anchor."""
    specs = [(fuzzy_spec(t, s), fuzzy_token(i, 0)) for i, (t, s) in enumerate(terms)]
    memo = WordMemo({}, specs)
    expected = {
        token
        for spec, token in specs
        if (fuzz.ratio(spec.a, word) >= spec.score if spec.n == 1 else spec.filtered)
        and (spec.n == 1 or is_anchor(spec, word))
    }
    key = word.encode()
    assert set(memo.table([key]).get(key, ())) == expected


def test_a_full_word_memo_starts_afresh_with_the_same_verdicts() -> None:
    specs = [(fuzzy_spec("tikhoretsk", 85), fuzzy_token(0, 0))]
    fixed = {b"depot": (8,)}
    memo = WordMemo(fixed, specs, limit=3)
    texts = [
        [b"tihoretsk", b"depot", b"the"],
        [b"of", b"in", b"a", b"x"],
        [b"tikhoretsk", b"depot"],
    ] * 3
    for words in texts:
        table = memo.table(words)
        assert {w: table[w] for w in table.keys() & words} == {
            w: fixed.get(w, ()) + ((fuzzy_token(0, 0),) if w.endswith(b"retsk") else ())
            for w in words
            if w == b"depot" or w.endswith(b"retsk")
        }
        assert len(memo) <= 3 + 4  # it started afresh instead of growing past its limit
    assert len(WordMemo(fixed, specs).table([w for words in texts for w in words])) == 3
