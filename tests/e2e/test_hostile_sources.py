"""One `monitor run` daemon against a dozen hostile sources and three healthy feeds, all on real
servers on 127.0.0.1: the daemon stays up, polls the healthy feeds on schedule while the hostile
ones fail, stops promptly on SIGTERM, and `monitor sources --json` names each failure clearly."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import monitor_env
from tests.e2e.feeds import Entry, ago, rss
from tests.monitor.feedserver import FeedServer

OBSERVE = 30.0  # seconds of running to count the healthy feeds' polls in
INTERVAL_S = 3  # every source; the daemon claims due sources every 5 s
GZIP_BOMB_SIZE = 64 * 1024**2


def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes, gzip-compressed piece by piece (about 1000:1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    out = [packer.compress(zeros) for _ in range(size // len(zeros))]
    return b"".join([*out, packer.flush()])


def healthy_feed(n: int) -> bytes:
    return rss([Entry(f"Healthy feed {n} reports", f"https://healthy{n}.test/1", ago(hours=1))])


ENTITY_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "' + b"x" * 50_000 + b'">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><rss version="2.0"><channel><title>&b;</title>'
    + b"<item><title>&b;&b;&b;</title></item>" * 200
    + b"</channel></rss>"
)
MALFORMED_BUT_READABLE = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Broken & co</title>'
    b"<item><title>Depot fire</title><link>https://odd.test/1</link><guid>1</guid></item>"
    b"<item><title>Second <b>bold</title><link>https://odd.test/2</link></item></channel>"
)
WRONG_CHARSET = (
    '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Новости</title>'
    "<item><title>Удар по арсеналу</title><link>https://ru.test/1</link></item></channel></rss>"
).encode("cp1251")
BOT_WALL = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    b'<div id="challenge-platform">Checking your browser</div></body></html>'
)
UNREADABLE = b'<?xml version="1.0"?>\n<document><a><b></a></b>\x01\x02&&;</document>'
HTML_PAGE = b"<!DOCTYPE html><html><head><title>News</title></head><body>Hello</body></html>"

# source id -> (status, error kind) that `monitor sources --json` must show
EXPECTED = {
    "html": ("error", "not_a_feed"),
    "botwall": ("error", "blocked"),
    "empty": ("error", "empty"),
    "malformed": ("ok", None),  # ill-formed, but its items can be read: they are
    "unreadable": ("error", "parse_error"),
    "charset": ("ok", None),
    "gzipbomb": ("error", "too_large"),
    "trickle": ("error", "timeout"),
    "silent": ("error", "timeout"),
    "huge": ("error", "too_large"),
    "loop": ("error", "redirect_loop"),
    "entities": ("error", "parse_error"),
    "broken": ("error", "http_500"),
    "removed": ("gone", "gone"),
    "busy1": ("rate_limited", "http_429"),
    "busy2": ("rate_limited", "http_429"),
}


@dataclass
class Servers:
    hostile: FeedServer
    busy: FeedServer
    healthy: list[FeedServer]
    silent_url: str


def serve_hostile(s: FeedServer) -> None:
    s.route("/html", HTML_PAGE, content_type="text/html; charset=utf-8")
    s.route("/botwall", BOT_WALL, status=403, content_type="text/html",
            headers={"cf-mitigated": "challenge"})  # fmt: skip
    s.route("/empty", b"")
    s.route("/malformed", MALFORMED_BUT_READABLE)
    s.route("/unreadable", UNREADABLE)
    s.route("/charset", WRONG_CHARSET)
    s.route("/gzipbomb", gzip_bomb(GZIP_BOMB_SIZE), headers={"Content-Encoding": "gzip"})
    s.route("/trickle", healthy_feed(0), trickle=0.5)
    s.route("/huge", stream=2 * 1024**3, content_length=False)
    s.route("/loop-a", status=302, redirect="/loop-b")
    s.route("/loop-b", status=302, redirect="/loop-a")
    s.route("/entities", ENTITY_BOMB)
    s.route("/broken", b"oops", status=500)
    s.route("/removed", status=410)


@pytest.fixture
def servers() -> Iterator[Servers]:
    with ExitStack() as stack:
        hostile = stack.enter_context(FeedServer())
        busy = stack.enter_context(FeedServer())
        healthy = [stack.enter_context(FeedServer()) for _ in range(3)]
        # Accepts connections (the kernel's backlog does) and never reads or answers a byte.
        silent = stack.enter_context(socket.socket())
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        serve_hostile(hostile)
        busy.route("/a", status=429, headers={"Retry-After": "3600"})
        busy.route("/b", status=429, headers={"Retry-After": "3600"})
        for n, server in enumerate(healthy):
            server.route("/feed.xml", healthy_feed(n + 1), etag=f'"v{n}"')
        yield Servers(hostile, busy, healthy, f"http://127.0.0.1:{silent.getsockname()[1]}/feed")


def write_config(folder: Path, s: Servers) -> Path:
    sources = {sid: s.hostile.url(f"/{sid}") for sid in EXPECTED}
    sources.update(
        loop=s.hostile.url("/loop-a"),
        silent=s.silent_url,
        busy1=s.busy.url("/a"),
        busy2=s.busy.url("/b"),
        **{f"healthy{n}": server.url("/feed.xml") for n, server in enumerate(s.healthy)},
    )
    lines = [
        f"database: sqlite:///{folder / 'state' / 'monitor.db'}",
        f"polling: {{interval: {INTERVAL_S}s, timeout: 4s, max_bytes: 1MiB, concurrency: 16,"
        " per_host: 4}",
        "sources:",
        *(f"  - {{id: {sid}, url: '{url}'}}" for sid, url in sources.items()),
        "rules: [rules.yaml]",
        "notifiers:",
        "  console: {type: console}",
        "default_notify: [console]",
    ]
    (folder / "rules.yaml").write_text(
        "rules:\n  - id: depots\n    title: Depots\n    level: high\n"
        "    match: {any: [ammunition depot, arsenal]}\n",
        encoding="utf-8",
    )
    config = folder / "config.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args, "-c", str(config)],
        capture_output=True, text=True, timeout=60, cwd=config.parent, env=monitor_env(),
    )  # fmt: skip


def wait_for(what: str, check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_hostile_sources_never_stop_the_daemon_or_delay_the_healthy_ones(
    tmp_path: Path, servers: Servers
) -> None:
    config = write_config(tmp_path, servers)
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(config)],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=monitor_env(),
        )  # fmt: skip
        try:
            wait_for("the first poll of every healthy feed",
                     lambda: all(h.hits("/feed.xml") >= 1 for h in servers.healthy))  # fmt: skip
            before = [h.hits("/feed.xml") for h in servers.healthy]
            time.sleep(OBSERVE)
            polls = [h.hits("/feed.xml") - b for h, b in zip(servers.healthy, before, strict=True)]
            assert daemon.poll() is None, log_path.read_text()
        finally:
            daemon.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            code = daemon.wait(timeout=30)
    assert code == 0, log_path.read_text()
    assert time.monotonic() - stopping < 15  # in-flight polls end within the fetch timeout
    output = log_path.read_text()
    assert "Traceback" not in output and "internal error" not in output, output
    # Due every 3 s and claimed every 5 s: a poll per tick, about 6 in 30 s, hostility or not.
    assert all(n >= 5 for n in polls), polls

    result = monitor(config, "sources", "--json")
    assert result.returncode == 0, result.stderr
    shown = {s["id"]: s for s in json.loads(result.stdout)}
    for n in range(3):
        healthy = shown[f"healthy{n}"]
        assert (healthy["status"], healthy["error"], healthy["items"]) == ("ok", None, 1)
    assert {sid: (shown[sid]["status"], shown[sid]["error"]) for sid in EXPECTED} == EXPECTED
    assert shown["charset"]["items"] == 1 and shown["malformed"]["items"] == 2
    # The host that asked for an hour's pause was asked once, for both its sources; the gone
    # feed was asked once; the failing ones backed off instead of being polled every 3 s.
    assert servers.busy.hits("/a") + servers.busy.hits("/b") == 1
    assert servers.hostile.hits("/removed") == 1
    assert all(shown[sid]["consecutive_failures"] == 0 for sid in ("busy1", "busy2"))
    assert 1 <= servers.hostile.hits("/broken") <= 5
