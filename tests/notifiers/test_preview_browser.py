"""The email HTML in a real browser: headless Chromium screenshots a digest and a single alert at a
wide and a narrow window, and each screenshot must be a page with content, not a blank or broken
one. Skipped where Chromium is not installed (Debian: `apt-get install chromium`).

The PNG is decoded with the standard library (zlib + struct) to count colours: no image library
is needed just for this."""

from __future__ import annotations

import email
import email.message
import email.policy
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.model import AlertMessage, AlsoReported
from notifiers import build_notifier, render_digest_preview, render_preview
from notifiers.settings import EmailSettings
from tests.notifiers.samples import hostile_alert, sample_alert, span_of
from tests.notifiers.test_digest import BASE, fifty_alerts

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

WIDE = (1000, 1400)
NARROW = (400, 1400)
# No hyphen or slash to break at after the host: only the template's wrapping rules can fold it.
LONG_WORD = "https://very-long.example.org/" + "unbrokenpathsegment" * 12


def notifier_settings() -> EmailSettings:
    return EmailSettings.model_validate(
        {"type": "email", "host": "smtp.invalid", "from": "Monitor <m@example.org>",
         "to": ["a@example.org"], "digest": "1h"}
    )  # fmt: skip


def digest_alerts() -> list[AlertMessage]:
    """The fifty alerts of the digest tests, plus what stretches a layout, newest so that they are
    at the top of their sections and in the screenshot: a title that is one long word and a hostile
    alert."""
    title = f"Depot blast reported at {LONG_WORD}"
    newest = {"published": BASE + timedelta(minutes=9), "created": BASE + timedelta(minutes=10)}
    long_one = sample_alert(
        **newest,
        alert_id=999,
        title=title,
        rule_id="depot-strikes",
        rule_title="Depot strikes",
        level="critical",
        matches=(span_of(title, "Depot", "title"),),
        also=tuple(AlsoReported(f"s{i}", f"Source {i}", "t", None) for i in range(7)),
    )
    return [*fifty_alerts(), long_one, hostile_alert(alert_id=998, **newest)]


def single_alert_html() -> str:
    """The HTML part of the whole message `render_preview` gives for one alert."""
    alert = replace(hostile_alert(), title=f"Blast at the KN-23 depot {LONG_WORD}")
    text = render_preview(build_notifier("mail", notifier_settings()), alert)
    message = email.message_from_string(text, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    html = message.get_body(("html",))
    assert html is not None
    content: str = html.get_content()
    return content


# ------------------------------------------------------------------------------- PNG decoding


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    pixels: list[bytes]  # one RGB(A) byte string per row

    def colours(self, channels: int) -> Counter[bytes]:
        counts: Counter[bytes] = Counter()
        for row in self.pixels[::4]:  # every fourth row is plenty to tell text from a blank
            counts.update(row[i : i + channels] for i in range(0, len(row), channels))
        return counts


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(kind: int, line: bytes, prior: bytes, bpp: int) -> bytes:
    """PNG §9.2 scanline filters."""
    if kind == 0:
        return line
    out = bytearray(line)
    n = len(out)
    if kind == 2:
        return bytes((out[i] + prior[i]) & 0xFF for i in range(n))
    for i in range(n):
        left = out[i - bpp] if i >= bpp else 0
        if kind == 1:
            out[i] = (out[i] + left) & 0xFF
        elif kind == 3:
            out[i] = (out[i] + ((left + prior[i]) >> 1)) & 0xFF
        elif kind == 4:
            up_left = prior[i - bpp] if i >= bpp else 0
            out[i] = (out[i] + _paeth(left, prior[i], up_left)) & 0xFF
        else:
            raise AssertionError(f"unknown PNG filter {kind}")
    return bytes(out)


def decode_png(data: bytes) -> tuple[Image, int]:
    """8-bit RGB or RGBA, non-interlaced (what Chromium writes): the image and its channels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, bytearray()
    chunks: dict[bytes, bytes] = {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IDAT":
            idat += body
        chunks.setdefault(kind, body)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    channels = 4 if colour == 6 else 3
    raw, stride = zlib.decompress(bytes(idat)), width * channels
    rows, prior = [], bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        prior = _unfilter(raw[start], raw[start + 1 : start + 1 + stride], prior, channels)
        rows.append(prior)
    return Image(width, height, rows), channels


# --------------------------------------------------------------------------------- screenshots


def screenshot(page: Path, size: tuple[int, int], tmp_path: Path) -> Path:
    assert CHROMIUM is not None
    png = page.with_name(f"{page.stem}-{size[0]}.png")
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--screenshot={png}", f"--window-size={size[0]},{size[1]}", page.as_uri(),
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert png.is_file(), f"chromium wrote no screenshot of {page.name}"
    return png


def assert_readable_page(png: Path, size: tuple[int, int]) -> None:
    image, channels = decode_png(png.read_bytes())
    assert (image.width, image.height) == size
    colours = image.colours(channels)
    # A blank page is one colour; text brings anti-aliasing greys, and our layout brings the
    # level colours and the yellow of highlighted words.
    assert len(colours) > 50, f"{png.name}: only {len(colours)} colours"
    background = colours.most_common(1)[0][1] / sum(colours.values())
    assert background < 0.9, f"{png.name}: {background:.0%} one colour"
    assert any(c[0] > 240 and c[1] > 230 and c[2] < 190 for c in colours), "no highlight yellow"


@needs_chromium
@pytest.mark.parametrize("size", [WIDE, NARROW], ids=["wide", "narrow"])
def test_digest_renders_in_a_browser(tmp_path: Path, size: tuple[int, int]) -> None:
    html = render_digest_preview(build_notifier("mail", notifier_settings()), digest_alerts())
    page = tmp_path / "digest.html"
    page.write_text(html, encoding="utf-8")
    assert_readable_page(screenshot(page, size, tmp_path), size)


@needs_chromium
@pytest.mark.parametrize("size", [WIDE, NARROW], ids=["wide", "narrow"])
def test_single_alert_renders_in_a_browser(tmp_path: Path, size: tuple[int, int]) -> None:
    page = tmp_path / "alert.html"
    page.write_text(single_alert_html(), encoding="utf-8")
    assert_readable_page(screenshot(page, size, tmp_path), size)


def test_png_decoder_reads_what_it_is_given() -> None:
    """The decoder on a PNG built here, with every filter type: a decoder that misreads pixels
    could pass a blank page."""
    rows = [bytes([x * 40, y * 50, (x + y) * 20]) for y in range(5) for x in range(6)]
    pixels = [b"".join(rows[y * 6 : y * 6 + 6]) for y in range(5)]
    filtered, prior = bytearray(), bytes(18)
    for kind, row in enumerate(pixels):
        filtered += bytes([kind]) + _filter(kind, row, prior, 3)
        prior = row
    ihdr = struct.pack(">IIBBBBB", 6, 5, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(filtered))
    image, channels = decode_png(png + _chunk(b"IEND", b""))
    assert channels == 3 and image.pixels == pixels


def _filter(kind: int, row: bytes, prior: bytes, bpp: int) -> bytes:
    def left(i: int) -> int:
        return row[i - bpp] if i >= bpp else 0

    def up_left(i: int) -> int:
        return prior[i - bpp] if i >= bpp else 0

    predictors: dict[int, Callable[[int], int]] = {
        0: lambda i: 0,
        1: left,
        2: lambda i: prior[i],
        3: lambda i: (left(i) + prior[i]) >> 1,
        4: lambda i: _paeth(left(i), prior[i], up_left(i)),
    }
    return bytes((row[i] - predictors[kind](i)) & 0xFF for i in range(len(row)))


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def test_the_long_title_is_in_the_page() -> None:
    # Guards the screenshots' premise: the stretching cases really are in what was rendered.
    html = render_digest_preview(build_notifier("mail", notifier_settings()), digest_alerts())
    # Titles are capped, so the long word is cut: its first 200 characters are enough.
    assert LONG_WORD[:200] in html and "&lt;!channel&gt;" in html
    assert LONG_WORD[:200] in single_alert_html()
