"""Soak: the real daemon (`monitor run`) polling 2,000 farm feeds for minutes, its memory sampled.

    python -m benchmarks.soak [--minutes 10] [--feeds 2000] [--hosts 200] [--interval 30]

A 30 s interval compresses an hour of a 15-minute schedule into a few minutes. Every interval a
tenth of the feeds publish new items (`benchmarks._feedfarm`), so the daemon parses, stores,
groups and matches all along. Every few seconds the RSS of the daemon and of its children (the
forkserver and the parse workers) is read from /proc, with the PSS of the whole tree (shared pages
counted once).
At the end: peak and final memory, whether it grows (mean of the first third against the last
third), how many polls the farm served against how many the schedule asked for, the daemon's
warnings and errors, and how long a SIGTERM took to stop it.

Not a `*_bench` module: `python -m benchmarks` (and so `make bench`) does not run it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from benchmarks._feedfarm import FeedFarm, process_tree, tree_cpu_seconds

PACK = Path(__file__).resolve().parents[1] / "rules" / "packs"
RSS_TARGET_MB = 150.0
GROWTH_TOLERANCE = 0.10  # last third more than 10% above the first third: "grows"


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the daemon started
    daemon_mb: float  # RSS of the daemon process
    children_mb: float  # RSS of its descendants (forkserver, parse workers), summed
    pss_mb: float  # PSS of the whole tree: what the tree really costs
    served: int  # feed requests the farm has answered so far


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def sample(pid: int, started: float, served: int) -> Sample:
    tree = process_tree(pid)
    children = [p for p in tree if p != pid]
    return Sample(
        at=time.monotonic() - started,
        daemon_mb=_status_kb(pid, "VmRSS") / 1024,
        children_mb=sum(_status_kb(p, "VmRSS") for p in children) / 1024,
        pss_mb=sum(_pss_kb(p) for p in tree) / 1024,
        served=served,
    )


def write_config(folder: Path, farm: FeedFarm, args: argparse.Namespace) -> Path:
    lines = [
        f"database: sqlite:///{folder / 'monitor.db'}",
        f"polling: {{interval: {args.interval}s, timeout: 20s, "
        f"concurrency: {args.concurrency}, per_host: {args.per_host}}}",
        f"rules: [{PACK}]",
        "notifiers: {console: {type: console}}",
        "default_notify: [console]",
        "sources:",
    ]
    lines += [f"  - {{id: f{f:04d}, url: '{farm.url(f)}'}}" for f in range(farm.feeds)]
    path = folder / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def served(farm: FeedFarm) -> int:
    stats = farm.stats()
    return sum(v for k, v in stats.items() if k.isdigit())


@dataclass(frozen=True)
class DaemonRun:
    samples: list[Sample]
    gone: int | None  # the daemon's exit code if it stopped before we asked it to
    exit: int
    stopped_in: float  # seconds from SIGTERM to exit
    cpu: float  # CPU seconds of the daemon and its children
    elapsed: float
    warnings: Counter[str]
    errors: Counter[str]
    alerts_printed: int
    config: Path


def run_daemon(args: argparse.Namespace, farm: FeedFarm, folder: Path) -> DaemonRun:
    config = write_config(folder, farm, args)
    log_path, out_path = folder / "daemon.log", folder / "console.out"
    with open(log_path, "w") as log, open(out_path, "w") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(config)],
            stdout=out,
            stderr=log,
            cwd=folder,
        )
        started = time.monotonic()
        samples: list[Sample] = []
        next_change = started + args.interval
        cpu = 0.0
        try:
            while time.monotonic() - started < args.minutes * 60 and daemon.poll() is None:
                if time.monotonic() >= next_change:
                    farm.change(0.1)
                    next_change += args.interval
                cpu = tree_cpu_seconds(daemon.pid)  # before it exits: children vanish then
                samples.append(sample(daemon.pid, started, served(farm)))
                time.sleep(args.sample_every)
        finally:
            gone = daemon.poll()
            stop_started = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            try:
                code = daemon.wait(120)
            except subprocess.TimeoutExpired:
                daemon.kill()
                code = daemon.wait()
            stopped_in = time.monotonic() - stop_started
    logs = log_path.read_text(errors="replace").splitlines()
    return DaemonRun(
        samples=samples,
        gone=gone,
        exit=code,
        stopped_in=stopped_in,
        cpu=cpu,
        elapsed=samples[-1].at if samples else 0.0,
        warnings=Counter(_shape(line) for line in logs if " WARNING " in line),
        errors=Counter(_shape(line) for line in logs if " ERROR " in line or " CRITICAL " in line),
        alerts_printed=len(out_path.read_text(errors="replace").splitlines()),
        config=config,
    )


def _shape(line: str) -> str:
    """A log line with its numbers, source ids and timestamps blanked, so alike lines count once."""
    line = re.sub(r"^\S+\s+", "", line)  # the time
    line = re.sub(r"\bf\d{4}\b", "fNNNN", line)
    return re.sub(r"\d+", "N", line)[:160]


def store_counts(folder: Path) -> dict[str, int]:
    conn = sqlite3.connect(folder / "monitor.db")
    try:
        tables = ("items", "stories", "alerts", "deliveries")
        counts = {}
        for table in tables:
            try:
                counts[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            except sqlite3.Error:
                counts[table] = -1
        return counts
    finally:
        conn.close()


def source_statuses(config: Path) -> Counter[str]:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "sources", "--json", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        rows = json.loads(done.stdout)
    except json.JSONDecodeError:
        return Counter({f"`monitor sources` failed: {done.stderr.strip()[-200:]}": 1})
    return Counter(f"{r['status']}{'/' + r['error'] if r.get('error') else ''}" for r in rows)


def planned_rate(folder: Path) -> float:
    """Polls per second the daemon's own schedule asks for at the end: each source's last gap
    between polls. It honours a feed's <ttl> (five of the corpus's 24 feeds say 1 to 300
    minutes) and adds 0-5% jitter, so it asks for less than feeds / interval."""
    conn = sqlite3.connect(folder / "monitor.db")
    try:
        rows = conn.execute("SELECT last_poll_at, next_poll_at FROM sources").fetchall()
    except sqlite3.Error:
        return 0.0
    finally:
        conn.close()
    rate = 0.0
    for last, next_ in rows:
        if last and next_:
            gap = (datetime.fromisoformat(next_) - datetime.fromisoformat(last)).total_seconds()
            rate += 1 / gap if gap > 0 else 0.0
    return rate


def after_first_cycle(samples: Sequence[Sample], feeds: int) -> tuple[float, float] | None:
    """(when every feed had been asked once, polls per second served from then on)."""
    start = next((s for s in samples if s.served >= feeds), None)
    end = samples[-1]
    if start is None or end.at - start.at < 10:
        return None
    return start.at, (end.served - start.served) / (end.at - start.at)


def third_means(values: Sequence[float]) -> tuple[float, float]:
    third = max(1, len(values) // 3)
    return statistics.fmean(values[:third]), statistics.fmean(values[-third:])


def report(args: argparse.Namespace, farm: FeedFarm, run: DaemonRun) -> None:
    samples = run.samples
    if not samples:
        print("no samples: the daemon did not start")
        return
    total = [s.daemon_mb + s.children_mb for s in samples]
    print(f"\nmemory ({len(samples)} samples every {args.sample_every:.0f} s, MB):")
    for label, values in (
        ("daemon RSS", [s.daemon_mb for s in samples]),
        ("children RSS (parse pool)", [s.children_mb for s in samples]),
        ("tree RSS (sum)", total),
        ("tree PSS", [s.pss_mb for s in samples]),
    ):
        first, last = third_means(values)
        grows = last > first * (1 + GROWTH_TOLERANCE)
        print(f"  {label:<27} peak {max(values):6.1f}  final {values[-1]:6.1f}  "
              f"first third {first:6.1f}  last third {last:6.1f}  "
              f"({(last / first - 1) * 100 if first else 0:+.0f}%: "
              f"{'GROWS' if grows else 'flat'})")  # fmt: skip
    peak = max(s.daemon_mb for s in samples)
    print(f"  daemon RSS target < {RSS_TARGET_MB:.0f} MB: "
          f"{'ok' if peak < RSS_TARGET_MB else 'MISSED'} (peak {peak:.0f} MB)")  # fmt: skip
    elapsed = run.elapsed
    want = args.feeds * elapsed / args.interval
    print(f"\npolls: the farm answered {samples[-1].served} feed requests in {elapsed:.0f} s; "
          f"the schedule asks for about {want:.0f} ({args.feeds} every {args.interval:.0f} s) "
          f"-> {samples[-1].served / want * 100 if want else 0:.0f}%")  # fmt: skip
    per_minute = []
    for a, b in itertools.pairwise(samples):
        if b.at - a.at > 0:
            per_minute.append((b.served - a.served) / (b.at - a.at) * 60)
    if per_minute:
        print(f"  polls/min: median {statistics.median(per_minute):.0f}, "
              f"max {max(per_minute):.0f}")  # fmt: skip
        # The first poll of every feed (parse and store everything) is a burst unlike the rest:
        # the timeline shows when the daemon settles into the schedule.
        print("  polls/min by sample: " + " ".join(f"{p:.0f}" for p in per_minute))
    planned = planned_rate(run.config.parent)
    steady = after_first_cycle(samples, args.feeds)
    if planned and steady:
        print(f"  after the first poll of every feed (done at {steady[0]:.0f} s): "
              f"{steady[1]:.1f} polls/s served; the daemon's own schedule (feeds' <ttl> honoured) "
              f"asks for {planned:.1f}/s -> {steady[1] / planned * 100:.0f}%")  # fmt: skip
    print(f"  daemon CPU {run.cpu:.0f} s over {elapsed:.0f} s "
          f"({run.cpu / elapsed * 100 if elapsed else 0:.0f}% of one core); "
          f"farm CPU {farm.cpu_seconds():.0f} s")  # fmt: skip
    print(f"  console alerts printed (lines): {run.alerts_printed}")
    state = "alive" if run.gone is None else f"GONE before the end (exit {run.gone})"
    print(f"\ndaemon {state} at the end; SIGTERM -> exit {run.exit} in "
          f"{run.stopped_in:.1f} s")  # fmt: skip
    for label, lines in (("errors", run.errors), ("warnings", run.warnings)):
        print(f"log {label}: {sum(lines.values())}")
        for shape, n in lines.most_common(6):
            print(f"  {n:6d} x {shape}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--feeds", type=int, default=2000)
    p.add_argument("--hosts", type=int, default=200, help="loopback addresses of the farm")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between polls of a feed")
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--per-host", type=int, default=2)
    p.add_argument("--latency", type=float, default=0.1)
    p.add_argument("--sample-every", type=float, default=5.0)
    p.add_argument("--keep", type=Path, help="keep the database and logs in this folder")
    return p.parse_args(argv)


def main() -> None:
    args = parse_args(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, FeedFarm(
        feeds=args.feeds, hosts=args.hosts, latency=args.latency
    ) as farm:  # fmt: skip
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"soak: {args.feeds} feeds ({farm.total_bytes / 1e6:.0f} MB) on {args.hosts} "
              f"hosts, interval {args.interval:.0f} s, {args.minutes:g} min, concurrency "
              f"{args.concurrency}, per_host {args.per_host}; farm pid {farm.pid}, "
              f"{os.cpu_count()} cores shared with it; folder {folder}", flush=True)  # fmt: skip
        run = run_daemon(args, farm, folder)
        report(args, farm, run)
        print(f"\nstore: {store_counts(folder)}")
        print(f"sources: {dict(source_statuses(run.config).most_common())}")


if __name__ == "__main__":
    main()
