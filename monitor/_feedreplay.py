"""feedparser's parsing state, replayed: its element stack, contexts and storage rules.

`feedparser.mixin._FeedParserMixin` keeps the state of a parse in a dozen counters and a stack of
open elements; what it stores, and where, follows from them (`pop`, `_get_context`, `_save`).
`ReplayState` is that machinery, line for line for what `monitor.normalize` reads, minus what
this project switches off (HTML sanitising, resolving URIs inside HTML) and minus what the replay
refuses (`Unsupported`: the caller then runs feedparser itself). Method names follow feedparser's
so that each can be read beside the original; `monitor._feedhandlers` joins the element handlers
(`monitor._feedstructure`, `monitor._feedmetadata`) and `monitor._fastparse` drives them from an
lxml tree.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin, make_safe_absolute_uri

# feedparser's own tables and pure helpers, so that the replay cannot drift from them.
NAMESPACES: dict[str, str] = {k.lower(): v for k, v in _FeedParserMixin.namespaces.items()}
STANDARD_PREFIXES = frozenset(v for v in NAMESPACES.values() if v)
HTML_TYPES = frozenset(_FeedParserMixin.html_types)
looks_like_html: Callable[[str], bool] = _FeedParserMixin.looks_like_html
map_content_type: Callable[[str], str] = _FeedParserMixin.map_content_type
_CAN_BE_RELATIVE = frozenset(_FeedParserMixin.can_be_relative_uri)
_C1_CONTROL = re.compile("[\\x80-\\x9f]")
_QUERY_ENTITY = re.compile("&([A-Za-z0-9_]+);")
# Names under which an element without a handler would be stored where the replay reads.
READ_KEYS = frozenset(
    {
        "author", "author_detail", "authors", "content", "contributors", "guidislink", "id",
        "image", "link", "links", "published_parsed", "updated_parsed", "created_parsed",
        "summary", "summary_detail", "tags", "textinput", "title", "title_detail",
    }
)  # fmt: skip


# One entry of feedparser's element stack: [name, expecting_text, text pieces].
_Frame = list[Any]


class Unsupported(Exception):
    """The document needs feedparser itself."""


def _strip_cruft(output: str) -> str:
    if output.isascii():  # O(1): nothing below changes ASCII text
        return output
    # feedparser runs with encoding 'utf-8' whatever the document's: it "repairs" text that was
    # UTF-8 read as Latin-1, then maps C1 controls to their windows-1252 characters.
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        output = output.encode("iso-8859-1").decode("utf-8")
    # str.translate looks up every character in the table: test for the 32 it maps first.
    return output.translate(_cp1252) if _C1_CONTROL.search(output) else output


class ReplayState:
    """feedparser's parse state and its storage rules (see module docstring)."""

    def __init__(self, atom: bool, namespacemap: dict[str | None, str]) -> None:
        self.atom = atom  # feedparser's version starts with 'atom' (no HTML guessing for text)
        self.namespacemap = namespacemap
        self.feeddata: dict[str, Any] = {}
        self.entries: list[dict[str, Any]] = []
        self.sourcedata: dict[str, Any] = {}
        self.contentparams: dict[str, Any] = {}
        self.stack: list[_Frame] = []
        self.basestack: list[str] = []
        self.baseuri = ""
        self.depth_maps: list[dict[str, int]] = []  # feedparser's property_depth_map, per entry
        self.infeed = self.inentry = self.incontent = self.intextinput = self.inimage = 0
        self.inauthor = self.incontributor = self.inpublisher = self.insource = 0
        self.has_content = 0
        self.summary_key: str | None = None
        self.title_depth = -1
        self.depth = 0
        self.guidislink = False
        self._joins: dict[tuple[str, str], str] = {}

    def resolve_uri(self, uri: str) -> str:
        if not self.baseuri and ":///" not in uri:
            return uri  # all that _urljoin("", uri) changes is extra slashes after `scheme://`
        joined: str = _urljoin(self.baseuri, uri)
        return joined

    def enter_base(self, attrs: dict[str, str]) -> None:
        """`unknown_starttag`'s xml:base tracking (also a plain `base` attribute)."""
        base = (attrs.get("xml:base", attrs.get("base")) if attrs else None) or self.baseuri
        if self.baseuri:
            self.baseuri = self._safe_join(self.baseuri, base) or self.baseuri
        elif base:
            self.baseuri = _urljoin(self.baseuri, base)
        self.basestack.append(self.baseuri)

    def leave_base(self) -> None:
        """`unknown_endtag`'s: the parent's base comes back only when it is not empty."""
        self.basestack.pop()
        if self.basestack and self.basestack[-1]:
            self.baseuri = self.basestack[-1]

    def _safe_join(self, base: str, uri: str) -> str:
        joined = self._joins.get((base, uri))
        if joined is None:
            joined = self._joins[base, uri] = make_safe_absolute_uri(base, uri)
        return joined

    def handle_data(self, text: str) -> None:
        if self.stack:
            self.stack[-1][2].append(text)

    # -- feedparser's element stack, contexts and storage (mixin.push/pop/_get_context/_save) ----

    def push(self, name: str, expecting_text: Any) -> None:
        self.stack.append([name, expecting_text, []])

    def pop(self, name: str, strip_whitespace: bool = True) -> str | None:
        if not self.stack or self.stack[-1][0] != name:
            return None
        _, expecting_text, pieces = self.stack.pop()
        output = "".join(pieces)
        if strip_whitespace:
            output = output.strip()
        if not expecting_text:
            return output
        if name in _CAN_BE_RELATIVE and output and (name != "id" or self.guidislink):
            output = self.resolve_uri(output)
        params = self.contentparams
        if not self.atom and params.get("type") == "text/plain" and looks_like_html(output):
            params["type"] = "text/html"
        output = _strip_cruft(output)
        if name in ("category", "tags", "itunes_keywords"):
            return output
        if name == "title" and -1 < self.title_depth <= self.depth:
            return output
        if self.inentry and not self.insource:
            self._store_in_entry(name, output)
        elif self.infeed or self.insource:
            self._store_in_context(name, output)
        return output

    def _store_in_entry(self, name: str, output: str) -> None:
        entry = self.entries[-1]
        if name == "content":
            entry.setdefault("content", []).append(
                {"type": self.contentparams.get("type"), "value": output}
            )
        elif name == "link":
            if not self.inimage:
                # feedparser: `?a=1&b=2` may have been read as an entity reference.
                if "&" in output:
                    output = _QUERY_ENTITY.sub(r"&\g<1>", output.replace("&amp;", "&"))
                entry["link"] = output
                if output:
                    if not entry.get("links"):
                        raise Unsupported("link text outside the entry's links")
                    entry["links"][-1]["href"] = output
        else:
            if name == "description":
                name = "summary"
            depths = self.depth_maps[-1]
            old_depth = depths.get(name)
            if old_depth is None or self.depth <= old_depth:
                depths[name] = self.depth
                entry[name] = output
            if self.incontent:
                entry[name + "_detail"] = {"type": self.contentparams.get("type")}

    def _store_in_context(self, name: str, output: str) -> None:
        context = self._get_context()
        if name == "description":
            name = "subtitle"
        context[name] = output
        if name == "link":
            if "&" in output:
                output = _QUERY_ENTITY.sub(r"&\g<1>", output)
            context[name] = output
            if not context.get("links"):
                raise Unsupported("link text outside its context's links")
            context["links"][-1]["href"] = output
        elif self.incontent:
            context[name + "_detail"] = {"type": self.contentparams.get("type")}

    def push_content(self, tag: str, attrs: dict[str, str], default: str, expecting: Any) -> None:
        self.incontent += 1
        kind = map_content_type(attrs.get("type", default))
        if attrs.get("mode", "") == "base64" or not (
            kind.startswith("text/") or kind.endswith(("+xml", "/xml"))
        ):
            raise Unsupported("base64 content")
        if kind == "application/xhtml+xml":
            raise Unsupported("XHTML content")  # escaped and unwrapped by feedparser
        self.contentparams = {"type": kind}
        self.push(tag, expecting)

    def pop_content(self, tag: str) -> str | None:
        value = self.pop(tag)
        self.incontent -= 1
        self.contentparams = {}
        return value

    def _get_context(self) -> dict[str, Any]:
        if self.insource:
            return self.sourcedata
        if self.inimage and "image" in self.feeddata:
            image: dict[str, Any] = self.feeddata["image"]
            return image
        if self.intextinput:
            textinput = self.feeddata.get("textinput")
            if not isinstance(textinput, dict):
                raise Unsupported("textinput context")  # a KeyError in feedparser
            return textinput
        if self.inentry:
            return self.entries[-1]
        return self.feeddata

    def _save(self, key: str, value: Any, overwrite: bool = False) -> None:
        context = self._get_context()
        if overwrite:
            context[key] = value
        else:
            context.setdefault(key, value)

    def _in_any(self) -> int:
        return self.infeed or self.inentry or self.insource


__all__ = [
    "HTML_TYPES", "NAMESPACES", "READ_KEYS", "STANDARD_PREFIXES", "ReplayState", "Unsupported",
    "looks_like_html", "map_content_type",
]  # fmt: skip
