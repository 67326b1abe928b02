"""`monitor status`: the registered instances, their heartbeats and leases, as a table or JSON."""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from monitor.cli import cli
from monitor.status import STALE_AFTER
from storage import SourceSpec, Store

CONFIG = """\
database: {database}
sources:
  - id: isw
    url: https://www.understandingwar.org/rss.xml
  - id: rferl
    url: https://www.rferl.org/api/feed.xml
rules: [rules.yaml]
notifiers:
  console: {{type: console}}
"""


def write_config(folder: Path, database: str) -> Path:
    (folder / "rules.yaml").write_text("rules: []\n", encoding="utf-8")
    path = folder / "config.yaml"
    path.write_text(CONFIG.format(database=database), encoding="utf-8")
    return path


def status(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["status", "-c", str(config), *args])
    return result.exit_code, result.output


def test_no_instance_on_a_fresh_database(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite:///state/monitor.db")
    assert status(config, "--json") == (0, "[]\n")
    code, out = status(config)
    assert code == 0 and out.splitlines()[-1] == "0 instances, 0 live, 0 stale"


def test_an_instance_with_its_leases_live_then_stale(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite:///state/monitor.db")
    store = Store.open(f"sqlite:///{tmp_path / 'state' / 'monitor.db'}")
    now = datetime.now(UTC)
    try:
        store.acquire_instance("box:42:a1b2c3", now - timedelta(hours=1))
        store.heartbeat("box:42:a1b2c3", now)
        specs = [SourceSpec(i, f"https://{i}.test/", i, (), timedelta(minutes=15)) for i in "ab"]
        store.sync_sources(specs, now)
        lease = timedelta(minutes=10)
        assert len(store.claim_due_sources("box:42:a1b2c3", now, limit=1, lease=lease)) == 1

        (live,) = json.loads(status(config, "--json")[1])
        assert live["id"] == "box:42:a1b2c3" and live["stale"] is False
        assert (live["host"], live["pid"]) == (socket.gethostname(), os.getpid())
        assert (live["source_leases"], live["delivery_leases"]) == (1, 0)
        assert live["started"] == (now - timedelta(hours=1)).isoformat(timespec="seconds")
        assert 0 <= live["heartbeat_age"] < STALE_AFTER.total_seconds()

        # no heartbeat since: stale, and marked so in the table
        store.heartbeat("box:42:a1b2c3", now - STALE_AFTER - timedelta(seconds=5))
        (stale,) = json.loads(status(config, "--json")[1])
        assert stale["stale"] is True and stale["heartbeat_age"] > STALE_AFTER.total_seconds()
        code, out = status(config)
        lines = out.splitlines()
        assert code == 0 and lines[0].split() == [
            "INSTANCE", "HOST", "PID", "STARTED", "HEARTBEAT", "SOURCES", "DELIVERIES",
        ]  # fmt: skip
        assert lines[1].startswith("box:42:a1b2c3") and lines[1].endswith("1          0  STALE")
        assert lines[-1] == "1 instances, 0 live, 1 stale"
    finally:
        store.release_instance("box:42:a1b2c3")
        store.close()
    assert status(config, "--json") == (0, "[]\n")


def test_an_unreachable_database_is_one_line_and_exit_1(tmp_path: Path) -> None:
    # 127.0.0.1:9 (discard) has no PostgreSQL: the connection is refused
    config = write_config(tmp_path, "postgresql+psycopg://monitor:s3cret@127.0.0.1:9/monitor")
    code, out = status(config)
    assert code == 1
    assert out.startswith("cannot open database postgresql+psycopg://monitor:***@127.0.0.1:9/")
    assert "s3cret" not in out and "Traceback" not in out
