"""Where the daemon's memory goes (DESIGN §7: under 150 MB RSS with 2,000 sources, 1,000,000 items).

    python -m benchmarks.memory imports
    python -m benchmarks.memory rest FOLDER [--items 1000000]

`imports`: the RSS of a fresh interpreter after importing each package alone, then the daemon's
whole set (what `monitor run` imports before its first poll), and which heavy packages it holds.
`rest`: a daemon at rest over a large database. FOLDER is one kept by
`python -m benchmarks.soak --keep FOLDER` (its config.yaml and monitor.db, 2,000 real-size
sources); its items are copied by SQL until there are `--items`, every source's next poll is put
a day ahead, and `monitor run` is started and sampled. The copy is made in FOLDER: 1,000,000
real-size items take about 3 GB.

Not a `*_bench` module: `python -m benchmarks` (and so `make bench`) does not run it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PACKAGES = (
    "sqlalchemy",
    "alembic.command",
    "aiohttp",
    "httpx",
    "prometheus_client",
    "apscheduler.schedulers.asyncio",
    "rules",
    "notifiers",
    "monitor.config",
    "storage",
    "monitor.cli, monitor.daemon",
)
HEAVY = ("alembic", "mako", "prometheus_client", "feedparser", "lxml")

_PROBE = """
import importlib, json, sys
def rss():
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) for l in f if l.startswith('VmRSS:')) / 1024
before = rss()
for name in sys.argv[1].split(', '):
    importlib.import_module(name)
loaded = sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[2].split(',')))
print(json.dumps([before, rss(), loaded]))
"""


def imports() -> None:
    print(f"{'imported alone':<34} {'RSS MB':>7} {'added':>7}  heavy packages loaded")
    for names in PACKAGES:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, names, ",".join(HEAVY)],
            capture_output=True,
            text=True,
            check=True,
        )
        before, after, loaded = json.loads(done.stdout)
        print(f"{names:<34} {after:7.1f} {after - before:+7.1f}  {', '.join(loaded) or '-'}")


def _status_mb(pid: int, field: str) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024
    except (OSError, StopIteration):
        return 0.0


def grow(db: Path, items: int) -> int:
    """Copy the stored items under new keys until there are `items`; park every source."""
    conn = sqlite3.connect(db)
    try:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(items)")]
        others = ", ".join(c for c in columns if c not in ("id", "key"))
        have = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        if have == 0:
            raise SystemExit(f"{db} holds no items: run benchmarks.soak --keep first")
        round_ = 0
        while have < items:
            round_ += 1
            conn.execute(
                f"INSERT INTO items (key, {others}) SELECT key || '-copy{round_}', {others} "
                "FROM items WHERE id <= ? ORDER BY id LIMIT ?",
                (have, items - have),
            )
            have = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        conn.execute(
            "UPDATE sources SET next_poll_at = datetime('now', '+1 day'), "
            "lease_owner = NULL, lease_until = NULL"
        )
        conn.execute("DELETE FROM instances")
        conn.commit()
        return int(have)
    finally:
        conn.close()


def rest(folder: Path, items: int, at: Sequence[float]) -> None:
    count = grow(folder / "monitor.db", items)
    sources = sqlite3.connect(folder / "monitor.db").execute("SELECT count(*) FROM sources")
    print(f"database: {count} items, {sources.fetchone()[0]} sources (none due)")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "-c", str(folder / "config.yaml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = time.monotonic()
    try:
        for seconds in at:
            time.sleep(max(0.0, started + seconds - time.monotonic()))
            print(
                f"  after {seconds:3.0f} s: RSS {_status_mb(daemon.pid, 'VmRSS:'):6.1f} MB, "
                f"peak {_status_mb(daemon.pid, 'VmHWM:'):6.1f} MB"
            )
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(60)
    print(f"  SIGTERM -> exit {code}")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("imports")
    r = sub.add_parser("rest")
    r.add_argument("folder", type=Path)
    r.add_argument("--items", type=int, default=1_000_000)
    r.add_argument("--at", default="10,30,70", help="seconds after the start to sample")
    args = p.parse_args(argv)
    if args.command == "imports":
        imports()
    else:
        rest(args.folder, args.items, [float(s) for s in args.at.split(",")])


if __name__ == "__main__":
    main()
