"""Email over SMTP. smtplib is blocking, so each batch runs in a worker thread (asyncio.to_thread)
over one connection; reply codes are sorted into retryable (4xx, network, TLS) and permanent (5xx)
here, and only here. A digest is one more message through the same path."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from monitor.errors import ConfigError, DeliveryError
from monitor.model import AlertMessage
from notifiers._base import OutcomeHook, SendOutcome, not_attempted
from notifiers._digest import build_digest_message, render_digest
from notifiers._email_message import Sender, build_message, parse_address
from notifiers._http import redact
from notifiers._text import clean
from notifiers.settings import EmailSettings

DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {clean(text)[:120]}".strip()


def classify_smtp(exc: Exception, timeout: float) -> DeliveryError:
    """4xx replies and transport failures are retryable; 5xx replies and missing capabilities are
    not."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        first = next(iter(exc.recipients.values()), (0, b""))
        retryable = all(400 <= code < 500 for code in codes)
        return DeliveryError(
            f"smtp server refused every recipient ({_reply(*first)})", retryable=retryable
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        retryable = not 500 <= code < 600
        return DeliveryError(
            f"smtp server answered {_reply(code, exc.smtp_error)}", retryable=retryable
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError(f"smtp server does not support {_missing(exc)}", retryable=False)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return DeliveryError("smtp server closed the connection", retryable=True)
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return DeliveryError(f"smtp TLS failed ({type(exc).__name__})", retryable=True)
    if isinstance(exc, TimeoutError):
        return DeliveryError(f"smtp timed out after {timeout:g}s", retryable=True)
    if isinstance(exc, OSError):
        return DeliveryError(f"smtp: could not connect ({type(exc).__name__})", retryable=True)
    return DeliveryError(f"smtp: {type(exc).__name__}", retryable=True)


def _missing(exc: smtplib.SMTPNotSupportedError) -> str:
    text = str(exc).lower()
    for extension in ("STARTTLS", "AUTH"):
        if extension.lower() in text:
            return extension
    return "a required extension"


def _tls_context(settings: EmailSettings, name: str) -> ssl.SSLContext:
    if settings.ca_file is not None and not Path(settings.ca_file).is_file():
        raise ConfigError(f"notifier {name!r}: ca_file {settings.ca_file!r} is not a readable file")
    try:
        return ssl.create_default_context(cafile=settings.ca_file)
    except (ssl.SSLError, OSError):
        raise ConfigError(f"notifier {name!r}: ca_file holds no usable PEM certificate") from None


def _unbuildable(what: str, exc: Exception) -> DeliveryError:
    return DeliveryError(f"{what} could not be built ({type(exc).__name__})", retryable=False)


class EmailNotifier:
    def __init__(self, name: str, settings: EmailSettings) -> None:
        self.name = name
        self.settings = settings
        self._sender = Sender(
            parse_address(settings.from_, f"notifier {name!r}: from"),
            tuple(parse_address(to, f"notifier {name!r}: to") for to in settings.to),
        )
        if (settings.username is None) != (settings.password is None):
            raise ConfigError(f"notifier {name!r}: username and password go together")
        self._port = settings.port or DEFAULT_PORTS[settings.security]
        self._context = _tls_context(settings, name) if settings.security != "none" else None
        self._timeout = settings.timeout.total_seconds()
        self._secrets = [settings.password.get_secret_value()] if settings.password else []

    def message(self, alert: AlertMessage) -> EmailMessage:
        return build_message(alert, self._sender)

    def digest_message(self, alerts: Sequence[AlertMessage], period: timedelta) -> EmailMessage:
        return build_digest_message(alerts, self._sender, period)

    def preview(self, alert: AlertMessage) -> str:
        """The whole RFC 5322 message as it would be sent, with LF line ends for reading."""
        msg = self.message(alert)
        return msg.as_string(policy=msg.policy.clone(linesep="\n"))

    def digest_preview(self, alerts: Sequence[AlertMessage], *, period: timedelta) -> str:
        """The digest's HTML body, to open in a browser."""
        return render_digest(alerts, period)[2]

    async def send(self, alerts: Sequence[AlertMessage]) -> list[SendOutcome]:
        return await self.send_recording(alerts, lambda _i, _o: None)

    async def send_recording(
        self, alerts: Sequence[AlertMessage], on_outcome: OutcomeHook
    ) -> list[SendOutcome]:
        """One connection for the batch; `on_outcome(i, outcome)` runs (in the worker thread) as
        soon as the server answered message i, before the next one goes out."""
        if not alerts:
            return []
        messages = [self._message_or_error(alert) for alert in alerts]
        return await asyncio.to_thread(self._send_batch, messages, on_outcome)

    async def send_digest(
        self, alerts: Sequence[AlertMessage], *, period: timedelta
    ) -> SendOutcome:
        """All of `alerts` in one email; its outcome stands for each of them. Nothing to send is
        a success with no message."""
        if not alerts:
            return SendOutcome()
        try:
            msg: EmailMessage | DeliveryError = self.digest_message(alerts, period)
        except (ValueError, TypeError, LookupError) as exc:
            msg = _unbuildable("digest", exc)
        [outcome] = await asyncio.to_thread(self._send_batch, [msg])
        return outcome

    async def aclose(self) -> None:
        return None  # connections live for one batch only

    def _message_or_error(self, alert: AlertMessage) -> EmailMessage | DeliveryError:
        # A message that cannot be built will not build on retry either; the batch goes on.
        try:
            return self.message(alert)
        except (ValueError, TypeError, LookupError) as exc:
            return _unbuildable("email", exc)

    def _send_batch(
        self,
        messages: list[EmailMessage | DeliveryError],
        on_outcome: OutcomeHook | None = None,
    ) -> list[SendOutcome]:
        hook = on_outcome or (lambda _i, _o: None)
        if all(isinstance(m, DeliveryError) for m in messages):
            return _reported(
                [SendOutcome(m) for m in messages if isinstance(m, DeliveryError)], hook
            )
        try:
            smtp = self._connect()
        except Exception as exc:
            return _reported(self._unsent(messages, self._error(exc)), hook)
        try:
            return self._send_each(smtp, messages, hook)
        finally:
            try:
                smtp.quit()
            except Exception:
                smtp.close()

    @staticmethod
    def _unsent(
        messages: list[EmailMessage | DeliveryError], error: DeliveryError
    ) -> list[SendOutcome]:
        """The first message carries the connection error, the rest wait for the same retry."""
        outcomes: list[SendOutcome] = []
        first = True
        for msg in messages:
            if isinstance(msg, DeliveryError):
                outcomes.append(SendOutcome(msg))
            else:
                outcomes.append(SendOutcome(error if first else not_attempted(error)))
                first = False
        return outcomes

    def _send_each(
        self, smtp: smtplib.SMTP, messages: list[EmailMessage | DeliveryError], hook: OutcomeHook
    ) -> list[SendOutcome]:
        outcomes: list[SendOutcome] = []
        stop: DeliveryError | None = None
        for i, msg in enumerate(messages):
            if isinstance(msg, DeliveryError):
                outcome = SendOutcome(msg)
            elif stop is not None:
                outcome = SendOutcome(not_attempted(stop))
            else:
                outcome = self._send_one(smtp, msg)
                if outcome.error is not None and outcome.error.retryable:
                    stop = outcome.error
            hook(i, outcome)
            outcomes.append(outcome)
        return outcomes

    def _send_one(self, smtp: smtplib.SMTP, msg: EmailMessage) -> SendOutcome:
        try:
            # Partial refusals return a dict and the message went to the others: that is a
            # delivery, and re-sending would duplicate it for those who got it.
            smtp.send_message(
                msg,
                from_addr=self._sender.from_.addr_spec,
                to_addrs=[a.addr_spec for a in self._sender.to],
            )
        except Exception as exc:
            return SendOutcome(self._error(exc))
        return SendOutcome(message_id=str(msg["Message-ID"]))

    def _connect(self) -> smtplib.SMTP:
        host, port, timeout = self.settings.host, self._port, self._timeout
        smtp: smtplib.SMTP
        if self.settings.security == "ssl":
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=self._context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        try:
            smtp.ehlo()
            if self.settings.security == "starttls":
                # Never fall back to plain text: a missing STARTTLS raises SMTPNotSupportedError.
                smtp.starttls(context=self._context)
                smtp.ehlo()
            if self.settings.username is not None and self.settings.password is not None:
                smtp.login(self.settings.username, self.settings.password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _error(self, exc: Exception) -> DeliveryError:
        return redact(classify_smtp(exc, self._timeout), self._secrets)


def _reported(outcomes: list[SendOutcome], hook: OutcomeHook) -> list[SendOutcome]:
    for i, outcome in enumerate(outcomes):
        hook(i, outcome)
    return outcomes


__all__ = ["DEFAULT_PORTS", "EmailNotifier", "classify_smtp"]
