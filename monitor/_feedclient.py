"""The Fetcher's GETs: straight to aiohttp's session when they can, through httpx otherwise.

`FeedClient` sends the common GET (aiohttp's pool, no proxy, no credentials in the URL, ASCII
headers) straight to aiohttp's session: httpx's objects and send machinery around it cost about
as much CPU again as aiohttp itself (fetch_bench, all-304 cycle). It sends what httpx would (the
same headers, httpx's cookie jar consulted and fed) and reads the head as httpx would; the
aiohttp exceptions then reach `classify` unmapped, which sorts them alike. Every other request
goes through the httpx client of `monitor._transport`, as before, and so does an answer llhttp
refuses (to be read by h11).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Protocol

import aiohttp
import httpx
from aiohttp.client_reqrep import ClientResponse

from monitor._transport import (
    H11_ONLY,
    AiohttpClient,
    HttpClient,
    open_client,
    refused_head,
)


def _head(raw: tuple[tuple[bytes, bytes], ...]) -> dict[str, str]:
    """Response headers as httpx's `Headers.items()` gives them: names lower-cased, repeated
    names joined with ", ", all decoded as UTF-8 (httpx tries ASCII first: the same text), else
    all as Latin-1."""
    try:
        pairs = [(k.lower().decode(), v.decode()) for k, v in raw]
    except UnicodeDecodeError:
        pairs = [(k.lower().decode("iso-8859-1"), v.decode("iso-8859-1")) for k, v in raw]
    headers: dict[str, str] = {}
    for name, value in pairs:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


class Reply(Protocol):
    """A response whose head has arrived. `headers`: as `_head` makes them."""

    status_code: int
    headers: dict[str, str]

    def raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives, still content-coded."""
        ...

    async def drain(self) -> None:
        """Read the rest of the body (so that the connection is kept)."""


class _HttpxReply:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers = dict(response.headers.items())

    def raw(self) -> AsyncIterator[bytes]:
        return self._response.aiter_raw()

    async def drain(self) -> None:
        # httpx closes a connection whose response was left unread (fetch_bench: 2,001
        # connections for 2,000 304s).
        await self._response.aread()


class _AiohttpReply:
    def __init__(self, response: ClientResponse) -> None:
        self._response = response
        self.status_code = response.status
        self.headers = _head(response.raw_headers)

    def raw(self) -> AsyncIterator[bytes]:
        # Whatever has arrived, in one piece: httpx_aiohttp cuts it into 16 KB chunks.
        return self._response.content.iter_any()

    async def drain(self) -> None:
        await self._response.read()


class _Exchange:
    """`FeedClient.get`: one GET as an async context manager, by aiohttp or through httpx."""

    def __init__(self, client: FeedClient, url: httpx.URL, headers: dict[str, str]) -> None:
        self._client, self._url, self._headers = client, url, headers
        self._response: ClientResponse | None = None
        self._stream: Any = None  # httpx's stream context, when httpx sends it

    async def __aenter__(self) -> Reply:
        session = self._client.session_for(self._url, self._headers)
        if session is not None:
            try:
                self._response = await self._client.send(session, self._url, self._headers)
                return _AiohttpReply(self._response)
            except aiohttp.ClientResponseError as exc:
                if not refused_head(exc):
                    raise
            # llhttp refused the head: h11 judges it, through httpx (module docstring).
            extensions = {H11_ONLY: True}
        else:
            extensions = {}
        stream = self._client.httpx.stream(
            "GET", self._url, headers=self._headers, extensions=extensions
        )
        response = await stream.__aenter__()
        self._stream = stream
        return _HttpxReply(response)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            await self._response.__aexit__(exc_type, exc, tb)
        elif self._stream is not None:
            await self._stream.__aexit__(exc_type, exc, tb)


class FeedClient:
    """The Fetcher's GETs (module docstring): `get(url, headers)` is an async context manager
    giving a `Reply`. `httpx`: the httpx client underneath, which owns the pools and cookies."""

    def __init__(
        self,
        http_client: HttpClient,
        *,
        concurrency: int,
        idle: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout,
        headers: dict[str, str],
    ) -> None:
        self.httpx = open_client(
            http_client,
            concurrency=concurrency,
            idle=idle,
            transport=transport,
            timeout=timeout,
            headers=headers,
        )
        client = self.httpx
        self._direct = (
            client.direct if isinstance(client, AiohttpClient) and not client.proxied else None
        )
        # What httpx would send besides Host: its defaults updated with ours, as aiohttp gets
        # them from httpx (lower-cased names).
        self._base = dict(self.httpx.headers.items())
        # Only the connect timeout: the Fetcher runs every request under its whole deadline,
        # which the read and pool timeouts (the same length, started later) would only repeat,
        # at the cost of a timer set again on every piece of body that arrives.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout.connect)

    def get(self, url: httpx.URL, headers: dict[str, str]) -> _Exchange:
        return _Exchange(self, url, headers)

    def session_for(
        self, url: httpx.URL, headers: Mapping[str, str]
    ) -> aiohttp.ClientSession | None:
        """aiohttp's session if this request may skip httpx: no proxy, no credentials in the
        URL (httpx turns them into a header), and header values httpx can encode (ASCII)."""
        if self._direct is None or url.userinfo or not all(v.isascii() for v in headers.values()):
            return None
        return self._direct.session()

    async def send(
        self, session: aiohttp.ClientSession, url: httpx.URL, headers: Mapping[str, str]
    ) -> ClientResponse:
        """The request httpx_aiohttp would make for httpx, and the cookies httpx would keep."""
        sent = {"host": url.netloc.decode("ascii"), **self._base}
        sent.update((k.lower(), v) for k, v in headers.items())
        cookies = self.httpx.cookies
        if cookies.jar:
            request = httpx.Request("GET", url, headers=sent)
            cookies.set_cookie_header(request)
            if "cookie" in request.headers:
                sent["cookie"] = request.headers["cookie"]
        response = await session.request(
            "GET",
            str(url),
            headers=sent,
            allow_redirects=False,
            auto_decompress=False,
            compress=False,
            timeout=self._timeout,
        )
        if any(name.lower() in _SET_COOKIE for name, _ in response.raw_headers):
            try:
                answer = httpx.Response(
                    response.status,
                    headers=response.raw_headers,
                    request=httpx.Request("GET", url, headers=sent),
                )
                cookies.extract_cookies(answer)
            except BaseException:
                response.close()
                raise
        return response

    async def aclose(self) -> None:
        await self.httpx.aclose()


_SET_COOKIE = frozenset({b"set-cookie", b"set-cookie2"})


__all__ = ["FeedClient", "Reply"]
