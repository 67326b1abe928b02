import importlib.util
import inspect
import sys
from collections.abc import Sequence

import pytest

import notifiers
from monitor.errors import ConfigError
from monitor.model import AlertMessage
from notifiers import Notifier, SendOutcome, build_notifier, render_preview
from notifiers._apprise import AppriseNotifier
from notifiers._base import Previewable
from notifiers._console import ConsoleNotifier
from notifiers._email import EmailNotifier
from notifiers._slack import SlackNotifier
from notifiers._webhook import WebhookNotifier
from notifiers.settings import (
    ConsoleSettings,
    EmailSettings,
    NotifierSettings,
)
from tests.notifiers.receivers import WebhookReceiver
from tests.notifiers.samples import apprise_settings, sample_alert, slack_settings, webhook_settings

HAS_APPRISE = importlib.util.find_spec("apprise") is not None


def test_public_names_are_exactly_all() -> None:
    public = {n for n in dir(notifiers) if not n.startswith("_")}
    # Submodules become package attributes once imported; only `settings` is public.
    assert public - {"settings"} == set(notifiers.__all__)
    assert sorted(notifiers.__all__) == [
        "Clock", "DigestCapable", "Notifier", "OutcomeHook", "RecordsEachOutcome", "SendOutcome",
        "build_notifier",
        "render_digest_preview", "render_preview", "supports_digest",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "kind"),
    [
        (ConsoleSettings(type="console"), ConsoleNotifier),
        (
            slack_settings(webhook_url="https://hooks.slack.com/services/T/B/X"),
            SlackNotifier,
        ),
        (
            EmailSettings.model_validate(
                {"type": "email", "host": "h", "from": "m@e.org", "to": ["a@e.org"]}
            ),
            EmailNotifier,
        ),
        (webhook_settings(url="https://example.org/h"), WebhookNotifier),
    ],
)
async def test_build_notifier_picks_the_type(settings: NotifierSettings, kind: type) -> None:
    notifier = build_notifier("n", settings)
    assert isinstance(notifier, kind)
    assert notifier.name == "n" and notifier.settings is settings
    assert render_preview(notifier, sample_alert())
    assert await notifier.send([]) == []
    await notifier.aclose()


def test_concrete_notifiers_satisfy_the_protocol() -> None:
    # The annotation makes mypy check each class against the protocol; the loop checks at runtime
    # what mypy cannot: coroutines where the delivery loop awaits, and a preview for preview files.
    kinds: list[type[Notifier]] = [
        ConsoleNotifier, SlackNotifier, EmailNotifier, WebhookNotifier, AppriseNotifier,
    ]  # fmt: skip
    for kind in kinds:
        assert inspect.iscoroutinefunction(kind.send) and inspect.iscoroutinefunction(kind.aclose)
        assert issubclass(kind, Previewable)


class Minimal:
    """A notifier from elsewhere (a delivery-loop test double) with no preview of its own."""

    name = "minimal"
    settings: NotifierSettings = ConsoleSettings(type="console")

    async def send(self, alerts: Sequence[AlertMessage]) -> list[SendOutcome]:
        return [SendOutcome() for _ in alerts]

    async def aclose(self) -> None:
        return None


def test_render_preview_falls_back_to_the_console_block() -> None:
    assert render_preview(Minimal(), sample_alert()).startswith("[HIGH] North Korean")


def test_apprise_missing_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import apprise` fail exactly as when it is not installed.
    monkeypatch.setitem(sys.modules, "apprise", None)
    with pytest.raises(ConfigError, match=r"pip install 'source-monitor\[apprise\]'"):
        build_notifier("a", apprise_settings(urls=["json://localhost/"]))


@pytest.mark.skipif(not HAS_APPRISE, reason="apprise not installed")
def test_apprise_rejects_unknown_urls_without_showing_them() -> None:
    settings = apprise_settings(urls=["json://localhost/", "nope://t0ken@x"])
    with pytest.raises(ConfigError, match="apprise URL #2 is not recognised") as info:
        build_notifier("a", settings)
    assert "t0ken" not in str(info.value)
    with pytest.raises(ConfigError, match="at least one URL"):
        build_notifier("a", apprise_settings(urls=[]))


@pytest.mark.skipif(not HAS_APPRISE, reason="apprise not installed")
async def test_apprise_sends_title_and_body() -> None:
    with WebhookReceiver() as receiver:
        url = f"json://127.0.0.1:{receiver.port}/hooks/alerts"
        notifier = build_notifier("a", apprise_settings(urls=[url]))
        assert await notifier.send([sample_alert()]) == [SendOutcome()]
        await notifier.aclose()
    [payload] = receiver.payloads
    assert payload["title"] == "[HIGH] North Korean KN-23 missiles in Russia's war: " + (
        "Russia fires North Korean missiles at Kharkiv"
    )
    assert "*KN-23*" in payload["message"]
    assert payload["type"] == "warning"
