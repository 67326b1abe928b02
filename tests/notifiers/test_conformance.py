"""Every notifier against its real local receiver: the same classification of answers (delivered,
retryable with Retry-After, permanent) and no secret in any error, as alertmanager's conformance."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import pytest

from notifiers import Notifier, SendOutcome, build_notifier
from notifiers.settings import (
    EmailSettings,
)
from tests.notifiers.receivers import (
    Reply,
    SlackStandIn,
    SmtpServer,
    WebhookReceiver,
    closed_port,
)
from tests.notifiers.samples import (
    FakeClock,
    apprise_settings,
    hostile_alert,
    sample_alert,
    slack_settings,
    webhook_settings,
)

Scenario = Literal["ok", "retry_later", "server_error", "refused", "unreachable"]
SCENARIOS: tuple[Scenario, ...] = ("ok", "retry_later", "server_error", "refused", "unreachable")

HOOK_SECRET = "hmac-Secret-9f8e7d"
TOKEN = "xoxb-1234-Secret-Token"
PASSWORD = "smtp-Secret-Passw0rd"
HEADER_TOKEN = "Bearer hdr-Secret-abcdef"


@dataclass(frozen=True)
class Expected:
    retryable: bool
    retry_after: float | None = None


class Harness(Protocol):
    secrets: list[str]

    def build(self, scenario: Scenario) -> Notifier: ...

    def script(self, scenario: Scenario) -> None: ...

    def expected(self, scenario: Scenario) -> Expected | None: ...

    def delivered(self) -> int: ...


HTTP_EXPECTED: dict[Scenario, Expected | None] = {
    "ok": None,
    "retry_later": Expected(True, 7.0),
    "server_error": Expected(True),
    "refused": Expected(False),
    "unreachable": Expected(True),
}


@dataclass
class SlackWebhook:
    slack: SlackStandIn
    secrets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.secrets = [self.slack.webhook_url, self.slack.hook_path.rsplit("/", 1)[1]]

    def build(self, scenario: Scenario) -> Notifier:
        url = self.slack.webhook_url
        if scenario == "unreachable":
            url = f"http://127.0.0.1:{closed_port()}{self.slack.hook_path}"
        settings = slack_settings(webhook_url=url)
        return build_notifier("slack", settings, clock=FakeClock())

    def script(self, scenario: Scenario) -> None:
        replies = {
            "retry_later": Reply(429, "rate_limited", retry_after="7"),
            "server_error": SlackStandIn.SERVER_ERROR,
            "refused": SlackStandIn.INVALID_PAYLOAD,
        }
        if scenario in replies:
            self.slack.reply(replies[scenario])

    def expected(self, scenario: Scenario) -> Expected | None:
        return HTTP_EXPECTED[scenario]

    def delivered(self) -> int:
        return len(self.slack.messages)


@dataclass
class SlackBot(SlackWebhook):
    def __post_init__(self) -> None:
        self.slack.token = TOKEN
        self.secrets = [TOKEN]

    def build(self, scenario: Scenario) -> Notifier:
        port = closed_port() if scenario == "unreachable" else self.slack.port
        settings = slack_settings(
            token=TOKEN,
            channel=self.slack.channel,
            api_url=f"http://127.0.0.1:{port}/api/chat.postMessage",
        )
        return build_notifier("slack-bot", settings, clock=FakeClock())

    def script(self, scenario: Scenario) -> None:
        if scenario == "refused":
            self.slack.reply(Reply.json({"ok": False, "error": "not_in_channel"}))
        else:
            super().script(scenario)


@dataclass
class Webhook:
    receiver: WebhookReceiver
    secrets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.secrets = [self.receiver.url, HOOK_SECRET, HEADER_TOKEN]

    def build(self, scenario: Scenario) -> Notifier:
        url = self.receiver.url
        if scenario == "unreachable":
            url = f"http://127.0.0.1:{closed_port()}/hooks/alerts"
        settings = webhook_settings(
            url=url, secret=HOOK_SECRET, headers={"Authorization": HEADER_TOKEN}
        )
        return build_notifier("hook", settings)

    def script(self, scenario: Scenario) -> None:
        replies = {
            "retry_later": Reply(503, "", retry_after="7"),
            "server_error": Reply(502, "bad gateway"),
            "refused": Reply(400, HOOK_SECRET),  # a receiver echoing a secret must not leak it
        }
        if scenario in replies:
            self.receiver.reply(replies[scenario])

    def expected(self, scenario: Scenario) -> Expected | None:
        return HTTP_EXPECTED[scenario]

    def delivered(self) -> int:
        return sum(1 for r in self.receiver.requests if r.verified and r.reply.status == 200)


@dataclass
class Email:
    smtp: SmtpServer
    secrets: list[str] = field(default_factory=lambda: [PASSWORD])

    def build(self, scenario: Scenario) -> Notifier:
        port = closed_port() if scenario == "unreachable" else self.smtp.port
        settings = EmailSettings.model_validate(
            {"type": "email", "host": self.smtp.host, "port": port, "security": "starttls",
             "username": "bob", "password": PASSWORD, "ca_file": self.smtp.ca_file,
             "from": "m@example.org", "to": ["a@example.org"], "timeout": "5s"}
        )  # fmt: skip
        return build_notifier("mail", settings)

    def script(self, scenario: Scenario) -> None:
        if scenario == "retry_later":
            self.smtp.fail_data("451 4.7.1 Greylisted, try again later")
        elif scenario == "server_error":
            self.smtp.fail_rcpt("421 4.3.2 Service shutting down")
        elif scenario == "refused":
            self.smtp.fail_data(f"554 5.7.1 Rejected {PASSWORD}")

    def expected(self, scenario: Scenario) -> Expected | None:
        # SMTP has no Retry-After: 4xx are retryable, 5xx permanent.
        return None if scenario == "ok" else Expected(scenario != "refused")

    def delivered(self) -> int:
        return len(self.smtp.mails)


@dataclass
class Apprise(Webhook):
    def __post_init__(self) -> None:
        self.secrets = [f"user:{HOOK_SECRET}"]

    def build(self, scenario: Scenario) -> Notifier:
        port = closed_port() if scenario == "unreachable" else self.receiver.port
        url = f"json://user:{HOOK_SECRET}@127.0.0.1:{port}/hooks/alerts"
        return build_notifier("apprise", apprise_settings(urls=[url]))

    def expected(self, scenario: Scenario) -> Expected | None:
        # Apprise only reports failure, so every failure is worth another try.
        return None if scenario == "ok" else Expected(True)

    def delivered(self) -> int:
        return sum(1 for r in self.receiver.requests if r.reply.status == 200)


HAS_APPRISE = importlib.util.find_spec("apprise") is not None
KINDS = [
    "slack-webhook",
    "slack-bot",
    "webhook",
    "email",
    pytest.param("apprise", marks=pytest.mark.skipif(not HAS_APPRISE, reason="apprise missing")),
]


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with ExitStack() as stack:
        kind: str = request.param
        if kind.startswith("slack"):
            slack = stack.enter_context(SlackStandIn())
            yield SlackWebhook(slack) if kind == "slack-webhook" else SlackBot(slack)
        elif kind == "email":
            yield Email(stack.enter_context(SmtpServer(tmp_path, users={"bob": PASSWORD})))
        elif kind == "webhook":
            yield Webhook(stack.enter_context(WebhookReceiver(secret=HOOK_SECRET)))
        else:
            yield Apprise(stack.enter_context(WebhookReceiver()))


def assert_no_secret(outcome: SendOutcome, secrets: list[str]) -> None:
    if outcome.error is None:
        return
    shown = " ".join([str(outcome.error), repr(outcome.error), *map(str, outcome.error.args)])
    for secret in secrets:
        assert secret not in shown


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_answers_are_classified_without_leaking_secrets(
    harness: Harness, scenario: Scenario
) -> None:
    notifier = harness.build(scenario)
    harness.script(scenario)
    try:
        outcomes = await notifier.send([hostile_alert(), sample_alert(alert_id=2)])
    finally:
        await notifier.aclose()
    assert len(outcomes) == 2
    for outcome in outcomes:
        assert_no_secret(outcome, harness.secrets)
    expected = harness.expected(scenario)
    first = outcomes[0]
    if expected is None:
        assert first.error is None and outcomes[1].error is None
        assert harness.delivered() == 2
        return
    assert first.error is not None
    assert first.error.retryable is expected.retryable
    assert first.error.retry_after == expected.retry_after
    if expected.retryable:
        # The rest of the batch waits for the same retry instead of hammering the receiver.
        assert outcomes[1].error is not None and outcomes[1].error.retryable
        assert str(outcomes[1].error).startswith("not attempted")
        assert harness.delivered() == 0
    else:
        assert outcomes[1].error is None
        assert harness.delivered() == 1
