"""The README's `console` examples are real: each `$ monitor ...` line is run and its output must be
exactly what the README shows below it."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```console\n(.*?)```", re.S)


def examples() -> list[tuple[str, list[str]]]:
    """(command line, expected output lines) for every `$ monitor` line of the README."""
    found: list[tuple[str, list[str]]] = []
    for block in BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8")):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], []))
            elif found:
                found[-1][1].append(line)
    return found


def test_the_readme_has_examples_of_each_rule_command() -> None:
    commands = " ".join(command for command, _ in examples())
    for needed in ("monitor check", "monitor test", "monitor match --explain", "monitor schema"):
        assert needed in commands


@pytest.mark.parametrize(("command", "expected"), examples(), ids=lambda v: str(v)[:60])
def test_readme_example(
    command: str, expected: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)
    args = shlex.split(command)
    assert args[0] == "monitor"
    redirect = None
    if ">" in args:
        at = args.index(">")
        redirect, args = tmp_path / args[at + 1], args[:at]
    result = CliRunner().invoke(cli, args[1:])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if redirect is not None:
        assert expected == []
        redirect.write_text(result.stdout, encoding="utf-8")
        assert json.loads(redirect.read_text(encoding="utf-8"))  # the schema is JSON
        return
    assert result.output.splitlines() == expected
