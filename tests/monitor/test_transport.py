"""The Fetcher on both connection pools (`monitor._transport`): aiohttp's (the default) and httpx's
give the same results and the same failure kinds, against real servers on 127.0.0.1.

Most fetch behaviour is checked on both pools by test_fetch and test_politeness; here are the
answers only a hand-written server gives (broken HTTP), DNS, TLS, the environment (proxies, CA
bundle), the requests as the server sees them, and the pool itself (keep-alive, idle connections,
closing). No name is ever resolved outside this machine: `resolver` refuses `.invalid` names (RFC
6761) itself, and fails the test on any other name but the loopback address.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import resource
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, cast

import aiohttp
import httpx
import pytest
import trustme
from httpx_aiohttp.transport import map_aiohttp_exceptions
from hypothesis import given
from hypothesis import strategies as st

from monitor._config_model import Polling
from monitor._feedclient import _head
from monitor._transport import HTTP_CLIENTS, MAX_IDLE, HttpClient, idle_budget
from monitor.config import load_config
from monitor.errors import ConfigError, FetchError
from monitor.fetch import Fetcher, FetchRequest, FetchResult, classify
from tests.monitor.feedserver import FeedServer, wait_until

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def new_fetcher(client: HttpClient, **options: Any) -> Fetcher:
    settings: dict[str, Any] = {"min_spacing": 0, "timeout": 2.0, "max_bytes": 1 << 20}
    return Fetcher(user_agent="monitor-test/1.0", http_client=client, **(settings | options))


async def outcome(client: HttpClient, url: str, **options: Any) -> str:
    """`status` of the result, or the failure's kind."""
    async with new_fetcher(client, **options) as f:
        try:
            return (await f.fetch(FetchRequest("s", url, etag='"v1"'))).status
        except FetchError as error:
            return error.kind


async def on_both(url: str, **options: Any) -> dict[HttpClient, str]:
    return {client: await outcome(client, url, **options) for client in HTTP_CLIENTS}


@dataclass
class Resolver:
    asked: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


@pytest.fixture(autouse=True)
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    """Both pools resolve through `socket.getaddrinfo` (asyncio's loop.getaddrinfo, aiohttp's
    ThreadedResolver): a `.invalid` name fails here as a resolver refuses it, any other name but
    127.0.0.1 is recorded as a test failure and refused, so no query ever leaves the machine."""
    real = socket.getaddrinfo
    seen = Resolver()

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        seen.asked.append(name)
        if name != "127.0.0.1":
            if not name.endswith(".invalid"):
                seen.unexpected.append(name)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    yield seen
    assert seen.unexpected == []


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


# -- answers only a broken server gives ---------------------------------------------------------


Answer = Callable[[socket.socket, threading.Event], None]


class RawServer:
    """Answers every connection on 127.0.0.1 with `answer(connection, stop)`, bytes as given."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/feed"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                data += chunk
            self._answer(conn, self._stop)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


def sends(*parts: bytes, linger: float = 0.3) -> Answer:
    """Send each part (a short pause between them), then hold the connection open a moment."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        for n, part in enumerate(parts):
            if n and stop.wait(0.05):
                return
            conn.sendall(part)
        stop.wait(linger)

    return answer


def resets_mid_body(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n<rss>")
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close: RST


def head(*lines: bytes, body: bytes = RSS) -> bytes:
    return b"\r\n".join([*lines, b"Content-Length: %d" % len(body), b"", body])


OK = b"HTTP/1.1 200 OK"
NOT_MODIFIED = b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n'
BROKEN: dict[str, tuple[Answer, str]] = {
    # name: (what the server does, the outcome both pools must report)
    "closes mid-body": (sends(head(OK)[:-20], linger=0), "network"),
    "closes before answering": (sends(linger=0), "network"),
    "resets mid-body": (resets_mid_body, "network"),
    "not HTTP": (sends(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), "network"),
    "bad status line": (sends(head(b"HTTP/1.1 abc OK")), "network"),
    "HTTP/0.9 body only": (sends(RSS, linger=0), "network"),
    "bad chunk size": (sends(OK + b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), "network"),
    "two Content-Lengths": (sends(head(OK, b"Content-Length: 7")), "network"),
    "header without colon": (sends(head(OK, b"Broken")), "network"),
    "NUL in a header": (sends(head(OK, b"X-A: a\0b")), "network"),
    "200 KB header": (sends(head(OK, b"X-Big: " + b"a" * 200_000)), "network"),
    "20 KB header": (sends(head(OK, b"X-Csp: " + b"a" * 20_000)), "ok"),
    "300 header lines": (sends(head(OK, *(b"X-H%d: 1" % n for n in range(300)))), "ok"),
    "Latin-1 in a header": (sends(head(OK, b"X-A: caf\xe9")), "ok"),
    "bare LF line ends": (sends(head(OK).replace(b"\r\n", b"\n")), "ok"),
    "folded header": (sends(head(OK, b"X-A: 1", b"  more")), "ok"),
    "HTTP/1.0, body to close": (sends(b"HTTP/1.0 200 OK\r\n\r\n" + RSS, linger=0), "ok"),
    "bytes after the body": (sends(head(OK) + b"JUNK"), "ok"),
    "bytes after the body, later": (sends(head(OK), b"JUNK"), "ok"),
    "304 with a body": (sends(NOT_MODIFIED + RSS), "not_modified"),
    "204 with a body": (sends(b"HTTP/1.1 204 No Content\r\n\r\nxx"), "empty"),
    "unknown status 999": (sends(head(b"HTTP/1.1 999 Odd")), "http_999"),
    "slow head, past the deadline": (sends(*(bytes([c]) for c in OK * 4)), "timeout"),
}  # fmt: skip


@pytest.mark.parametrize("name", BROKEN)
async def test_broken_answers_fail_alike(name: str) -> None:
    answer, expected = BROKEN[name]
    with RawServer(answer) as raw:
        assert await on_both(raw.url, timeout=0.5) == dict.fromkeys(HTTP_CLIENTS, expected)


async def test_a_304_with_a_body_keeps_its_validators() -> None:
    # llhttp refuses this one; it is asked again and read by h11, as httpx's pool always did.
    answer = sends(NOT_MODIFIED + RSS)
    with RawServer(answer) as raw:
        for client in HTTP_CLIENTS:
            async with new_fetcher(client) as f:
                result = await f.fetch(FetchRequest("s", raw.url, etag='"v1"', body_hash="h"))
            assert (result.status, result.etag, result.body_hash) == ("not_modified", '"v1"', "h")


# -- DNS, TLS, connections ----------------------------------------------------------------------


async def test_an_unresolvable_name_is_dns(resolver: Resolver) -> None:
    for url in ("http://feeds.nonexistent.invalid/rss", "https://feeds.nonexistent.invalid/rss"):
        assert await on_both(url) == dict.fromkeys(HTTP_CLIENTS, "dns")
    assert resolver.asked.count("feeds.nonexistent.invalid") >= 4  # both pools, both schemes


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_refused_and_silent() -> None:
    assert await on_both(f"http://127.0.0.1:{closed_port()}/") == dict.fromkeys(
        HTTP_CLIENTS, "connect"
    )
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        assert await on_both(url, timeout=0.3) == dict.fromkeys(HTTP_CLIENTS, "timeout")


@dataclass
class TlsServer:
    ca: trustme.CA
    url: str


@contextlib.contextmanager
def tls_server(certified_name: str) -> Iterator[TlsServer]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(certified_name).configure_cert(context)

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
        yield TlsServer(ca, f"https://127.0.0.1:{httpd.server_address[1]}/feed")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


async def test_tls_failures_are_tls(server: FeedServer) -> None:
    with tls_server("127.0.0.1") as untrusted, tls_server("feeds.example.org") as misnamed:
        assert await on_both(untrusted.url) == dict.fromkeys(HTTP_CLIENTS, "tls")
        assert await on_both(misnamed.url) == dict.fromkeys(HTTP_CLIENTS, "tls")
        plain_to_tls = untrusted.url.replace("https://", "http://")
        assert await on_both(plain_to_tls) == dict.fromkeys(HTTP_CLIENTS, "network")
    server.route("/feed", RSS)
    tls_to_plain = server.url("/feed").replace("http://", "https://")
    assert await on_both(tls_to_plain) == dict.fromkeys(HTTP_CLIENTS, "tls")


async def test_ssl_cert_file_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As httpx does: the CA bundle named by SSL_CERT_FILE replaces certifi's.
    with tls_server("127.0.0.1") as tls:
        bundle = tmp_path / "ca.pem"
        tls.ca.cert_pem.write_to_path(str(bundle))
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        assert await on_both(tls.url) == dict.fromkeys(HTTP_CLIENTS, "ok")


# -- the environment's proxies ------------------------------------------------------------------


async def test_proxies_from_the_environment(
    server: FeedServer, monkeypatch: pytest.MonkeyPatch, resolver: Resolver
) -> None:
    # The "proxy" is our server: it sees the absolute URL and answers. Nothing resolves the name.
    target = "http://feeds.nonexistent.invalid/rss"
    server.route(target, RSS)
    monkeypatch.setenv("HTTP_PROXY", server.base_url)
    assert await on_both(target) == dict.fromkeys(HTTP_CLIENTS, "ok")
    assert server.hits(target) == 2
    assert "feeds.nonexistent.invalid" not in resolver.asked
    monkeypatch.setenv("NO_PROXY", "nonexistent.invalid")
    assert await on_both(target) == dict.fromkeys(HTTP_CLIENTS, "dns")
    assert server.hits(target) == 2


# -- requests as the server sees them ------------------------------------------------------------


async def test_both_pools_send_the_same_request(server: FeedServer) -> None:
    path = "/feed/a%2Fb?q=a%2Fb&t=%7Euser&c=caf%C3%A9&s=a+b&r=%2B%26%3D%23%25&e=&empty"
    server.route("/feed/a%2Fb", RSS)
    url = server.url(path).replace("http://", "http://alice:s3cret@")
    results: dict[HttpClient, FetchResult] = {}
    for client in HTTP_CLIENTS:
        async with new_fetcher(client) as f:
            results[client] = await f.fetch(FetchRequest("s", url, etag='W/"x"', last_modified="y"))
    by_aiohttp, by_httpx = server.requests("/feed/a%2Fb")
    assert by_httpx.path == path
    # aiohttp's URL (yarl) unescapes what may stand unescaped (`~`, and `/` in a query), which
    # means the same to servers; escapes that change the meaning stay as they were.
    assert by_aiohttp.path == path.replace("q=a%2Fb", "q=a/b").replace("%7E", "~")
    ignore = {"connection"}  # keep-alive is the default of HTTP/1.1: aiohttp leaves it out
    assert {k: v for k, v in by_aiohttp.headers.items() if k not in ignore} == {
        k: v for k, v in by_httpx.headers.items() if k not in ignore
    }
    credentials = base64.b64encode(b"alice:s3cret").decode()
    assert by_aiohttp.headers["authorization"] == f"Basic {credentials}"
    assert by_aiohttp.headers["host"] == f"127.0.0.1:{server.port}"
    assert results["aiohttp"].url == results["httpx"].url == url


async def test_cookies_are_handled_alike(server: FeedServer) -> None:
    server.route("/a", RSS, headers={"Set-Cookie": "session=abc; Path=/"})
    server.route("/b", RSS)
    for client in HTTP_CLIENTS:
        async with new_fetcher(client) as f:
            await f.fetch(FetchRequest("one", server.url("/a")))
            await f.fetch(FetchRequest("two", server.url("/b")))
    sent = [r.headers.get("cookie") for r in server.requests("/b")]
    assert sent == ["session=abc", "session=abc"]


NAMES = st.sampled_from([b"ETag", b"etag", b"Set-Cookie", b"Cache-Control", b"X-\xe9", b"Vary"])
VALUES = st.binary(max_size=12).map(lambda v: v.replace(b"\r", b"").replace(b"\n", b""))


@given(st.lists(st.tuples(NAMES, VALUES), max_size=8))
def test_response_headers_read_as_httpx_reads_them(raw: list[tuple[bytes, bytes]]) -> None:
    # aiohttp's answers skip httpx's Headers: names lower-cased, repeats joined, one encoding
    # (ASCII, else UTF-8, else Latin-1) for all, exactly as httpx.
    assert _head(tuple(raw)) == dict(httpx.Headers(raw).items())


# -- the pool ------------------------------------------------------------------------------------


async def eventually(predicate: Callable[[], bool]) -> bool:
    """`wait_until` on a thread: closing a socket takes a turn of the loop, which must run."""
    return await asyncio.to_thread(wait_until, predicate)


@pytest.fixture(params=HTTP_CLIENTS)
def client(request: pytest.FixtureRequest) -> HttpClient:
    return cast(HttpClient, request.param)


@pytest.mark.parametrize("conditional", [False, True], ids=["200", "304"])
async def test_sequential_fetches_reuse_one_connection(
    server: FeedServer, client: HttpClient, conditional: bool
) -> None:
    server.route("/feed", RSS, etag='"v1"')
    async with new_fetcher(client) as f:
        for n in range(20):
            etag = '"v1"' if conditional else None
            result = await f.fetch(FetchRequest("s", server.url(f"/feed?n={n}"), etag=etag))
            assert result.status == ("not_modified" if conditional else "ok")
    assert server.connections_opened <= 2


async def test_idle_connections_are_bounded(client: HttpClient) -> None:
    # aiohttp's pool limits connections in use only; one-off hosts must not pile up idle sockets.
    # (httpx's pool counts idle connections within `concurrency`.)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(FeedServer()) for _ in range(6)]
        async with new_fetcher(client, concurrency=2, idle_connections=2) as f:
            for s in servers:
                s.route("/feed", RSS)
                assert (await f.fetch(FetchRequest("s", s.url("/feed")))).status == "ok"
            assert await eventually(lambda: sum(s.open_connections for s in servers) <= 2)
        assert all(s.connections_opened == 1 for s in servers)


async def test_each_host_keeps_a_connection_for_its_next_feed() -> None:
    # More hosts than fetches in flight, each with a second feed asked for within keep-alive (a
    # site with several feeds): the idle budget, not `concurrency`, bounds what is kept.
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(FeedServer()) for _ in range(6)]
        async with new_fetcher("aiohttp", concurrency=2) as f:
            for path in ("/a", "/b"):
                for s in servers:
                    s.route(path, RSS)
                    assert (await f.fetch(FetchRequest("s", s.url(path)))).status == "ok"
        assert [s.connections_opened for s in servers] == [1] * 6


async def test_a_host_keeps_one_idle_connection(server: FeedServer) -> None:
    # Two fetches to one host at once need two connections; once both are done, one is enough
    # for the host's next feed, and the other is closed.
    server.route("/feed", RSS, delay=0.3)
    async with new_fetcher("aiohttp", per_host=2) as f:
        await asyncio.gather(
            *(f.fetch(FetchRequest("s", server.url(f"/feed?{n}"))) for n in (1, 2))
        )
        assert server.connections_opened == 2
        assert await eventually(lambda: server.open_connections == 1)
        await f.fetch(FetchRequest("s", server.url("/feed?3")))
    assert server.connections_opened == 2


async def test_past_the_idle_bound_the_longest_idle_go_first() -> None:
    # 20 hosts one after another, 8 idle connections allowed: a full pool is trimmed to 7/8 of
    # the bound, longest idle first, so the last 8 hosts keep theirs.
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(FeedServer()) for _ in range(20)]
        async with new_fetcher("aiohttp", concurrency=2, idle_connections=8) as f:
            for s in servers:
                s.route("/feed", RSS)
                assert (await f.fetch(FetchRequest("s", s.url("/feed")))).status == "ok"
                assert await eventually(lambda: sum(s.open_connections for s in servers) <= 8)
            assert await eventually(
                lambda: [s.open_connections for s in servers] == [0] * 12 + [1] * 8
            )


@pytest.mark.parametrize(
    ("soft", "concurrency", "budget"),
    [
        (1024, 200, 312),  # systemd's default soft limit: half of it, less those in use
        (1024, 600, 600),  # never fewer than `concurrency`
        (8192, 200, MAX_IDLE),  # our unit's LimitNOFILE
        (resource.RLIM_INFINITY, 32, MAX_IDLE),
    ],
)
def test_the_idle_budget_follows_the_open_files_limit(
    monkeypatch: pytest.MonkeyPatch, soft: int, concurrency: int, budget: int
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (soft, resource.RLIM_INFINITY))
    assert idle_budget(concurrency) == budget


async def test_the_longest_idle_connection_is_closed_first() -> None:
    # aiohttp's pool (`_Connector`), past the idle bound: `one` was used last, so `two` goes; and
    # after many reuses of one connection (entries for the reused ones skipped, then dropped).
    with FeedServer() as one, FeedServer() as two, FeedServer() as three:
        for s in (one, two, three):
            s.route("/feed", RSS)
        async with new_fetcher("aiohttp", concurrency=2, idle_connections=2) as f:
            for s in (one, two, *[one] * 12, three):
                assert (await f.fetch(FetchRequest("s", s.url("/feed")))).status == "ok"
            assert await eventually(lambda: two.open_connections == 0)
            assert one.open_connections == three.open_connections == 1
            assert (await f.fetch(FetchRequest("s", one.url("/feed")))).status == "ok"
        assert (one.connections_opened, two.connections_opened) == (1, 1)


async def test_closing_the_fetcher_closes_its_connections(
    server: FeedServer, client: HttpClient
) -> None:
    server.route("/feed", RSS)
    async with new_fetcher(client) as f:
        await asyncio.gather(
            *(f.fetch(FetchRequest("s", server.url(f"/feed?{n}"))) for n in range(3))
        )
        assert server.open_connections >= 1
    assert await eventually(lambda: server.open_connections == 0)


async def test_an_injected_transport_replaces_the_pool(client: HttpClient) -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, stream=httpx.ByteStream(RSS))
    )
    async with new_fetcher(client, transport=transport) as f:
        result = await f.fetch(FetchRequest("s", "https://feeds.nonexistent.invalid/rss"))
    assert (result.status, result.body) == ("ok", RSS)


# -- aiohttp's exceptions, as httpx_aiohttp hands them on ---------------------------------------


def mapped(exc: Exception) -> BaseException:
    """`exc` as it reaches the Fetcher through httpx_aiohttp's crude mapping."""
    try:
        with map_aiohttp_exceptions():
            raise exc
    except Exception as raised:
        return raised
    raise AssertionError("not raised")


def test_classify_sorts_aiohttp_exceptions_by_what_happened() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("h", 443, True, True, None, None, None)
    cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cases: dict[str, Exception] = {
        "network": aiohttp.ServerDisconnectedError(),  # httpx.ConnectTimeout once mapped
        "dns": aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known")),
        "tls": aiohttp.ClientConnectorCertificateError(key, cert),
        "connect": aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused")),
        "timeout": aiohttp.SocketTimeoutError(),
    }
    for kind, exc in cases.items():
        error = classify(mapped(exc), "https://u:pw@feeds.example.org/rss?token=s3cret")
        assert error.kind == kind, (kind, exc)
        assert "pw" not in error.detail and "s3cret" not in error.detail
    payload = classify(mapped(aiohttp.ClientPayloadError("cut short")), "https://h/")
    assert (payload.kind, payload.detail) == (
        "network",
        "ClientPayloadError while fetching https://h/",
    )
    assert isinstance(mapped(aiohttp.ServerDisconnectedError()), httpx.ConnectTimeout)


# -- configuration -------------------------------------------------------------------------------


def test_http_client_is_a_polling_setting(tmp_path: Path) -> None:
    assert Polling().http_client == "aiohttp"
    config = tmp_path / "config.yaml"
    config.write_text("polling:\n  http_client: httpx\n", encoding="utf-8")
    assert load_config(config, env={}).polling.http_client == "httpx"
    config.write_text("polling:\n  http_client: requests\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(config, env={})
    assert [str(p) for p in info.value.problems] == [
        f"{config}:2:16: polling.http_client: Input should be 'aiohttp' or 'httpx'"
    ]
