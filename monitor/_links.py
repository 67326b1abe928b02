"""Canonical links (DESIGN §6): one spelling per article, so that identity and story grouping see
the same URL whichever feed, campaign or AMP page it came through."""

from __future__ import annotations

from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

# Query parameters that only say how a reader arrived (campaigns, click ids, share widgets), never
# which page is shown. Compared case-insensitively; `utm_*` as a prefix. Names that are also used
# for content (`ref`, `source`, `partner`, `mod`, `id`) are deliberately absent.
_TRACKING = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid",
        "_ga", "_gl", "yclid", "igshid", "ref_src", "ref_url", "twclid", "ttclid", "li_fat_id",
        "mkt_tok", "_hsenc", "_hsmi", "oly_anon_id", "oly_enc_id", "rb_clickid", "s_cid",
        "vero_conv", "vero_id", "wickedid", "icid", "traffic_source", "cmpid", "ocid", "smid",
        "maca", "at_medium", "at_campaign", "at_custom1", "at_custom2", "at_custom3", "at_custom4",
    }
)  # fmt: skip
_TRACKING_PREFIXES = ("utm_",)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Google's AMP viewers wrap the publisher's own URL: `/amp/s/<host>/<path>` means https,
# `/amp/<host>/...` http. Unwrapping them is safe because the original URL is spelled out in full.
_AMP_CACHE_HOST_SUFFIX = ".cdn.ampproject.org"


def _is_tracking(name: str) -> bool:
    lowered = unquote(name).lower()
    return lowered in _TRACKING or lowered.startswith(_TRACKING_PREFIXES)


def _clean_query(query: str) -> str:
    # Pairs are kept as written (no decode/re-encode round trip that could change their bytes) and
    # sorted so that parameter order never makes two links differ.
    kept: list[str] = []
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if _is_tracking(name):
            continue
        # `?amp` / `?amp=1` asks for the AMP rendering of the same article.
        if name.lower() == "amp" and value.lower() in {"", "1", "true"}:
            continue
        kept.append(pair)
    return "&".join(sorted(kept))


def _strip_amp_path(path: str) -> str:
    # A trailing `/amp` segment after at least one other segment is the AMP rendering of its parent
    # (`/world/story-123/amp/`). A path that is only `/amp` is left alone: it may be a real page.
    trimmed = path.rstrip("/")
    head, sep, last = trimmed.rpartition("/")
    if sep and head and last.lower() == "amp":
        return head + ("/" if path.endswith("/") else "")
    return path


def _unwrap_amp_viewer(host: str, path: str) -> str | None:
    """The publisher URL inside a Google AMP viewer/cache URL, or None when this is not one."""
    if host in {"www.google.com", "google.com"} and path.startswith("/amp/"):
        inner = path[len("/amp/") :]
    elif host.endswith(_AMP_CACHE_HOST_SUFFIX) and path.startswith(("/c/", "/v/")):
        inner = path[len("/c/") :]
    else:
        return None
    scheme = "http"
    if inner.startswith("s/"):
        scheme, inner = "https", inner[2:]
    return f"{scheme}://{inner}" if inner and "." in inner.split("/", 1)[0] else None


def _netloc(scheme: str, host: str, port: int | None) -> str:
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return host
    return f"{host}:{port}"


def canonical_link(url: str | None) -> str | None:
    """One spelling of an article URL: scheme and host lower-cased; default port, credentials and
    fragment dropped; tracking parameters removed, the remaining query sorted; AMP wrappers removed
    where the plain URL is certain. The path keeps its case. Returns None for anything that is not
    an absolute http(s) URL, since only those identify an article."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    inner = _unwrap_amp_viewer(host, parts.path)
    if inner is not None:
        return canonical_link(inner + (f"?{parts.query}" if parts.query else ""))
    path = _strip_amp_path(parts.path) or "/"
    return urlunsplit((scheme, _netloc(scheme, host, port), path, _clean_query(parts.query), ""))


def resolve_link(link: str | None, base: str | None) -> str | None:
    """An entry's link made absolute against `base` (RFC 3986 §5), without surrounding spaces."""
    if not link or not link.strip():
        return None
    link = link.strip()
    try:
        if base and not urlsplit(link).scheme:
            return urljoin(base, link)
    except ValueError:  # e.g. an unbalanced `[` ("Invalid IPv6 URL"): keep it, never canonical
        return link
    return link


__all__ = ["canonical_link", "resolve_link"]
