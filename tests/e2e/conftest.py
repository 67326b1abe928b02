"""End-to-end harness: a real feed server, a real SMTP server (STARTTLS + AUTH), a Slack stand-in,
and the real `monitor` command run in a subprocess against a config written for the test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.monitor.feedserver import FeedServer
from tests.notifiers.receivers import SlackStandIn, SmtpServer

ROOT = Path(__file__).resolve().parents[2]

RULES = """\
lists:
  kn23: [KN-23, KN-24, Hwasong-11, КН-23]
rules:
  - id: kn23
    title: KN-23 missiles
    level: high
    match:
      any: [$kn23]
  - id: depots
    title: Strikes on ammunition depots
    level: high
    match:
      all:
        - any: [ammunition depot, arsenal]
        - any: [strike, drone, explosion, explosions]
  - id: troops
    title: North Korean troops
    level: high
    match:
      all: [North Korea, troops]
  - id: background
    title: Background only
    level: info
    match:
      any: [Pyongyang]
"""


@dataclass
class Harness:
    folder: Path
    feeds: FeedServer
    slack: SlackStandIn
    smtp: SmtpServer
    config: Path
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def monitor(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", *args, "-c", str(self.config)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.folder,
            env=monitor_env(),
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start `monitor ARGS` in the background; its output goes to daemon-N.log in the test's
        folder, printed if the test fails (`print_logs`)."""
        log = self.folder / f"daemon-{len(self.started) + 1}.log"
        with log.open("w", encoding="utf-8") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "monitor", *args, "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=self.folder,
                env=monitor_env(),
                start_new_session=True,  # its own process group: see `kill_group`
            )
        self.started.append(process)
        return process

    def print_logs(self, tail: int = 200) -> None:
        for log in sorted(self.folder.glob("daemon-*.log")):
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
            print(f"----- {log.name} (last {min(tail, len(lines))} of {len(lines)} lines) -----")
            print("\n".join(lines[-tail:]))

    def json(self, *args: str) -> Any:
        result = self.monitor(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def slack_accepted(self) -> list[Any]:
        """Messages the stand-in answered 200 (a request left hanging was never answered)."""
        return [r.json() for r in self.slack.requests if not r.reply.hang and r.reply.status == 200]


def monitor_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def write_config(h: Harness, sources: list[tuple[str, str]], *, extra: str = "") -> None:
    lines = [
        f"database: sqlite:///{h.folder / 'state' / 'monitor.db'}",
        "polling: {interval: 15m, timeout: 5s, max_bytes: 2MiB, concurrency: 8, per_host: 8,",
        "          host_spacing: 0s}  # every test feed is on one host",
        "first_poll: {backfill: 24h}",
        "sources:",
        *(f"  - {{id: {sid}, url: '{h.feeds.url(path)}'}}" for sid, path in sources),
        "rules: [rules.yaml]",
        "notifiers:",
        "  slack: {type: slack, webhook_url: '" + h.slack.webhook_url + "'}",
        "  mail:",
        "    type: email",
        f"    host: {h.smtp.host}",
        f"    port: {h.smtp.port}",
        "    security: starttls",
        "    username: alice",
        "    password: wonderland",
        f"    ca_file: {h.smtp.ca_file}",
        "    from: Monitor <monitor@example.org>",
        "    to: [analyst@example.org]",
        "default_notify: [slack, mail]",
        "delivery: {retry_first: 1s, retry_max: 2s, give_up: 1h}",
        extra,
    ]
    h.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (h.folder / "rules.yaml").write_text(RULES, encoding="utf-8")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so that a fixture can tell a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def harness(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    with (
        FeedServer() as feeds,
        SlackStandIn() as slack,
        SmtpServer(tmp_path, security="starttls", users={"alice": "wonderland"}) as smtp,
    ):
        h = Harness(tmp_path, feeds, slack, smtp, tmp_path / "config.yaml")
        try:
            yield h
        finally:
            for process in h.started:
                kill_group(process)
            outcome = getattr(request.node, "report_call", None)
            if outcome is None or outcome.failed:
                h.print_logs()


def kill_group(process: subprocess.Popen[Any]) -> None:
    """Kill what is left of a daemon started in its own session: a daemon killed with SIGKILL
    leaves its forkserver and parse workers behind (systemd would kill the whole cgroup)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
