"""feedparser's handlers for the metadata elements: authors, contributors and publishers,
categories and tags, and dates (see `monitor._feedhandlers`, which joins them with
`monitor._feedstructure`).

Kept apart from the structure handlers: these open no context of their own, they only store into
the one the structure handlers opened, and they carry most of feedparser's string-mangling quirks
(the author e-mail split, comma-separated tags).
"""

from __future__ import annotations

import re

from feedparser.datetimes import _parse_date

from monitor._feedreplay import ReplayState, Unsupported

# feedparser's `_sync_author_detail` e-mail pattern, verbatim.
_EMAIL = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)


class MetadataHandlers(ReplayState):
    """The replayed people, category and date handlers (see module docstring)."""

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


__all__ = ["MetadataHandlers"]
