"""Scale-out: the same feeds polled by one `monitor run` and by two, on one PostgreSQL database.

    python -m benchmarks scale_bench [--feeds 1000] [--latency 0.05] [--instances 1 2] [--pg URL]

Each run starts from an empty database; the daemons are the real command in subprocesses, with
the default polling settings (concurrency 32, per_host 2). The feeds are served on 127.0.0.1 by
FeedServers answering after `--latency` seconds, spread over `--hosts` ports because the fetcher
spaces its requests to one host:port a second apart (politeness): with few ports the benchmark
would measure that spacing, not the daemon. A cycle is timed at the feed servers: cycle k lasts
from the first feed's k-th request to the last feed's k-th request. Cycle 1 polls new feeds
(fetch, parse, store); cycle 2 is the steady state (every feed answers 304 Not Modified).

Skips cleanly (exit 0, one line) when PostgreSQL does not answer. The URL: --pg, else
$MONITOR_TEST_DATABASE_URL, else the local test server.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import secrets
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from monitor.units import parse_duration
from tests.e2e.feeds import Entry, ago, rss
from tests.monitor.feedserver import FeedServer, _Handler

PG_ENV = "MONITOR_TEST_DATABASE_URL"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parents[1]
RULES = "rules:\n  - id: kn23\n    title: KN-23\n    level: high\n    match: {any: [KN-23]}\n"


class TimedFeedServer(FeedServer):
    """Notes when each request arrived, per path, on a log shared by every server."""

    def __init__(self, log: dict[str, list[float]], lock: threading.Lock) -> None:
        super().__init__()
        self._log, self._log_lock = log, lock

    def _handle(self, handler: _Handler) -> None:
        with self._log_lock:
            self._log[handler.path.split("?", 1)[0]].append(time.monotonic())
        super()._handle(handler)


@dataclass(frozen=True)
class Cycles:
    instances: int
    first: float  # seconds: new feeds, fetched, parsed and stored
    steady: float  # seconds: every feed answers 304
    double_polls: int  # requests of a feed less than an interval after its last (must be 0)
    startup: float  # from starting the processes to the first request


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks scale_bench")
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per answer")
    parser.add_argument("--hosts", type=int, default=50, help="ports the feeds are spread over")
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--interval", default="45s", help="polling interval of every feed")
    parser.add_argument("--pg", default=os.environ.get(PG_ENV) or DEFAULT_PG)
    return parser.parse_args(argv)


def pg_answers(url: str) -> str | None:
    """None when the server answers, else why not."""
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return None
    except sa.exc.SQLAlchemyError as error:
        return str(getattr(error, "orig", error)).splitlines()[0]
    finally:
        engine.dispose()


@contextmanager
def private_database(url: str) -> Iterator[str]:
    base = sa.make_url(url)
    name = f"monitor_scale_bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def write_config(folder: Path, db: str, urls: Sequence[str], interval: str) -> Path:
    lines = [
        f"database: '{db}'",
        f"polling: {{interval: {interval}, timeout: 10s}}",
        "sources:",
        *(f"  - {{id: f{n:04}, url: '{url}'}}" for n, url in enumerate(urls)),
        "rules: [rules.yaml]",
        "notifiers: {console: {type: console}}",
        "health: {failing_after: 0s, silent_after: 0s}",
    ]
    (folder / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = folder / "config.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def headline(rng: random.Random) -> str:
    """Made-up words: headlines that share no blocking key, as different real stories mostly do.
    (Titles like "Feed 7 item 3" would all share keys, and grouping them would dominate.)"""
    words = ("".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 9))) for _ in range(7))
    return " ".join(words).capitalize()


def kth(log: dict[str, list[float]], paths: Sequence[str], k: int) -> list[float] | None:
    """Each path's k-th request time (1-based), or None while some path has fewer."""
    times = [log[p][k - 1] if len(log[p]) >= k else None for p in paths]
    return None if any(t is None for t in times) else [t for t in times if t is not None]


def run(args: argparse.Namespace, instances: int, pg_url: str, folder: Path) -> Cycles:
    log: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    paths = [f"/f{n:04}.xml" for n in range(args.feeds)]
    with ExitStack() as stack, private_database(pg_url) as db:
        servers = [TimedFeedServer(log, lock) for _ in range(args.hosts)]
        for server in servers:
            stack.enter_context(server)
        urls = []
        rng = random.Random(len(paths))
        for n, path in enumerate(paths):
            server = servers[n % len(servers)]
            entries = [
                Entry(headline(rng), f"https://news.test/{n}/{k}", ago(days=2 + k))
                for k in range(10)
            ]
            server.route(path, rss(entries), etag=f'"{n}"', delay=args.latency)
            urls.append(server.url(path))
        config = write_config(folder, db, urls, args.interval)
        started = time.monotonic()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "-c", str(config)],
                cwd=folder,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(instances)
        ]
        try:
            interval = parse_duration(args.interval).total_seconds()
            return measure(log, lock, paths, procs, instances, started, interval)
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=120)


def measure(
    log: dict[str, list[float]],
    lock: threading.Lock,
    paths: Sequence[str],
    procs: Sequence[subprocess.Popen[bytes]],
    instances: int,
    started: float,
    interval: float,
) -> Cycles:
    cycles: dict[int, list[float]] = {}
    deadline = time.monotonic() + 900
    while len(cycles) < 2:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError("the daemons stopped, or never finished two cycles")
        time.sleep(0.25)
        with lock:
            for k in (1, 2):
                found = kth(log, paths, k) if k not in cycles else None
                if found is not None:
                    cycles[k] = found
    with lock:
        # a poll is scheduled an interval after the previous one ended: closer means a lease failed
        doubles = sum(
            1 for p in paths for a, b in itertools.pairwise(log[p]) if b - a < interval * 0.95
        )
    first, steady = cycles[1], cycles[2]
    return Cycles(
        instances,
        max(first) - min(first),
        max(steady) - min(steady),
        doubles,
        min(first) - started,
    )


def main() -> None:
    args = parse_args(sys.argv[1:])
    why = pg_answers(args.pg)
    if why is not None:
        print(f"skipped: PostgreSQL does not answer ({why})")
        return
    print(
        f"{args.feeds:,} feeds, {args.latency * 1000:.0f} ms latency, over {args.hosts} ports; "
        f"interval {args.interval}; default polling settings (concurrency 32, per_host 2)",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        for n in args.instances:
            folder = Path(tmp) / f"x{n}"
            folder.mkdir()
            print(f"running {n} instance(s)...", flush=True)
            results.append(run(args, n, args.pg, folder))
    report(results, args.feeds)


def report(results: Sequence[Cycles], feeds: int) -> None:
    base = results[0]
    print(
        f"\n  {'instances':>9}  {'cycle 1: new (s)':>16}  {'cycle 2: 304 (s)':>16}  "
        f"{'feeds/s':>8}  {'speed-up':>8}  {'double polls':>12}  {'startup (s)':>11}"
    )
    for r in results:
        print(
            f"  {r.instances:>9}  {r.first:>16.1f}  {r.steady:>16.1f}  {feeds / r.steady:>8.1f}  "
            f"{base.steady / r.steady:>7.2f}x  {r.double_polls:>12}  {r.startup:>11.1f}"
        )
    print(f"  load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
