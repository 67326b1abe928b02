"""HTML to plain text for matching and display.

Nothing here is ever rendered as HTML: the text is matched by rules and escaped again by each
notifier, so a tolerant tag stripper is enough and a sanitiser would be wasted work.
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

_ANY_SPACE = re.compile(r"\s+")
_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")


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


def collapse_whitespace(text: str) -> str:
    """Runs of spaces become one space, runs of line breaks one line break; ends are trimmed."""
    text = _SPACES.sub(" ", text)
    return _NEWLINES.sub("\n", text).strip()


def html_to_text(html: str) -> str:
    """Plain text for matching: tags dropped, entities decoded, `<script>`/`<style>` contents
    dropped, block elements become line breaks and table cells spaces, whitespace collapsed."""
    if not html:
        return ""
    if "<" not in html:
        # Most titles and many summaries carry no markup: skip the parser (3-10x faster on them).
        return collapse_whitespace(unescape(html) if "&" in html else html)
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return collapse_whitespace("".join(parser.parts))


__all__ = ["collapse_whitespace", "html_to_text"]
