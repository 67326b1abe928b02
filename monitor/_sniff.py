"""Looks at a body before feedparser does: hostile DTDs, HTML pages and bot walls.

Entity expansion: expat (2.4+) stops billion-laughs documents by itself, and feedparser drops entity
declarations that refer to other entities. But feedparser keeps "safe" declarations of any length
and expands them in its fallback (sgmllib) parser when expat gives up, so one 100 KB entity
referenced 20,000 times costs a minute and 2 GB (measured). Documents whose DTD declares long,
nested or too many entities are therefore refused before parsing; real feeds declare at most a few
one-character entities.
"""

from __future__ import annotations

import re

from monitor.errors import FetchError

_PROLOG_SCAN = 1 << 20  # a DTD larger than this is not a feed's
_MAX_ENTITIES = 64
_MAX_ENTITY_VALUE = 32
_ENTITY = re.compile(r"""<!ENTITY\s+(%\s*)?[^\s>]+\s+(?:"([^"]*)"|'([^']*)'|(SYSTEM|PUBLIC))""")
_ROOT = re.compile(r"<[A-Za-z_]")
_CHAR_REF = re.compile(r"&#(?:\d+|x[0-9a-fA-F]+);")
_HTML_ROOT = re.compile(
    r"^[\ufeff\s]*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*"
    r"<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])",
    re.I | re.S,
)
# Markers of the interstitial pages that CDNs and anti-bot services serve instead of the content.
_BOT_WALL = re.compile(
    rb"cf-browser-verification|challenge-platform|cf_chl_|<title>\s*just a moment\.\.\.|"
    rb"attention required! \| cloudflare|ddos-guard|_incapsula_resource|px-captcha|"
    rb"captcha-delivery\.com|<title>\s*access denied\s*</title>|are you a robot",
    re.I,
)


def _prefix_text(body: bytes) -> str:
    """The start of the body as text, good enough to find markup in any encoding a feed may use."""
    head = body[:_PROLOG_SCAN]
    for bom, codec in (
        (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
        (b"<\x00\x00\x00", "utf-32-le"), (b"\x00\x00\x00<", "utf-32-be"),
        (b"<\x00", "utf-16-le"), (b"\x00<", "utf-16-be"),
    ):  # fmt: skip
        if head.startswith(bom):
            return head.decode(codec, "replace")
    # Any other encoding a feed can declare is ASCII-compatible for markup; latin-1 maps bytes 1:1.
    return head.decode("latin-1")


def check_entities(body: bytes) -> None:
    """Raise `parse_error` for a DTD that could expand out of proportion (see module docstring)."""
    text = _prefix_text(body)
    if "<!ENTITY" not in text:
        return
    root = _ROOT.search(text)
    if root is None:
        raise FetchError("parse_error", "DTD too large or no root element (entity-expansion guard)")
    declarations = _ENTITY.findall(text[: root.start()])
    if len(declarations) > _MAX_ENTITIES:
        raise FetchError(
            "parse_error", f"{len(declarations)} entity declarations (expansion guard)"
        )
    for parameter, double, single, external in declarations:
        value = double or single
        if parameter or external:
            continue  # never expanded: feedparser disables external entities and drops these
        if len(value) > _MAX_ENTITY_VALUE or "&" in _CHAR_REF.sub("", value) or "%" in value:
            raise FetchError("parse_error", "long or nested entity declaration (expansion guard)")


def is_html(body: bytes) -> bool:
    return _HTML_ROOT.match(_prefix_text(body[:4096])) is not None


def is_bot_wall(body: bytes) -> bool:
    return _BOT_WALL.search(body[:65536]) is not None


def has_element(body: bytes) -> bool:
    return _ROOT.search(_prefix_text(body)) is not None


def starts_like_markup(body: bytes) -> bool:
    text = _prefix_text(body[:1024]).lstrip("\ufeff \t\r\n")
    return text.startswith("<")


__all__ = ["check_entities", "has_element", "is_bot_wall", "is_html", "starts_like_markup"]
