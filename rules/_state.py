"""One document in the fast matcher: its folded fields, every term found in each field (one-word
terms by one set intersection with the field's words, the others by one automaton pass), and the
answers of fuzzy terms, regexes and `near` computed at most once, and only when a rule's answer
depends on them.

A *token* names a term in a field: `term id * 8 + field index`; a negative token
`-(fuzzy id * 8 + field index) - 1` says a piece of a one-word fuzzy term was found in the field.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from monitor.model import Span
from rules._fields import field_text
from rules._fuzzy import (
    FuzzySpec,
    all_scoring_windows,
    one_word_pieces,
    scoring_windows,
    windows_around,
    word_scores,
)
from rules._regex import RegexResult, UserRegex
from rules.ast import FIELD_NAMES, Document
from rules.text import NormalizedText, normalize

FIELD_BITS = 8

# A term entry: (the term's token in field 0, positions in the squeezed key where the term had a
# space).
TermEntry = tuple[int, frozenset[int]]


@dataclass(frozen=True, eq=False)
class Tables:
    """What compiling the rules produced for scanning: the one-word terms, automata over the other
    term keys and the fuzzy pieces, and the leaves by id. An automaton is None when there is
    nothing to look for."""

    terms: Any  # ahocorasick.Automaton: squeezed key -> (len, term entries, fuzzy piece tokens)
    # Terms that are one word (word characters only): found by looking the field's words up here
    # (folded word -> its token in field 0) instead of by the automaton.
    words: dict[str, int]
    word_keys: frozenset[str]
    term_fields: tuple[int, ...]
    fuzzy_specs: tuple[FuzzySpec, ...]
    pieces: Any  # ahocorasick.Automaton: piece -> (len, tuple[fuzzy id, ...])
    regexes: tuple[UserRegex, ...] = ()


def fuzzy_token(fid: int, f: int) -> int:
    return -(fid * FIELD_BITS + f) - 1


def _space_marks(text: str) -> list[int]:
    """For the r-th space of `text`, how many non-spaces come before it: the squeezed index at which
    it was removed. The folded offset of squeezed index i is then i + bisect_right(marks, i)."""
    marks = list(accumulate(map(len, text.split(" "))))
    marks.pop()
    return marks


def _gaps_ok(marks: list[int], start: int, length: int, gaps: frozenset[int]) -> bool:
    """Spaces inside a hit only where the term itself had a space."""
    if not gaps:
        return False
    prev = start + bisect_right(marks, start)
    for k in range(1, length):
        pos = start + k + bisect_right(marks, start + k)
        if pos - prev > 1 and k not in gaps:
            return False
        prev = pos
    return True


class DocState:
    """The per-document working memory of `Matcher.match`."""

    __slots__ = (
        "_fuzzy",
        "_pieces",
        "_regex",
        "doc",
        "hits",
        "hitset",
        "near",
        "norms",
        "tables",
        "word_hits",
    )

    def __init__(self, tables: Tables, doc: Document) -> None:
        self.tables = tables
        self.doc = doc
        self.norms: dict[int, NormalizedText] = {}
        self.hits: dict[int, list[tuple[int, int]]] = {}  # term token -> folded spans
        self.word_hits: dict[int, str] = {}  # one-word term token -> the word (spans on demand)
        self.hitset: set[int] = set()  # the keys of `hits`, as a set for fast set operations
        self.near: dict[int, list[Span]] = {}  # id of a compiled near -> its spans
        self._pieces: dict[int, dict[int, set[int]]] = {}  # field -> fuzzy id -> piece words
        self._fuzzy: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._regex: dict[tuple[int, int], RegexResult] = {}

    def norm(self, f: int) -> NormalizedText:
        nt = self.norms.get(f)
        if nt is None:
            nt = self.norms[f] = normalize(field_text(self.doc, FIELD_NAMES[f]))
        return nt

    def scan(self) -> set[int]:
        """Find every term in every field searched by terms; return their tokens."""
        doc = self.doc
        for f in self.tables.term_fields:
            if f > 2 or getattr(doc, FIELD_NAMES[f]):  # skip empty text fields unfolded
                self._scan_terms(f)
        self.hitset = set(self.hits)
        self.hitset.update(self.word_hits)
        return self.hitset

    def term_spans(self, token: int) -> list[tuple[int, int]]:
        """Folded spans of a term found in a field (by its token)."""
        found = self.hits.get(token)
        if found is None:
            word = self.word_hits.get(token)
            if word is None:
                return []
            nt = self.norm(token % FIELD_BITS)
            found = [span for span, w in zip(nt.words, nt.word_texts, strict=True) if w == word]
            self.hits[token] = found
        return found

    def _scan_terms(self, f: int) -> None:
        nt = self.norm(f)
        norm = nt.text
        if not norm:
            return
        table = self.tables.words
        if table:
            for word in self.tables.word_keys.intersection(nt.word_texts):
                self.word_hits[table[word] + f] = word
        if self.tables.terms is None:
            return
        marks: list[int] = []
        hits = self.hits
        size = len(norm)
        after = bisect_right
        # Automaton values carry tokens for field 0 (see `rules._compile`): + f for terms, - f for
        # fuzzy pieces.
        for end, (length, entries, pieces) in self.tables.terms.iter(norm.replace(" ", "")):
            if not marks and " " in norm:
                marks = _space_marks(norm)
            start = end - length + 1
            ns = start + after(marks, start)
            for token in pieces:
                hits.setdefault(token - f, []).append((ns, ns))
            if not entries:
                continue
            ne = end + after(marks, end) + 1
            if ns and ((c := norm[ns - 1]).isalnum() or c == "_"):
                continue
            if ne < size and ((c := norm[ne]).isalnum() or c == "_"):
                continue
            spaced = ne - ns > length
            for token, gaps in entries:
                if spaced and not _gaps_ok(marks, start, length, gaps):
                    continue
                hits.setdefault(token + f, []).append((ns, ne))

    def _piece_words(self, f: int) -> dict[int, set[int]]:
        """Per fuzzy term of several words, the words of field `f` where one of its pieces starts
        (`rules._fuzzy`)."""
        found = self._pieces.get(f)
        if found is None:
            found = self._pieces[f] = {}
            words = self.norm(f).word_texts
            if words and self.tables.pieces is not None:
                ends: list[int] | None = None
                for end, (length, fuzzies) in self.tables.pieces.iter("".join(words)):
                    if ends is None:
                        ends = list(accumulate(map(len, words)))
                    word = bisect_right(ends, end - length + 1)
                    for fid in fuzzies:
                        found.setdefault(fid, set()).add(word)
        return found

    def fuzzy_spans(self, fid: int, f: int) -> list[tuple[int, int]]:
        """Original offsets of the windows of field `f` where fuzzy term `fid` scores."""
        found = self._fuzzy.get((fid, f))
        if found is None:
            found = self._fuzzy[fid, f] = self._score_fuzzy(fid, f)
        return found

    def _score_fuzzy(self, fid: int, f: int) -> list[tuple[int, int]]:
        spec = self.tables.fuzzy_specs[fid]
        nt = self.norm(f)
        if not nt.text:
            return []
        if one_word_pieces(spec):
            return self._score_piece_words(spec, nt, self.hits.get(fuzzy_token(fid, f), []))
        words = nt.word_texts
        if len(words) < spec.n:
            return []
        if spec.pieces:
            starts: set[int] = set()
            for word in self._piece_words(f).get(fid, ()):
                starts.update(windows_around(word, spec.n, len(words)))
            found = scoring_windows(spec, words, starts)
        else:
            found = all_scoring_windows(spec, words)
        return [nt.word_span(i, i + spec.n - 1) for i in found]

    @staticmethod
    def _score_piece_words(
        spec: FuzzySpec, nt: NormalizedText, pieces: list[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """A one-word term: score the words in which the scan found a piece (a piece is made of
        word characters, so its first character lies inside the word)."""
        text = nt.text
        size = len(text)
        out: dict[int, tuple[int, int]] = {}
        for pos, _ in pieces:
            start, end = pos, pos + 1
            while start and ((c := text[start - 1]).isalnum() or c == "_"):
                start -= 1
            if start in out:
                continue
            while end < size and ((c := text[end]).isalnum() or c == "_"):
                end += 1
            if word_scores(spec, text[start:end]):
                out[start] = nt.to_original(start, end)
        return [out[k] for k in sorted(out)]

    def regex(self, rid: int, f: int) -> RegexResult:
        result = self._regex.get((rid, f))
        if result is None:
            text = field_text(self.doc, FIELD_NAMES[f])
            result = self._regex[rid, f] = self.tables.regexes[rid].run(text)
        return result

    def span(self, f: int, start: int, end: int) -> Span:
        """A span given in original offsets."""
        return Span(FIELD_NAMES[f], start, end, self.norm(f).original[start:end])

    def folded_span(self, f: int, start: int, end: int) -> Span:
        return self.span(f, *self.norm(f).to_original(start, end))
