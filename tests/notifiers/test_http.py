from datetime import UTC, datetime

import pytest

from monitor.errors import ConfigError, DeliveryError
from notifiers._http import check_url, classify_status, parse_retry_after, redact

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("Thu, 26 Nov 2026 12:01:30 GMT", 90.0),  # RFC 9110 IMF-fixdate
        ("Thursday, 26-Nov-26 12:00:10 GMT", 10.0),  # obsolete RFC 850 form
        ("Thu Nov 26 12:00:05 2026", 5.0),  # asctime form
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: go now
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(408, True), (429, True), (500, True), (502, True), (503, True), (504, True),
     (400, False), (401, False), (403, False), (404, False), (410, False), (413, False),
     (301, False), (307, False)],
)  # fmt: skip
def test_status_classes(status: int, retryable: bool) -> None:
    error = classify_status("svc", status)
    assert error is not None and error.retryable is retryable


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_success(status: int) -> None:
    assert classify_status("svc", status, "anything") is None


def test_only_short_codes_from_the_body_are_shown() -> None:
    assert (
        str(classify_status("svc", 400, "invalid_payload")) == "svc answered 400 (invalid_payload)"
    )
    echoed = "Your request to https://hooks.example/T/B/secret failed"
    assert str(classify_status("svc", 400, echoed)) == "svc answered 400"


def test_redact_replaces_every_secret_and_keeps_the_classification() -> None:
    error = DeliveryError("svc answered 400 (tok-123)", retryable=True, retry_after=4)
    redacted = redact(error, ["tok-123", ""])
    assert str(redacted) == "svc answered 400 (***)"
    assert redacted.retryable and redacted.retry_after == 4
    assert redact(error, ["other"]) is error


@pytest.mark.parametrize(
    "url",
    [
        "hooks.example/x",
        "ftp://hooks.example/x",
        "http://",
        "https://exa mple.org/x",
        "http://[::1",
    ],
)
def test_unusable_urls_are_config_errors_without_the_url(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_url(url, "notifier 'n': url")
    assert "example" not in str(info.value) and "::1" not in str(info.value)
