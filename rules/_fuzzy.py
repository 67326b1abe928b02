"""Fuzzy terms in the fast matcher: judged word by word, once per distinct word, then remembered.

The score is `rapidfuzz.fuzz.ratio(a, b)` (see `rules.reference`): 200 * LCS(a, b) / (len(a) +
len(b)), LCS the longest common subsequence. Words repeat from item to item far more than they are
new, so the verdicts are memoised per distinct word (`WordMemo`), and a fuzzy term becomes a token
found at scan time like a term:

- A term of one word scores exactly on the words whose own ratio passes: the verdict is the answer.
- A window of n > 1 words `w1 ... wn` joined by spaces has LCS(a, b) <= sum LCS(a, wi) + (n - 1)
  (a common subsequence splits into its parts inside each word and the spaces). A window shorter
  than `shortest` cannot score, so a scoring window has sum LCS(a, wi) >= x = score * (len(a) +
  shortest) / 200 - (n - 1), and one of its words has LCS(a, w) >= x / n. Besides, every word w of
  a window b has LCS(a, b) <= min(LCS(a, w) + len(b) - len(w), len(a)) (the rest of the window
  adds at most one per character), so a word of a scoring window has LCS(a, w) >= the least value
  that lets some window length in [shortest, longest] score: `FuzzySpec.anchors`, by the word's
  length. A word that passes both bounds is an *anchor*; every scoring window holds one (its
  word passing the first bound passes the second). Only windows around an anchor are scored, so
  the filter never drops a window that scores. When the first bound says nothing (x <= 0: low
  scores), every window is scored.

The memo is bounded (`MEMO_WORDS`): past it, a fresh one starts, which costs time, never answers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz
from rapidfuzz.distance import LCSseq
from rapidfuzz.process import extract

from rules.text import normalize

# Distinct words remembered before the memo starts afresh: about 5 MB, a few days of news.
MEMO_WORDS = 50_000
# Float slack: LCS values are integers; the bound must stay a bound whatever the rounding.
_EPS = 1e-6


@dataclass(frozen=True)
class FuzzySpec:
    a: str  # the term's words joined by one space
    n: int  # how many words
    score: int
    shortest: int = 0  # a window (joined by spaces) of another length cannot score
    longest: int = 1 << 30
    # Terms of several words: by a word's length, the least LCS(a, word) of an anchor (past the
    # end: none); empty = no filter.
    anchors: tuple[int, ...] = ()

    @property
    def filtered(self) -> bool:
        """Whether only the windows around an anchor word can score (several words only)."""
        return self.n > 1 and bool(self.anchors)


def is_anchor(spec: FuzzySpec, word: str) -> bool:
    """The definition of an anchor (`_Judge` finds the same ones, in C)."""
    need = spec.anchors[len(word)] if len(word) < len(spec.anchors) else None
    return need is not None and LCSseq.similarity(spec.a.replace(" ", ""), word) >= need


def fuzzy_spec(text: str, score: int) -> FuzzySpec:
    words = normalize(text).word_texts
    a = " ".join(words)
    n = len(words)
    if not 0 < score <= 100:
        return FuzzySpec(a, n, score)
    # d >= |len(a) - len(b)|, so a window longer than len(a) * (200 - s) / s, or shorter than
    # len(a) * s / (200 - s), scores below s (by a margin far above float rounding).
    shortest = math.ceil(len(a) * score / (200 - score) - 1e-9)
    longest = math.floor(len(a) * (200 - score) / score + 1e-9)
    x = score * (len(a) + shortest) / 200 - (n - 1)
    anchor = max(0, math.ceil(x / n - _EPS)) if n > 1 else 0
    if anchor == 0:
        return FuzzySpec(a, n, score, shortest, longest)
    anchors = tuple(
        max(anchor, _least_lcs(len(a), n, score, shortest, longest, size))
        for size in range(longest + 1)
    )
    return FuzzySpec(a, n, score, shortest, longest, anchors)


def _least_lcs(size_a: int, n: int, score: int, shortest: int, longest: int, size: int) -> int:
    """The least LCS(a, w) of a word w of `size` characters in a window of n words that scores
    (size + 1: none can), by LCS(a, b) <= min(LCS(a, w) + len(b) - len(w), len(a))."""
    lengths = range(max(shortest, size + 2 * (n - 1)), longest + 1)
    for lcs in range(size + 1):
        for b in lengths:
            if 200 * min(lcs + b - size, size_a) >= (score - _EPS) * (size_a + b):
                return lcs
    return size + 1


def word_scores(spec: FuzzySpec, b: str) -> bool:
    """The definition: `fuzz.ratio(a, b) >= score` (the length test only saves time)."""
    return spec.shortest <= len(b) <= spec.longest and fuzz.ratio(spec.a, b) >= spec.score


_Bucket = tuple[list[str], list[tuple[int, int]], int]  # terms, (score, token) each, least score


class _Judge:
    """The tokens (field-0 tokens, see `rules._state`) a word earns from the fuzzy terms: one-word
    terms it scores for, terms of several words it is an anchor of. One rapidfuzz call per kind
    compares the word with every term (the C loop is what makes new words cheap); the one-word
    candidates it returns are scored again with `fuzz.ratio` itself, so its cut-off, lowered by a
    point for float safety, never decides an answer."""

    def __init__(self, specs: Sequence[tuple[FuzzySpec, int]]) -> None:
        self.single = tuple((s, t) for s, t in specs if s.n == 1)
        self.anchored = tuple((s, t) for s, t in specs if s.filtered)
        self._by_length: dict[int, _Bucket] = {}
        self._anchors_by_length: dict[int, _Bucket] = {}

    def _bucket(self, length: int) -> _Bucket:
        found = self._by_length.get(length)
        if found is None:
            fits = [(s, t) for s, t in self.single if s.shortest <= length <= s.longest]
            least = min((s.score for s, _ in fits), default=0)
            found = self._by_length[length] = (
                [s.a for s, _ in fits],
                [(s.score, t) for s, t in fits],
                least,
            )
        return found

    def _anchor_bucket(self, length: int) -> _Bucket:
        """The squeezed terms a word of `length` characters may anchor, with (least LCS, token)
        each, and the least of those."""
        found = self._anchors_by_length.get(length)
        if found is None:
            fits = [(s, t) for s, t in self.anchored if length < len(s.anchors)]
            fits = [(s, t) for s, t in fits if s.anchors[length] <= length]
            found = self._anchors_by_length[length] = (
                [s.a.replace(" ", "") for s, _ in fits],
                [(s.anchors[length], t) for s, t in fits],
                min((s.anchors[length] for s, _ in fits), default=0),
            )
        return found

    def tokens(self, word: str) -> tuple[int, ...]:
        out: list[int] = []
        terms, scores, least = self._bucket(len(word))
        if terms:
            for a, _, k in extract(
                word, terms, scorer=fuzz.ratio, score_cutoff=max(0, least - 1), limit=None
            ):
                score, token = scores[k]
                if fuzz.ratio(a, word) >= score:
                    out.append(token)
        terms, needs, least = self._anchor_bucket(len(word))
        if terms:
            for _, lcs, k in extract(
                word, terms, scorer=LCSseq.similarity, score_cutoff=least, limit=None
            ):
                need, token = needs[k]
                if lcs >= need:
                    out.append(token)
        return tuple(out)


class WordMemo:
    """Folded word (UTF-8, see `NormalizedText.word_keys`) -> its tokens: the fixed ones (one-word
    terms, see `rules._compile`) and the fuzzy verdicts (learnt on first sight). Safe to share
    between threads: a word is entered in the table before it is marked seen, and a full memo is
    replaced, never cleared in place."""

    __slots__ = ("_fixed", "_judge", "_limit", "_state")

    def __init__(
        self,
        fixed: Mapping[bytes, tuple[int, ...]],
        fuzzy: Sequence[tuple[FuzzySpec, int]],
        limit: int = MEMO_WORDS,
    ) -> None:
        self._fixed = dict(fixed)
        self._limit = limit
        judge = _Judge(fuzzy)
        self._judge = judge if judge.single or judge.anchored else None
        self._state: tuple[set[bytes], dict[bytes, tuple[int, ...]]] = (set(), dict(fixed))

    def __len__(self) -> int:
        """How many words it remembers."""
        return len(self._state[0])

    def table(self, words: Collection[bytes]) -> dict[bytes, tuple[int, ...]]:
        """The table, knowing every word of `words`; look words up with `table.keys() & words`.

        (One dict of every word seen, looked up by `map` over `dict.get`, would answer both
        questions in one pass, and was measured: the two set operations cost less.)"""
        seen, table = self._state
        # `issuperset` walks a list in C without building a set: the common case, every word
        # already seen, costs one hash lookup per word.
        if self._judge is None or seen.issuperset(words):
            return table
        new = set(words).difference(seen)
        if len(seen) > self._limit:
            seen, table = self._state = (set(), dict(self._fixed))
            new = set(words)
        judge, fixed = self._judge.tokens, self._fixed
        for word in new:
            tokens = judge(word.decode("utf-8", "surrogatepass"))
            if tokens:
                table[word] = fixed.get(word, ()) + tokens
            seen.add(word)
        return table


def scoring_windows(spec: FuzzySpec, words: Sequence[bytes], starts: Iterable[int]) -> list[int]:
    """The window starts among `starts` whose window (of words as `NormalizedText.word_keys` gives
    them) scores at least the term's score."""
    n = spec.n
    return [
        i
        for i in sorted(starts)
        if word_scores(spec, b" ".join(words[i : i + n]).decode("utf-8", "surrogatepass"))
    ]


def positions(words: list[bytes], wanted: Iterable[bytes]) -> list[int]:
    """Where the words of `wanted` stand in `words`: `list.count` and `list.index` look in C, where
    a Python loop over every word of the field would cost more than the rest of the scoring."""
    out: list[int] = []
    for word in wanted:
        i = -1
        for _ in range(words.count(word)):
            i = words.index(word, i + 1)
            out.append(i)
    return out


def all_scoring_windows(spec: FuzzySpec, words: tuple[str, ...]) -> list[int]:
    """Every window start whose window scores. The length test first: most windows are too short or
    too long to score against a name, and it is far cheaper than a score."""
    a, n, score, lo, hi = spec.a, spec.n, spec.score, spec.shortest, spec.longest
    ends = [0, *itertools.accumulate(map(len, words))]
    return [
        i
        for i in range(len(words) - n + 1)
        if lo <= ends[i + n] - ends[i] + n - 1 <= hi
        and fuzz.ratio(a, " ".join(words[i : i + n])) >= score
    ]


def windows_around(word: int, n: int, count: int) -> range:
    """Starts of the n-word windows (of `count` words) that contain word number `word`."""
    return range(max(0, word - n + 1), min(word, count - n) + 1)
