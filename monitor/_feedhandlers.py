"""feedparser's element handlers (`_start_*`/`_end_*` of `feedparser.namespaces._base`, `dc`,
`itunes`, `mediarss`), replayed on `ReplayState` for the fields `monitor.normalize` reads.

Each method has the name and, for those fields, the effect of its feedparser original, quirks
included: they decide item identity, which must not change with the parser. Handlers that are
not replayed are listed in `UNSUPPORTED` (computed from feedparser's own, so a handler added by a
feedparser upgrade is refused until it is replayed here).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from feedparser.datetimes import _parse_date
from feedparser.mixin import _FeedParserMixin

from monitor._feedreplay import HTML_TYPES, ReplayState, Unsupported, map_content_type

# feedparser's `_sync_author_detail` e-mail pattern, verbatim.
_EMAIL = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)
_COPY_TO_SUMMARY = frozenset({"text/plain"}) | HTML_TYPES


class Handlers(ReplayState):
    """The replayed handlers (see module docstring)."""

    def _start_rss(self, attrs: dict[str, str]) -> None:
        pass  # the version only decides `atom`, settled before the walk

    def _start_channel(self, attrs: dict[str, str]) -> None:
        self.infeed = 1
        refuse_cdf(attrs)

    def _start_feed(self, attrs: dict[str, str]) -> None:
        self.infeed = 1

    def _end_channel(self) -> None:
        self.infeed = 0

    def _start_item(self, attrs: dict[str, str]) -> None:
        self.entries.append({})
        self.depth_maps.append({})
        self.push("item", False)
        self.inentry = 1
        self.guidislink = False
        self.title_depth = -1
        about = attrs.get(self._standard_attribute("rdf:about"))
        if about:
            self._get_context()["id"] = about
        refuse_cdf(attrs)

    def _standard_attribute(self, name: str) -> str:
        prefix, _, suffix = name.partition(":")  # feedparser's _map_to_standard_prefix
        return f"{self.namespacemap.get(prefix, prefix)}:{suffix}"

    def _end_item(self) -> None:
        self.pop("item")
        self.inentry = 0
        self.has_content = 0

    def _start_image(self, attrs: dict[str, str]) -> None:
        context = self._get_context()
        if not self.inentry:
            context.setdefault("image", {})
        self.inimage = 1
        self.title_depth = -1
        self.push("image", False)

    def _end_image(self) -> None:
        self.pop("image")
        self.inimage = 0

    def _start_textinput(self, attrs: dict[str, str]) -> None:
        self._get_context().setdefault("textinput", {})
        self.intextinput = 1
        self.title_depth = -1
        self.push("textinput", False)

    def _end_textinput(self) -> None:
        self.pop("textinput")
        self.intextinput = 0

    def _start_source(self, attrs: dict[str, str]) -> None:
        if "url" in attrs:
            self.sourcedata["href"] = attrs["url"]
        self.push("source", True)
        self.insource = 1
        self.title_depth = -1

    def _end_source(self) -> None:
        self.insource = 0
        value = self.pop("source")
        if value:
            self.sourcedata["title"] = value
        self._get_context()["source"] = dict(self.sourcedata)
        self.sourcedata = {}

    def _start_title(self, attrs: dict[str, str]) -> None:
        self.push_content("title", attrs, "text/plain", self._in_any())

    def _end_title(self) -> None:
        value = self.pop_content("title")
        if value:
            self.title_depth = self.depth

    def _end_media_title(self) -> None:
        title_depth = self.title_depth
        self._end_title()
        self.title_depth = title_depth

    def _start_link(self, attrs: dict[str, str]) -> None:
        attrs.setdefault("rel", "alternate")
        attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
        context = self._get_context()
        href = attrs.get("url", attrs.get("uri", attrs.get("href")))
        if href:  # feedparser's _enforce_href
            attrs.pop("url", None)
            attrs.pop("uri", None)
            attrs["href"] = href
        if "href" in attrs:
            attrs["href"] = self.resolve_uri(attrs["href"])
        context.setdefault("links", [])
        if not (self.inentry and self.inimage):
            context["links"].append(dict(attrs))
        if "href" not in attrs:
            self.push("link", self._in_any())
        elif attrs.get("rel") == "alternate" and map_content_type(attrs["type"]) in HTML_TYPES:
            context["link"] = attrs["href"]

    def _end_link(self) -> None:
        self.pop("link")

    def _start_guid(self, attrs: dict[str, str]) -> None:
        self.guidislink = attrs.get("ispermalink", "true") == "true"
        self.push("id", True)

    def _end_guid(self) -> None:
        value = self.pop("id")
        self._save("guidislink", self.guidislink and "link" not in self._get_context())
        if self.guidislink:
            self._save("link", value)

    def _start_description(self, attrs: dict[str, str]) -> None:
        if "summary" in self._get_context() and not self.has_content:
            self.summary_key = "content"
            self._start_content(attrs)
        else:
            self.push_content("description", attrs, "text/html", self._in_any())

    def _start_abstract(self, attrs: dict[str, str]) -> None:
        self.push_content("description", attrs, "text/plain", self._in_any())

    def _end_description(self) -> None:
        if self.summary_key == "content":
            self._end_content()
        else:
            self.pop_content("description")
        self.summary_key = None

    def _start_summary(self, attrs: dict[str, str]) -> None:
        if "summary" in self._get_context() and not self.has_content:
            self.summary_key = "content"
            self._start_content(attrs)
        else:
            self.summary_key = "summary"
            self.push_content("summary", attrs, "text/plain", True)

    def _end_summary(self) -> None:
        if self.summary_key == "content":
            self._end_content()
        else:
            self.pop_content(self.summary_key or "summary")
        self.summary_key = None

    def _start_content(self, attrs: dict[str, str]) -> None:
        self.has_content = 1
        self.push_content("content", attrs, "text/plain", True)
        self.push("content", True)  # twice, as feedparser does; the first is never popped

    def _start_content_encoded(self, attrs: dict[str, str]) -> None:
        self.has_content = 1
        self.push_content("content", attrs, "text/html", True)

    def _end_content(self) -> None:
        kind = self.contentparams.get("type")
        if kind is None:
            raise Unsupported("content end without content")  # an AttributeError in feedparser
        value = self.pop_content("content")
        if map_content_type(kind) in _COPY_TO_SUMMARY:
            self._save("summary", value)

    def _start_author(self, attrs: dict[str, str]) -> None:
        self.inauthor = 1
        self.push("author", True)
        self._get_context().setdefault("authors", []).append({})

    def _end_author(self) -> None:
        self.pop("author")
        self.inauthor = 0
        self._sync_author_detail()

    def _start_contributor(self, attrs: dict[str, str]) -> None:
        self.incontributor = 1
        self._get_context().setdefault("contributors", []).append({})
        self.push("contributor", False)

    def _end_contributor(self) -> None:
        self.pop("contributor")
        self.incontributor = 0

    def _start_dc_contributor(self, attrs: dict[str, str]) -> None:
        self.incontributor = 1
        self._get_context().setdefault("contributors", []).append({})
        self.push("name", False)

    def _end_dc_contributor(self) -> None:
        self._end_name()
        self.incontributor = 0

    def _start_itunes_owner(self, attrs: dict[str, str]) -> None:
        self.inpublisher = 1
        self.push("publisher", False)

    def _end_itunes_owner(self) -> None:
        self.pop("publisher")
        self.inpublisher = 0
        self._sync_author_detail("publisher")

    def _start_webmaster(self, attrs: dict[str, str]) -> None:
        self.push("publisher", True)

    def _end_webmaster(self) -> None:
        self.pop("publisher")
        self._sync_author_detail("publisher")

    def _end_name(self) -> None:
        value = self.pop("name")
        if self.inpublisher:
            self._save_author("name", value, "publisher")
        elif self.inauthor:
            self._save_author("name", value)
        elif self.incontributor:
            self._save_contributor("name", value)
        elif self.intextinput:
            self._get_context()["name"] = value

    def _end_email(self) -> None:
        value = self.pop("email")
        if self.inpublisher:
            self._save_author("email", value, "publisher")
        elif self.inauthor:
            self._save_author("email", value)
        elif self.incontributor:
            self._save_contributor("email", value)

    def _end_url(self) -> None:
        value = self.pop("href")
        if self.inauthor:
            self._save_author("href", value)
        elif self.incontributor:
            self._save_contributor("href", value)

    def _save_author(self, key: str, value: str | None, prefix: str = "author") -> None:
        context = self._get_context()
        context.setdefault(prefix + "_detail", {})[key] = value
        self._sync_author_detail()
        context.setdefault("authors", [{}])[-1][key] = value

    def _save_contributor(self, key: str, value: str | None) -> None:
        self._get_context().setdefault("contributors", [{}])[-1][key] = value

    def _sync_author_detail(self, key: str = "author") -> None:
        context = self._get_context()
        detail = context.get(f"{key}s", [{}])[-1]
        if detail:
            name, email = detail.get("name"), detail.get("email")
            if name and email:
                context[key] = f"{name} ({email})"
            elif name or email:
                context[key] = name or email
            return
        author, email = context.get(key), None
        if not author:
            return
        found = _EMAIL.search(author)
        if found:
            email = found.group(0)
            author = author.replace(email, "").replace("()", "").replace("<>", "")
            author = author.replace("&lt;&gt;", "").strip()
            if author and author[0] == "(":
                author = author[1:]
            if author and author[-1] == ")":
                author = author[:-1]
            author = author.strip()
        if author or email:
            context.setdefault(f"{key}_detail", detail)
        if author:
            detail["name"] = author
        if email:
            detail["email"] = email

    def _add_tag(self, term: str | None, scheme: str | None, label: str | None) -> None:
        tags = self._get_context().setdefault("tags", [])
        if not term and not scheme and not label:
            return
        value = {"term": term, "scheme": scheme, "label": label}
        if value not in tags:
            tags.append(value)

    def _start_category(self, attrs: dict[str, str]) -> None:
        scheme = attrs.get("scheme", attrs.get("domain"))
        self._add_tag(attrs.get("term"), scheme, attrs.get("label"))
        self.push("category", True)

    def _start_media_category(self, attrs: dict[str, str]) -> None:
        attrs.setdefault("scheme", "http://search.yahoo.com/mrss/category_schema")
        self._start_category(attrs)

    def _start_itunes_category(self, attrs: dict[str, str]) -> None:
        self._add_tag(attrs.get("text"), "http://www.itunes.com/", None)
        self.push("category", True)

    def _end_category(self) -> None:
        value = self.pop("category")
        if not value:
            return
        tags = self._get_context().get("tags")
        if tags is None:
            raise Unsupported("category end in another context")  # a KeyError in feedparser
        if tags and not tags[-1]["term"]:
            tags[-1]["term"] = value
        else:
            self._add_tag(value, None, None)

    def _split_tags(self, name: str, scheme: str | None) -> None:
        value = self.pop(name)
        if value is None:
            return  # not pushed (the element had attributes): an AttributeError in feedparser
        for term in value.split(","):
            if term.strip():
                self._add_tag(term.strip(), scheme, None)

    def _end_itunes_keywords(self) -> None:
        self._split_tags("itunes_keywords", "http://www.itunes.com/")

    def _end_media_keywords(self) -> None:
        self._split_tags("media_keywords", None)

    def _end_tags(self) -> None:
        value = self.pop("tags")
        if value is None:
            return  # an AttributeError in feedparser
        for term in value.split(","):
            self._add_tag(term.strip(), None, None)

    def _end_date(self, name: str, key: str) -> None:
        self._save(key, _parse_date(self.pop(name)), overwrite=True)

    def _end_published(self) -> None:
        self._end_date("published", "published_parsed")

    def _end_updated(self) -> None:
        self._end_date("updated", "updated_parsed")

    def _end_created(self) -> None:
        self._end_date("created", "created_parsed")

    def _start_itunes_image(self, attrs: dict[str, str]) -> None:
        self.push("itunes_image", False)
        href = attrs.get("href") or attrs.get("url")
        if href:
            self._get_context()["image"] = {"href": href}

    def _start_admin(self, attrs: dict[str, str]) -> None:
        pass  # pushes, stores and pops a value of its own at once: nothing stays

    def _start_nothing(self, attrs: dict[str, str]) -> None:
        pass  # feedparser keeps attributes aside (media:content, enclosure, cloud, ...)


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


def refuse_cdf(attrs: Mapping[str, str]) -> None:
    if "lastmod" in attrs or "href" in attrs:
        raise Unsupported("CDF attributes")  # feedparser's _cdf_common


__all__ = ["ENDS", "HANDLER_PREFIXES", "STARTS", "UNSUPPORTED", "End", "Handlers", "Start"]
