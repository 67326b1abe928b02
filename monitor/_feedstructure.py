"""feedparser's handlers for the elements that shape a feed and identify its items: the
feed, entry, image, text-input and source containers, and the title, link, id, summary and content
inside them (see `monitor._feedhandlers`, which joins them with `monitor._feedmetadata`).

Kept apart from the metadata handlers because these decide where everything else is stored (the
context stack) and what an item's identity is made of.
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor._feedreplay import HTML_TYPES, ReplayState, Unsupported, map_content_type

_COPY_TO_SUMMARY = frozenset({"text/plain"}) | HTML_TYPES


class StructureHandlers(ReplayState):
    """The replayed container and text handlers (see module docstring)."""

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

    def _start_itunes_image(self, attrs: dict[str, str]) -> None:
        self.push("itunes_image", False)
        href = attrs.get("href") or attrs.get("url")
        if href:
            self._get_context()["image"] = {"href": href}

    def _start_admin(self, attrs: dict[str, str]) -> None:
        pass  # pushes, stores and pops a value of its own at once: nothing stays

    def _start_nothing(self, attrs: dict[str, str]) -> None:
        pass  # feedparser keeps attributes aside (media:content, enclosure, cloud, ...)


def refuse_cdf(attrs: Mapping[str, str]) -> None:
    if "lastmod" in attrs or "href" in attrs:
        raise Unsupported("CDF attributes")  # feedparser's _cdf_common


__all__ = ["StructureHandlers", "refuse_cdf"]
