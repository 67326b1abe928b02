"""Slack's `min_interval`: the pace between two messages, one second unless configured."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import ValidationError

from notifiers import SendOutcome
from notifiers._slack import SlackNotifier
from tests.notifiers.receivers import SlackStandIn
from tests.notifiers.samples import FakeClock, sample_alert, slack_settings


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as stand_in:
        yield stand_in


@pytest.mark.parametrize(
    ("setting", "sleeps"), [(None, [1.0, 1.0]), ("250ms", [0.25, 0.25]), ("0s", [])]
)
async def test_messages_are_paced_by_min_interval(
    slack: SlackStandIn, setting: str | None, sleeps: list[float]
) -> None:
    extra = {} if setting is None else {"min_interval": setting}
    clock = FakeClock()
    notifier = SlackNotifier(
        "s", slack_settings(webhook_url=slack.webhook_url, **extra), clock=clock
    )
    try:
        outcomes = await notifier.send([sample_alert(alert_id=i) for i in range(3)])
    finally:
        await notifier.aclose()
    assert outcomes == [SendOutcome()] * 3
    assert clock.sleeps == sleeps
    assert len(slack.messages) == 3


def test_default_is_one_second() -> None:
    settings = slack_settings(webhook_url="https://hooks.slack.com/services/T/B/x")
    assert settings.min_interval == timedelta(seconds=1)


@pytest.mark.parametrize("bad", ["-1s", "fast", "1 parsec", ""])
def test_bad_min_interval_is_refused(bad: object) -> None:
    with pytest.raises(ValidationError, match="min_interval"):
        slack_settings(webhook_url="https://hooks.slack.com/services/T/B/x", min_interval=bad)
