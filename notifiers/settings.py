"""Each notifier's settings as written under `notifiers:` in config.yaml (DESIGN §3).

The config loader embeds `NotifierSettings` in its schema; the notifier factory builds from it.
Unknown keys are errors. Secrets are `SecretStr` so they never print.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from monitor.model import Level
from monitor.units import Duration


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_level: Level = "low"  # alerts below this level are not sent through this notifier


class ConsoleSettings(_Base):
    type: Literal["console"]


class SlackSettings(_Base):
    type: Literal["slack"]
    webhook_url: SecretStr | None = None  # incoming webhook, or:
    token: SecretStr | None = None  # bot token for chat.postMessage, with `channel`
    channel: str | None = None
    api_url: str = "https://slack.com/api/chat.postMessage"
    timeout: Duration = timedelta(seconds=10)
    # Slack allows about one message per second per webhook or channel; a Slack-compatible server
    # (or a test stand-in) may allow more.
    min_interval: Duration = timedelta(seconds=1)


class EmailSettings(_Base):
    type: Literal["email"]
    host: str
    port: int | None = None  # default: 587 starttls, 465 ssl, 25 none
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_: str = Field(alias="from")
    to: list[str]
    digest: Duration | None = None
    timeout: Duration = timedelta(seconds=30)
    # Trust store for tests and private CAs; default: the system's.
    ca_file: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("to")
    @classmethod
    def _to_not_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("'to' needs at least one address")
        return v


class WebhookSettings(_Base):
    type: Literal["webhook"]
    url: SecretStr
    headers: dict[str, str] = {}
    secret: SecretStr | None = None  # HMAC-SHA256 signature header when set
    timeout: Duration = timedelta(seconds=10)


class AppriseSettings(_Base):
    type: Literal["apprise"]
    urls: list[SecretStr]


NotifierSettings = Annotated[
    ConsoleSettings | SlackSettings | EmailSettings | WebhookSettings | AppriseSettings,
    Field(discriminator="type"),
]

__all__ = [
    "AppriseSettings",
    "ConsoleSettings",
    "EmailSettings",
    "NotifierSettings",
    "SlackSettings",
    "WebhookSettings",
]
