"""Fuzzy terms in the fast matcher: a filter that finds every window that could score, then the real
score.

The score is `rapidfuzz.fuzz.ratio(a, b)` (see `rules.reference`): 100 * (1 - d / (len(a) + len(b)))
with d the insert/delete distance. A window can reach score s only if len(b) <= len(a) * (200 - s) /
s, hence only if d <= k = 2 * len(a) * (100 - s) / s. Removing the spaces of both strings never
raises d. Split `a` without its spaces into k + 1 pieces: k insertions or deletions break at most k
of them, so some piece occurs verbatim in the window's words written without spaces, and so in the
field's words written without spaces. The matcher finds the pieces of every fuzzy term with one
Aho-Corasick automaton and scores only the windows around a piece; the pigeonhole argument means no
window that scores is ever skipped, so this filter never changes an answer. Pieces shorter than
`MIN_PIECE` would be found almost everywhere (unless they are uncommon letter pairs): terms that
cannot be split so (low scores, short words) skip the filter and score every window.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz

from rules.text import normalize

MIN_PIECE = 3


@dataclass(frozen=True)
class FuzzySpec:
    a: str  # the term's words joined by one space
    n: int  # how many words
    score: int
    pieces: tuple[str, ...]  # empty: no filter, score every window
    shortest: int = 0  # a window (joined by spaces) of another length cannot score
    longest: int = 1 << 30


def max_distance(length: int, score: int) -> int:
    # The 1e-9 keeps the bound a bound when the float division lands just below an integer.
    return int(2 * length * (100 - score) / score + 1e-9)


# Any split into k + 1 pieces keeps the guarantee, so the split avoids pieces found in most English
# text: a term whose piece is "and" would be scored on nearly every item.
_COMMON = frozenset(
    {
        "ain",
        "all",
        "and",
        "ant",
        "are",
        "art",
        "ate",
        "ati",
        "com",
        "con",
        "cou",
        "cti",
        "ear",
        "ect",
        "end",
        "ent",
        "era",
        "ere",
        "ers",
        "ess",
        "est",
        "eve",
        "for",
        "hat",
        "her",
        "hin",
        "his",
        "ian",
        "ica",
        "ide",
        "ill",
        "ine",
        "ing",
        "int",
        "ion",
        "ist",
        "ith",
        "iti",
        "ity",
        "ive",
        "man",
        "men",
        "mil",
        "nce",
        "not",
        "one",
        "ons",
        "ore",
        "ort",
        "our",
        "out",
        "ove",
        "per",
        "pol",
        "pro",
        "ran",
        "rat",
        "rea",
        "res",
        "sio",
        "sta",
        "ste",
        "sto",
        "str",
        "ted",
        "ter",
        "tha",
        "the",
        "thi",
        "tio",
        "tor",
        "tra",
        "tro",
        "ver",
        "was",
        "wit",
    }
)


# Two-character pieces are allowed only when rare in English news text: with a letter English
# seldom uses or a digit, or a pair that transliterations bring ("kh", "zh"). Any other pair
# ("mo", "ov") is found in most items and would make the filter cost more than it saves.
_RARE_CHARS = frozenset("jqxz0123456789")
_RARE_PAIRS = frozenset({"kh", "zh", "yy", "iy", "yi", "yk", "vk", "vs", "sv", "hk"})


def _penalty(pieces: Sequence[str]) -> tuple[int, int, int]:
    common = sum(p in _COMMON for p in pieces)
    return common, sum(len(p) == 2 for p in pieces), -min(len(p) for p in pieces)


def _acceptable(piece: str) -> bool:
    if len(piece) != 2:
        return len(piece) >= MIN_PIECE
    return piece in _RARE_PAIRS or not _RARE_CHARS.isdisjoint(piece)


def _pieces(a: str, score: int) -> tuple[str, ...]:
    if score <= 0:
        return ()
    squeezed = a.replace(" ", "")
    count = max_distance(len(a), score) + 1
    size = len(squeezed)
    if size < 2 * count:
        return ()
    best: tuple[str, ...] = ()
    for cuts in itertools.islice(itertools.combinations(range(2, size - 1), count - 1), 20000):
        bounds = (0, *cuts, size)
        pieces = tuple(squeezed[x:y] for x, y in itertools.pairwise(bounds))
        if all(map(_acceptable, pieces)) and (not best or _penalty(pieces) < _penalty(best)):
            best = pieces
    return best


def one_word_pieces(spec: FuzzySpec) -> bool:
    """Whether the term scan finds this term's pieces (see `rules._compile`)."""
    return spec.n == 1 and bool(spec.pieces)


def fuzzy_spec(text: str, score: int) -> FuzzySpec:
    words = normalize(text).word_texts
    a = " ".join(words)
    if not 0 < score <= 100:
        return FuzzySpec(a, len(words), score, ())
    # d >= |len(a) - len(b)|, so a window longer than len(a) * (200 - s) / s, or shorter than
    # len(a) * s / (200 - s), scores below s (by a margin far above float rounding).
    shortest = math.ceil(len(a) * score / (200 - score) - 1e-9)
    longest = math.floor(len(a) * (200 - score) / score + 1e-9)
    return FuzzySpec(a, len(words), score, _pieces(a, score), shortest, longest)


def word_scores(spec: FuzzySpec, b: str) -> bool:
    """The definition: `fuzz.ratio(a, b) >= score` (the length test only saves time)."""
    return spec.shortest <= len(b) <= spec.longest and fuzz.ratio(spec.a, b) >= spec.score


def scoring_windows(spec: FuzzySpec, words: tuple[str, ...], starts: Iterable[int]) -> list[int]:
    """The window starts among `starts` whose window scores at least the term's score."""
    n = spec.n
    return [i for i in sorted(starts) if word_scores(spec, " ".join(words[i : i + n]))]


def all_scoring_windows(spec: FuzzySpec, words: tuple[str, ...]) -> list[int]:
    """Every window start whose window scores. The length test first: most words of a text are
    too short or too long to score against a name, and it is far cheaper than a score."""
    a, n, score, lo, hi = spec.a, spec.n, spec.score, spec.shortest, spec.longest
    if n == 1:
        return [i for i, w in enumerate(words) if lo <= len(w) <= hi and fuzz.ratio(a, w) >= score]
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
