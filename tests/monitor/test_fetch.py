"""Fetching from real HTTP servers on 127.0.0.1: conditional GET, redirects, limits, failures."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import trustme
import xxhash

from monitor._decode import decoder_for
from monitor._transport import HTTP_CLIENTS, HttpClient
from monitor.errors import FetchError
from monitor.fetch import (
    MAX_REDIRECTS,
    Fetcher,
    FetchRequest,
    FetchResult,
    classify,
    max_age_seconds,
    retry_after_seconds,
    safe_url,
)
from tests.monitor.feedserver import FeedServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"
RSS = (FIXTURES / "rss20.xml").read_bytes()
MiB = 1024 * 1024


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


@pytest.fixture(params=HTTP_CLIENTS)
def client(request: pytest.FixtureRequest) -> HttpClient:
    """Every test that fetches runs on both connection pools (`monitor._transport`): the
    Fetcher must behave the same on either."""
    return cast(HttpClient, request.param)


def new_fetcher(client: HttpClient, **options: Any) -> Fetcher:
    settings: dict[str, Any] = {"min_spacing": 0, "max_bytes": MiB, "user_agent": "t"}
    return Fetcher(http_client=client, **(settings | options))


@pytest.fixture
async def fetcher(client: HttpClient) -> AsyncIterator[Fetcher]:
    async with new_fetcher(client, timeout=2.0, user_agent="monitor-test/1.0") as f:
        yield f


async def fetch(fetcher: Fetcher, url: str, **validators: str | None) -> FetchResult:
    return await fetcher.fetch(FetchRequest("src", url, **validators))


async def failure(fetcher: Fetcher, url: str, **validators: str | None) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetch(fetcher, url, **validators)
    return caught.value


# -- success and conditional GET -----------------------------------------------------------------


async def test_ok_fetch_returns_body_headers_and_hash(server: FeedServer, fetcher: Fetcher) -> None:
    server.route("/feed", RSS, headers={"Cache-Control": "public, max-age=600", "X-Custom": "1"})
    result = await fetch(fetcher, server.url("/feed"))
    assert (result.status, result.status_code, result.body) == ("ok", 200, RSS)
    assert result.body_hash == xxhash.xxh3_128(RSS).hexdigest()
    assert result.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert result.headers["x-custom"] == "1" and all(k == k.lower() for k in result.headers)
    assert result.max_age == 600.0 and result.url == server.url("/feed")
    assert result.permanent_redirect is None and result.elapsed > 0
    sent = server.requests("/feed")[0].headers
    assert sent["user-agent"] == "monitor-test/1.0"
    assert sent["accept"].startswith("application/rss+xml, application/atom+xml")
    assert "gzip" in sent["accept-encoding"] and "deflate" in sent["accept-encoding"]
    assert "if-none-match" not in sent and "if-modified-since" not in sent


async def test_conditional_get_echoes_validators_verbatim(
    server: FeedServer, fetcher: Fetcher
) -> None:
    etag, modified = 'W/"abc-123;x"', "Wed, 08 Jan 2025 06:00:00 GMT"
    server.route("/feed", RSS, etag=etag, last_modified=modified)
    first = await fetch(fetcher, server.url("/feed"))
    assert (first.status, first.etag, first.last_modified) == ("ok", etag, modified)
    second = await fetch(
        fetcher, server.url("/feed"), etag=first.etag, last_modified=first.last_modified
    )
    assert (second.status, second.status_code, second.body) == ("not_modified", 304, b"")
    assert (second.etag, second.last_modified) == (etag, modified)
    sent = server.requests("/feed")[1].headers
    assert (sent["if-none-match"], sent["if-modified-since"]) == (etag, modified)


async def test_304_without_validators_keeps_the_ones_we_sent(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.route("/feed", status=304)
    result = await fetch(fetcher, server.url("/feed"), etag='"v1"', last_modified="yesterday")
    assert (result.status, result.etag, result.last_modified) == (
        "not_modified",
        '"v1"',
        "yesterday",
    )


async def test_same_body_again_is_unchanged(server: FeedServer, fetcher: Fetcher) -> None:
    server.route("/feed", RSS)  # no validators: the server always answers 200
    first = await fetch(fetcher, server.url("/feed"))
    again = await fetch(fetcher, server.url("/feed"), body_hash=first.body_hash)
    assert (again.status, again.status_code, again.body) == ("unchanged", 200, b"")
    assert again.body_hash == first.body_hash
    server.route("/feed", RSS.replace(b"Toropets", b"Tikhoretsk"))
    changed = await fetch(fetcher, server.url("/feed"), body_hash=first.body_hash)
    assert changed.status == "ok" and changed.body_hash != first.body_hash


async def test_200_with_the_same_etag_is_unchanged(server: FeedServer, fetcher: Fetcher) -> None:
    # A server that ignores If-None-Match but still reports the same ETag.
    server.route("/feed", RSS, headers={"ETag": '"same"'})
    result = await fetch(fetcher, server.url("/feed"), etag='"same"', body_hash="old")
    assert (result.status, result.body, result.etag, result.body_hash) == (
        "unchanged",
        b"",
        '"same"',
        "old",
    )


async def test_validators_with_control_characters_are_not_sent(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.route("/feed", RSS)
    result = await fetch(fetcher, server.url("/feed"), etag='"a"\r\nX-Injected: 1')
    assert result.status == "ok"
    sent = server.requests("/feed")[0].headers
    assert "if-none-match" not in sent and "x-injected" not in sent


async def test_validators_beyond_ascii_are_not_sent(server: FeedServer, fetcher: Fetcher) -> None:
    # A Latin-1 ETag, as a server may send and we store: asking with it used to fail every poll.
    server.route("/feed", RSS)
    first = await fetch(fetcher, server.url("/feed"))
    result = await fetch(fetcher, server.url("/feed"), etag='"caf\xe9"', body_hash=first.body_hash)
    assert (result.status, result.body_hash) == ("unchanged", first.body_hash)
    assert "if-none-match" not in server.requests("/feed")[1].headers


# -- content encodings ---------------------------------------------------------------------------


async def test_gzip_body_is_decoded_and_hashed_decoded(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.route("/feed", RSS, gzip=True)
    result = await fetch(fetcher, server.url("/feed"))
    assert result.body == RSS and result.body_hash == xxhash.xxh3_128(RSS).hexdigest()
    assert result.headers["content-encoding"] == "gzip"


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
async def test_deflate_in_both_spellings(server: FeedServer, fetcher: Fetcher, wbits: int) -> None:
    packer = zlib.compressobj(wbits=wbits)
    server.route(
        "/feed", packer.compress(RSS) + packer.flush(), headers={"Content-Encoding": "deflate"}
    )
    assert (await fetch(fetcher, server.url("/feed"))).body == RSS


async def test_concatenated_gzip_members(server: FeedServer, fetcher: Fetcher) -> None:
    half = len(RSS) // 2
    body = gzip.compress(RSS[:half]) + gzip.compress(RSS[half:])
    server.route("/feed", body, headers={"Content-Encoding": "gzip"})
    assert (await fetch(fetcher, server.url("/feed"))).body == RSS


async def test_corrupt_gzip_is_a_network_error(server: FeedServer, fetcher: Fetcher) -> None:
    server.route("/feed", b"\x1f\x8b\x08\x00garbage-not-gzip", headers={"Content-Encoding": "gzip"})
    assert (await failure(fetcher, server.url("/feed"))).kind == "network"


async def test_unknown_content_encoding_is_a_network_error(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.route("/feed", RSS, headers={"Content-Encoding": "zz-unknown"})
    assert (await failure(fetcher, server.url("/feed"))).kind == "network"


# -- size limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_large_compressed_chunk_decodes_in_small_pieces(coding: str) -> None:
    # aiohttp hands on everything buffered as one chunk: megabytes, inflated a slice at a time.
    body = b"".join(b"<item><title>%d</title></item>" % n for n in range(200_000))
    packed = gzip.compress(body) if coding == "gzip" else zlib.compress(body)
    assert len(packed) > 256 * 1024  # several slices
    decoder = decoder_for(coding)
    pieces = [*decoder.feed(packed), *decoder.finish()]
    assert b"".join(pieces) == body
    assert max(map(len, pieces)) <= 64 * 1024


def _gzip_bomb(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * MiB
    return b"".join(packer.compress(block) for _ in range(size // MiB)) + packer.flush()


async def test_gzip_bomb_is_cut_after_decompression(server: FeedServer, fetcher: Fetcher) -> None:
    bomb = _gzip_bomb(64 * MiB)
    assert len(bomb) < MiB // 4  # small on the wire, far above max_bytes once inflated
    server.route("/bomb", bomb, headers={"Content-Encoding": "gzip"})
    error = await failure(fetcher, server.url("/bomb"))
    assert error.kind == "too_large" and str(MiB) in error.detail


async def test_2gb_streamed_body_is_cut_quickly(server: FeedServer, fetcher: Fetcher) -> None:
    server.route("/huge", stream=2 * 1024**3, content_length=False)  # chunked, no announced size
    started = time.monotonic()
    assert (await failure(fetcher, server.url("/huge"))).kind == "too_large"
    assert time.monotonic() - started < 1.5


async def test_announced_2gb_body_is_refused_before_reading(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.route("/huge", stream=2 * 1024**3)
    started = time.monotonic()
    error = await failure(fetcher, server.url("/huge"))
    assert error.kind == "too_large" and "2147483648" in error.detail
    assert time.monotonic() - started < 1.0


async def test_body_exactly_at_the_limit_is_accepted(
    server: FeedServer, client: HttpClient
) -> None:
    body = b"<rss>" + b"x" * 995 + b"</rss>"
    server.route("/feed", body, content_length=False)
    async with new_fetcher(client, timeout=2, max_bytes=len(body)) as f:
        assert (await fetch(f, server.url("/feed"))).body == body
    async with new_fetcher(client, timeout=2, max_bytes=len(body) - 1) as f:
        assert (await failure(f, server.url("/feed"))).kind == "too_large"


@pytest.mark.parametrize("body", [b"", b" \r\n "])
async def test_empty_body(server: FeedServer, fetcher: Fetcher, body: bytes) -> None:
    server.route("/feed", body)
    assert (await failure(fetcher, server.url("/feed"))).kind == "empty"


async def test_204_no_content_is_empty(server: FeedServer, fetcher: Fetcher) -> None:
    server.route("/feed", status=204, content_length=True)
    assert (await failure(fetcher, server.url("/feed"))).kind == "empty"


# -- HTTP status codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [(500, "http_500"), (404, "http_404"), (410, "gone"), (401, "blocked"), (403, "blocked"),
     (400, "http_400"), (502, "http_502"), (429, "http_429"), (503, "http_503")],
)  # fmt: skip
async def test_error_statuses_map_to_kinds(
    server: FeedServer, fetcher: Fetcher, status: int, kind: str
) -> None:
    server.route("/feed", b"<html>error page</html>", status=status, content_type="text/html")
    error = await failure(fetcher, server.url("/feed"))
    assert error.kind == kind and str(status) in error.detail
    assert error.retry_after is None


async def test_unregistered_path_is_404(server: FeedServer, fetcher: Fetcher) -> None:
    assert (await failure(fetcher, server.url("/nothing-here"))).kind == "http_404"


async def test_429_retry_after_seconds(server: FeedServer, fetcher: Fetcher) -> None:
    server.route("/feed", status=429, headers={"Retry-After": "120"})
    error = await failure(fetcher, server.url("/feed"))
    assert (error.kind, error.retry_after) == ("http_429", 120.0)


async def test_503_retry_after_http_date(server: FeedServer, fetcher: Fetcher) -> None:
    # BaseHTTPRequestHandler sends its own Date; the wait is measured from it.
    later = datetime.now(UTC) + timedelta(seconds=300)
    server.route("/feed", status=503, headers={"Retry-After": format_datetime(later, usegmt=True)})
    error = await failure(fetcher, server.url("/feed"))
    assert error.kind == "http_503"
    assert error.retry_after is not None and 295 <= error.retry_after <= 301


async def test_challenge_header_is_blocked_whatever_the_status(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.route("/feed", b"<html>Just a moment...</html>", status=503,
                 headers={"cf-mitigated": "challenge"}, content_type="text/html")  # fmt: skip
    assert (await failure(fetcher, server.url("/feed"))).kind == "blocked"


def test_retry_after_parsing() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    date = "Wed, 01 Jan 2025 12:00:00 GMT"
    assert retry_after_seconds({"retry-after": "0"}, now) == 0.0
    assert retry_after_seconds({"retry-after": " 30 "}, now) == 30.0
    assert retry_after_seconds({"retry-after": "Wed, 01 Jan 2025 12:01:30 GMT"}, now) == 90.0
    skewed = {"retry-after": "Wed, 01 Jan 2025 12:01:30 GMT", "date": date}
    assert retry_after_seconds(skewed, now + timedelta(hours=3)) == 90.0
    assert retry_after_seconds({"retry-after": "Wed, 01 Jan 2025 11:00:00 GMT"}, now) == 0.0
    assert retry_after_seconds({"retry-after": "99999999999"}, now) == 7 * 86400.0
    for bad in ("", "soon", "-5", "1.5"):
        assert retry_after_seconds({"retry-after": bad}, now) is None
    assert retry_after_seconds({}, now) is None
    garbled_date = {"retry-after": "Wed, 01 Jan 2025 12:01:30 GMT", "date": "garbage"}
    assert retry_after_seconds(garbled_date, now) == 90.0


def test_max_age_parsing() -> None:
    assert max_age_seconds("public, max-age=300") == 300.0
    assert max_age_seconds('MAX-AGE="60", must-revalidate') == 60.0
    assert max_age_seconds("no-cache") is None
    assert max_age_seconds("max-age=soon") is None
    assert max_age_seconds(None) is None


# -- redirects -----------------------------------------------------------------------------------


async def test_301_chain_reports_the_permanent_target(server: FeedServer, fetcher: Fetcher) -> None:
    server.route("/old", status=301, redirect="/older-still")
    server.route("/older-still", status=308, redirect=server.url("/feed"))
    server.route("/feed", RSS)
    result = await fetch(fetcher, server.url("/old"))
    assert (result.status, result.url, result.body) == ("ok", server.url("/feed"), RSS)
    assert result.permanent_redirect == server.url("/feed")


async def test_302_is_followed_but_not_permanent(server: FeedServer, fetcher: Fetcher) -> None:
    server.route("/feed", status=302, redirect="/today")
    server.route("/today", RSS)
    result = await fetch(fetcher, server.url("/feed"))
    assert result.url == server.url("/today") and result.permanent_redirect is None


async def test_permanent_target_stops_at_the_first_temporary_hop(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.route("/a", status=301, redirect="/b")
    server.route("/b", status=302, redirect="/c")
    server.route("/c", status=301, redirect="/d")
    server.route("/d", RSS)
    result = await fetch(fetcher, server.url("/a"))
    assert result.url == server.url("/d") and result.permanent_redirect == server.url("/b")


async def test_validators_travel_along_redirects(server: FeedServer, fetcher: Fetcher) -> None:
    server.route("/old", status=301, redirect="/feed")
    server.route("/feed", RSS, etag='"v9"')
    result = await fetch(fetcher, server.url("/old"), etag='"v9"')
    assert result.status == "not_modified" and result.permanent_redirect == server.url("/feed")


async def test_redirect_loop(server: FeedServer, fetcher: Fetcher) -> None:
    server.route("/a", status=301, redirect="/b")
    server.route("/b", status=302, redirect="/a")
    assert (await failure(fetcher, server.url("/a"))).kind == "redirect_loop"
    assert server.hits("/a") == 1 and server.hits("/b") == 1


async def test_too_many_redirects(server: FeedServer, fetcher: Fetcher) -> None:
    for n in range(MAX_REDIRECTS + 1):
        server.route(f"/r{n}", redirect=f"/r{n + 1}")
    server.route(f"/r{MAX_REDIRECTS + 1}", RSS)
    assert (await failure(fetcher, server.url("/r0"))).kind == "redirect_loop"
    server.route("/r1", RSS)  # now within the limit
    assert (await fetch(fetcher, server.url("/r0"))).status == "ok"


async def test_redirect_to_a_non_http_scheme(server: FeedServer, fetcher: Fetcher) -> None:
    server.route("/feed", redirect="file:///etc/passwd")
    assert (await failure(fetcher, server.url("/feed"))).kind == "invalid_url"


async def test_redirect_without_location(server: FeedServer, fetcher: Fetcher) -> None:
    server.route("/feed", status=302)
    assert (await failure(fetcher, server.url("/feed"))).kind == "http_302"


# -- time limits ---------------------------------------------------------------------------------


async def test_trickling_server_hits_the_overall_deadline(
    server: FeedServer, client: HttpClient
) -> None:
    # One byte every 50 ms: no read ever waits long, the whole body would take ~50 s.
    server.route("/slow", RSS, trickle=0.05)
    async with new_fetcher(client, timeout=0.6) as f:
        started = time.monotonic()
        error = await failure(f, server.url("/slow"))
    assert error.kind == "timeout"
    assert 0.5 <= time.monotonic() - started < 2.0


async def test_never_answering_server_times_out(server: FeedServer, client: HttpClient) -> None:
    server.route("/hang", hang=True)
    async with new_fetcher(client, timeout=0.4) as f:
        started = time.monotonic()
        assert (await failure(f, server.url("/hang"))).kind == "timeout"
    assert time.monotonic() - started < 1.5


async def test_delay_within_the_deadline_is_fine(server: FeedServer, client: HttpClient) -> None:
    server.route("/feed", RSS, delay=0.2)
    async with new_fetcher(client, timeout=2) as f:
        assert (await fetch(f, server.url("/feed"))).status == "ok"


async def test_deadline_covers_the_whole_redirect_chain(
    server: FeedServer, client: HttpClient
) -> None:
    for n in range(4):
        server.route(f"/r{n}", redirect=f"/r{n + 1}", delay=0.2)
    server.route("/r4", RSS, delay=0.2)
    async with new_fetcher(client, timeout=0.5) as f:
        assert (await failure(f, server.url("/r0"))).kind == "timeout"


# -- transport failures --------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused(fetcher: Fetcher) -> None:
    error = await failure(fetcher, f"http://127.0.0.1:{_closed_port()}/feed")
    assert error.kind == "connect"


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[str]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(RSS)))
            self.end_headers()
            self.wfile.write(RSS)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}/feed"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


async def test_untrusted_certificate_is_a_tls_failure(fetcher: Fetcher, tls_server: str) -> None:
    assert (await failure(fetcher, tls_server)).kind == "tls"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/feed", "not a url", "http://", "http://[::1/x"])
async def test_invalid_urls(fetcher: Fetcher, url: str) -> None:
    assert (await failure(fetcher, url)).kind == "invalid_url"


def test_classify_maps_exceptions_to_kinds() -> None:
    url = "https://user:pw@feeds.example.org/rss?token=s3cret"
    dns = httpx.ConnectError("boom")
    dns.__cause__ = socket.gaierror(-2, "Name or service not known")
    tls = httpx.ConnectError("boom")
    tls.__cause__ = ssl.SSLCertVerificationError("certificate verify failed")
    cases = {
        "dns": dns, "tls": tls, "connect": httpx.ConnectError("refused"),
        "timeout": httpx.ReadTimeout("slow"), "network": httpx.RemoteProtocolError("bad frame"),
    }  # fmt: skip
    for kind, exc in cases.items():
        error = classify(exc, url)
        assert error.kind == kind
        assert "pw" not in error.detail and "s3cret" not in error.detail
    assert classify(TimeoutError(), url).kind == "timeout"
    assert classify(ConnectionResetError(), url).kind == "network"


async def test_details_never_contain_credentials_or_query(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.route("/private", status=500)
    url = server.url("/private").replace("http://", "http://alice:hunter2@") + "?api_key=s3cret"
    error = await failure(fetcher, url)
    assert error.kind == "http_500"
    assert "hunter2" not in str(error) and "s3cret" not in str(error) and "alice" not in str(error)
    assert "/private" in error.detail


def test_safe_url() -> None:
    assert safe_url("https://u:p@Example.org:8443/a/b?x=1#f") == "https://example.org:8443/a/b"
    assert safe_url("http://a:b:c/") == "<invalid URL>"


# -- concurrency ---------------------------------------------------------------------------------


async def test_per_host_limit(server: FeedServer, client: HttpClient) -> None:
    server.route("/feed", RSS, delay=0.15)
    async with new_fetcher(client, timeout=5, per_host=2) as f:
        results = await asyncio.gather(*(fetch(f, server.url(f"/feed?n={n}")) for n in range(6)))
    assert all(r.status == "ok" for r in results)
    assert server.max_in_flight == 2


async def test_global_limit_across_hosts(client: HttpClient) -> None:
    with FeedServer() as one, FeedServer() as two:
        for s in (one, two):
            s.route("/feed", RSS, delay=0.15)
        urls = [s.url(f"/feed?n={n}") for n in range(3) for s in (one, two)]
        async with new_fetcher(client, timeout=5, concurrency=1, per_host=4) as f:
            await asyncio.gather(*(fetch(f, u) for u in urls))
        assert one.max_in_flight == 1 and two.max_in_flight == 1
        assert one.hits("/feed") == 3 and two.hits("/feed") == 3


async def test_hosts_do_not_wait_for_each_other(client: HttpClient) -> None:
    with FeedServer() as slow, FeedServer() as fast:
        slow.route("/feed", RSS, hang=True)
        fast.route("/feed", RSS)
        async with new_fetcher(client, timeout=5, per_host=1) as f:
            stuck = asyncio.create_task(fetch(f, slow.url("/feed")))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            assert (await fetch(f, fast.url("/feed"))).status == "ok"
            assert time.monotonic() - started < 1.0
            stuck.cancel()
            await asyncio.gather(stuck, return_exceptions=True)


async def test_fetcher_must_be_entered() -> None:
    f = Fetcher(min_spacing=0, timeout=1, max_bytes=MiB, user_agent="t")
    with pytest.raises(RuntimeError):
        await f.fetch(FetchRequest("src", "http://127.0.0.1:1/"))


async def test_injected_transport_is_used() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(RSS), headers={"ETag": '"m"'})

    transport = httpx.MockTransport(answer)
    async with Fetcher(
        min_spacing=0, timeout=1, max_bytes=MiB, user_agent="t", transport=transport
    ) as f:
        result = await f.fetch(FetchRequest("src", "https://feeds.example.org/rss"))
    assert (result.status, result.body, result.etag) == ("ok", RSS, '"m"')


async def test_waiting_for_a_busy_host_does_not_count_against_the_deadline(
    server: FeedServer, client: HttpClient
) -> None:
    server.route("/feed", RSS, delay=0.25)
    async with new_fetcher(client, timeout=0.5, per_host=1) as f:
        results = await asyncio.gather(*(fetch(f, server.url(f"/feed?n={n}")) for n in range(3)))
    assert [r.status for r in results] == ["ok"] * 3
    assert all(r.elapsed < 0.5 for r in results)


async def test_a_queue_for_one_host_does_not_hold_global_slots(client: HttpClient) -> None:
    with FeedServer() as busy, FeedServer() as other:
        busy.route("/feed", hang=True)
        other.route("/feed", RSS)
        async with new_fetcher(client, timeout=5, concurrency=2, per_host=1) as f:
            queued = [asyncio.create_task(fetch(f, busy.url(f"/feed?n={n}"))) for n in range(3)]
            await asyncio.sleep(0.05)
            started = time.monotonic()
            assert (await fetch(f, other.url("/feed"))).status == "ok"
            assert time.monotonic() - started < 1.0  # not stuck behind the hanging host
            for task in queued:
                task.cancel()
            await asyncio.gather(*queued, return_exceptions=True)
        assert busy.hits("/feed") == 1


async def test_brotli_when_installed(server: FeedServer, fetcher: Fetcher) -> None:
    brotli = pytest.importorskip("brotli")
    if not hasattr(brotli.Decompressor, "can_accept_more_data"):
        pytest.skip("this brotli cannot bound its output, so br is not offered")
    server.route("/feed", brotli.compress(RSS), headers={"Content-Encoding": "br"})
    assert (await fetch(fetcher, server.url("/feed"))).body == RSS
    assert "br" in server.requests("/feed")[0].headers["accept-encoding"]


CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "feeds"


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is not present")
async def test_real_feeds_served_over_http_fetch_and_parse(
    server: FeedServer, client: HttpClient
) -> None:
    from monitor.parse import FeedParser

    # The twelve smallest real feeds keep this quick; the corpus test in test_parse reads them all.
    bench = sorted(
        (CORPUS / "fastfeedparser" / "benchmark_data").iterdir(), key=lambda p: p.stat().st_size
    )
    bench = bench[:12]
    for n, path in enumerate(bench):
        server.route(f"/{path.name}", path.read_bytes(), gzip=n % 2 == 0, etag=f'"{n}"')
    parser = FeedParser(workers=2)
    try:
        async with new_fetcher(client, timeout=10, max_bytes=8 * MiB, per_host=8) as f:
            results = await asyncio.gather(*(fetch(f, server.url(f"/{p.name}")) for p in bench))
            feeds = await asyncio.gather(
                *(parser.parse("s", r.body, r.headers, r.url) for r in results)
            )
            again = await asyncio.gather(
                *(fetch(f, r.url, etag=r.etag, body_hash=r.body_hash) for r in results)
            )
    finally:
        parser.close()
    assert all(len(feed.items) > 0 for feed in feeds)
    assert {r.status for r in again} == {"not_modified"}
