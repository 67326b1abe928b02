"""One document in the fast matcher: its folded fields, every term found in each field (one-word
terms and fuzzy verdicts by one set intersection of the field's words with the word memo, the other
terms by one automaton pass), and the answers of fuzzy windows, regexes and `near`, and the places
and spans of terms, computed at most once, and only when a rule's answer depends on them.

A *token* names a term in a field: `term id * 8 + field index`, and `-(fuzzy id + 1) * 8 + field
index` for a fuzzy term (one word: a word of the field scores; several words: a word of the field
is an anchor, see `rules._fuzzy`). Either way `token % 8` is the field.
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
    WordMemo,
    all_scoring_windows,
    positions,
    scoring_windows,
    windows_around,
)
from rules._regex import RegexResult, UserRegex
from rules.ast import FIELD_NAMES, Document
from rules.text import NormalizedText, normalize

FIELD_BITS = 8

# Where a span is, before it is made a `Span` (only for rules that hold, and once each): field
# index, start and end in the original field text. Tuples dedupe and sort in C, in `Span` order.
Place = tuple[int, int, int]

# A term entry: (the term's token in field 0, positions in the squeezed key where the term had a
# space).
TermEntry = tuple[int, frozenset[int]]


@dataclass(frozen=True, eq=False)
class Tables:
    """What compiling the rules produced for scanning: the automaton over the keys of terms of
    several words (None when there are none), the word memo (one-word terms and fuzzy verdicts),
    the fields to scan, and the leaves by id."""

    terms: Any  # ahocorasick.Automaton: squeezed key -> (len, term entries)
    # The field-0 token the word memo gives the words of which a field must hold one to hold a hit
    # of the automaton (`rules._compile._key_gates`); None: every field may.
    gate: int | None
    memo: WordMemo
    scan_fields: tuple[int, ...]
    fuzzy_specs: tuple[FuzzySpec, ...]
    regexes: tuple[UserRegex, ...] = ()


def fuzzy_token(fid: int, f: int) -> int:
    return -(fid + 1) * FIELD_BITS + f


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


def word_spans(text: str, words: list[bytes]) -> list[tuple[int, int]]:
    """Folded spans of the occurrences of `words` that are whole words of `text` (the runs of
    `\\w`, which is exactly `isalnum()` or `_`), in order: `str.find` is far cheaper than listing
    every word of the text to pick out a few."""
    out: list[tuple[int, int]] = []
    size = len(text)
    for key in words:
        word = key.decode("utf-8", "surrogatepass")
        step = len(word)
        start = text.find(word)
        while start >= 0:
            end = start + step
            if not (
                (start and ((c := text[start - 1]).isalnum() or c == "_"))
                or (end < size and ((c := text[end]).isalnum() or c == "_"))
            ):
                out.append((start, end))
            start = text.find(word, end)
    if len(words) > 1:  # a one-word fuzzy term scoring on several different words
        out.sort()
    return out


class DocState:
    """The per-document working memory of `Matcher.match`."""

    __slots__ = (
        "_fuzzy",
        "_places",
        "_regex",
        "_spans",
        "doc",
        "hits",
        "hitset",
        "keys",
        "near",
        "near_held",
        "norms",
        "occurrences",
        "tables",
        "word_hits",
    )

    def __init__(self, tables: Tables, doc: Document) -> None:
        self.tables = tables
        self.doc = doc
        self.norms: dict[int, NormalizedText] = {}
        self.hits: dict[int, list[tuple[int, int]]] = {}  # term token -> folded spans
        # Token found by the word memo -> the words (UTF-8) that earned it (spans on demand).
        self.word_hits: dict[int, list[bytes]] = {}
        self.keys: dict[int, list[bytes]] = {}  # field scanned -> its words (UTF-8), in order
        self.hitset: set[int] = set()  # every token found, as a set for fast set operations
        self.near: dict[int, list[Place]] = {}  # id of a compiled near -> its places
        self.near_held: dict[int, bool] = {}  # id of a compiled near -> whether it holds
        # (id of a near operand, field) -> its occurrences: original span -> word range
        self.occurrences: dict[tuple[int, int], dict[tuple[int, int], tuple[int, int]]] = {}
        self._fuzzy: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._places: dict[int, list[Place]] = {}  # token -> `places`
        self._spans: dict[Place, Span] = {}  # see `spans`
        self._regex: dict[tuple[int, int], RegexResult] = {}

    def norm(self, f: int) -> NormalizedText:
        nt = self.norms.get(f)
        if nt is None:
            nt = self.norms[f] = normalize(field_text(self.doc, FIELD_NAMES[f]))
        return nt

    def scan(self) -> set[int]:
        """Find every term (and fuzzy verdict) in every field scanned; return their tokens."""
        doc = self.doc
        for f in self.tables.scan_fields:
            if f > 2 or getattr(doc, FIELD_NAMES[f]):  # skip empty text fields unfolded
                self._scan_words(f)
        self.hitset = set(self.hits)
        self.hitset.update(self.word_hits)
        return self.hitset

    def term_places(self, tokens: frozenset[int]) -> list[Place]:
        """The places of those of `tokens` found."""
        out: list[Place] = []
        for token in tokens.intersection(self.hitset):
            out.extend(self.places(token))
        return out

    def places(self, token: int) -> list[Place]:
        """The places of a term found (or of the words where a one-word fuzzy term scores), by its
        token: made once per document, whatever the number of rules that name it."""
        found = self._places.get(token)
        if found is None:
            f = token % FIELD_BITS
            nt = self.norms[f]  # a token found is of a field folded
            spans = self.hits.get(token)
            if spans is None:  # found by the word memo: find its words in the text
                spans = word_spans(nt.text, self.word_hits[token])
            if nt.starts is None:  # folding kept every offset
                found = [(f, s, e) for s, e in spans]
            else:
                found = [(f, *nt.to_original(s, e)) for s, e in spans]
            self._places[token] = found
        return found

    def _scan_words(self, f: int) -> None:
        nt = self.norm(f)
        if not nt.text:
            return
        # A list, not a set: the memo walks it in C, and only its hits are kept.
        words = self.keys[f] = nt.word_keys()
        tables = self.tables
        table = tables.memo.table(words)
        word_hits = self.word_hits
        for word in table.keys() & words:
            for token in table[word]:
                earned = word_hits.get(token + f)
                if earned is None:
                    word_hits[token + f] = [word]
                else:
                    earned.append(word)
        if tables.terms is not None and (tables.gate is None or tables.gate + f in word_hits):
            self._scan_terms(nt.text, f)

    def _scan_terms(self, norm: str, f: int) -> None:
        marks: list[int] = []
        hits = self.hits
        size = len(norm)
        after = bisect_right
        # Automaton values carry tokens for field 0 (see `rules._compile`).
        for end, (length, entries) in self.tables.terms.iter(norm.replace(" ", "")):
            if not marks and " " in norm:
                marks = _space_marks(norm)
            start = end - length + 1
            ns = start + after(marks, start)
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

    def fuzzy_spans(self, fid: int, f: int) -> list[tuple[int, int]]:
        """Original offsets of the windows of field `f` where fuzzy term `fid` (of several words)
        scores."""
        found = self._fuzzy.get((fid, f))
        if found is None:
            found = self._fuzzy[fid, f] = self._score_fuzzy(fid, f)
        return found

    def _score_fuzzy(self, fid: int, f: int) -> list[tuple[int, int]]:
        spec = self.tables.fuzzy_specs[fid]
        if spec.filtered:
            anchors = self.word_hits.get(fuzzy_token(fid, f))
            if not anchors:
                return []
            # The field's words as scanned (a field with an anchor was scanned).
            keys = self.keys[f]
            starts: set[int] = set()
            for i in positions(keys, anchors):
                starts.update(windows_around(i, spec.n, len(keys)))
            found = scoring_windows(spec, keys, starts)
        else:
            words = self.norm(f).word_texts
            found = all_scoring_windows(spec, words) if len(words) >= spec.n else []
        nt = self.norm(f)
        return [nt.word_span(i, i + spec.n - 1) for i in found]

    def regex(self, rid: int, f: int) -> RegexResult:
        result = self._regex.get((rid, f))
        if result is None:
            text = field_text(self.doc, FIELD_NAMES[f])
            result = self._regex[rid, f] = self.tables.regexes[rid].run(text)
        return result

    def spans(self, places: list[Place]) -> tuple[Span, ...]:
        """The distinct places as `Span`s, by field, start and end (the reference's order)."""
        made = self._spans
        out: list[Span] = []
        for place in sorted(set(places)):
            span = made.get(place)
            if span is None:
                # Made once per document: rules that match one item often share spans, and a
                # frozen dataclass costs more to make than everything else done for a span.
                f, start, end = place
                text = self.norm(f).original[start:end]
                span = made[place] = Span(FIELD_NAMES[f], start, end, text)
            out.append(span)
        return tuple(out)
