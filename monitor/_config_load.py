"""Reading config.yaml into `Config`: every problem of the file is collected and raised at once.

Order of work: YAML with positions -> `${VAR}` interpolation on the tree -> the top-level schema ->
notifiers one by one (a notifier missing an environment variable is switched off unless something
names it) -> sources -> rule paths -> notifier references. Problems carry `file:line:col`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from monitor._config_env import Interpolated, KeyPath, Reference, describe, interpolate
from monitor._config_model import Config, Health, Polling, SourceConfig
from monitor._config_schema import ConfigFile, NotifiersSection
from monitor._config_sources import build_sources
from monitor.errors import ConfigError, Location, Problem
from notifiers.settings import ConsoleSettings, NotifierSettings
from rules._yaml import (
    Positioned,
    YamlSyntaxError,
    did_you_mean,
    load_yaml,
    problems_from_validation,
    suggest,
)

_SQLITE_FILE = re.compile(r"(sqlite(?:\+\w+)?):///([^?]*)(\?.*)?\Z")


def _notifier_types() -> tuple[str, ...]:
    union = get_args(NotifierSettings)[0]
    return tuple(str(get_args(m.model_fields["type"].annotation)[0]) for m in get_args(union))


NOTIFIER_TYPES = _notifier_types()


def read_document(path: Path, shown: str) -> tuple[Positioned, str]:
    """The parsed YAML document and its text; ConfigError for a missing, unreadable, non-UTF-8,
    malformed, empty or non-mapping file."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(
            Problem(Location(shown), f"cannot read config: {e.strerror or e}")
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = raw[: e.start]
        where = Location(shown, before.count(b"\n") + 1, e.start - (before.rfind(b"\n") + 1) + 1)
        raise ConfigError(Problem(where, "not UTF-8 text")) from None
    try:
        doc = load_yaml(text, shown)
    except YamlSyntaxError as e:
        raise ConfigError(e.problem) from None
    if doc.data is None:
        msg = "the config file is empty: it needs at least 'sources' and 'rules'"
        raise ConfigError(Problem(Location(shown, 1, 1), msg))
    if not isinstance(doc.data, dict):
        kind = type(doc.data).__name__
        msg = f"expected a mapping of settings (database, polling, sources, ...), got a {kind}"
        raise ConfigError(Problem(Location(shown, 1, 1), msg))
    return doc, text


class Loader:
    def __init__(self, doc: Positioned, text: str, path: Path, env: Mapping[str, str]) -> None:
        self.doc = doc
        self.lines = text.splitlines()
        self.path = path
        self.shown_base = os.path.dirname(doc.file)
        self.env: Interpolated = interpolate(doc.data, env)
        self.data: dict[str, Any] = self.env.data
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.dropped: dict[str, str] = {}  # notifier -> why

    def build(self) -> Config:
        top = self._top()
        notifiers = self._notifiers()
        self._report_references()
        polling = top.polling if top else _section(Polling, self.data.get("polling"))
        sources = self._sources(polling)
        rules = self._rules(top.rules if top else _strings(self.data.get("rules")))
        default_notify = self._default_notify(top, notifiers)
        health_notify = self._names(top.health.notify, ("health", "notify")) if top else None
        if health_notify is not None:
            health_notify = tuple(n for n in health_notify if n not in self.dropped)
        self._raise_problems()
        assert top is not None
        if not rules:
            self._warn((), "no rules: nothing will ever alert")
        return Config(
            path=self.path,
            database=self._database(top.database),
            polling=top.polling,
            first_poll=top.first_poll,
            dedup=top.dedup,
            sources=tuple(sources),
            rules=rules,
            notifiers=notifiers,
            default_notify=default_notify,
            delivery=top.delivery,
            retention=top.retention,
            health=Health(
                failing_after=top.health.failing_after,
                silent_after=top.health.silent_after,
                notify=default_notify if health_notify is None else health_notify,
            ),
            metrics=top.metrics,
            warnings=tuple(str(w) for w in _ordered(self.warnings, self.doc.file)),
            disabled_notifiers=self.dropped,
        )

    # -- sections ---------------------------------------------------------------------------------

    def _top(self) -> ConfigFile | None:
        try:
            return ConfigFile.model_validate(self.data)
        except ValidationError as e:
            self.problems.extend(problems_from_validation(e, self.doc, ConfigFile))
            return None

    def _notifiers(self) -> dict[str, NotifierSettings]:
        if "notifiers" not in self.data:
            # A minimal config (sources and rules only) still shows its alerts somewhere.
            return {"console": ConsoleSettings(type="console")}
        raw = self.data["notifiers"]
        if not isinstance(raw, dict):
            return {}  # `notifiers:` left empty is no notifiers; other types: reported by _top
        out: dict[str, NotifierSettings] = {}
        for name, settings in raw.items():
            # A notifier whose variables are unset is off, even where default_notify names it: the
            # shipped config lists Slack and email there, and setting their variables switches
            # them on. `monitor check` and the daemon's start-up print the warning.
            unset = self.env.unset_under(("notifiers", name))
            if unset:
                variables = ", ".join(dict.fromkeys(str(r.name) for r in unset))
                self.dropped[str(name)] = f"{variables} not set"
                msg = f"notifier '{name}' is off: {variables} not set"
                self.warnings.append(Problem(self.doc.location(("notifiers", name), key=True), msg))
            validated = self._notifier(name, settings)
            if validated is not None and not unset:
                out[str(name)] = validated
        return out

    def _notifier(self, name: Any, settings: Any) -> NotifierSettings | None:
        shape = _notifier_shape(name, settings)
        if shape is not None:
            self._error(*shape)
            return None
        try:
            section = NotifiersSection.model_validate({"notifiers": {name: settings}})
        except ValidationError as e:
            self.problems.extend(problems_from_validation(e, self.doc, NotifiersSection))
            return None
        return section.notifiers[name]

    def _report_references(self) -> None:
        for ref in self.env.malformed:
            self.problems.append(Problem(self._ref_location(ref), describe(ref)))
        for ref in self.env.unset:
            if not (ref.path[0] == "notifiers" and str(ref.path[1]) in self.dropped):
                self.problems.append(Problem(self._ref_location(ref), describe(ref)))

    def _sources(self, polling: Polling) -> list[SourceConfig]:
        entries = self.data.get("sources")
        if not isinstance(entries, list):
            return []
        result = build_sources(
            self.doc,
            entries,
            base=self.path.parent,
            shown_base=self.shown_base,
            default_interval=polling.interval,
        )
        self.problems.extend(result.problems)
        self.warnings.extend(result.warnings)
        return result.sources

    def _rules(self, paths: list[str] | None) -> tuple[Path, ...]:
        resolved: dict[Path, None] = {}
        single = isinstance(self.data.get("rules"), str)
        for i, written in enumerate(paths or []):
            path = Path(os.path.normpath(self.path.parent / os.path.expanduser(written)))
            if not path.exists():
                hint = _sibling_hint(path, written)
                where: KeyPath = ("rules",) if single else ("rules", i)
                self._error(where, f"rules: '{written}' does not exist{hint}")
            resolved[path] = None
        return tuple(resolved)

    def _default_notify(
        self, top: ConfigFile | None, notifiers: Mapping[str, Any]
    ) -> tuple[str, ...]:
        if top is None:
            return ()
        if top.default_notify is None:
            chosen = tuple(n for n, s in notifiers.items() if isinstance(s, ConsoleSettings))
        else:
            chosen = self._names(top.default_notify, ("default_notify",)) or ()
            chosen = tuple(n for n in chosen if n not in self.dropped)
        if not chosen:
            self._warn(
                ("default_notify",),
                "default_notify is empty: alerts of rules naming no notifier are stored, not sent",
            )
        return chosen

    def _names(self, names: list[str] | None, where: KeyPath) -> tuple[str, ...] | None:
        """Check notifier names against the `notifiers` section, with did-you-mean."""
        if names is None:
            return None
        raw = self.data.get("notifiers")
        if "notifiers" not in self.data:
            declared = ["console"]  # the implicit one
        else:
            declared = [str(n) for n in raw] if isinstance(raw, dict) else []
        for i, name in enumerate(names):
            if name not in declared:
                hint = did_you_mean(name, declared) or (
                    f" (declared: {', '.join(declared)})"
                    if declared
                    else " (no notifiers declared)"
                )
                self._error((*where, i), f"unknown notifier '{name}'{hint}")
        return tuple(dict.fromkeys(names))

    def _database(self, url: str) -> str:
        """Relative SQLite paths are relative to the config folder, not to the daemon's cwd."""
        m = _SQLITE_FILE.match(url)
        if not m or not m.group(2) or m.group(2).startswith(("/", ":memory:", "file:")):
            return url
        path = os.path.normpath(self.path.parent / os.path.expanduser(m.group(2)))
        return f"{m.group(1)}:///{path}{m.group(3) or ''}"

    # -- problems ---------------------------------------------------------------------------------

    def _error(self, where: KeyPath, message: str) -> None:
        self.problems.append(Problem(self.doc.location(where), message))

    def _warn(self, where: KeyPath, message: str) -> None:
        self.warnings.append(Problem(self.doc.location(where), message))

    def _ref_location(self, ref: Reference) -> Location:
        """Point at the `${...}` itself when it is on the value's first line."""
        loc = self.doc.location(ref.path)
        if loc.line is None or loc.column is None or loc.line > len(self.lines):
            return loc
        col = self.lines[loc.line - 1].find(ref.text, loc.column - 1)
        return Location(loc.file, loc.line, col + 1) if col >= 0 else loc

    def _raise_problems(self) -> None:
        # A value whose `${VAR}` could not be expanded was validated as "": its validation error
        # (bad URL, not a number...) says nothing the reference problem does not say better.
        muted = {self.doc.location(r.path) for r in (*self.env.unset, *self.env.malformed)}
        kept = [p for p in self.problems if p.location not in muted or _is_reference(p)]
        if kept:
            raise ConfigError(_ordered(list(dict.fromkeys(kept)), self.doc.file))


def _is_reference(problem: Problem) -> bool:
    return problem.message.startswith(("environment variable ", "invalid reference "))


def _strings(value: Any) -> list[str] | None:
    """A list of strings read from the raw tree (a lone string counts as a list of one)."""
    items = [value] if isinstance(value, str) else value
    if isinstance(items, list) and all(isinstance(i, str) for i in items):
        return items
    return None


def _notifier_shape(name: Any, settings: Any) -> tuple[KeyPath, str] | None:
    """A problem with a notifier's mapping or `type`, found before validation: pydantic's own
    messages for a bad discriminator name no valid types and suggest nothing."""
    where: KeyPath = ("notifiers", name)
    kinds = ", ".join(NOTIFIER_TYPES)
    if not isinstance(settings, dict):
        return where, f"notifiers.{name}: expected a mapping with a 'type' ({kinds})"
    if "type" not in settings:
        return where, f"notifiers.{name}: missing required key 'type' (one of {kinds})"
    kind = settings["type"]
    if kind not in NOTIFIER_TYPES:
        hint = did_you_mean(str(kind), NOTIFIER_TYPES)
        msg = f"notifiers.{name}.type: unknown notifier type '{kind}'{hint}; one of {kinds}"
        return (*where, "type"), msg
    return None


def _section(model: type[Polling], raw: Any) -> Polling:
    try:
        return model.model_validate(raw if isinstance(raw, dict) else {})
    except ValidationError:
        return model()  # already reported by the top-level validation


def _sibling_hint(path: Path, written: str) -> str:
    if not path.parent.is_dir():
        return ""
    best = suggest(path.name, [p.name for p in path.parent.iterdir()])
    if not best:
        return ""
    return f" (did you mean '{os.path.join(os.path.dirname(written.rstrip('/')), best)}'?)"


def _ordered(problems: list[Problem], main_file: str) -> list[Problem]:
    def key(p: Problem) -> tuple[bool, str, int, int]:
        loc = p.location
        return (loc.file != main_file, loc.file, loc.line or 0, loc.column or 0)

    return sorted(problems, key=key)


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None) -> Config:
    shown = os.fspath(path)
    absolute = Path(os.path.abspath(os.path.expanduser(shown)))
    doc, text = read_document(absolute, shown)
    return Loader(doc, text, absolute, os.environ if env is None else env).build()


__all__ = ["NOTIFIER_TYPES", "load", "read_document"]
