"""Headline analysis for story grouping (`monitor.stories`): each headline on its own, never a pair.

Normalisation (`normalize_title`) and the analysed form the matcher compares (`_analyse`): words,
numbers, names and blocking keys. Kept apart from the matcher because the word lists and rules
here change with the corpus, while the matcher's vetoes and thresholds change with the judging.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from rapidfuzz import fuzz, process

# Longer feed titles are junk (an article pasted into <title>); the cap bounds the cost of hostile
# input. Summaries given to `same_item` are cut at the same length.
MAX_TITLE_CHARS = 1000
MAX_KEYS = 8
MAX_KEY_CHARS = 40


def _phrases(text: str) -> list[str]:
    return [p.strip() for p in text.split("|")]


def _stem(token: str) -> str:
    if len(token) > 4 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


_PREFIX_RE = re.compile(
    r"^\s*(?:live(?:\s+updates?)?|video|watch|update(?:\s*\d+)?|breaking(?:\s+news)?|exclusive"
    r"|in\s+photos|photos|analysis|explainer|factbox)\s*[:\-–—|]\s+",
    re.IGNORECASE,
)
# Dashes are unified to "-" before suffixes are looked for.
_SEPARATORS = ("|", " - ", " · ", " :: ")
# Publisher names seen after a dash. After a pipe any short segment is a site name (_strip_suffix).
_PUBLISHERS = frozenset(
    _phrases(
        "bbc | bbc news | bbc world | bbc world service | reuters | ap | ap news | afp"
        " | associated press | al jazeera | al jazeera english | cnn | cnn international"
        " | nbc news | cbs news | abc news | fox news | sky news | npr | pbs | the guardian"
        " | guardian | the new york times | new york times | nyt | the washington post"
        " | washington post | wsj | wall street journal | the wall street journal | bloomberg"
        " | financial times | ft | the economist | moscow times | the moscow times | meduza"
        " | kyiv independent | the kyiv independent | kyiv post | the kyiv post | dw"
        " | ukrainska pravda | deutsche welle | france 24 | euronews | politico | axios | the hill"
        " | the times | the telegraph | the independent | newsweek | nk news | radio free europe"
        " | rfe/rl | rferl | voice of america | voa | the atlantic | foreign policy | the diplomat"
        " | nikkei asia | south china morning post | scmp | al-monitor | dawn"
    )
)
_QUOTES = str.maketrans(dict.fromkeys('‘’‚‛′`´«»‹›“”„‟″"', "'"))
_DASHES = str.maketrans(dict.fromkeys("‐‑‒–—―−﹘﹣－", "-"))
_NO_DECOMPOSITION = {
    "ł": "l",
    "ø": "o",
    "đ": "d",
    "ð": "d",
    "þ": "th",
    "æ": "ae",
    "œ": "oe",
    "ı": "i",
}
_THOUSANDS_RE = re.compile(r"(?<![\d.,])(\d{1,3})((?:,\d{3})+)(?![\d,]*\d)")
_ABBREVIATION_RE = re.compile(r"\b(?:[^\W\d_]\.){2,}")
_LETTER_DIGIT_HYPHEN_RE = re.compile(r"(?<=[^\W\d_])-(?=\d)|(?<=\d)-(?=[^\W\d_])")
_POSSESSIVE_RE = re.compile(r"'s\b")
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)*")


def _mark_class() -> str:
    """The combining marks of the Basic Multilingual Plane as a regex class. `re` has no `\\p{M}`;
    without marks `[^\\W_]+` cuts words of many scripts apart at every vowel sign (हिंदी -> ह द)."""
    ranges: list[tuple[int, int]] = []
    for cp in range(0x10000):
        if unicodedata.category(chr(cp)).startswith("M"):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(
        re.escape(chr(a)) + (f"-{re.escape(chr(b))}" if b > a else "") for a, b in ranges
    )


_WORD = rf"(?:[^\W_]|[{_mark_class()}])"
_TOKEN_RE = re.compile(rf"\d+(?:\.\d+)+{_WORD}*|{_WORD}+")
_TOKEN_SPLIT_RE = re.compile(f"({_TOKEN_RE.pattern})")

# Spelled-out counts: "in Five Years" equals "in 5 Years", "Rises to Seven" differs from "to 8".
# "one" is left out: it is more often a pronoun ("one of") than a count.
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        _phrases(
            "zero | _ | two | three | four | five | six | seven | eight | nine | ten | eleven"
            " | twelve | thirteen | fourteen | fifteen | sixteen | seventeen | eighteen | nineteen"
            " | twenty"
        )
    )
    if word != "_"
} | {"thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "dozen": "12"}
_NUMBER_WORD_SET = frozenset(_NUMBER_WORDS)

# Words that carry no story: never a blocking key, never a name.
_STOP = frozenset(
    " ".join(
        (
            "a an and are as at be been being but by can could did do does for from had has have",
            "he her his how i if in into is it its may might more most new no not now of off on or",
            "our out over says say said she should so than that the their them then there these",
            "they this those to up us was we were what when where which while who why will with",
            "would you after before amid during about against again also just per via vs here live",
            "video watch update updates news report reports war day days year years week weeks",
            "first last latest down",
        )
    ).split(" ")
)
# "North Korean" / "South Korean". Not "western", which is mostly "the West" ("Western missiles").
_COMPASS = frozenset({"north", "south", "east", "west"})
# A capitalised word right after one of these in a Title Case headline is read as a place.
_PLACE_PREPOSITIONS = frozenset({"in", "at", "near", "from", "over", "into", "on", "outside"})

# Wording that varies between outlets for one fact: a demonym and its country ("Ukrainian drones" /
# "drones from Ukraine"), and the words for one blast at one depot. Used for comparison only, never
# in `normalize_title`. Each entry was checked against the development set's judged pairs.
_SYNONYMS = {
    **dict.fromkeys(("ukrainian", "ukrainians"), "ukraine"),
    **dict.fromkeys(("russian", "russians"), "russia"),
    **dict.fromkeys(("korean", "koreans"), "korea"),
    **dict.fromkeys(("israeli", "israelis"), "israel"),
    **dict.fromkeys(("iranian", "iranians"), "iran"),
    **dict.fromkeys(("syrian", "syrians"), "syria"),
    **dict.fromkeys(("belarusian", "belarusians"), "belarus"),
    "chinese": "china",
    "lebanese": "lebanon",
    "japanese": "japan",
    "african": "africa",
    "european": "europe",
    "antarctic": "antarctica",
    **dict.fromkeys(("blasts", "explosion", "explosions"), "blast"),
    **dict.fromkeys(("ammo", "munition", "munitions"), "ammunition"),
    **dict.fromkeys(("depots", "warehouse", "warehouses", "arsenal", "arsenals"), "depot"),
    **dict.fromkeys(("kills", "killed", "killing", "dead"), "kill"),
    **dict.fromkeys(("soldiers", "soldier", "troop"), "troops"),
    "massive": "huge",
}
# Never a blocking key unless a headline has nothing else: each would put a large share of the
# window's stories behind one index entry, and `Store.ingest` verifies every candidate a key
# returns. They still count in the comparison. ("russia" was a key of 295 of 726 development items.)
_UBIQUITOUS = frozenset(
    _stem(word)
    for word in _phrases(
        "russia | ukraine | us | israel | china | iran | gaza | moscow | kyiv | putin | trump"
        " | zelensky | official | government | president | minister | police | attack | strike"
        " | kill | troops | military | army | court | people | world"
    )
)


# --- normalisation ------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    if ch in _NO_DECOMPOSITION:
        return _NO_DECOMPOSITION[ch]
    base = unicodedata.normalize("NFKD", ch)
    # Accents are folded on Latin letters only: taking the marks off other scripts (Devanagari
    # vowel signs, Cyrillic й) changes the word, not its spelling.
    if base[0].isascii() and all(unicodedata.combining(c) for c in base[1:]):
        return base[0]
    return ch


def _fold(text: str) -> str:
    if text.isascii():
        return text
    out: list[str] = []
    for ch in text:
        # A mark left on a Latin letter (casefold turns İ into i + dot above) is an accent too.
        if out and out[-1].isascii() and unicodedata.combining(ch):
            continue
        out.append(ch if ch.isascii() else _fold_char(ch))
    return "".join(out)


def _strip_prefix(title: str) -> str:
    while True:
        stripped = _PREFIX_RE.sub("", title, count=1)
        if stripped == title or not stripped.strip():
            return title
        title = stripped


def _strip_suffix(title: str) -> str:
    """Drop trailing " | Site" segments and " - Publisher" names, repeatedly."""
    while True:
        cut = max(title.rfind(sep) for sep in _SEPARATORS)
        if cut <= 0:
            return title
        head, tail = title[:cut], title[cut:].strip(" |-·:")
        known = _fold(tail).casefold().strip() in _PUBLISHERS
        # A segment holding a number is never cut: "Key events | Day 1,001" must keep its day.
        site = title[cut] == "|" and len(tail.split()) <= 5 and not any(c.isdigit() for c in tail)
        if not head.strip() or not (known or site):
            return title
        title = head.rstrip()


def _clean(title: str) -> str:
    """NFKC, unified quotes and dashes, decorations removed; case kept, as names need it."""
    text = unicodedata.normalize("NFKC", title[:MAX_TITLE_CHARS])
    if text.isascii():  # the quotes and dashes to unify are all non-ASCII but these two
        text = text.replace('"', "'").replace("`", "'")
    else:
        text = text.translate(_QUOTES).translate(_DASHES)
    return _strip_suffix(_strip_prefix(" ".join(text.split())))


def _canonical(text: str) -> str:
    # Each rewrite needs a character most headlines lack: looking for it is cheaper than a regex.
    if "," in text:
        text = _THOUSANDS_RE.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), text)
    if "." in text:
        text = _ABBREVIATION_RE.sub(lambda m: m.group().replace(".", ""), text)  # U.S. -> US
    if "-" in text:
        text = _LETTER_DIGIT_HYPHEN_RE.sub("", text)  # KN-23 -> KN23, as some outlets write it
    return _POSSESSIVE_RE.sub("", text) if "'" in text else text


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(_fold(text))


def normalize_title(title: str) -> str:
    """The comparable form of a headline: NFKC, case-folded, accents folded, quotes and dashes
    unified, publisher suffixes (" - BBC News", " | Reuters") and "Live:"/"Video:"/"Update:"
    prefixes removed, thousands separators dropped (1,001 -> 1001), designators joined
    (KN-23 -> kn23), possessives dropped, other punctuation a word break. Idempotent."""
    return " ".join(_tokens(_canonical(_clean(title)).casefold()))


# --- analysis of one headline -------------------------------------------------------------------


class _Title(NamedTuple):
    """A headline analysed once: comparable words, content words, numbers, names, blocking keys;
    and what comparing it needs, made once too. (A tuple: made for every title stored and every
    candidate compared, and a frozen dataclass costs several times as much to build.)"""

    text: str
    words: frozenset[str]
    content: frozenset[str]
    numbers: frozenset[str]
    names: frozenset[str]
    keys: tuple[str, ...]
    sorted_text: str  # the words in order, as token_sort_ratio sorts them
    long_words: tuple[str, ...]  # words long enough for transliteration drift (_has_word)


def _numbers(text: str, words: frozenset[str]) -> frozenset[str]:
    """The numbers of the words of `text` (tokens joined by spaces), spelled-out ones included."""
    found = {_NUMBER_WORDS[w] for w in words & _NUMBER_WORD_SET}
    found.update(n.lstrip("0") or "0" for n in _NUMBER_RE.findall(text))
    return frozenset(found)


def _is_title_case(words: Sequence[str]) -> bool:
    """NYT and The Moscow Times capitalise every major word, BBC and Sky only names. Judged on
    words long enough that Title Case must capitalise them."""
    long_words = [w for w in words[1:] if len(w) > 3 and w[0].isalpha()]
    if len(long_words) < 2:
        return False
    return sum(w[0].isupper() for w in long_words) / len(long_words) > 0.6


def _names(canonical: str) -> set[str]:
    """Words that name someone or somewhere, folded. Sentence case: every capitalised word not
    opening a clause. Title Case: capitals say nothing, so only acronyms and a capitalised word
    right after a place preposition ("Depot in Toropets"). Both: a capitalised first word ("Russian
    drones" / "Ukrainian drones") and compass words ("North Korean" / "South Korean"). A name only
    counts against a headline that lacks it, so a reordering paraphrase never conflicts."""
    # Words at odd places, what comes before each at even ones.
    parts = _TOKEN_SPLIT_RE.split(_fold(canonical))
    words = parts[1::2]
    if not any(w.islower() for w in words):
        return set()  # ALL CAPS (or no words): capitals carry no signal
    title_case = _is_title_case(words)
    found: set[str] = set()
    for i, word in enumerate(words):
        folded = word.casefold()
        if not folded.isascii():
            folded = _fold(folded)
        if folded in _COMPASS:
            found.add(folded)
        if not word[0].isupper() or folded in _STOP or folded in _NUMBER_WORDS:
            continue
        if i == 0 or (len(word) >= 2 and word.isupper() and word.isalpha()):
            found.add(folded)  # the first word, or an acronym (FSB, NATO)
        elif title_case:
            if words[i - 1].casefold() in _PLACE_PREPOSITIONS:
                found.add(folded)
        elif not _opens_clause(parts[2 * i]):
            found.add(folded)
    return found


def _opens_clause(before: str) -> bool:
    """Whether the text between a word and the previous one ends with a colon, a quote or a full
    stop ("Putin: Russia..."); no word ends with one of these."""
    before = before.rstrip()
    return bool(before) and before[-1] in ":;.!?'\""


# A headline is analysed once per poll that lists it and again whenever it is a candidate for a
# new one. 1,024 entries hit 90% of the calls of a soak (8,192: 91%, for ~28 MB more; the same
# CPU on a first poll of 2,000 real feeds: 29.1 s against 31.0 s).
@lru_cache(maxsize=1024)
def _analyse(title: str) -> _Title:
    canonical = _canonical(_clean(title))
    folded = _tokens(canonical.casefold())
    tokens = list(map(_SYNONYMS.get, folded, folded))
    text = " ".join(tokens)
    words = frozenset(tokens)
    content = frozenset(
        _stem(t) for t in words if t not in _STOP and (len(t) >= 3 or t[0].isdigit())
    )
    # A name must be one of the headline's own words, whatever case folding did to it.
    names = frozenset(_SYNONYMS.get(n, n) for n in _names(canonical)) & words
    return _Title(
        text=text,
        words=words,
        content=content,
        numbers=_numbers(text, words),
        names=names,
        keys=_pick_keys(content, names),
        sorted_text=" ".join(sorted(tokens)),
        long_words=tuple(w for w in words if len(w) >= 5),
    )


def _pick_keys(content: frozenset[str], names: frozenset[str]) -> tuple[str, ...]:
    """The most selective content words: names first, then longer words (rarer in news text), then
    alphabetical for a deterministic choice; words that fill a news cycle's headlines only when
    nothing else is left. Same-story headlines share most content words, so their top few overlap;
    `same` insists that they do."""
    stemmed_names = {_stem(n) for n in names}
    # Sorted by (name or not, length, word) as three stable sorts, the last key first: C-level
    # keys instead of a Python one per word.
    ranked = sorted(content)
    ranked.sort(key=len, reverse=True)
    ranked.sort(key=stemmed_names.__contains__, reverse=True)
    selective = [w for w in ranked if w not in _UBIQUITOUS]
    # Keys are index entries: a 1,000-letter "word" of a hostile title must not reach the index
    # (PostgreSQL refuses B-tree entries past ~2.7 kB). Cut alike on both sides, equal stays equal.
    return tuple(dict.fromkeys(w[:MAX_KEY_CHARS] for w in (selective or ranked)[:MAX_KEYS]))


def _has_word(word: str, title: _Title) -> bool:
    """`word` is one of `title`'s words, allowing transliteration drift (Tikhoretsk/Tihoretsk:
    94.7)."""
    if word in title.words:
        return True
    if len(word) < 5 or not title.long_words:
        return False
    # 88 keeps Austria/Australia (87.5) apart. One call scores every word (the best is enough).
    best = process.extractOne(word, title.long_words, scorer=fuzz.ratio)
    return best is not None and best[1] >= 88


__all__ = ["MAX_KEYS", "MAX_KEY_CHARS", "MAX_TITLE_CHARS", "normalize_title"]
