"""The per-cluster path of `rules.text.normalize` against the plain loop it replaces: the same
folded text and the same offsets back, for texts with expanding, vanishing and combining marks."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.text import _fold_cluster, _normalize_clusters, normalize


def _oracle(text: str) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """Cluster by cluster (a character and the combining marks after it), as the module docstring
    defines the fold."""
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i = 0
    while i < len(text):
        j = i + 1
        while j < len(text) and unicodedata.category(text[j]) in ("Mn", "Mc", "Me"):
            j += 1
        folded = _fold_cluster(text[i:j])
        parts.append(folded)
        starts += [i] * len(folded)
        ends += [j] * len(folded)
        i = j
    return "".join(parts), tuple(starts), tuple(ends)


# Expanding (… ß ﬁ ™ ½ ㎏ Ⅻ), vanishing (soft hyphen, zero-width space, BOM), combining marks (Latin
# accents, Thai, Devanagari), dashes, spaces, Cyrillic and plain letters.
_ALPHABET = "a Zé…ßﬁ™½㎏Ⅻ\u00ad\u200b\ufeff\u0301\u0308\u0e33\u0e4d\u093f–-\t\nЙёк'’x9"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=40))
def test_same_fold_and_offsets_as_the_plain_loop(text: str) -> None:
    got = _normalize_clusters(text)
    assert (got.text, got.starts, got.ends) == _oracle(text)


def test_a_long_text_with_an_ellipsis_keeps_exact_offsets() -> None:
    text = "Pyongyang’s KN‑23… " * 300 + "straße"
    got = normalize(text)
    assert got.text == _oracle(text)[0]
    start = got.text.index("strasse")
    assert text[slice(*got.to_original(start, start + len("strasse")))] == "straße"
    first = got.text.index("kn 23")
    assert text[slice(*got.to_original(first, first + 5))] == "KN‑23"
