"""The `monitor` command line: a thin shell over the library (DESIGN §5).

Expected failures reach the user as `file:line:col: message` lines and exit code 1, never a
traceback; usage errors exit 2 (click's convention). `-c/--config` works before or after the
command name.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import click

from monitor import __version__
from monitor.config import Config, load_config
from monitor.errors import MonitorError
from monitor.logs import setup_logging
from monitor.units import parse_duration

F = TypeVar("F", bound=Callable[..., Any])


def _remember_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta["monitor.config"] = value


def config_option(func: F) -> F:
    """`-c/--config`, accepted on the group and on every command; the later one wins."""
    option = click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        callback=_remember_config,
        expose_value=False,
        is_eager=True,
        help="Config file (default: $MONITOR_CONFIG, then ./config.yaml).",
    )
    return option(func)


def config_path() -> Path:
    ctx = click.get_current_context()
    chosen = ctx.meta.get("monitor.config") or os.environ.get("MONITOR_CONFIG") or "config.yaml"
    return Path(chosen)


def get_config() -> Config:
    return load_config(config_path())


def handle_errors(func: F) -> F:
    """Turn MonitorError into one line per problem on stderr, and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MonitorError as e:
            click.echo(str(e), err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="source-monitor")
@config_option
def cli() -> None:
    """source-monitor: watch news feeds, match rules, alert once per story."""


@cli.command()
@config_option
@click.option("--once", is_flag=True, help="Poll every source once, deliver what is due, exit.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
@click.option("--log-level", default="INFO", show_default=True)
@handle_errors
def run(once: bool, log_format: str, log_level: str) -> None:
    """Run the daemon."""
    from monitor._memory import limit_arenas
    from monitor.daemon import Daemon

    limit_arenas()  # before the daemon starts any thread
    setup_logging("json" if log_format == "json" else "text", log_level)
    config = get_config()
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    polls, deliveries = asyncio.run(Daemon(config).run(once=once))
    if once:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(polls.errors.items())) or "none"
        click.echo(
            f"polled {polls.polled} sources ({polls.failed} failed: {errors}; "
            f"{polls.unchanged} unchanged), {polls.new_items} new items, {polls.alerts} alerts; "
            f"deliveries: {deliveries.sent} sent, {deliveries.retried} to retry, "
            f"{deliveries.failed} failed, {deliveries.dead} dead"
        )


@cli.command()
@config_option
@handle_errors
def check() -> None:
    """Validate the config and every rule file."""
    from rules import load_rules

    config = get_config()
    ruleset = load_rules(
        config.rules, notifiers=list(config.notifiers), sources=[s.id for s in config.sources]
    )
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    rules, files = len(ruleset.rules), len(ruleset.files)
    click.echo(
        f"{config.summary()}; {rules} rule{'s' * (rules != 1)} "
        f"in {files} file{'s' * (files != 1)}: ok"
    )


@cli.command("test")
@config_option
@click.argument("rule_files", nargs=-1, type=click.Path(exists=True))
@handle_errors
def test_rules(rule_files: tuple[str, ...]) -> None:
    """Run every rule's inline tests."""
    from rules import load_rules
    from rules.testing import run_rule_tests

    paths = [Path(p) for p in rule_files] if rule_files else list(get_config().rules)
    report = run_rule_tests(load_rules(paths).rules)
    for failure in report.failures:
        click.echo(str(failure), err=True)
    n_failed = len(report.failures)
    click.echo(
        f"{report.rules} rules, {report.cases} examples: "
        f"{report.cases - n_failed} passed, {n_failed} failed"
    )
    if n_failed:
        sys.exit(1)


@cli.command()
@config_option
@click.option("--rules", "rule_paths", multiple=True, type=click.Path(exists=True))
@click.option("--input", "input_file", default="-", type=click.File("r", encoding="utf-8"))
@click.option("--explain", is_flag=True, help="Show which sub-conditions held, and their spans.")
@click.option("--text", "as_text", is_flag=True, help="With --explain: a readable tree, not JSON.")
@handle_errors
def match(rule_paths: tuple[str, ...], input_file: Any, explain: bool, as_text: bool) -> None:
    """Match items (JSON Lines) against rules, offline."""
    from monitor.offline import match_lines
    from rules import load_rules

    paths = [Path(p) for p in rule_paths] if rule_paths else list(get_config().rules)
    ruleset = load_rules(paths)
    style: Literal["json", "text"] | None = None
    if explain:
        style = "text" if as_text else "json"
    bad = match_lines(ruleset.rules, input_file, sys.stdout, sys.stderr, explain=style)
    if bad:
        click.echo(f"{bad} malformed lines skipped", err=True)


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True)
@click.option("--opml", "as_opml", is_flag=True, help="Export the configured sources as OPML.")
@handle_errors
def sources(as_json: bool, as_opml: bool) -> None:
    """Per-source health."""
    from monitor.report import print_sources

    config = get_config()
    if as_opml:
        from monitor.opml import export_opml

        click.echo(export_opml(config.sources), nl=False)
        return
    print_sources(config, as_json=as_json)


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def status(as_json: bool) -> None:
    """Running instances, their heartbeats and the leases each holds."""
    from monitor.status import print_status

    print_status(get_config(), as_json=as_json)


@cli.command()
@config_option
@click.option("--since", default="24h", show_default=True, help="How far back, e.g. 24h, 7d.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def alerts(since: str, as_json: bool) -> None:
    """Recent alerts and their delivery state per notifier."""
    from monitor.report import print_alerts

    try:
        window = parse_duration(since)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since") from None
    print_alerts(get_config(), datetime.now(UTC) - window, as_json=as_json)


@cli.command("notify-test")
@config_option
@click.argument("notifier")
@handle_errors
def notify_test(notifier: str) -> None:
    """Send a sample alert through one notifier and report the receiver's answer."""
    from monitor.offline import send_sample

    ok, message = asyncio.run(send_sample(get_config(), notifier))
    click.echo(message)
    if not ok:
        sys.exit(1)


@cli.command()
@config_option
@click.argument("notifier")
@click.option("--alert", "alert_ids", type=int, multiple=True, help="A stored alert's id.")
@click.option("--sample", is_flag=True, help="The sample alert of notify-test.")
@click.option("--digest", is_flag=True, help="Email: the digest of the alerts (HTML).")
@click.option("--html", is_flag=True, help="Email: only the HTML part.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True))
@handle_errors
def preview(notifier: str, alert_ids: tuple[int, ...], output: str, **flags: bool) -> None:
    """Render an alert through a notifier's template into a file (- for stdout); sends nothing."""
    from monitor.preview import PreviewRequest, PreviewUsageError, write_preview

    try:
        request = PreviewRequest(notifier, alert_ids, **flags)
        report = write_preview(get_config(), request, output)
    except PreviewUsageError as e:
        raise click.UsageError(str(e)) from None
    click.echo(report, err=output == "-")  # stdout holds the preview itself


@cli.command()
@config_option
def schema() -> None:
    """Print the JSON Schema of the rule file format."""
    from rules import rule_file_schema

    click.echo(json.dumps(rule_file_schema(), indent=2))


def main() -> None:
    cli(prog_name="monitor")
