"""Text normalisation for matching: fold a field's text the way terms are folded, and keep the way
back.

The folded form of a text is built character cluster by character cluster (a base character with the
combining marks that follow it), so every folded character knows which original characters it came
from:

- NFKC (compatibility forms: full-width letters, ligatures, superscripts);
- case folding (`str.casefold`: `ß` -> `ss`);
- accents folded on Latin letters only (`é` -> `e`, `ł` -> `l`); other scripts keep their marks so
  Cyrillic `й` stays `й`, with one exception, `ё` -> `е`, because Russian text writes both;
- every dash (Unicode category Pd, incl. U+2011) and every whitespace character -> one space;
- apostrophe look-alikes (`’`, `ʼ`, `‘`, `´`, `′`) -> `'`, so `Pyongyang’s` splits into words like
  `Pyongyang's`;
- invisible format characters (soft hyphen, zero-width space/joiners, BOM) are dropped.

Words are the maximal runs of `\\w` characters (Unicode letters, digits, underscore) of the folded
text: the word boundaries used by terms, `near` and fuzzy terms.

Almost every real text maps one character to one character (ASCII, curly quotes, dashes, accented
Latin letters): then the folded text needs no offset map. An ASCII text is folded by one
`bytes.translate`; a text with a few non-ASCII characters, each folding to one character that
folding keeps (curly quotes, dashes, accents, bullets), by one `str.replace` per distinct character
that changes, then the same translation; any other by one `str.translate`. Only texts with
combining marks or expanding characters (`ß`, `ﬁ`) take the per-cluster path.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right

import regex  # type: ignore[import-untyped]

_WORD_RE = re.compile(r"\w+")
# The same words in an ASCII text (most folded texts: curly quotes and dashes fold to ASCII),
# found without a Unicode category lookup per character.
_ASCII_WORD_RE = re.compile(r"\w+", re.ASCII)
_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]")
_NON_ASCII_NON_WORD_RE = re.compile(r"[^\x00-\x7f\w]")
# For `bytes.translate`: every ASCII character that is not a word character (`\w`) becomes a space.
_ASCII_SPLIT = bytes(c if chr(c).isalnum() or c == 95 else 32 for c in range(128)) + bytes(
    range(128, 256)
)
_APOSTROPHES = frozenset("'’‘ʼ´′`")
_EXTRA_LATIN = {"ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ı": "i", "ŀ": "l"}
_CYRILLIC_YO = frozenset("ёЁ")


class _Complex(Exception):
    """Raised from inside `str.translate` when a character needs the per-cluster path."""


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch) in ("Mn", "Mc", "Me")


def _is_latin(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("LATIN")


def _fold_cluster(cluster: str) -> str:
    """The folded form of one base character and its combining marks."""
    head = cluster[0]
    if head in _APOSTROPHES and len(cluster) == 1:
        return "'"
    if head in _CYRILLIC_YO:
        return "е"
    if head.isspace() or unicodedata.category(head) == "Pd":
        # Marks after a separator are kept (each folded alone): an expansion can leave a mark
        # after a space (Thai "ำ" -> "ํา"), and folding the folded text must change nothing.
        return " " + "".join(_fold_cluster(mark) for mark in cluster[1:])
    if unicodedata.category(head) == "Cf":
        return ""
    text = unicodedata.normalize("NFKC", cluster)
    decomposed = unicodedata.normalize("NFKD", text)
    if decomposed and _is_latin(decomposed[0]):
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    text = unicodedata.normalize("NFKC", text.casefold())
    out: list[str] = []
    for c in text:
        if c.isspace() or unicodedata.category(c) == "Pd":
            out.append(" ")
        elif not (out and out[-1] == " " and _is_mark(c)):  # NFKC("¯") is a space and a mark
            out.append(_EXTRA_LATIN.get(c, c))
    return "".join(out)


class _Table(dict[int, str]):
    """`str.translate` table filled on first sight of each character: a character that folds to
    exactly one character (and is not a combining mark) is stored; any other aborts the
    translation."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        folded = _fold_cluster(ch)
        if len(folded) != 1 or _is_mark(ch):
            raise _Complex
        self[code] = folded
        return folded


_TABLE = _Table()


class NormalizedText:
    """A text and its folded form. `starts[i]`/`ends[i]` are the original offsets of the cluster
    that folded character `i` came from; both are None when folding kept every offset (the common
    case). Read-only; words are found on first use. (A slotted class rather than a frozen
    dataclass: the matcher makes one per field of every item, and this is measurably cheaper.)"""

    __slots__ = (
        "_bounds",
        "_spaced",
        "_word_texts",
        "_words",
        "ends",
        "original",
        "starts",
        "text",
    )

    def __init__(
        self,
        original: str,
        text: str,
        starts: tuple[int, ...] | None = None,
        ends: tuple[int, ...] | None = None,
        spaced: tuple[str, ...] | None = None,
    ) -> None:
        self.original = original
        self.text = text
        self.starts = starts
        self.ends = ends
        # The non-ASCII characters of `text` that are not word characters, when folding saw them
        # all (None: not known).
        self._spaced = spaced
        self._words: tuple[tuple[int, int], ...] | None = None
        self._word_texts: tuple[str, ...] | None = None
        self._bounds: tuple[list[int], list[int]] | None = None

    def __repr__(self) -> str:
        return f"NormalizedText({self.original!r} -> {self.text!r})"

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of the folded text to the span of the original text it came from."""
        if self.starts is None or self.ends is None:
            return start, end
        if start >= end:
            pos = self.starts[start] if start < len(self.starts) else len(self.original)
            return pos, pos
        return self.starts[start], self.ends[end - 1]

    @property
    def words(self) -> tuple[tuple[int, int], ...]:
        """Folded-text spans of the words."""
        if self._words is None:
            pattern = _ASCII_WORD_RE if self.text.isascii() else _WORD_RE
            self._words = tuple(m.span() for m in pattern.finditer(self.text))
        return self._words

    def word_keys(self) -> list[bytes]:
        """The words, folded and UTF-8 encoded, in order: the keys of the word memo.

        Bytes because they are made by `bytes.translate` and `bytes.split`, four times cheaper than
        a regex listing the words as strings. Once the non-ASCII characters that are not word
        characters are spaces, every byte of the UTF-8 form that is not ASCII belongs to a word
        character, so splitting at the ASCII non-word bytes splits exactly at the words' ends."""
        return self._split(self.text)

    def _split(self, text: str) -> list[bytes]:
        """`word_keys` of `text`, which is this text or a part of it."""
        if not text.isascii():
            if self._spaced is None:
                text = _NON_ASCII_NON_WORD_RE.sub(" ", text)
            else:
                for ch in self._spaced:
                    text = text.replace(ch, " ")
        return text.encode("utf-8", "surrogatepass").translate(_ASCII_SPLIT).split()

    def hit_range(self, start: int, end: int) -> tuple[int, int]:
        """`word_range` of the folded span [start, end) of a term found: the words before it and
        in it, counted (no character before `start` or at `end` is a word character, so no word
        straddles either end). Cheaper than `word_range` for a field whose word offsets were never
        needed."""
        first = len(self._split(self.text[:start]))
        return first, max(first, first + len(self._split(self.text[start:end])) - 1)

    @property
    def word_texts(self) -> tuple[str, ...]:
        """The words, folded."""
        if self._word_texts is None:
            pattern = _ASCII_WORD_RE if self.text.isascii() else _WORD_RE
            self._word_texts = tuple(pattern.findall(self.text))
        return self._word_texts

    def _original_word_bounds(self) -> tuple[list[int], list[int]]:
        if self._bounds is None:
            spans = self.words
            if self.starts is not None:
                spans = tuple(self.to_original(s, e) for s, e in spans)
            self._bounds = [s for s, _ in spans], [e for _, e in spans]
        return self._bounds

    def word_span(self, first: int, last: int) -> tuple[int, int]:
        """Original offsets from the start of word `first` to the end of word `last`."""
        starts, ends = self._original_word_bounds()
        return starts[first], ends[last]

    def word_range(self, start: int, end: int) -> tuple[int, int]:
        """Indexes of the first and last word overlapping the original span [start, end). A span
        that overlaps no word (punctuation only) counts as standing at the next word."""
        starts, ends = self._original_word_bounds()
        first = bisect_right(ends, start)
        last = bisect_left(starts, end) - 1
        return first, max(first, last)


def _fold_ascii_char(c: str) -> str:
    if c == "-" or c.isspace():
        return " "
    return "'" if c == "`" else c.lower()


# The fold of every ASCII character (the table's own answers), for `bytes.translate`.
_ASCII_FOLD = "".join(_fold_ascii_char(chr(c)) for c in range(128)).encode() + bytes(
    range(128, 256)
)


def _simple_fold(ch: str) -> str | None:
    """The fold of a non-ASCII character when it is one character that folding keeps as it is, and
    that the ASCII translation (`_ASCII_FOLD`) keeps too: then putting it in the character's place
    and translating the ASCII characters of the whole text is the same as folding character by
    character. None for every other character (marks, expansions, characters that vanish)."""
    try:
        folded = _TABLE[ord(ch)]
        if folded != ch and _TABLE[ord(folded)] != folded:
            return None
    except _Complex:
        return None
    if folded.isascii() and _ASCII_FOLD[ord(folded)] != ord(folded):
        return None
    return folded


_UNKNOWN = ""
_SIMPLE: dict[str, str | None] = {}  # non-ASCII character -> `_simple_fold`, filled on first sight
# Past one non-ASCII character in this many (Cyrillic text), or this many distinct ones, one
# `str.translate` is the cheaper way (measured: 8 us against 24 us for a Russian headline).
_SHARE = 8
_MOST_REPLACED = 24


def _fold_by_replacing(text: str) -> tuple[str, tuple[str, ...]] | None:
    """The folded form of a text whose non-ASCII characters all have a `_simple_fold`, and the
    non-ASCII characters of it that are not word characters; None for any other text.

    `str.translate` looks every character up once a text is not ASCII. English news text has a
    few non-ASCII characters (curly quotes, dashes, bullets, accented letters): this costs one
    `str.replace` per distinct character that changes, and one
    translation of the ASCII characters (in UTF-8, a non-ASCII character is made of bytes that are
    not ASCII, which the translation keeps). (An encoding error handler called per run of
    non-ASCII characters was measured too: its exceptions cost more than this regex.)"""
    if (len(text) - len(text.encode("ascii", "ignore"))) * _SHARE > len(text):
        return None
    chars = set(_NON_ASCII_RE.findall(text))
    if len(chars) > _MOST_REPLACED:
        return None
    kept: list[str] = []
    for ch in chars:
        to = _SIMPLE.get(ch, _UNKNOWN)
        if to == _UNKNOWN:
            to = _SIMPLE[ch] = _simple_fold(ch)
        if to is None:
            return None
        if to != ch:
            text = text.replace(ch, to)
        if not to.isascii() and not to.isalnum():
            kept.append(to)
    if not kept and text.isascii():
        return text.encode().translate(_ASCII_FOLD).decode(), ()
    utf8 = text.encode("utf-8", "surrogatepass")
    return utf8.translate(_ASCII_FOLD).decode("utf-8", "surrogatepass"), tuple(kept)


def normalize(text: str) -> NormalizedText:
    """Fold `text` for matching (see the module docstring) and keep the map back to `text`."""
    if text.isascii():
        return NormalizedText(text, text.encode().translate(_ASCII_FOLD).decode())
    replaced = _fold_by_replacing(text)
    if replaced is not None:
        return NormalizedText(text, replaced[0], spaced=replaced[1])
    try:
        return NormalizedText(text, text.translate(_TABLE))
    except _Complex:
        return _normalize_clusters(text)


class _Folds(dict[int, str]):
    """`str.translate` table: a character's fold, whatever its length, filled on first sight. Right
    for a text without combining marks, where every cluster is one character."""

    def __missing__(self, code: int) -> str:
        folded = self[code] = _fold_cluster(chr(code))
        return folded


class _Lengths(dict[int, str]):
    """`str.translate` table: the length of a character's fold, as a character (`chr(n)`)."""

    def __missing__(self, code: int) -> str:
        length = self[code] = chr(len(_FOLDS[code]))
        return length


_FOLDS = _Folds()
_LENGTHS = _Lengths()
_MARK_RE = regex.compile(r"\p{M}")  # the marks of `_is_mark`: Mn, Mc, Me
_NOT_ONE_RE = re.compile("[^\x01]")
_CLUSTERS: dict[str, str] = {}  # base character + marks -> fold, for texts with marks
_MAX_CLUSTERS = 50_000  # hostile text must not grow the memo without bound


def _normalize_clusters(text: str) -> NormalizedText:
    """The per-cluster path: texts with characters that fold to more or less than one character
    (`…` -> `...`, `ß` -> `ss`, a soft hyphen -> nothing) or with combining marks. Real news takes
    it often (an ellipsis is enough), and long texts with it, so the common case, no marks, is
    done by two `str.translate` calls and a scan of the lengths for the characters that are not
    one-to-one: Python work only where the offsets stop being the identity."""
    if _MARK_RE.search(text) is None:
        starts: list[int] = []
        ends: list[int] = []
        at = 0
        for odd in _NOT_ONE_RE.finditer(text.translate(_LENGTHS)):
            pos = odd.start()
            starts.extend(range(at, pos))
            ends.extend(range(at + 1, pos + 1))
            length = ord(odd.group())
            starts.extend([pos] * length)
            ends.extend([pos + 1] * length)
            at = pos + 1
        starts.extend(range(at, len(text)))
        ends.extend(range(at + 1, len(text) + 1))
        return NormalizedText(text, text.translate(_FOLDS), tuple(starts), tuple(ends))
    parts: list[str] = []
    starts = []
    ends = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and _is_mark(text[j]):
            j += 1
        cluster = text[i:j]
        folded = _CLUSTERS.get(cluster)
        if folded is None:
            folded = _fold_cluster(cluster)
            if len(_CLUSTERS) < _MAX_CLUSTERS:
                _CLUSTERS[cluster] = folded
        parts.append(folded)
        starts.extend([i] * len(folded))
        ends.extend([j] * len(folded))
        i = j
    return NormalizedText(text, "".join(parts), tuple(starts), tuple(ends))


def fold(text: str) -> str:
    """The folded form alone, with separator runs collapsed to one space and the ends trimmed: the
    canonical spelling of a term."""
    return " ".join(normalize(text).text.split())


def squeeze(folded: str) -> tuple[str, frozenset[int]]:
    """A folded term without its spaces, and the positions (in the squeezed string) before which the
    term had a space: where the text may have separators, or nothing."""
    key: list[str] = []
    gaps: set[int] = set()
    for ch in folded:
        if ch == " ":
            if key:
                gaps.add(len(key))
        else:
            key.append(ch)
    return "".join(key), frozenset(gaps)


__all__ = ["NormalizedText", "fold", "normalize", "squeeze"]
