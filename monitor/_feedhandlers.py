"""feedparser's element handlers (`_start_*`/`_end_*` of `feedparser.namespaces._base`, `dc`,
`itunes`, `mediarss`), replayed on `ReplayState` for the fields `monitor.normalize` reads.

Each method has the name and, for those fields, the effect of its feedparser original, quirks
included: they decide item identity, which must not change with the parser. Handlers that are
not replayed are listed in `UNSUPPORTED` (computed from feedparser's own, so a handler added by a
feedparser upgrade is refused until it is replayed here).

The handlers themselves live by family in `monitor._feedstructure` (containers and the text that
identifies an item) and `monitor._feedmetadata` (people, categories, dates); this module joins
them into `Handlers` and names each element's handlers in `STARTS`/`ENDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from feedparser.mixin import _FeedParserMixin

from monitor._feedmetadata import MetadataHandlers
from monitor._feedstructure import StructureHandlers


class Handlers(StructureHandlers, MetadataHandlers):
    """The replayed handlers (see module docstring)."""


Start = Callable[[Handlers, dict[str, str]], None]
End = Callable[[Handlers], None]


def _pushes(name: str, expecting_text: bool) -> Start:
    def start(replay: Handlers, attrs: dict[str, str]) -> None:
        replay.push(name, expecting_text)

    return start


def _pushes_content(name: str) -> Start:
    def start(replay: Handlers, attrs: dict[str, str]) -> None:
        replay.push_content(name, attrs, "text/plain", True)

    return start


def _pops(name: str) -> End:
    def end(replay: Handlers) -> None:
        replay.pop(name)

    return end


def _pops_content(name: str) -> End:
    def end(replay: Handlers) -> None:
        replay.pop_content(name)

    return end


def _alias(names: str, handler: Any) -> dict[str, Any]:
    return dict.fromkeys(names.split(), handler)


R = Handlers
# Start and end handlers by feedparser's name (`_start_<key>`/`_end_<key>`). An element whose key
# is in neither table gets feedparser's generic treatment, unless feedparser has a handler for it
# that is not replayed here (`_UNSUPPORTED`).
STARTS: dict[str, Start] = {
    "rss": R._start_rss, "channel": R._start_channel, "feed": R._start_feed,
    **_alias("item entry", R._start_item), "image": R._start_image,
    "textinput": R._start_textinput, "source": R._start_source,
    **_alias("title dc_title media_title", R._start_title), "link": R._start_link,
    **_alias("guid id", R._start_guid),
    **_alias("description dc_description media_description", R._start_description),
    "abstract": R._start_abstract, **_alias("summary itunes_summary", R._start_summary),
    "content": R._start_content, **_alias("content_encoded fullitem", R._start_content_encoded),
    **_alias("author managingeditor dc_author dc_creator itunes_author", R._start_author),
    "contributor": R._start_contributor, "dc_contributor": R._start_dc_contributor,
    "itunes_owner": R._start_itunes_owner, **_alias("webmaster dc_publisher", R._start_webmaster),
    **_alias("name itunes_name", _pushes("name", False)),
    **_alias("email itunes_email", _pushes("email", False)),
    **_alias("url uri homepage", _pushes("href", True)),
    **_alias("published issued pubdate dcterms_issued", _pushes("published", True)),
    **_alias(
        "updated modified lastbuilddate dc_date dcterms_modified", _pushes("updated", True)
    ),
    **_alias("created dcterms_created", _pushes("created", True)),
    **_alias("category keywords dc_subject", R._start_category),
    "media_category": R._start_media_category, "itunes_category": R._start_itunes_category,
    "tags": _pushes("tags", True),
    **_alias("subtitle tagline itunes_subtitle", _pushes_content("subtitle")),
    **_alias("rights copyright dc_rights", _pushes_content("rights")),
    **_alias("info feedburner_browserfriendly", _pushes_content("info")),
    **_alias("language dc_language", _pushes("language", True)),
    "expirationdate": _pushes("expired", True), "generator": _pushes("generator", True),
    "newlocation": _pushes("newlocation", True), "width": _pushes("width", False),
    "height": _pushes("height", False), "dcterms_valid": _pushes("validity", True),
    "media_thumbnail": _pushes("url", True), "media_credit": _pushes("credit", True),
    "media_rating": _pushes("rating", True), "media_restriction": _pushes("restriction", True),
    "media_license": _pushes("license", True), "media_player": _pushes("media_player", False),
    **_alias("itunes_image itunes_link", R._start_itunes_image),
    **_alias("admin_generatoragent admin_errorreportsto", R._start_admin),
    **_alias("cloud enclosure media_group media_content cc_license", R._start_nothing),
}  # fmt: skip
ENDS: dict[str, End] = {
    **_alias("channel feed", R._end_channel), **_alias("item entry", R._end_item),
    "image": R._end_image, "textinput": R._end_textinput,
    "source": R._end_source, **_alias("title dc_title", R._end_title),
    "media_title": R._end_media_title, "link": R._end_link, **_alias("guid id", R._end_guid),
    **_alias("description dc_description media_description abstract", R._end_description),
    **_alias("summary itunes_summary", R._end_summary),
    **_alias("content content_encoded fullitem", R._end_content),
    **_alias("author managingeditor dc_author dc_creator itunes_author", R._end_author),
    "contributor": R._end_contributor, "dc_contributor": R._end_dc_contributor,
    "itunes_owner": R._end_itunes_owner, **_alias("webmaster dc_publisher", R._end_webmaster),
    **_alias("name itunes_name", R._end_name), **_alias("email itunes_email", R._end_email),
    **_alias("url uri homepage", R._end_url),
    **_alias("published issued pubdate dcterms_issued", R._end_published),
    **_alias("updated modified lastbuilddate dc_date dcterms_modified", R._end_updated),
    **_alias("created dcterms_created", R._end_created),
    **_alias("category keywords dc_subject media_category itunes_category", R._end_category),
    "itunes_keywords": R._end_itunes_keywords, "media_keywords": R._end_media_keywords,
    "tags": R._end_tags,
    **_alias("subtitle tagline itunes_subtitle", _pops_content("subtitle")),
    **_alias("rights copyright dc_rights", _pops_content("rights")),
    **_alias("info feedburner_browserfriendly", _pops_content("info")),
    **_alias("language dc_language", _pops("language")), "expirationdate": _pops("expired"),
    "generator": _pops("generator"), "newlocation": _pops("newlocation"),
    "width": _pops("width"), "height": _pops("height"), "dcterms_valid": _pops("validity"),
    "media_thumbnail": _pops("url"), "media_credit": _pops("credit"),
    "media_rating": _pops("rating"), "media_restriction": _pops("restriction"),
    "media_license": _pops("license"), "media_player": _pops("media_player"),
    "itunes_block": _pops("itunes_block"), "itunes_explicit": _pops("itunes_explicit"),
}  # fmt: skip
del R
# Prefixes in feedparser's handler names: an unknown namespace bound to one of these would get
# handlers; bound to any other prefix, its elements are all handled alike.
HANDLER_PREFIXES = frozenset(
    name.split("_", 3)[2]
    for name in dir(_FeedParserMixin)
    if name.startswith(("_start_", "_end_")) and name.count("_") >= 3
)
# feedparser's handlers that the replay leaves to feedparser: XHTML bodies, GeoRSS/GML, Podlove
# chapters, Creative Commons licence links (which delete keys that may not exist), ...
UNSUPPORTED = frozenset(
    {n[len("_start_") :] for n in dir(_FeedParserMixin) if n.startswith("_start_")} - STARTS.keys()
) | frozenset(
    {n[len("_end_") :] for n in dir(_FeedParserMixin) if n.startswith("_end_")} - ENDS.keys()
)


__all__ = ["ENDS", "HANDLER_PREFIXES", "STARTS", "UNSUPPORTED", "End", "Handlers", "Start"]
