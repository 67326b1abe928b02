"""The command line as users meet it (DESIGN §5): exit codes, `-c` before or after the command,
one-line errors with `file:line:col`, offline matching and inline rule tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli

RULES = """\
lists:
  dprk: [North Korea, North Korean, DPRK]
rules:
  - id: kn23
    title: KN-23 missiles
    level: high
    match:
      all: [KN-23, $dprk]
    tests:
      match: ["Russia fires North Korean KN-23 missiles"]
      no_match: ["KN95 masks shipped"]
"""


def write(folder: Path, config: str, rules: str = RULES) -> Path:
    (folder / "rules.yaml").write_text(rules, encoding="utf-8")
    path = folder / "config.yaml"
    path.write_text(config, encoding="utf-8")
    return path


VALID = """\
database: sqlite:///state/monitor.db
polling:
  interval: 15m
sources:
  - id: isw
    url: https://www.understandingwar.org/rss.xml
rules: [rules.yaml]
notifiers:
  console: {type: console}
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_check_valid_config_prints_one_line_and_exits_0(runner: CliRunner, tmp_path: Path) -> None:
    config = write(tmp_path, VALID)
    result = runner.invoke(cli, ["check", "-c", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "1 source," in lines[0] and "1 rule in 1 file: ok" in lines[0]


def test_config_option_before_the_command_too(runner: CliRunner, tmp_path: Path) -> None:
    config = write(tmp_path, VALID)
    assert runner.invoke(cli, ["-c", str(config), "check"]).exit_code == 0


def test_misspelt_key_names_line_column_and_suggestion(runner: CliRunner, tmp_path: Path) -> None:
    config = write(tmp_path, VALID.replace("  interval: 15m", "  intervall: 15m"))
    result = runner.invoke(cli, ["check", "-c", str(config)])
    assert result.exit_code == 1
    assert f"{config}:3:3: unknown key 'intervall' (did you mean 'interval'?)" in result.stderr
    assert "Traceback" not in result.output


def test_rule_errors_are_reported_with_their_file(runner: CliRunner, tmp_path: Path) -> None:
    config = write(tmp_path, VALID, RULES.replace("match:\n      all", "mtach:\n      all"))
    result = runner.invoke(cli, ["check", "-c", str(config)])
    assert result.exit_code == 1
    assert "rules.yaml:" in result.stderr and "mtach" in result.stderr


def test_missing_config_is_a_clear_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["check", "-c", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1 and "nope.yaml" in result.stderr


def test_usage_error_exits_2(runner: CliRunner) -> None:
    assert runner.invoke(cli, ["frobnicate"]).exit_code == 2
    assert runner.invoke(cli, ["alerts", "--since", "soon"]).exit_code == 2


def test_inline_rule_tests_pass_and_fail(runner: CliRunner, tmp_path: Path) -> None:
    config = write(tmp_path, VALID)
    result = runner.invoke(cli, ["test", "-c", str(config)])
    assert result.exit_code == 0 and "2 passed, 0 failed" in result.stdout
    broken = RULES.replace('no_match: ["KN95 masks shipped"]', 'no_match: ["North Korean KN-23"]')
    config = write(tmp_path, VALID, broken)
    result = runner.invoke(cli, ["test", "-c", str(config)])
    assert result.exit_code == 1
    assert "[rule kn23] should not match but did: 'North Korean KN-23'" in result.stderr


def test_match_prints_one_line_per_match_and_skips_bad_lines(
    runner: CliRunner, tmp_path: Path
) -> None:
    write(tmp_path, VALID)
    items = "\n".join(
        [
            json.dumps({"id": "a", "title": "North Korean KN-23 strike on Kharkiv"}),
            "{not json",
            json.dumps({"title": "no id"}),
            json.dumps({"id": "b", "title": "Weather"}),
        ]
    )
    result = runner.invoke(cli, ["match", "--rules", str(tmp_path / "rules.yaml")], input=items)
    assert result.exit_code == 0
    [line] = result.stdout.strip().splitlines()
    record = json.loads(line)
    assert record["id"] == "a" and record["rule"] == "kn23" and record["level"] == "high"
    title = "North Korean KN-23 strike on Kharkiv"
    for m in record["matches"]:
        assert m["field"] == "title" and title[m["start"] : m["end"]] == m["text"]
    assert "line 2:" in result.stderr and "line 3: missing 'id'" in result.stderr


def test_match_explain_shows_the_conditions(runner: CliRunner, tmp_path: Path) -> None:
    write(tmp_path, VALID)
    item = json.dumps({"id": "a", "title": "DPRK KN-23 debris found"})
    args = ["match", "--explain", "--rules", str(tmp_path / "rules.yaml")]
    result = runner.invoke(cli, args, input=item)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert "explain" in record and "KN-23" in json.dumps(record["explain"])


def test_schema_is_json_schema(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "rules" in json.dumps(schema) and ("$schema" in schema or "properties" in schema)


def test_sources_and_alerts_on_a_fresh_database(runner: CliRunner, tmp_path: Path) -> None:
    config = write(tmp_path, VALID)
    result = runner.invoke(cli, ["sources", "--json", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []  # sources appear once the daemon has run
    result = runner.invoke(cli, ["alerts", "--json", "-c", str(config)])
    assert result.exit_code == 0 and json.loads(result.stdout) == []


def test_notify_test_unknown_notifier_suggests(runner: CliRunner, tmp_path: Path) -> None:
    config = write(tmp_path, VALID)
    result = runner.invoke(cli, ["notify-test", "consle", "-c", str(config)])
    assert result.exit_code == 1 and "did you mean 'console'" in result.stderr


def test_notify_test_console_prints_the_sample(runner: CliRunner, tmp_path: Path) -> None:
    config = write(tmp_path, VALID)
    result = runner.invoke(cli, ["notify-test", "console", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "KN-23" in result.stdout and "console: accepted" in result.stdout


def test_sources_opml_export(runner: CliRunner, tmp_path: Path) -> None:
    config = write(tmp_path, VALID)
    result = runner.invoke(cli, ["sources", "--opml", "-c", str(config)])
    assert result.exit_code == 0
    assert "understandingwar.org/rss.xml" in result.stdout and "<opml" in result.stdout


def test_sources_warns_when_rule_files_do_not_load(runner: CliRunner, tmp_path: Path) -> None:
    config = write(tmp_path, VALID)
    assert runner.invoke(cli, ["sources", "-c", str(config)]).stderr == ""
    (tmp_path / "rules.yaml").write_text(RULES.replace("$dprk", "$dprkk"), encoding="utf-8")
    result = runner.invoke(cli, ["sources", "--json", "-c", str(config)])
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert "keeps its last good rules" in result.stderr and "dprkk" in result.stderr
