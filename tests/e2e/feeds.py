"""Feed documents written for the end-to-end tests: RSS 2.0, Atom, RDF, a feed without GUIDs and a
windows-1251 feed, built from (title, link, date) entries so tests can add items between polls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Entry:
    title: str
    link: str
    published: datetime | None
    summary: str = ""
    guid: str | None = None


def ago(**kw: float) -> datetime:
    return datetime.now(UTC) - timedelta(**kw)


def rss(entries: list[Entry], *, with_guids: bool = True, encoding: str = "utf-8") -> bytes:
    items = []
    for e in entries:
        parts = [f"<title>{escape(e.title)}</title>", f"<link>{escape(e.link)}</link>"]
        if with_guids:
            parts.append(f'<guid isPermaLink="false">{escape(e.guid or e.link)}</guid>')
        if e.published:
            parts.append(f"<pubDate>{format_datetime(e.published)}</pubDate>")
        if e.summary:
            parts.append(f"<description>{escape(e.summary)}</description>")
        items.append("<item>" + "".join(parts) + "</item>")
    doc = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        '<rss version="2.0"><channel><title>Test feed</title><link>https://news.test/</link>'
        "<description>written for tests</description>" + "".join(items) + "</channel></rss>"
    )
    return doc.encode(encoding)


def atom(entries: list[Entry]) -> bytes:
    out = []
    for e in entries:
        when = (e.published or datetime(2000, 1, 1, tzinfo=UTC)).isoformat()
        out.append(
            f"<entry><id>{escape(e.guid or e.link)}</id><title>{escape(e.title)}</title>"
            f'<link href="{escape(e.link)}"/><updated>{when}</updated>'
            f"<summary>{escape(e.summary)}</summary></entry>"
        )
    doc = (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>Test Atom</title><id>urn:test:atom</id>"
        f"<updated>{datetime.now(UTC).isoformat()}</updated>" + "".join(out) + "</feed>"
    )
    return doc.encode()


def rdf(entries: list[Entry]) -> bytes:
    """RSS 1.0: no GUIDs, and here no dates either, as many RDF feeds are."""
    seq = "".join(f'<rdf:li rdf:resource="{escape(e.link)}"/>' for e in entries)
    items = "".join(
        f'<item rdf:about="{escape(e.link)}"><title>{escape(e.title)}</title>'
        f"<link>{escape(e.link)}</link><description>{escape(e.summary)}</description></item>"
        for e in entries
    )
    doc = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns="http://purl.org/rss/1.0/">'
        '<channel rdf:about="https://rdf.test/"><title>Test RDF</title><link>https://rdf.test/</link>'
        f"<description>rdf</description><items><rdf:Seq>{seq}</rdf:Seq></items></channel>"
        + items
        + "</rdf:RDF>"
    )
    return doc.encode()


HTML_PAGE = b"""<!DOCTYPE html><html><head><title>Welcome</title></head>
<body><h1>Our news</h1><p>This is a web page, not a feed.</p></body></html>"""
