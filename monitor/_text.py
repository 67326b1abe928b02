"""HTML to plain text for matching and display.

Nothing here is ever rendered as HTML: the text is matched by rules and escaped again by each
notifier, so a tolerant tag stripper is enough and a sanitiser would be wasted work.

Two implementations give the same text. `_TextExtractor` (the stdlib `HTMLParser`) is the
definition; `_fast_text` is a single-pass scanner over the markup that feeds share (plain start
and end tags, comments, entities), about 10x faster on real feeds (DESIGN §8: text extraction was
most of the normalisation cost). It reproduces `HTMLParser`'s tokenisation for exactly those
constructs, and gives up (returns None) at the first one it does not know, which is then read by
`_TextExtractor` from the start: unusual markup costs speed, never a different answer.
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

# Elements whose text is never prose: scripts, styles and the like are dropped with their contents.
_SKIP = frozenset({"script", "style", "noscript", "template", "iframe", "svg"})
# Elements that end a line when rendered; everything else is inline and joins words as they are.
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "div", "dl",
        "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
        "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tr",
        "ul",
    }
)  # fmt: skip
# Table cells sit side by side: a space keeps their words apart without breaking the line.
_CELL = frozenset({"td", "th"})
# What a start tag (`_OPEN`, also when self-closed) and an end tag (`_CLOSE`) add to the text;
# tags not listed add nothing.
_OPEN = {**dict.fromkeys(_BLOCK, "\n"), **dict.fromkeys(_CELL, " "), "img": " "}
_CLOSE = {**dict.fromkeys(_BLOCK, "\n"), **dict.fromkeys(_CELL, " ")}
# HTMLParser reads the contents of these as raw text up to their end tag.
_RAW_TEXT = frozenset({"script", "style"})

_ANY_SPACE = re.compile(r"\s+")
_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")

# The subset of HTMLParser's tag grammar that `_fast_text` reads itself. Names and separators are
# narrower than HTMLParser's (ASCII whitespace only, one `=`, no quotes or `<` in names or bare
# values), so that whatever matches here is split exactly as `HTMLParser.parse_starttag` splits
# it; the possessive quantifiers keep a failed match linear. The end tag is HTMLParser's own
# `endtagfind`. A `<` that is neither matches the empty alternative, for `_fast_text` to look at.
_WS = r"[ \t\n\r\f]"
_ATTR = rf"""[^\s"'<>/=`]++(?:{_WS}*+={_WS}*+(?:"[^"]*+"|'[^']*+'|[^\s"'<>=`]++))?+"""
_TOKEN = re.compile(
    rf"<(?:([a-zA-Z][-.:a-zA-Z0-9_]*+)(?:{_WS}++{_ATTR})*+{_WS}*+(/?)>"
    r"|/\s*([a-zA-Z][-.a-zA-Z0-9:_]*)\s*>|)"
)
_END_TAG = re.compile(r"</\s*([a-zA-Z][-.a-zA-Z0-9:_]*)\s*>")
_TAG_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ/")
# HTMLParser (via _markupbase) ends a comment at the first `--`, spaces, `>` after `<!--`. Comments
# that later HTML5-minded versions of the stdlib read differently (`<!-->`, `<!--->`, `--!>`) are
# left to the stdlib so that both implementations always agree.
_COMMENT_END = re.compile(r"--\s*>")
# HTMLParser needs time quadratic in the length of some malformed markup (CPython 3.11: 4.6 s for
# 20 KB of `<p `; gh-135462). Markup that neither fast path reads and that is longer than this
# gets `_fast_text`'s tolerant reading instead, which differs from HTMLParser only in how it
# recovers from the malformed parts. (No real feed's HTML in the corpus needs either.)
_HTMLPARSER_MAX = 4096
_TOLERANT_SCAN = 256
_RAW_TEXT_END = {name: re.compile(rf"</\s*{name}\s*>", re.I) for name in _RAW_TEXT}

# `_stateless_text`: `_TOKEN` without the loop. Splitting on it gives the text between tags and
# each tag's name; a comment is removed first, which is only safe while no quoted attribute value
# holds a `<` (a comment could start inside one); skipped elements need the loop's state.
_TAG_SPLIT = re.compile(
    rf"<(?:([a-zA-Z][-.:a-zA-Z0-9_]*+)(?:{_WS}++{_ATTR})*+{_WS}*+/?>"
    r"|/\s*([a-zA-Z][-.a-zA-Z0-9:_]*)\s*>)"
)
_SKIP_TAG = re.compile(rf"<(?:/\s*)?(?ai:{'|'.join(sorted(_SKIP))})")
_LT_IN_QUOTES = re.compile(rf"""={_WS}*+(?:"[^"<]*+<|'[^'<]*+<)""")
_LEFTOVER = re.compile(r"<[a-zA-Z/!?]")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip_depth += 1
        elif tag in _BLOCK:
            self.parts.append("\n")
        elif tag in _CELL or tag == "img":
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # `<br/>`, `<hr/>`, `<img/>`: void elements never open a skipped region.
        if tag in _BLOCK:
            self.parts.append("\n")
        elif tag in _CELL or tag == "img":
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")
        elif tag in _CELL:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            # In HTML a line break in the source is just a space; only block elements break lines.
            self.parts.append(_ANY_SPACE.sub(" ", data))


def _data(text: str) -> str:
    # Only line breaks need replacing: `collapse_whitespace` treats every other run of white space
    # exactly as `_TextExtractor` does after turning it into one space.
    return (unescape(text) if "&" in text else text).replace("\n", " ")


def _without_comments(text: str) -> str | None:
    """`text` with each comment replaced by NUL, or None at the first one `_skip_markup` refuses
    (one failed search, never one per comment: unclosed comments must not cost quadratic time)."""
    pieces: list[str] = []
    pos = 0
    while (at := text.find("<!--", pos)) >= 0:
        end = _skip_markup(text, at, len(text))
        if end < 0:
            return None
        pieces += (text[pos:at], "\x00")
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def _stateless_text(html: str) -> str | None:
    """`_fast_text` for markup without skipped elements, with no Python step per tag: the text
    chunks and tag names come from one `re.split`, markers from one comprehension. Tags that add
    nothing become NUL, which keeps apart the chunks that HTMLParser unescapes one by one (no
    entity name contains NUL, so none can form across one) and is removed after unescaping."""
    if "\x00" in html or _SKIP_TAG.search(html):
        return None
    text = html.replace("\n", " ")  # see `_data`
    if "<!--" in text:
        if _LT_IN_QUOTES.search(text):
            return None
        uncommented = _without_comments(text)
        if uncommented is None:
            return None
        text = uncommented
    parts = _TAG_SPLIT.split(text)
    if len(parts) == 1:
        return None  # no tag at all: whatever `<` there is, the loop decides
    marks = [
        _OPEN.get(opened.lower(), "\x00") if opened else _CLOSE.get(closed.lower(), "\x00")
        for opened, closed in zip(parts[1::3], parts[2::3], strict=True)
    ]
    pieces: list[str] = [""] * (len(parts) // 3 * 2 + 1)
    pieces[0::2] = parts[0::3]
    pieces[1::2] = marks
    text = "".join(pieces)
    if _LEFTOVER.search(text):
        return None  # a `<` that opens markup `_TAG_SPLIT` does not read
    if "&" in text:
        text = unescape(text)
    return collapse_whitespace(text.replace("\x00", ""))


def _skip_markup(html: str, at: int, stop: int) -> int:
    """Where a comment, declaration or processing instruction starting at `at` ends, as
    HTMLParser finds it (looking no further than `stop`); -1 when it is one `_fast_text` leaves
    to HTMLParser."""
    if html.startswith("<!--", at):
        if html.startswith((">", "->"), at + 4):
            return -1
        found = _COMMENT_END.search(html, at + 4, stop)
        if found is None or "--!>" in html[at : found.end()]:
            return -1
        return found.end()
    if html.startswith("<?", at):
        end = html.find(">", at + 2, stop)
        return -1 if end < 0 else end + 1
    if html[at + 2 : at + 9].lower() == "doctype":
        end = html.find(">", at + 9, stop)
        return -1 if end < 0 else end + 1
    return -1  # marked sections, bogus comments: rare, and subtle in HTMLParser


def _raw_text_end(html: str, name: str, pos: int, tolerant: bool) -> int:
    """Where HTMLParser resumes after the raw text of a `<script>`/`<style>` opened before `pos`:
    after its end tag, at the end of the document when there is none (the rest is dropped with
    it), or -1 when it would not take that end tag as one."""
    end = _RAW_TEXT_END[name].search(html, pos)
    if end is None:
        return len(html)
    return end.end() if tolerant or _END_TAG.match(html, end.start()) else -1


def _fast_text(html: str, *, tolerant: bool = False) -> str | None:
    """The text `_TextExtractor` would give, or None when the markup needs HTMLParser itself.

    `tolerant`: never None; markup outside the grammar is dropped up to its `>` (or kept as text
    when there is none nearby), every search bounded, so that any input costs linear time."""
    parts: list[str] = []
    skip = 0  # depth inside _SKIP elements, whose text is dropped
    pos = 0
    while (token := _TOKEN.search(html, pos)) is not None:
        at = token.start()
        if at > pos and not skip:
            parts.append(_data(html[pos:at]))
        pos = token.end()
        kind = token.lastindex
        if kind == 2:  # start tag
            name = token[1].lower()
            if token[2]:
                parts.append(_OPEN.get(name, ""))  # self-closed: never opens a skipped region
            elif name in _SKIP:
                skip += 1
                if name in _RAW_TEXT:
                    pos = _raw_text_end(html, name, pos, tolerant)
                    if pos < 0:
                        return None
                    skip -= 1
            else:
                parts.append(_OPEN.get(name, ""))
        elif kind == 3:  # end tag
            name = token[3].lower()
            if name in _SKIP:
                skip = max(0, skip - 1)
            else:
                parts.append(_CLOSE.get(name, ""))
        else:
            stop = at + _TOLERANT_SCAN if tolerant else len(html)
            if html[at + 1 : at + 2] in _TAG_START:
                pos = -1  # a tag outside the grammar above
            elif html.startswith(("<!", "<?"), at):
                pos = _skip_markup(html, at, stop)
            elif not skip:
                parts.append("<")  # a `<` that opens nothing is text
            if pos < 0:
                if not tolerant:
                    return None
                end = html.find(">", at, stop)
                pos = end + 1 if end >= 0 else at + 1
                if end < 0 and not skip:
                    parts.append("<")
    if pos < len(html) and not skip:
        parts.append(_data(html[pos:]))
    return collapse_whitespace("".join(parts))


def collapse_whitespace(text: str) -> str:
    """Runs of spaces become one space, runs of line breaks one line break; ends are trimmed."""
    # The same as `_NEWLINES.sub("\n", _SPACES.sub(" ", text)).strip()` (str.split and the
    # regex `\s` share one definition of white space), and several times faster on long text.
    if "\n" not in text:
        return " ".join(text.split())
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _slow_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return collapse_whitespace("".join(parser.parts))


def html_to_text(html: str) -> str:
    """Plain text for matching: tags dropped, entities decoded, `<script>`/`<style>` contents
    dropped, block elements become line breaks and table cells spaces, whitespace collapsed."""
    if not html:
        return ""
    if "<" not in html:
        # Most titles and many summaries carry no markup: no tokenizer at all.
        return collapse_whitespace(unescape(html) if "&" in html else html)
    text = _stateless_text(html)
    if text is None:
        text = _fast_text(html)
    if text is None and len(html) <= _HTMLPARSER_MAX:
        try:
            text = _slow_text(html)
        except AssertionError:  # HTMLParser on some `<![` sequences (CPython 3.11)
            text = None
    return _fast_text(html, tolerant=True) or "" if text is None else text


__all__ = ["collapse_whitespace", "html_to_text"]
