"""config.yaml (DESIGN §3), parsed and validated once into frozen objects.

    config = load_config("config.yaml")  # ConfigError: every problem as `file:line:col: message`
    config.polling.interval, config.sources[0].url, config.notifiers["console"], config.summary()

Relative paths (database, rules, OPML imports) resolve against the config file's folder. `${VAR}`
and `${VAR:-default}` expand environment variables in string values. A notifier that references an
unset variable is switched off with a warning (`Config.warnings`) and left out of default_notify and
health.notify, so setting its variables is all it takes to switch it on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from monitor._config_load import NOTIFIER_TYPES, load
from monitor._config_model import (
    Config,
    Dedup,
    Delivery,
    FirstPoll,
    Health,
    Polling,
    SourceConfig,
)
from monitor._config_schema import DEFAULT_DATABASE


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file. `env` (default `os.environ`) supplies `${VAR}` values.
    Raises ConfigError carrying every problem found, each located in its file."""
    return load(path, env)


__all__ = [
    "DEFAULT_DATABASE",
    "NOTIFIER_TYPES",
    "Config",
    "Dedup",
    "Delivery",
    "FirstPoll",
    "Health",
    "Polling",
    "SourceConfig",
    "load_config",
]
