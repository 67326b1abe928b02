import contextlib
import io
import os
import unicodedata

import pytest

from notifiers import SendOutcome, build_notifier, render_preview
from notifiers._console import ConsoleNotifier
from notifiers.settings import ConsoleSettings
from tests.notifiers.samples import hostile_alert, sample_alert


async def test_console_prints_a_readable_block(capsys: pytest.CaptureFixture[str]) -> None:
    notifier = build_notifier("console", ConsoleSettings(type="console"))
    outcomes = await notifier.send([sample_alert(), sample_alert(alert_id=2, level="critical")])
    await notifier.aclose()
    out = capsys.readouterr().out
    assert outcomes == [SendOutcome(), SendOutcome()]
    first = out.split("\n\n")[0].splitlines()
    assert first == [
        "[HIGH] North Korean KN-23 missiles in Russia's war",
        "  title:   Russia fires North Korean missiles at Kharkiv",
        "  link:    https://news.example.org/world/kn23-kharkiv?utm_source=x&id=7",
        "  source:  Example News (example-news)",
        "  time:    2026-11-26 09:30 UTC",
        "  snippet: Ukraine's air force said Russia fired North Korean *KN-23* missiles at "
        "Kharkiv.",
        "  matched: KN-23",
        "  also:    Other Wire: KN-23 used again",
    ]
    assert "[CRITICAL]" in out


async def test_console_output_has_no_control_characters() -> None:
    stream = io.StringIO()
    notifier = ConsoleNotifier("console", ConsoleSettings(type="console"), stream=stream)
    await notifier.send([hostile_alert(published=None, link="javascript:alert(1)")])
    out = stream.getvalue()
    assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in out.replace("\n", ""))
    lines = out.splitlines()
    # The CRLF in the title and source name did not create lines of their own.
    assert [line.split(":")[0].strip() for line in lines if line] == [
        "[HIGH] Depots & <arsenals>",
        "title", "link", "source", "time", "snippet", "matched", "also",
    ]  # fmt: skip
    assert "  link:    -" in lines and "  time:    unknown time" in lines


def test_preview_is_the_block() -> None:
    notifier = build_notifier("console", ConsoleSettings(type="console"))
    assert render_preview(notifier, sample_alert()).startswith("[HIGH] North Korean")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
async def test_unwritable_stdout_is_a_retryable_error() -> None:
    # Every write to /dev/full fails with ENOSPC, like a full disk.
    stream = open("/dev/full", "w")  # noqa: SIM115, ASYNC230
    try:
        notifier = ConsoleNotifier("console", ConsoleSettings(type="console"), stream=stream)
        [outcome] = await notifier.send([sample_alert()])
    finally:
        with contextlib.suppress(OSError):
            stream.close()
    assert outcome.error is not None and outcome.error.retryable
    assert str(outcome.error) == "console: cannot write (OSError)"
