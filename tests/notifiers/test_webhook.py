import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from notifiers import SendOutcome, build_notifier, render_preview
from notifiers._webhook import WebhookNotifier
from notifiers.settings import WebhookSettings
from tests.notifiers.receivers import Reply, WebhookReceiver
from tests.notifiers.samples import (
    HOSTILE_SUMMARY,
    HOSTILE_TITLE,
    hostile_alert,
    sample_alert,
    webhook_settings,
)

SECRET = "whsec-correct-horse-battery"
DOC = Path(__file__).resolve().parents[2] / "docs" / "webhook.md"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as r:
        yield r


def notifier_for(url: str, secret: str | None = SECRET, **extra: object) -> WebhookNotifier:
    settings = WebhookSettings.model_validate(
        {"type": "webhook", "url": url, "secret": secret, "timeout": "2s", **extra}
    )
    return WebhookNotifier("ops-hook", settings)


async def test_payload_is_documented_and_signed(receiver: WebhookReceiver) -> None:
    notifier = notifier_for(receiver.url)
    assert await notifier.send([hostile_alert()]) == [SendOutcome()]
    await notifier.aclose()
    [request] = receiver.requests
    assert request.verified is True
    body = request.json()
    assert set(body) == {
        "version", "alert_id", "story_id", "rule", "rule_title", "level", "created", "sent_at",
        "item", "matches", "also",
    }  # fmt: skip
    assert set(body["item"]) == {"title", "link", "source", "source_name", "published", "summary"}
    # Raw text, exactly as the feed gave it: JSON carries it safely, the receiver escapes.
    assert body["item"]["title"] == HOSTILE_TITLE
    assert body["created"] == "2026-11-26T09:35:00Z"
    assert body["item"]["published"] == "2026-11-26T09:30:00Z"
    start = HOSTILE_SUMMARY.index("KN-23")
    assert body["matches"][0] == {
        "field": "summary",
        "start": start,
        "end": start + 5,
        "text": "KN-23",
    }
    assert body["also"] == [
        {"source": "evil2", "source_name": "<@U999>", "title": "<!channel> again",
         "link": "javascript:alert(1)"}
    ]  # fmt: skip
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["user-agent"].startswith("source-monitor/")


def test_every_payload_key_is_documented() -> None:
    doc = DOC.read_text()
    body, _ = notifier_for("https://example.org/h").request(sample_alert())
    payload = json.loads(body)
    keys = set(payload) | {f"item.{k}" for k in payload["item"]}
    missing = [k for k in keys if f"`{k}`" not in doc]
    assert not missing
    assert "X-Monitor-Signature" in doc and "X-Monitor-Timestamp" in doc


def test_signature_is_hmac_of_the_exact_body() -> None:
    notifier = notifier_for("https://example.org/h")
    body, headers = notifier.request(sample_alert())
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Monitor-Signature"] == f"sha256={expected}"
    assert int(headers["X-Monitor-Timestamp"]) == json.loads(body)["sent_at"]


async def test_wrong_secret_is_refused_permanently(receiver: WebhookReceiver) -> None:
    notifier = notifier_for(receiver.url, secret="not-the-secret")
    [outcome] = await notifier.send([sample_alert()])
    await notifier.aclose()
    assert receiver.requests[0].verified is False
    assert outcome.error is not None and not outcome.error.retryable
    assert str(outcome.error) == "webhook answered 401"  # the body has spaces: not shown
    assert "not-the-secret" not in repr(outcome.error)


async def test_stale_timestamp_is_refused() -> None:
    with WebhookReceiver(secret=SECRET) as receiver:
        settings = webhook_settings(url=receiver.url, secret=SECRET)
        notifier = WebhookNotifier("hook", settings, now=lambda: 1_000_000.0)
        [outcome] = await notifier.send([sample_alert()])
        await notifier.aclose()
    assert receiver.requests[0].verified is False
    assert outcome.error is not None


async def test_without_secret_there_is_no_signature() -> None:
    with WebhookReceiver() as receiver:
        notifier = notifier_for(
            receiver.url, secret=None, headers={"Authorization": "Bearer abc123456"}
        )
        assert await notifier.send([sample_alert()]) == [SendOutcome()]
        await notifier.aclose()
    [request] = receiver.requests
    assert "x-monitor-signature" not in request.headers
    assert request.headers["authorization"] == "Bearer abc123456"


async def test_unicode_body_bytes_are_what_was_signed(receiver: WebhookReceiver) -> None:
    notifier = notifier_for(receiver.url)
    alert = sample_alert(title="Пхеньян: ракеты KN-23 — «Хвасон-11» 🚀")
    assert await notifier.send([alert]) == [SendOutcome()]
    await notifier.aclose()
    assert receiver.requests[0].verified is True
    assert receiver.payloads[0]["item"]["title"] == alert.title


async def test_server_errors_stop_the_batch_and_client_errors_do_not(
    receiver: WebhookReceiver,
) -> None:
    notifier = notifier_for(receiver.url)
    receiver.reply(Reply(422, "unprocessable"), Reply(503, "busy", retry_after="120"))
    alerts = [sample_alert(alert_id=i) for i in range(4)]
    outcomes = await notifier.send(alerts)
    await notifier.aclose()
    errors = [o.error for o in outcomes]
    assert errors[0] is not None and not errors[0].retryable
    assert errors[1] is not None and errors[1].retryable and errors[1].retry_after == 120
    assert errors[2] is not None and str(errors[2]).startswith(
        "not attempted: webhook answered 503"
    )
    assert len(receiver.requests) == 2


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Monitor-Signature": "forged"}, "is set by source-monitor"),
        ({"Content-Type": "text/plain"}, "is set by source-monitor"),
        ({"X-Evil": "a\r\nInjected: 1"}, "contains a line break"),
        ({"Bad Name": "x"}, "not a valid HTTP token"),
    ],
)
def test_bad_extra_headers_are_config_errors(headers: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        notifier_for("https://example.org/h", headers=headers)


def test_preview_hides_secrets_and_shows_the_body() -> None:
    notifier = build_notifier(
        "hook",
        webhook_settings(
            url="https://example.org/hooks/tok3n-in-path",
            secret=SECRET,
            headers={"Authorization": "Bearer very-secret-token"},
        ),
    )
    text = render_preview(notifier, sample_alert(created=datetime(2026, 1, 1, tzinfo=UTC)))
    for secret in (SECRET, "tok3n-in-path", "very-secret-token"):
        assert secret not in text
    assert '"rule": "kn23"' in text
