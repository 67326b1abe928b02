"""`monitor preview`: a stored alert (or the sample) rendered through a notifier's own templates
into a file; nothing is sent and nothing stored changes. Run through the real CLI (click's runner)
on a real config file and a real SQLite database."""

from __future__ import annotations

import email
import json
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from storage import Store
from tests.notifiers.receivers import SlackStandIn, WebhookReceiver, closed_port
from tests.storage.storefakes import LEASE, T0, KeywordMatcher, ingest, item, spec

HOOK_SECRET = "hook-signing-secret"
SMTP_PASSWORD = "smtp-password-123"
TITLE = "North Korean KN-23 <b>used</b> & confirmed"
LINK = "https://news.example/kn23"
RULES = KeywordMatcher(
    {"kn23": ("KN-23", "high"), "depot": ("depot", "high"), "note": ("note", "low")}
)


@dataclass
class Setup:
    folder: Path
    config: Path
    slack: SlackStandIn
    hook: WebhookReceiver
    alerts: dict[str, int]  # rule id -> alert id

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["preview", *args, "-c", str(self.config)])

    def out(self, name: str = "out.txt") -> Path:
        return self.folder / name


def write_config(folder: Path, slack: SlackStandIn, hook: WebhookReceiver) -> Path:
    config = folder / "config.yaml"
    config.write_text(
        f"""\
database: sqlite:///{folder / "state" / "monitor.db"}
sources:
  - {{id: a, url: 'https://a.example/feed.xml'}}
rules: []
notifiers:
  console: {{type: console}}
  slack: {{type: slack, webhook_url: '{slack.webhook_url}', min_level: medium}}
  hook: {{type: webhook, url: '{hook.url}', secret: {HOOK_SECRET}}}
  email:
    type: email
    host: 127.0.0.1
    port: {closed_port()}
    security: none
    username: alice
    password: {SMTP_PASSWORD}
    from: Monitor <monitor@example.org>
    to: [analyst@example.org]
default_notify: [console]
""",
        encoding="utf-8",
    )
    return config


def store_alerts(config_folder: Path) -> dict[str, int]:
    """kn23 on a story told by a, sent by email; then depot and note on the same story from b."""
    store = Store.open(f"sqlite:///{config_folder / 'state' / 'monitor.db'}")
    try:
        store.sync_sources([spec("a", name="Agency A"), spec("b")], T0)
        for source in "ab":
            ingest(store, source, [], now=T0, matcher=RULES)
        first = item("a", "a1", TITLE, link=LINK, summary="Debris of a KN-23 was found.")
        ingest(store, "a", [first], now=T0, matcher=RULES)
        [mail] = store.claim_deliveries("i1", T0, limit=5, lease=LEASE, notifiers=["email"])
        store.mark_sent(mail.delivery_id, T0, message_id="<first.kn23@example.org>")
        later = item("b", "b1", "KN-23 hit a depot, officials note", link=LINK)
        ingest(store, "b", [later], now=T0 + LEASE, matcher=RULES)
        return {view.rule: view.id for view in store.list_alerts(T0)}
    finally:
        store.close()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with SlackStandIn() as slack, WebhookReceiver(secret=HOOK_SECRET) as hook:
        config = write_config(tmp_path, slack, hook)
        yield Setup(tmp_path, config, slack, hook, store_alerts(tmp_path))
        # A preview sends nothing, whatever it rendered.
        assert slack.requests == [] and hook.requests == []


def parse_email(text: str) -> EmailMessage:
    parsed = email.message_from_string(text, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_the_sample_through_each_kind_of_notifier(setup: Setup) -> None:
    outputs = {}
    for name in ("console", "slack", "hook", "email"):
        result = setup.run(name, "--sample", "-o", str(setup.out(name)))
        assert result.exit_code == 0, result.output
        assert f"written to {setup.out(name)}" in result.stdout
        outputs[name] = setup.out(name).read_text(encoding="utf-8")
    title = "Sample alert: North Korean KN-23 missile debris identified in Kharkiv"
    assert title in outputs["console"]
    slack = json.loads(outputs["slack"])
    assert title in slack["text"] and slack["blocks"]
    hook = json.loads(outputs["hook"])  # the body only: valid JSON, no request line or headers
    assert (hook["version"], hook["rule"], hook["item"]["title"]) == (1, "notify-test", title)
    message = parse_email(outputs["email"])
    assert (
        title in str(message["Subject"]) and message.get_content_type() == "multipart/alternative"
    )
    assert message["In-Reply-To"] is None
    for text in outputs.values():
        assert HOOK_SECRET not in text and SMTP_PASSWORD not in text
        assert setup.hook.url not in text and setup.slack.hook_path not in text


def test_a_stored_alert_through_email_shows_its_thread_and_escaped_text(setup: Setup) -> None:
    result = setup.run("email", "--alert", str(setup.alerts["depot"]), "-o", str(setup.out()))
    assert result.exit_code == 0, result.output
    message = parse_email(setup.out().read_text(encoding="utf-8"))
    # The story's first alert went out by email: this one threads under it, as it will be sent.
    assert message["In-Reply-To"] == "<first.kn23@example.org>"
    assert message["References"] == "<first.kn23@example.org>"
    assert "KN-23 hit a depot, officials note" in str(message["Subject"])

    first = setup.run("email", "--alert", str(setup.alerts["kn23"]), "--html", "-o", "-")
    assert first.exit_code == 0, first.output
    assert "<html" in first.stdout and "email: email, HTML part" in first.stderr
    # Feed text is escaped in the HTML, as the notifier sends it.
    assert "North Korean KN-23 &lt;b&gt;used&lt;/b&gt; &amp; confirmed" in first.stdout
    assert "<b>used</b>" not in first.stdout
    assert "Debris of a KN-23 was found." in first.stdout


def test_a_stored_alert_through_slack_and_webhook(setup: Setup) -> None:
    alert_id = setup.alerts["kn23"]
    assert (
        setup.run("slack", "--alert", str(alert_id), "-o", str(setup.out("s.json"))).exit_code == 0
    )
    assert (
        setup.run("hook", "--alert", str(alert_id), "-o", str(setup.out("h.json"))).exit_code == 0
    )
    assert "KN-23" in json.loads(setup.out("s.json").read_text(encoding="utf-8"))["text"]
    body = json.loads(setup.out("h.json").read_text(encoding="utf-8"))
    assert (body["alert_id"], body["rule"], body["item"]["title"]) == (alert_id, "kn23", TITLE)
    assert [a["source"] for a in body["also"]] == ["b"]  # the story's other source


def test_digest_of_several_stored_alerts(setup: Setup) -> None:
    ids = [str(setup.alerts[rule]) for rule in ("kn23", "depot")]
    result = setup.run("email", "--digest", "--alert", ids[0], "--alert", ids[1], "-o", "-")
    assert result.exit_code == 0, result.output
    html = result.stdout
    assert html.lstrip().startswith("<!DOCTYPE html>") and "2 alerts" in html
    assert "&lt;b&gt;used&lt;/b&gt; &amp; confirmed" in html and "officials note" in html


def test_preview_changes_nothing_stored(setup: Setup) -> None:
    store = Store.open(f"sqlite:///{setup.folder / 'state' / 'monitor.db'}")
    try:
        before = store.list_alerts(T0)
        for rule in ("kn23", "depot"):
            assert setup.run("email", "--alert", str(setup.alerts[rule]), "-o", "-").exit_code == 0
        assert store.list_alerts(T0) == before
        # The pending deliveries are still there for the daemon, unleased.
        jobs = store.claim_deliveries("i2", T0 + LEASE, limit=10, lease=LEASE, notifiers=["email"])
        assert sorted(job.alert.rule_id for job in jobs) == ["depot", "note"]
    finally:
        store.close()


def test_an_alert_the_notifier_never_sends_is_noted(setup: Setup) -> None:
    result = setup.run("slack", "--alert", str(setup.alerts["note"]), "-o", str(setup.out()))
    assert result.exit_code == 0, result.output
    note = f"note: alert {setup.alerts['note']} (low) is below min_level medium of 'slack'"
    assert note in result.stdout
    plain = setup.run("slack", "--alert", str(setup.alerts["kn23"]), "-o", str(setup.out()))
    assert "note:" not in plain.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["email"], "give either --alert ID or --sample"),
        (["email", "--sample", "--alert", "1"], "give either --alert ID or --sample"),
        (
            ["email", "--alert", "1", "--alert", "2"],
            "several --alert ids make sense only with --digest",
        ),
        (["slack", "--sample", "--html"], "--html needs an email notifier; 'slack' is not"),
        (["hook", "--sample", "--digest"], "--digest needs an email notifier; 'hook' is not"),
        (["email", "--sample", "--digest", "--html"], "--digest already renders HTML"),
        (["email", "--alert", "two"], "'two' is not a valid integer"),
    ],
)
def test_usage_errors_exit_2(setup: Setup, args: list[str], message: str) -> None:
    result = setup.run(*args, "-o", str(setup.out()))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not setup.out().exists()


def test_no_output_option_is_a_usage_error(setup: Setup) -> None:
    result = setup.run("email", "--sample")
    assert result.exit_code == 2 and "Missing option '-o'" in result.stderr


def test_failures_are_one_line_and_exit_1(setup: Setup) -> None:
    unknown = setup.run("emial", "--sample", "-o", str(setup.out()))
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == (
        f"{setup.config}: no notifier named 'emial' (did you mean 'email'?)"
    )
    missing = setup.run("email", "--alert", "999", "-o", str(setup.out()))
    assert missing.exit_code == 1
    assert missing.stderr.strip() == "no alert with id 999 (see `monitor alerts`)"
    unwritable = setup.run("email", "--sample", "-o", str(setup.folder / "no" / "such" / "out.eml"))
    assert unwritable.exit_code == 1
    assert unwritable.stderr.startswith(f"{setup.folder / 'no' / 'such' / 'out.eml'}: cannot write")
    for result in (unknown, missing, unwritable):
        assert "Traceback" not in result.output and len(result.stderr.splitlines()) == 1
    assert not setup.out().exists()
