"""A farm of real-size feeds on many loopback addresses, for `fetch_bench` and `soak`.

    with FeedFarm(feeds=2000, hosts=40, latency=0.1) as farm:
        farm.urls            # http://127.0.0.2:PORT/feeds/0.xml, http://127.0.0.3:PORT/feeds/1.xml...
        farm.change(0.10)    # a tenth of the feeds publish new items
        farm.validators(False)  # no ETag/Last-Modified: every feed answers 200 with its body
        farm.stats(), farm.cpu_seconds()

The server runs in its own process (`python -m benchmarks._feedfarm`), so its CPU is not counted as
the benchmark's; on a 2-core machine it still competes with the daemon for the cores, which is why
`cpu_seconds()` exists: benchmarks report what the farm took next to their own figures.

Every feed is one of the 24 real news feeds of the shared corpus (or generated ones when the corpus
is absent), in turn. Its GUIDs, links and Atom ids carry the feed's number, and the letters of its
titles go through a substitution of the feed's own (sizes and word shapes stay real): otherwise the
83 copies of each corpus headline would be one story told 83 times, and story grouping would do
83 times the comparisons it does on real feeds. A change gives a feed a new generation: its first
`NEW_ITEMS` items get new identities (GUID, link, title), as when a site publishes at the top.
Responses come after `latency` seconds and carry an ETag and Last-Modified that are honoured (304)
until `validators(False)`.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import functools
import http.client
import json
import os
import random
import re
import signal
import string
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from types import TracebackType

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
FEEDS_DIR = CORPUS / "feeds" / "fastfeedparser" / "benchmark_data"
NEW_ITEMS = 3
CONTROL = "/_farm/"
MAX_HOSTS = 4000  # 127.0.0.2, 127.0.0.3, ..., 127.0.1.1, ...: all of 127/8 is loopback on Linux

_ITEM = re.compile(rb"<(?:item|entry)[\s>]")
_TITLE = re.compile(rb"<title(?:\s[^>]*)?>(.*?)</title>", re.DOTALL)
_POINT = re.compile(rb"</(title|guid|link|id)>")
_MARKS = {b"title": "title-mark", b"guid": "guid", b"link": "link", b"id": "id"}
_KEEP = re.compile(rb"(<!\[CDATA\[|\]\]>|&#?\w+;|<[^>]*>)")


# -- feed bodies --------------------------------------------------------------------------------


@functools.cache
def _cipher(feed: int, generation: int) -> bytes:
    """A letter and digit substitution of its own for each feed (and generation). Digits too: the
    story matcher uses numbers as blocking keys, and 83 copies of "10 missing" would share one."""
    rng = random.Random(feed * 1_000_003 + generation)
    letters, digits = list(string.ascii_lowercase), list(string.digits)
    rng.shuffle(letters)
    rng.shuffle(digits)
    lower, numbers = "".join(letters), "".join(digits)
    return bytes.maketrans(
        (string.ascii_lowercase + string.ascii_uppercase + string.digits).encode(),
        (lower + lower.upper() + numbers).encode(),
    )


def _encipher(title: bytes, table: bytes) -> bytes:
    # Markup inside a title (CDATA brackets, entities, escaped tags) must stay intact.
    pieces = _KEEP.split(title)
    return b"".join(p if i % 2 else p.translate(table) for i, p in enumerate(pieces))


@dataclass(frozen=True)
class Template:
    """A feed document cut into pieces: raw bytes, title texts (enciphered per feed) and the
    places where a per-feed mark goes (after a title, GUID, link or Atom id). Every piece knows
    its item (0 is the channel), since the first NEW_ITEMS items change with each generation."""

    name: str
    pieces: tuple[tuple[str, bytes, int, bool], ...]  # (kind, bytes, item, link has a query)

    @classmethod
    def cut(cls, name: str, doc: bytes) -> Template:
        starts = [m.start() for m in _ITEM.finditer(doc)]
        events = [(m.start(1), m.end(1), "title") for m in _TITLE.finditer(doc)]
        events += [(m.start(), m.start(), _MARKS[m.group(1)]) for m in _POINT.finditer(doc)]
        pieces: list[tuple[str, bytes, int, bool]] = []
        last = 0
        for start, end, kind in sorted(events):
            item = bisect.bisect_left(starts, start)
            text = doc[last:start]
            query = kind == "link" and b"?" in text[text.rfind(b">") + 1 :]
            pieces.append(("raw", text, item, False))
            if kind == "title":
                pieces.append(("title", doc[start:end], item, False))
            else:
                pieces.append((kind, b"", item, query))
            last = end
        pieces.append(("raw", doc[last:], 0, False))
        return cls(name, tuple(pieces))

    def render(self, feed: int, generation: int) -> bytes:
        out: list[bytes] = []
        for kind, text, item, query in self.pieces:
            gen = generation if 1 <= item <= NEW_ITEMS else 0
            if kind == "raw":
                out.append(text)
            elif kind == "title":
                out.append(_encipher(text, _cipher(feed, gen)))
            elif kind == "title-mark":
                pass  # a number here would be a blocking key shared by every feed's titles
            elif kind == "link":
                out.append(f"{'&amp;' if query else '?'}sm={feed}g{gen}".encode())
            else:  # guid, id
                out.append(f"-sm{feed}g{gen}".encode())
        return b"".join(out)


def corpus_documents() -> list[tuple[str, bytes]]:
    """The corpus's real feeds, or [] when the corpus is absent."""
    if not FEEDS_DIR.is_dir():
        return []
    return [(p.name, p.read_bytes()) for p in sorted(FEEDS_DIR.iterdir()) if p.is_file()]


# A list literal of these 24 words would fill 26 lines once formatted.
_WORDS = (  # noqa: SIM905
    "ministry officials said forces strike depot missile talks border drone overnight region "
    "reported attack defence city power sanctions aid convoy governor launched statement vote"
).split(" ")


def generated_documents(count: int = 24, seed: int = 7) -> list[tuple[str, bytes]]:
    """RSS 2.0 documents shaped like the corpus (10-300 items, 0.3-3 KB descriptions), for when the
    corpus is absent."""
    rng = random.Random(seed)
    docs = []
    for d in range(count):
        items = []
        for i in range(rng.choice([10, 20, 25, 30, 50, 100, 300])):
            words = " ".join(rng.choices(_WORDS, k=rng.randint(50, 500)))
            title = " ".join(rng.choices(_WORDS, k=rng.randint(5, 12))).capitalize()
            link = f"https://news{d}.example.org/{2025 - i % 3}/story-{i}"
            items.append(
                f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
                f"<pubDate>{formatdate(1.7e9 - i * 3600, usegmt=True)}</pubDate>"
                f"<description><![CDATA[<p>{words}</p>]]></description></item>"
            )
        doc = (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            f"<title>Generated news {d}</title><link>https://news{d}.example.org/</link>"
            f"<description>Generated</description>{''.join(items)}</channel></rss>"
        )
        docs.append((f"generated-{d}", doc.encode()))
    return docs


class FeedSet:
    """`count` feeds cycling through `documents`; each feed's current generation and body."""

    def __init__(self, documents: Sequence[tuple[str, bytes]], count: int) -> None:
        if not documents:
            raise ValueError("no feed documents")
        self.templates = [Template.cut(name, doc) for name, doc in documents]
        self.count = count
        self.generations = [0] * count

    def template(self, feed: int) -> Template:
        return self.templates[feed % len(self.templates)]

    def body(self, feed: int) -> bytes:
        return self.template(feed).render(feed, self.generations[feed])

    def change(self, share: float, cycle: int) -> list[int]:
        """Give a new generation to every `1/share`-th feed, a different residue each cycle, so any
        run of 1/share consecutive feeds holds exactly one changed feed."""
        step = max(1, round(1 / share)) if share > 0 else 0
        changed = [f for f in range(self.count) if step and f % step == cycle % step]
        for f in changed:
            self.generations[f] += 1
        return changed


# -- the server (runs in the farm process) --------------------------------------------------------


class _Farm:
    def __init__(self, feeds: FeedSet, latency: float) -> None:
        self.feeds = feeds
        self.latency = latency
        self.validators = True
        self.cycle = 0
        self.bodies = [feeds.body(f) for f in range(feeds.count)]
        self.stamps = [formatdate(1.7e9, usegmt=True)] * feeds.count
        self.stats: dict[str, int] = {}

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    def change(self, share: float) -> int:
        changed = self.feeds.change(share, self.cycle)
        self.cycle += 1
        stamp = formatdate(1.7e9 + self.cycle * 60, usegmt=True)
        for f in changed:
            self.bodies[f] = self.feeds.body(f)
            self.stamps[f] = stamp
        return len(changed)

    def control(self, path: str) -> bytes:
        command, _, arg = path[len(CONTROL) :].partition("?")
        value = arg.partition("=")[2]
        answer: object
        if command == "change":
            answer = {"changed": self.change(float(value))}
        elif command == "validators":
            self.validators = value == "1"
            answer = {"validators": self.validators}
        elif command == "reset":
            self.stats = {}
            answer = {}
        else:
            answer = {**self.stats, "cycle": self.cycle}
        return json.dumps(answer).encode()

    def respond(self, path: str, headers: dict[bytes, bytes]) -> tuple[int, list[str], bytes]:
        m = re.fullmatch(r"/feeds/(\d+)\.xml", path)
        feed = int(m.group(1)) if m else -1
        if not 0 <= feed < len(self.bodies):
            return 404, [], b"not found"
        etag = f'"{feed}-{self.feeds.generations[feed]}"'
        if not self.validators:
            return 200, [], self.bodies[feed]
        extra = [f"ETag: {etag}", f"Last-Modified: {self.stamps[feed]}"]
        match = headers.get(b"if-none-match")
        if match is not None:
            if etag.encode() in (t.strip() for t in match.split(b",")):
                return 304, extra, b""
        elif headers.get(b"if-modified-since") == self.stamps[feed].encode():
            return 304, extra, b""
        return 200, extra, self.bodies[feed]


_REASONS = {200: "OK", 304: "Not Modified", 400: "Bad Request", 404: "Not Found"}


class _Connection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, one request at a time per connection (no pipelining needed)."""

    def __init__(self, farm: _Farm) -> None:
        self.farm = farm
        self.buffer = b""
        self.busy = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.farm.count("connections")

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._next()

    def _next(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if self.busy or end < 0 or self.transport is None:
            return
        head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
        lines = head.split(b"\r\n")
        parts = lines[0].split()
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        close = headers.get(b"connection", b"").lower() == b"close"
        path = parts[1].decode("latin-1") if len(parts) == 3 else ""
        if path.startswith(CONTROL):
            self._send(200, ["Content-Type: application/json"], self.farm.control(path), close)
            return
        status, extra, body = self.farm.respond(path, headers) if path else (400, [], b"")
        self.farm.count(str(status))
        self.farm.count("bytes", len(body))
        self.busy = True
        asyncio.get_running_loop().call_later(
            self.farm.latency, self._send, status, extra, body, close
        )

    def _send(self, status: int, extra: list[str], body: bytes, close: bool) -> None:
        self.busy = False
        if self.transport is None:
            return
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", *extra]
        if status != 304:
            head += ["Content-Type: application/rss+xml", f"Content-Length: {len(body)}"]
        if close:
            head.append("Connection: close")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        if close:
            self.transport.close()
        else:
            self._next()


def host_addresses(hosts: int, first: int = 2) -> list[str]:
    """127.0.0.2 upwards (by default: 127.0.0.1 is left to everyone else), skipping .0 and .255
    last octets."""
    if not 1 <= hosts <= MAX_HOSTS or first < 1:
        raise ValueError(f"hosts must be 1..{MAX_HOSTS}, first at least 1")
    found: list[str] = []
    n = first
    while len(found) < hosts:
        if n % 256 not in (0, 255):
            found.append(f"127.0.{n // 256}.{n % 256}")
        n += 1
    return found


async def _bind(farm: _Farm, addresses: list[str]) -> tuple[int, list[asyncio.Server]]:
    """Bind one port on every address: the first address picks a free port, the others follow;
    if one of them has that port taken, start over with another."""
    loop = asyncio.get_running_loop()
    for _ in range(20):
        first = await loop.create_server(lambda: _Connection(farm), addresses[0], 0, backlog=1024)
        port: int = first.sockets[0].getsockname()[1]
        servers = [first]
        try:
            for address in addresses[1:]:
                servers.append(
                    await loop.create_server(lambda: _Connection(farm), address, port, backlog=1024)
                )
        except OSError:
            for s in servers:
                s.close()
            continue
        return port, servers
    raise OSError("no port free on every farm address")


async def _serve(feeds: FeedSet, addresses: list[str], latency: float) -> None:
    farm = _Farm(feeds, latency)
    port, servers = await _bind(farm, addresses)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # The parent closes our stdin when it exits, even when it is killed: never outlive it.
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set))).start()
    total = sum(len(b) for b in farm.bodies)
    print(json.dumps({"port": port, "addresses": addresses, "bytes": total}), flush=True)
    await stop.wait()
    for s in servers:
        s.close()
    os._exit(0)  # the stdin thread may still be blocked in read()


def _serve_main(argv: Sequence[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks._feedfarm")
    p.add_argument("--feeds", type=int, default=2000)
    p.add_argument("--hosts", type=int, default=40)
    p.add_argument("--first", type=int, default=2, help="first address: 127.0.0.FIRST")
    p.add_argument("--latency", type=float, default=0.1)
    p.add_argument("--generated", action="store_true", help="ignore the corpus")
    args = p.parse_args(argv)
    documents = [] if args.generated else corpus_documents()
    feeds = FeedSet(documents or generated_documents(), args.feeds)
    asyncio.run(_serve(feeds, host_addresses(args.hosts, args.first), args.latency))


# -- the client side (runs in the benchmark) ------------------------------------------------------


def _ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu_seconds(root: int, exclude: Sequence[int] = ()) -> float:
    """User + system CPU of a process and its live descendants (minus `exclude` subtrees)."""
    skip = {p for e in exclude for p in process_tree(e)}
    ticks = 0
    for pid in process_tree(root):
        if pid in skip:
            continue
        try:
            ticks += _ticks(pid)
        except OSError:
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


class FeedFarm:
    def __init__(
        self,
        *,
        feeds: int = 2000,
        hosts: int = 40,
        latency: float = 0.1,
        generated: bool = False,
        first: int = 2,
    ) -> None:
        self.feeds = feeds
        self.hosts = hosts
        self.latency = latency
        self._args = [f"--feeds={feeds}", f"--hosts={hosts}", f"--latency={latency}"]
        self._args.append(f"--first={first}")
        if generated:
            self._args.append("--generated")
        self._proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.addresses: list[str] = []
        self.total_bytes = 0

    def __enter__(self) -> FeedFarm:
        root = Path(__file__).resolve().parents[1]
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._feedfarm", *self._args],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the feed farm did not start (exit {self._proc.wait()})")
        ready = json.loads(line)
        self.port, self.addresses, self.total_bytes = (
            ready["port"],
            ready["addresses"],
            ready["bytes"],
        )
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def url(self, feed: int) -> str:
        return f"http://{self.addresses[feed % len(self.addresses)]}:{self.port}/feeds/{feed}.xml"

    @property
    def urls(self) -> list[str]:
        return [self.url(f) for f in range(self.feeds)]

    def _control(self, command: str) -> dict[str, int]:
        conn = http.client.HTTPConnection(self.addresses[0], self.port, timeout=30)
        try:
            conn.request("GET", CONTROL + command)
            answer: dict[str, int] = json.loads(conn.getresponse().read())
            return answer
        finally:
            conn.close()

    def change(self, share: float) -> int:
        """Publish new items in `share` of the feeds; how many feeds changed."""
        return self._control(f"change?share={share}")["changed"]

    def validators(self, on: bool) -> None:
        self._control(f"validators?on={int(on)}")

    def stats(self) -> dict[str, int]:
        """Responses by status code ("200", "304", ...) and "bytes" sent, since the last reset."""
        return self._control("stats")

    def reset_stats(self) -> None:
        self._control("reset")

    def cpu_seconds(self) -> float:
        return _ticks(self.pid) / os.sysconf("SC_CLK_TCK")


def sample_bodies(feeds: FeedSet, count: int) -> Iterator[bytes]:
    """The first `count` feeds' current bodies, as the farm serves them."""
    for f in range(min(count, feeds.count)):
        yield feeds.body(f)


if __name__ == "__main__":
    _serve_main(sys.argv[1:])
