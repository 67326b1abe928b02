"""Restart safety: a daemon killed with SIGKILL after storing alerts, while a delivery is in flight,
delivers every alert exactly once per notifier when started again; SIGTERM exits cleanly with 0."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Harness, write_config
from tests.e2e.test_end_to_end import A_NEW, B_NEW, D_NEW, E_NEW, serve_round_one
from tests.notifiers.receivers import Reply, SlackStandIn, SmtpServer

SOURCES = [
    ("rss", "/rss.xml"),
    ("atom", "/atom.xml"),
    ("noguid", "/noguid.xml"),
    ("cyrillic", "/cp1251.xml"),
]
TITLES = sorted([A_NEW.title, B_NEW.title, D_NEW.title, E_NEW.title])


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def stop(process: subprocess.Popen[str], sig: signal.Signals) -> int:
    process.send_signal(sig)
    try:
        return process.wait(timeout=60)
    finally:
        if process.stdout:
            process.stdout.close()


def test_sigkill_mid_delivery_then_restart_delivers_each_alert_once(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    write_config(h, SOURCES)
    serve_round_one(h)
    h.slack.reply(*[Reply(hang=True)] * 20)  # Slack never answers: a send is in flight when we kill

    first = h.popen("run")
    try:
        wait_for("4 stored alerts", lambda: len(notifying_alerts(h)) == 4)
        wait_for("a Slack send in flight", lambda: len(h.slack.requests) >= 1)
    finally:
        assert stop(first, signal.SIGKILL) == -signal.SIGKILL
    assert h.slack_accepted() == []
    mailed_before = [str(m.message["Subject"]) for m in h.smtp.mails]  # email was not held back

    # Start again, with receivers that now accept (same notifier names, new addresses).
    (tmp_path / "smtp2").mkdir()
    with (
        SlackStandIn() as slack,
        SmtpServer(tmp_path / "smtp2", security="starttls", users={"alice": "wonderland"}) as smtp,
    ):
        h.slack, h.smtp = slack, smtp
        write_config(h, SOURCES)
        second = h.popen("run")
        try:
            wait_for("every alert on Slack", lambda: len(slack.messages) >= 4)
            wait_for("every alert by email", lambda: len(smtp.mails) + len(mailed_before) >= 4)
            time.sleep(2.5)  # one more delivery tick: nothing may be sent twice
        finally:
            code = stop(second, signal.SIGTERM)
        assert code == 0
        assert sorted(_title(m) for m in slack.messages) == TITLES
        subjects = mailed_before + [str(m.message["Subject"]) for m in smtp.mails]
        # Each alert exactly once per notifier, across the restart.
        assert sorted(_title(s) for s in subjects) == TITLES
    for alert in notifying_alerts(h):
        assert {d["notifier"]: d["status"] for d in alert["deliveries"]} == {
            "slack": "sent",
            "mail": "sent",
        }


def notifying_alerts(h: Harness) -> list[dict[str, Any]]:
    return [a for a in h.json("alerts") if a["level"] != "info"]


def _title(message: object) -> str:
    text = str(message)
    found = [t for t in TITLES if t in text]
    assert len(found) == 1, text[:300]
    return found[0]
