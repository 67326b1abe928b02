"""The fast XML path: feedparser's results from an lxml tree, at a fraction of feedparser's cost.

feedparser spends most of its time in the Python handlers it runs for every element and every
piece of text, not in expat (measured: driving its handlers from an lxml tree saves only a
quarter). So this module does not call feedparser's parser: it reads the tree lxml builds and
replays, element by element, what feedparser's handlers (`feedparser.mixin` and
`feedparser.namespaces`) would store for the fields `monitor.normalize` reads: title, link, id,
summary, content, author, tags, dates, their `*_detail` types, the channel title/link/ttl. The
replay keeps feedparser's odd rules, because an item's identity must not change with the parser
(a changed key re-alerts every item of every source): a `guid` is the link unless
`isPermaLink="false"`, the first title wins but the last summary, a second description becomes
content, `media:description` overrides the summary's type, mis-decoded UTF-8 is repaired, links
lose `&amp;`, dates go through feedparser's own date parser.

fastfeedparser was measured for this and rejected as the source of entries: it invents an `id`
from the link when the GUID is missing or empty (a changed key for real feeds, e.g. an empty
`<guid>`), takes a date from a GUID that looks like one, fills a missing description with 512
characters of the content, and drops what decides a text's type.

`parse_fast` returns None, and the caller runs feedparser itself, for every document it does not
replay exactly: one lxml or feedparser would find ill-formed (any lxml error or warning), one
with a DOCTYPE (entities), an encoding feedparser cannot settle, a root other than RSS, RDF or
Atom 1.0, namespace prefixes that feedparser would map ambiguously, and any element whose
handler is not replayed here (`Unsupported`): XHTML or base64 content, markup inside a text
element, GeoRSS, Podlove chapters, ... The fidelity test runs both paths over the whole corpus.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from feedparser.encodings import convert_to_utf8
from lxml import etree

from monitor._feedhandlers import ENDS, HANDLER_PREFIXES, STARTS, UNSUPPORTED, End, Handlers, Start
from monitor._feedreplay import NAMESPACES, READ_KEYS, STANDARD_PREFIXES, Unsupported

_RSS10 = "http://purl.org/rss/1.0/"
_RSS090 = "http://my.netscape.com/rdf/simple/0.9/"
_ATOM10 = "http://www.w3.org/2005/Atom"
_RDF_ROOT = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}RDF"
_ATOM_ROOT = "{http://www.w3.org/2005/Atom}feed"
_DECLARATION = re.compile(rb"""xmlns(?::([^\s=/>]+))?\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_FIRST_ELEMENT = re.compile(rb"<\w")


@dataclass
class FastResult:
    """What `feedparser.parse` would have returned, reduced to what `monitor.parse` reads."""

    feed: dict[str, Any]
    entries: list[dict[str, Any]]
    bozo: bool = False
    bozo_exception: Exception | None = None


class _Replay(Handlers):
    """`Handlers` driven by an lxml tree: feedparser's `StrictFeedParser` callbacks and its
    `unknown_starttag`/`unknown_endtag`, which name each element and call its handlers."""

    def __init__(
        self, atom: bool, namespacemap: dict[str | None, str], prefixes: _Prefixes
    ) -> None:
        super().__init__(atom, namespacemap)
        self.prefixes = prefixes
        self._names: dict[str, tuple[str, str, Start | None, End | None]] = {}

    def walk(self, element: Any) -> None:
        key, plain, start, end = self._name(element.tag)
        self._starttag(element, key, plain, start)
        if element.text:
            self.handle_data(element.text)
        for child in element:
            if isinstance(child.tag, str):
                self.walk(child)
            elif child.tag is etree.Entity:
                raise Unsupported("entity reference")  # never without a DTD; to be sure
            if child.tail:  # comments and processing instructions only leave their tail
                self.handle_data(child.tail)
        if end is not None:
            end(self)
        else:
            self.pop(key)
        self.leave_base()
        self.depth -= 1

    def _name(self, tag: str) -> tuple[str, str, Start | None, End | None]:
        """feedparser's handler name for an lxml tag (`startElementNS`, `unknown_starttag`), the
        tag as `unknown_starttag` sees it when it has no prefix (else ''), and the handlers."""
        known = self._names.get(tag)
        if known is not None:
            return known
        uri, _, local = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
        lower = uri.lower()
        if "backend.userland.com/rss" in lower:
            lower = "http://backend.userland.com/rss"
        standard = NAMESPACES.get(lower)
        if standard:
            name = f"{standard}:{local}".lower()
        elif standard is None and uri:
            prefix = self.prefixes.for_unknown(uri)
            name = f"{prefix}:{local}".lower() if prefix else local.lower()
        else:
            name = local.lower()
        prefix, _, suffix = name.rpartition(":")
        prefix = self.namespacemap.get(prefix, prefix)
        key = f"{prefix}_{suffix}" if prefix else suffix
        if key in UNSUPPORTED:
            raise Unsupported(key)
        if key not in STARTS and key in READ_KEYS:
            raise Unsupported(key)  # stored by the generic handler where the replay reads
        known = (key, "" if prefix else name, STARTS.get(key), ENDS.get(key))
        self._names[tag] = known
        return known

    def _starttag(self, element: Any, key: str, plain: str, start: Start | None) -> None:
        self.depth += 1
        items = element.items()
        attrs = _attributes(items) if items else {}
        self.enter_base(attrs)
        if self.incontent:
            raise Unsupported("markup inside a text element")  # feedparser: inline XHTML
        if plain:
            if plain not in ("title", "link", "description", "name"):
                self.intextinput = 0
            if plain not in ("title", "link", "description", "url", "href", "width", "height"):
                self.inimage = 0
        if start is not None:
            start(self, attrs)
        elif attrs:
            self._get_context()[key] = attrs
        else:
            self.push(key, True)


def _attributes(items: list[tuple[str, str]]) -> dict[str, str]:
    """An element's attributes as feedparser's `startElementNS` and `_normalize_attributes` name
    them: `prefix:name` for known namespaces, then every attribute again by its local name;
    all lower-cased, and the values of `rel` and `type` too."""
    attrs: dict[str, str] = {}
    for key, value in items:
        if key[0] == "{":
            uri, _, local = key[1:].partition("}")
            prefix = NAMESPACES.get(uri.lower(), "")
            key = f"{prefix}:{local}" if prefix else local
        attrs[key.lower()] = value
    for key, value in items:
        attrs[key.rpartition("}")[2].lower()] = value
    for key in ("rel", "type"):
        if key in attrs:
            attrs[key] = attrs[key].lower() or attrs[key]
    return attrs


class _Prefixes:
    """The namespace declarations of a document, scanned from its bytes (a declaration-like text
    inside content only adds candidates, which can only make the replay give up), to name
    elements of unknown namespaces as feedparser does: by the first prefix declared for their
    URI in `namespaces_in_use`. Where that depends on declaration order, the replay gives up."""

    def __init__(self, declarations: list[tuple[str | None, str]]) -> None:
        self.by_uri: dict[str, set[str | None]] = {}
        self.by_prefix: dict[str | None, set[str]] = {}
        for prefix, uri in declarations:
            self.by_uri.setdefault(uri, set()).add(prefix)
            self.by_prefix.setdefault(prefix, set()).add(uri)

    def for_unknown(self, uri: str) -> str:
        """The prefix feedparser puts before an element of this (unknown) namespace, or ''."""
        prefixes = self.by_uri.get(uri)
        if not prefixes:
            raise Unsupported("namespace declared in a form not scanned")
        named = sorted(p for p in prefixes if p)
        if not named:
            return ""
        if None in prefixes or any(len(self.by_prefix[p]) > 1 for p in named):
            raise Unsupported("namespace prefix bound ambiguously")
        if len(named) > 1 and any(p.lower() in HANDLER_PREFIXES for p in named):
            # Which one feedparser picks depends on declaration order, and it would matter.
            raise Unsupported("namespace bound to several prefixes")
        return named[0]

    def namespacemap(self) -> dict[str | None, str]:
        """feedparser's `namespacemap`: declared prefix -> standard prefix, for known URIs."""
        mapping: dict[str | None, str] = {}
        for prefix, uris in self.by_prefix.items():
            for uri in uris:
                lower = uri.lower()
                if "backend.userland.com/rss" in lower:
                    lower = "http://backend.userland.com/rss"
                standard = NAMESPACES.get(lower)
                if standard is None:
                    continue
                if len(uris) > 1 or (prefix in STANDARD_PREFIXES and prefix != standard):
                    raise Unsupported("a standard prefix bound to another namespace")
                mapping[prefix] = standard
        return mapping


def _declarations(data: bytes) -> list[tuple[str | None, str]]:
    found = []
    for prefix, double, single in _DECLARATION.findall(data):
        uri = (double or single).decode("utf-8", "replace")
        found.append((prefix.decode("utf-8", "replace") or None, uri))
    return found


def _is_atom(root: Any) -> bool:
    """Whether feedparser's `version` starts with 'atom' (it then never guesses that plain text
    is HTML). Namespaces declared on the root set it before the root's own handler runs."""
    declared = root.nsmap
    uris = set(declared.values())
    rss10 = _RSS10 in uris or declared.get(None) == _RSS090
    if root.tag == "rss":
        return False  # _start_rss replaces any version that is not RSS
    if root.tag == _ATOM_ROOT and not rss10:
        return True
    if root.tag == _RDF_ROOT and rss10 and _ATOM10 not in uris:
        return False
    raise Unsupported("feed version depends on declaration order")


def _xml_tree(data: bytes) -> Any:
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None
    if parser.error_log or root is None:
        return None  # a recoverable error or a warning: expat may disagree
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:
        return None  # a DOCTYPE the byte check missed (after a comment holding `<x`)
    return root


def parse_fast(body: bytes, headers: Mapping[str, str]) -> FastResult | None:
    """feedparser's result for an RSS, RDF or Atom 1.0 document, or None when feedparser must
    read it itself (see module docstring). `headers` are the ones feedparser would be given."""
    encoding: dict[str, Any] = {}
    data = convert_to_utf8(headers, body, encoding)  # feedparser's own charset decision
    if not encoding.get("encoding"):
        return None
    first = _FIRST_ELEMENT.search(data)
    head = data[: first.start() if first else len(data)].lower()
    if b"<!doctype" in head or b"<!entity" in head:
        return None  # feedparser rewrites the DTD and keeps some entities
    root = _xml_tree(data)
    if root is None or root.tag not in ("rss", _RDF_ROOT, _ATOM_ROOT):
        return None
    try:
        prefixes = _Prefixes(_declarations(data))
        replay = _Replay(_is_atom(root), prefixes.namespacemap(), prefixes)
        replay.walk(root)
    except (Unsupported, RecursionError):
        return None
    return FastResult(
        feed=replay.feeddata,
        entries=replay.entries,
        bozo=bool(encoding.get("bozo")),
        bozo_exception=encoding.get("bozo_exception"),
    )


__all__ = ["FastResult", "parse_fast"]
