"""config.yaml (DESIGN §3): every key, every kind of mistake with its exact `file:line:col`,
`${VAR}` interpolation, OPML imports, and the shipped config.yaml."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from monitor import USER_AGENT
from monitor.config import Config, SourceConfig, load_config
from monitor.errors import ConfigError
from monitor.opml import url_digest
from notifiers.settings import ConsoleSettings, EmailSettings, SlackSettings, WebhookSettings

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "config"
FIXTURE_ENV = {
    "FIXTURE_SLACK_WEBHOOK": "https://hooks.slack.example/T000/B000/secret-token",
    "FIXTURE_SMTP_USER": "monitor",
    "FIXTURE_SMTP_PASSWORD": "hunter2-secret",
}
MINIMAL = """\
sources:
  - id: a
    url: https://example.org/feed
rules: [rules]
"""


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config folder that is also the working directory, so messages read `config.yaml:L:C`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules").mkdir()
    return tmp_path


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(folder: Path, text: str, env: Mapping[str, str] | None = None) -> Config:
    write(folder, text)
    return load_config("config.yaml", env=env or {})


def problems(folder: Path, text: str, env: Mapping[str, str] | None = None) -> list[str]:
    write(folder, text)
    with pytest.raises(ConfigError) as info:
        load_config("config.yaml", env=env or {})
    return [str(p) for p in info.value.problems]


# -- every key ------------------------------------------------------------------------------------


def test_every_key_of_the_design_is_read() -> None:
    config = load_config(FIXTURES / "full.yaml", env=FIXTURE_ENV)
    assert config.path == FIXTURES / "full.yaml"
    assert config.database == f"sqlite:///{FIXTURES}/state/monitor.db"
    p = config.polling
    assert (p.interval, p.timeout) == (timedelta(minutes=10), timedelta(seconds=15))
    assert (p.max_bytes, p.concurrency, p.per_host) == (5 * 1024**2, 16, 3)
    assert p.user_agent == "fixture-agent/1.0 (+https://example.org/agent)"
    assert config.first_poll.backfill == timedelta(hours=12)
    assert config.dedup.window == timedelta(hours=48)
    assert config.rules == (FIXTURES / "rules", FIXTURES / "rules" / "example.yaml")
    assert config.default_notify == ("console", "ops-hook")
    d = config.delivery
    assert (d.retry_first, d.retry_max, d.give_up) == (
        timedelta(seconds=10),
        timedelta(minutes=30),
        timedelta(hours=12),
    )
    assert config.retention == timedelta(days=30)
    h = config.health
    assert (h.failing_after, h.silent_after, h.notify) == (
        timedelta(hours=3),
        timedelta(days=5),
        ("ops-hook",),
    )
    assert config.metrics == "127.0.0.1:9108"
    assert config.disabled_notifiers == {}


def test_every_notifier_of_the_design_is_read() -> None:
    config = load_config(FIXTURES / "full.yaml", env=FIXTURE_ENV)
    assert list(config.notifiers) == ["console", "analysts-slack", "analysts-email", "ops-hook"]
    assert isinstance(config.notifiers["console"], ConsoleSettings)
    slack = config.notifiers["analysts-slack"]
    assert isinstance(slack, SlackSettings) and slack.webhook_url is not None
    assert slack.webhook_url.get_secret_value() == FIXTURE_ENV["FIXTURE_SLACK_WEBHOOK"]
    email = config.notifiers["analysts-email"]
    assert isinstance(email, EmailSettings)
    assert (email.host, email.port, email.security, email.username) == (
        "smtp.example.org",
        587,
        "starttls",
        "monitor",
    )
    assert email.password == SecretStr("hunter2-secret")
    assert (email.from_, email.to, email.digest) == (
        "Source Monitor <monitor@example.org>",
        ["analyst@example.org"],
        timedelta(hours=1),
    )
    hook = config.notifiers["ops-hook"]
    assert isinstance(hook, WebhookSettings)
    assert hook.url.get_secret_value() == "https://example.org/hooks/alerts"


def test_sources_direct_and_imported_from_opml() -> None:
    config = load_config(FIXTURES / "full.yaml", env=FIXTURE_ENV)
    by_id = {s.id: s for s in config.sources}
    assert by_id["isw"] == SourceConfig(
        id="isw",
        url="https://www.understandingwar.org/rss.xml",
        name="Institute for the Study of War",
        tags=("think-tank",),
        interval=timedelta(minutes=30),
    )
    # name defaults to the id; interval to polling.interval
    assert by_id["plain"].name == "plain"
    assert by_id["plain"].interval == timedelta(minutes=10)
    assert by_id["plain"].tags == ()
    assert [s.id for s in config.sources] == [
        "isw",
        "plain",
        "38-north",
        "nk-news",
        "the-moscow-times",
        next(i for i in by_id if i.startswith("plain-")),  # collides with the direct `plain`
        "meduza-io",  # a title with no Latin letters: named after the host
    ]
    north = by_id["38-north"]
    assert (north.url, north.name, north.tags, north.interval) == (
        "https://www.38north.org/feed/",
        "38 North",
        ("imported", "korea"),
        timedelta(hours=2),
    )
    assert by_id["nk-news"].tags == ("imported", "korea", "korea-watch")
    assert by_id["the-moscow-times"].tags == ("imported", "russia-ukraine")


def test_opml_import_warns_about_what_it_skips() -> None:
    config = load_config(FIXTURES / "full.yaml", env=FIXTURE_ENV)
    opml = str(FIXTURES / "feeds" / "extra.opml")
    assert config.warnings == (
        f"{opml}:14:7: skipped 'ISW (again)': the same URL as source 'isw'",
        f"{opml}:16:7: skipped 'Gopher': not an http(s) URL: 'gopher://example.org/feed'",
    )


def test_opml_ids_do_not_depend_on_the_order_of_outlines(cwd: Path) -> None:
    def ids(urls: list[str]) -> dict[str, str]:
        body = "".join(f'<outline title="News" xmlUrl="{u}"/>' for u in urls)
        write(cwd, f'<opml version="2.0"><body>{body}</body></opml>', "f.opml")
        config = load(cwd, "sources:\n  - opml: f.opml\nrules: [rules]\n")
        return {s.url: s.id for s in config.sources}

    a, b, c = (f"https://{x}.example/feed" for x in "abc")
    first, second = ids([a, b, c]), ids([a, c, b])
    assert first[a] == second[a] == "news"
    # A counter would make these news-2 and news-3 depending on the order.
    assert first[b] == second[b] and first[c] == second[c]
    assert len(set(first.values())) == 3 and first[b].startswith("news-")


def test_defaults(cwd: Path) -> None:
    config = load(cwd, MINIMAL)
    assert config.database == f"sqlite:///{cwd}/data/monitor.db"
    assert config.polling.interval == timedelta(minutes=15)
    assert config.polling.timeout == timedelta(seconds=20)
    assert config.polling.max_bytes == 10 * 1024**2
    assert (config.polling.concurrency, config.polling.per_host) == (32, 2)
    assert config.polling.user_agent == USER_AGENT
    assert config.first_poll.backfill == timedelta(hours=24)
    assert config.dedup.window == timedelta(hours=72)
    assert config.delivery.retry_first == timedelta(seconds=30)
    assert config.delivery.retry_max == timedelta(hours=1)
    assert config.delivery.give_up == timedelta(hours=24)
    assert config.retention == timedelta(days=90)
    assert config.health.failing_after == timedelta(hours=6)
    assert config.health.silent_after == timedelta(days=7)
    assert config.metrics is None
    # No `notifiers:` at all: alerts still show on the console.
    assert config.notifiers == {"console": ConsoleSettings(type="console")}
    assert config.default_notify == ("console",)
    assert config.health.notify == ("console",)
    assert config.sources[0].name == "a" and config.sources[0].interval == timedelta(minutes=15)
    assert config.warnings == ()


def test_default_notify_is_every_console_notifier_or_nothing(cwd: Path) -> None:
    config = load(cwd, MINIMAL + "notifiers:\n  screen: {type: console}\n")
    assert config.default_notify == ("screen",) and config.health.notify == ("screen",)
    hook = "notifiers:\n  hook: {type: webhook, url: 'https://example.org/h'}\n"
    config = load(cwd, MINIMAL + hook)
    assert config.default_notify == ()
    assert config.warnings == (
        "config.yaml:1:1: default_notify is empty: alerts of rules naming no notifier are stored, "
        "not sent",
    )


def test_empty_notifiers_section_means_none(cwd: Path) -> None:
    config = load(cwd, MINIMAL + "notifiers:\n")
    assert config.notifiers == {} and config.default_notify == ()


def test_health_notify_defaults_to_default_notify(cwd: Path) -> None:
    text = MINIMAL + (
        "notifiers:\n  console: {type: console}\n  hook: {type: webhook, url: 'https://e.org/h'}\n"
        "default_notify: [hook, console, hook]\n"
    )
    config = load(cwd, text)
    assert config.default_notify == ("hook", "console")  # repeats dropped, order kept
    assert config.health.notify == ("hook", "console")


def test_paths_resolve_against_the_config_folder_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc" / "monitor"
    (folder / "my-rules").mkdir(parents=True)
    write(
        folder,
        "<opml><body><outline title='X' xmlUrl='https://x.example/f'/></body></opml>",
        "f.opml",
    )
    write(folder, "sources:\n  - opml: f.opml\nrules: [my-rules, ../monitor/my-rules/]\n")
    monkeypatch.chdir(tmp_path)
    config = load_config("etc/monitor/config.yaml", env={})
    assert config.path == folder / "config.yaml"
    assert config.rules == (folder / "my-rules",)  # the same folder twice counts once
    assert config.database == f"sqlite:///{folder}/data/monitor.db"
    assert [s.url for s in config.sources] == ["https://x.example/f"]


@pytest.mark.parametrize(
    ("written", "resolved"),
    [
        ("sqlite:///state.db?timeout=5", "sqlite:///{dir}/state.db?timeout=5"),
        ("sqlite+pysqlite:///a/../b.db", "sqlite+pysqlite:///{dir}/b.db"),
        ("sqlite:////var/lib/monitor.db", "sqlite:////var/lib/monitor.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite://", "sqlite://"),
        ("postgresql+psycopg://monitor@db.example.org/monitor", None),
    ],
)
def test_database_urls(cwd: Path, written: str, resolved: str | None) -> None:
    config = load(cwd, MINIMAL + f"database: '{written}'\n")
    assert config.database == (resolved or written).format(dir=cwd)


def test_rules_may_be_a_single_path(cwd: Path) -> None:
    config = load(cwd, MINIMAL.replace("rules: [rules]", "rules: rules"))
    assert config.rules == (cwd / "rules",)


def test_no_rules_is_allowed_but_warned(cwd: Path) -> None:
    config = load(cwd, "sources: []\n")
    assert config.rules == () and config.sources == ()
    assert config.warnings == ("config.yaml:1:1: no rules: nothing will ever alert",)


def test_config_is_frozen(cwd: Path) -> None:
    config = load(cwd, MINIMAL)
    with pytest.raises(ValidationError):
        config.retention = timedelta(days=1)
    with pytest.raises(ValidationError):
        config.polling.interval = timedelta(seconds=1)


def test_summary(cwd: Path) -> None:
    config = load_config(FIXTURES / "full.yaml", env=FIXTURE_ENV)
    assert config.summary() == (
        f"{FIXTURES / 'full.yaml'}: 7 sources, 2 rule paths, "
        "4 notifiers (console, analysts-slack, analysts-email, ops-hook)"
    )
    env = {k: v for k, v in FIXTURE_ENV.items() if k != "FIXTURE_SLACK_WEBHOOK"}
    assert (
        load_config(FIXTURES / "full.yaml", env=env)
        .summary()
        .endswith("3 notifiers (console, analysts-email, ops-hook); disabled: analysts-slack")
    )
    assert load(cwd, MINIMAL).summary() == (
        "config.yaml: 1 source, 1 rule path, 1 notifier (console)"
    )


# -- the file itself ------------------------------------------------------------------------------


def test_missing_file(cwd: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("nope.yaml", env={})
    assert str(info.value) == "nope.yaml: cannot read config: No such file or directory"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(cwd: Path, text: str) -> None:
    assert problems(cwd, text) == [
        "config.yaml:1:1: the config file is empty: it needs at least 'sources' and 'rules'"
    ]


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str")])
def test_top_level_must_be_a_mapping(cwd: Path, text: str, kind: str) -> None:
    assert problems(cwd, text) == [
        "config.yaml:1:1: expected a mapping of settings (database, polling, sources, ...), "
        f"got a {kind}"
    ]


def test_invalid_yaml(cwd: Path) -> None:
    text = "polling:\n  interval: 15m\n   timeout: 20s\n"
    (found,) = problems(cwd, text)
    # libyaml says "... in this context", the pure-Python parser "... here".
    assert found.startswith("config.yaml:3:11: invalid YAML: mapping values are not allowed ")


def test_unclosed_flow_sequence(cwd: Path) -> None:
    text = "rules: [rules\nsources: []\n"
    (found,) = problems(cwd, text)
    assert found.startswith("config.yaml:2:") and "invalid YAML" in found


def test_duplicate_key(cwd: Path) -> None:
    assert problems(cwd, MINIMAL + "rules: [other]\n") == ["config.yaml:5:1: duplicate key 'rules'"]


def test_not_utf8(cwd: Path) -> None:
    (cwd / "config.yaml").write_bytes(b"sources: []\nrules: [r\xe9gles]\n")
    with pytest.raises(ConfigError) as info:
        load_config("config.yaml", env={})
    assert str(info.value) == "config.yaml:2:10: not UTF-8 text"


def test_utf8_bom_is_accepted(cwd: Path) -> None:
    (cwd / "config.yaml").write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_config("config.yaml", env={}).sources[0].id == "a"


# -- misspelt keys at each level, with did-you-mean -----------------------------------------------


def test_misspelt_top_level_key(cwd: Path) -> None:
    assert problems(cwd, MINIMAL + "retension: 30d\n") == [
        "config.yaml:5:1: unknown key 'retension' (did you mean 'retention'?)"
    ]


@pytest.mark.parametrize(
    ("section", "typo", "meant"),
    [
        ("polling", "intervall", "interval"),
        ("polling", "max_byte", "max_bytes"),
        ("first_poll", "backfil", "backfill"),
        ("dedup", "windw", "window"),
        ("delivery", "retry_frist", "retry_first"),
        ("health", "notfy", "notify"),
        ("health", "failing_afer", "failing_after"),
    ],
)
def test_misspelt_section_key(cwd: Path, section: str, typo: str, meant: str) -> None:
    text = MINIMAL + f"{section}:\n  {typo}: 1h\n"
    assert problems(cwd, text) == [
        f"config.yaml:6:3: unknown key '{typo}' (did you mean '{meant}'?)"
    ]


def test_misspelt_source_keys(cwd: Path) -> None:
    text = """\
    sources:
      - id: a
        url: https://example.org/feed
        intervall: 5m
      - opm: feeds.opml
      - opml: feeds.opml
        tag: [x]
    rules: [rules]
    """
    assert problems(cwd, text) == [
        "config.yaml:4:5: unknown key 'intervall' (did you mean 'interval'?)",
        "config.yaml:5:5: sources.1: missing required key 'id'",
        "config.yaml:5:5: sources.1: missing required key 'url'",
        "config.yaml:5:5: unknown key 'opm' (did you mean 'opml'?)",
        "config.yaml:7:5: unknown key 'tag' (did you mean 'tags'?)",
    ]


def test_misspelt_notifier_keys(cwd: Path) -> None:
    text = MINIMAL + textwrap.dedent("""\
    notifiers:
      console: {type: console, min_levl: high}
      slack:
        type: slack
        webhok_url: https://hooks.example/x
      mail:
        type: email
        host: smtp.example.org
        form: a@example.org
        to: [b@example.org]
    """)
    assert problems(cwd, text) == [
        "config.yaml:6:28: unknown key 'min_levl' (did you mean 'min_level'?)",
        "config.yaml:9:5: unknown key 'webhok_url' (did you mean 'webhook_url'?)",
        "config.yaml:11:5: notifiers.mail: missing required key 'from'",
        "config.yaml:13:5: unknown key 'form' (did you mean 'from'?)",
    ]


def test_notifier_type_problems(cwd: Path) -> None:
    text = MINIMAL + textwrap.dedent("""\
    notifiers:
      a: {type: slak, webhook_url: x}
      b: {webhook_url: x}
      c: console
    default_notify: []
    """)
    kinds = "console, slack, email, webhook, apprise"
    assert problems(cwd, text) == [
        f"config.yaml:6:13: notifiers.a.type: unknown notifier type 'slak' (did you mean 'slack'?);"
        f" one of {kinds}",
        f"config.yaml:7:6: notifiers.b: missing required key 'type' (one of {kinds})",
        f"config.yaml:8:6: notifiers.c: expected a mapping with a 'type' ({kinds})",
    ]


# -- values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("1.5h", timedelta(minutes=90)),
        ("45", timedelta(seconds=45)),
    ],
)
def test_good_durations(cwd: Path, value: str, expected: timedelta) -> None:
    assert load(cwd, MINIMAL + f"polling:\n  interval: {value}\n").polling.interval == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("15 minutes", "expected a duration like 90s, 15m, 2h or 7d, got '15 minutes'"),
        ("-5m", "expected a duration like 90s, 15m, 2h or 7d, got '-5m'"),
        ("1y", "expected a duration like 90s, 15m, 2h or 7d, got '1y'"),
        ("true", "expected a duration like 90s, 15m, 2h or 7d, got True"),
        ("0", "must be longer than 0"),
        ("0s", "must be longer than 0"),
        ("[15m]", "expected a duration like 90s, 15m, 2h or 7d, got ['15m']"),
    ],
)
def test_bad_durations(cwd: Path, value: str, message: str) -> None:
    text = MINIMAL + f"polling:\n  interval: {value}\n"
    assert problems(cwd, text) == [f"config.yaml:6:13: polling.interval: {message}"]


def test_zero_is_a_valid_backfill_and_health_threshold(cwd: Path) -> None:
    text = MINIMAL + "first_poll: {backfill: 0}\nhealth: {failing_after: 0, silent_after: 0s}\n"
    config = load(cwd, text)
    assert config.first_poll.backfill == timedelta(0)
    assert config.health.failing_after == config.health.silent_after == timedelta(0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("10MiB", 10 * 1024**2), ("512KiB", 512 * 1024), ("1GB", 10**9), ("2048", 2048)],
)
def test_good_sizes(cwd: Path, value: str, expected: int) -> None:
    assert load(cwd, MINIMAL + f"polling:\n  max_bytes: {value}\n").polling.max_bytes == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10 MiBs", "expected a size like 512KiB or 10MiB, got '10 MiBs'"),
        ("big", "expected a size like 512KiB or 10MiB, got 'big'"),
        ("-1", "a size cannot be negative"),
        ("0", "Input should be greater than or equal to 1"),
    ],
)
def test_bad_sizes(cwd: Path, value: str, message: str) -> None:
    text = MINIMAL + f"polling:\n  max_bytes: {value}\n"
    assert problems(cwd, text) == [f"config.yaml:6:14: polling.max_bytes: {message}"]


def test_bad_numbers_and_user_agent(cwd: Path) -> None:
    text = (
        MINIMAL + 'polling:\n  concurrency: 0\n  per_host: two\n  user_agent: "a\\r\\nX-Evil: 1"\n'
    )
    assert problems(cwd, text) == [
        "config.yaml:6:16: polling.concurrency: Input should be greater than or equal to 1",
        "config.yaml:7:13: polling.per_host: Input should be a valid integer, unable to parse "
        "string as an integer",
        "config.yaml:8:15: polling.user_agent: user_agent must be one non-empty line",
    ]


def test_delivery_retry_max_shorter_than_retry_first(cwd: Path) -> None:
    text = MINIMAL + "delivery:\n  retry_first: 5m\n  retry_max: 1m\n"
    assert problems(cwd, text) == [
        "config.yaml:6:3: delivery: retry_max (1m) is shorter than retry_first (5m)"
    ]


@pytest.mark.parametrize("value", ["127.0.0.1:9108", "[::1]:9108", "0.0.0.0:80", "localhost:65535"])
def test_good_metrics(cwd: Path, value: str) -> None:
    assert load(cwd, MINIMAL + f"metrics: '{value}'\n").metrics == value


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("9108", "9108"),
        ("localhost", "'localhost'"),
        ("'h:70000'", "'h:70000'"),
        ("':9108'", "':9108'"),
    ],
)
def test_bad_metrics(cwd: Path, value: str, shown: str) -> None:
    assert problems(cwd, MINIMAL + f"metrics: {value}\n") == [
        f"config.yaml:5:10: metrics: expected host:port such as 127.0.0.1:9108, got {shown}"
    ]


def test_bad_database_url_is_not_echoed(cwd: Path) -> None:
    found = problems(cwd, MINIMAL + "database: monitor:hunter2@db/monitor\n")
    assert found == [
        "config.yaml:5:11: database: expected an SQLAlchemy URL such as sqlite:///data/monitor.db "
        "or postgresql+psycopg://user@host/dbname"
    ]


def test_bad_sources(cwd: Path) -> None:
    text = """\
    sources:
      - id: ISW
        url: https://example.org/a
      - id: b
        url: ftp://example.org/b
      - id: c
        url: example.org/c
      - https://example.org/d
      - id: e
        url: https://example.org/e
        tags: [ok, "two words"]
      - id: -f
        url: https://example.org/f
    rules: [rules]
    """
    assert problems(cwd, text) == [
        "config.yaml:2:9: sources.0.id: invalid source id 'ISW': use lower-case letters, digits, "
        "'.', '_' and '-', starting with a letter or digit",
        "config.yaml:5:10: sources.1.url: expected an http:// or https:// URL, got "
        "'ftp://example.org/b'",
        "config.yaml:7:10: sources.2.url: expected an http:// or https:// URL, got 'example.org/c'",
        "config.yaml:8:5: sources.3: expected a mapping with 'id' and 'url' (or 'opml')",
        "config.yaml:11:16: sources.4.tags.1: invalid tag 'two words': a tag is one word "
        "(letters, digits, '-', '_')",
        "config.yaml:12:9: sources.5.id: invalid source id '-f': use lower-case letters, digits, "
        "'.', '_' and '-', starting with a letter or digit",
    ]


def test_duplicate_source_ids_name_the_first(cwd: Path) -> None:
    text = """\
    sources:
      - id: isw
        url: https://example.org/a
      - id: other
        url: https://example.org/b
      - id: isw
        url: https://example.org/c
    rules: [rules]
    """
    assert problems(cwd, text) == [
        "config.yaml:6:9: duplicate source id 'isw' (first defined at line 2)"
    ]


def test_same_url_twice_is_a_warning(cwd: Path) -> None:
    text = MINIMAL + "  - id: b\n    url: https://example.org/feed\n"
    text = text.replace("rules: [rules]\n", "") + "rules: [rules]\n"
    config = load(cwd, text)
    assert config.warnings == ("config.yaml:5:10: source 'b' polls the same URL as source 'a'",)


def test_sources_must_be_a_list(cwd: Path) -> None:
    assert problems(cwd, "sources: {id: a}\nrules: [rules]\n") == [
        "config.yaml:1:10: sources: Input should be a valid list"
    ]


def test_missing_rule_paths_suggest_a_neighbour(cwd: Path) -> None:
    (cwd / "rules" / "packs").mkdir()
    text = (
        "sources: []\nrules: [rules/pack, rules/packs/, elsewhere/x.yaml, rules/packs/kn23.yml]\n"
    )
    assert problems(cwd, text) == [
        "config.yaml:2:9: rules: 'rules/pack' does not exist (did you mean 'rules/packs'?)",
        "config.yaml:2:35: rules: 'elsewhere/x.yaml' does not exist",
        "config.yaml:2:53: rules: 'rules/packs/kn23.yml' does not exist",
    ]


def test_single_missing_rule_path(cwd: Path) -> None:
    assert problems(cwd, "rules: rulez\n") == [
        "config.yaml:1:8: rules: 'rulez' does not exist (did you mean 'rules'?)"
    ]


def test_unknown_notifier_names(cwd: Path) -> None:
    text = MINIMAL + textwrap.dedent("""\
    notifiers:
      console: {type: console}
      analysts-slack: {type: slack, webhook_url: 'https://hooks.example/x'}
    default_notify: [consol]
    health:
      notify: [console, analyst-slack, pager]
    """)
    assert problems(cwd, text) == [
        "config.yaml:8:18: unknown notifier 'consol' (did you mean 'console'?)",
        "config.yaml:10:21: unknown notifier 'analyst-slack' (did you mean 'analysts-slack'?)",
        "config.yaml:10:36: unknown notifier 'pager' (declared: console, analysts-slack)",
    ]


def test_notifier_names_when_none_are_declared(cwd: Path) -> None:
    assert problems(cwd, MINIMAL + "notifiers: {}\ndefault_notify: [console]\n") == [
        "config.yaml:6:18: unknown notifier 'console' (no notifiers declared)"
    ]
    # With no `notifiers:` key, the implicit console notifier can be named.
    assert load(cwd, MINIMAL + "default_notify: [console]\n").default_notify == ("console",)


def test_every_problem_is_reported_at_once_in_file_order(cwd: Path) -> None:
    text = """\
    database: nowhere
    polling:
      interval: soon
    sources:
      - id: A
        url: https://example.org/a
    rules: [missing]
    notifiers:
      x: {type: nope}
    retention: 0
    """
    found = problems(cwd, text)
    assert [p.split(":")[1:3] for p in found] == [
        ["1", "11"],
        ["3", "13"],
        ["5", "9"],
        ["7", "9"],
        ["9", "13"],
        ["10", "12"],
    ]


# -- ${VAR} interpolation -------------------------------------------------------------------------


def test_variables_and_defaults(cwd: Path) -> None:
    text = MINIMAL + textwrap.dedent("""\
    database: ${DB:-sqlite:///x.db}
    polling:
      interval: ${INTERVAL}
      timeout: ${TIMEOUT:-7s}
      concurrency: ${CONC:-8}
      user_agent: "bot/${VERSION} (${CONTACT:-ops@example.org}) $$HOME $${LITERAL}"
    """)
    env = {"INTERVAL": "2m", "VERSION": "3", "CONC": ""}
    config = load(cwd, text, env)
    assert config.database == f"sqlite:///{cwd}/x.db"
    assert config.polling.interval == timedelta(minutes=2)
    assert config.polling.timeout == timedelta(seconds=7)
    assert config.polling.concurrency == 8  # set but empty: the default applies
    assert config.polling.user_agent == "bot/3 (ops@example.org) $$HOME ${LITERAL}"


def test_values_from_the_environment_cannot_change_the_structure(cwd: Path) -> None:
    text = MINIMAL.replace("url: https://example.org/feed", "url: ${FEED}") + "metrics: ${M}\n"
    env = {"FEED": "https://example.org/x\nrules: [elsewhere]", "M": "127.0.0.1:9108"}
    assert problems(cwd, text, env) == [
        "config.yaml:3:10: sources.0.url: a URL cannot contain spaces: "
        "'https://example.org/x\\nrules: [elsewhere]'"
    ]
    config = load(cwd, text, {"FEED": "https://example.org/x?a=1&b=${NOT_EXPANDED}", "M": "h:1"})
    assert config.sources[0].url == "https://example.org/x?a=1&b=${NOT_EXPANDED}"


def test_os_environ_is_the_default(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_TEST_RETENTION", "12d")
    write(cwd, MINIMAL + "retention: ${MONITOR_TEST_RETENTION}\n")
    assert load_config("config.yaml").retention == timedelta(days=12)


def test_unset_variable_is_located_at_the_reference(cwd: Path) -> None:
    text = (
        MINIMAL
        + 'database: "postgresql://monitor:${PGPASSWORD}@db/monitor"\npolling:\n  timeout: ${T}\n'
    )
    assert problems(cwd, text, {"T": ""}) == [
        "config.yaml:5:33: environment variable PGPASSWORD is not set "
        "(set it, or write ${PGPASSWORD:-default} to give a default)",
        "config.yaml:7:12: environment variable T is not set "
        "(set it, or write ${T:-default} to give a default)",
    ]


@pytest.mark.parametrize(
    ("written", "column"),
    [("${}", 11), ("${1X}", 11), ("${X-def}", 11), ("${X", 11), ("https://e.org/${A B}", 25)],
)
def test_malformed_references(cwd: Path, written: str, column: int) -> None:
    reference = written[written.index("$") :]
    text = MINIMAL + f"metrics: '{written}'\n"
    assert problems(cwd, text) == [
        f"config.yaml:5:{column}: invalid reference "
        f"'{reference}': write ${{NAME}} or ${{NAME:-default}}"
    ]


NOTIFIERS = """\
notifiers:
  console: {type: console}
  analysts-slack:
    type: slack
    webhook_url: ${SLACK_WEBHOOK_URL}
  analysts-email:
    type: email
    host: smtp.example.org
    port: ${SMTP_PORT}
    username: ${SMTP_USER}
    password: ${SMTP_PASSWORD}
    from: monitor@example.org
    to: [analyst@example.org]
"""


def test_notifier_with_unset_variables_is_switched_off(cwd: Path) -> None:
    config = load(cwd, MINIMAL + NOTIFIERS)
    assert list(config.notifiers) == ["console"]
    assert config.disabled_notifiers == {
        "analysts-slack": "SLACK_WEBHOOK_URL not set",
        "analysts-email": "SMTP_PORT, SMTP_USER, SMTP_PASSWORD not set",
    }
    assert config.warnings == (
        "config.yaml:7:3: notifier 'analysts-slack' is off: SLACK_WEBHOOK_URL not set",
        "config.yaml:10:3: notifier 'analysts-email' is off: SMTP_PORT, SMTP_USER, SMTP_PASSWORD "
        "not set",
    )


def test_notifier_comes_on_when_its_variables_are_set(cwd: Path) -> None:
    env = {"SLACK_WEBHOOK_URL": "https://hooks.slack.example/secret", "SMTP_USER": "u"}
    config = load(cwd, MINIMAL + NOTIFIERS, env)
    assert list(config.notifiers) == ["console", "analysts-slack"]
    assert list(config.disabled_notifiers) == ["analysts-email"]


def test_notifier_named_by_default_notify_switches_on_with_its_variables(cwd: Path) -> None:
    text = MINIMAL + NOTIFIERS + "default_notify: [console, analysts-slack]\n"
    config = load(cwd, text)
    assert config.default_notify == ("console",)
    assert "notifier 'analysts-slack' is off: SLACK_WEBHOOK_URL not set" in config.warnings[0]
    config = load(cwd, text, {"SLACK_WEBHOOK_URL": "https://hooks.slack.example/secret"})
    assert config.default_notify == ("console", "analysts-slack")


def test_notifier_named_by_health_notify_switches_on_with_its_variables(cwd: Path) -> None:
    text = MINIMAL + NOTIFIERS + "health:\n  notify: [analysts-email]\n"
    assert load(cwd, text, {"SMTP_USER": "u"}).health.notify == ()
    env = {"SMTP_USER": "u", "SMTP_PORT": "25", "SMTP_PASSWORD": "p"}
    assert load(cwd, text, env).health.notify == ("analysts-email",)


def test_switched_off_notifier_still_has_its_typos_reported(cwd: Path) -> None:
    text = MINIMAL + NOTIFIERS.replace("    from: monitor", "    frm: monitor")
    assert problems(cwd, text) == [
        "config.yaml:11:5: notifiers.analysts-email: missing required key 'from'",
        "config.yaml:16:5: unknown key 'frm' (did you mean 'from'?)",
    ]


def test_secrets_never_appear_in_problems(cwd: Path) -> None:
    secret = "https://hooks.slack.example/T0/B0/very-secret"
    text = MINIMAL + NOTIFIERS + "default_notify: [analysts-slack, analysts-email]\n"
    env = {"SLACK_WEBHOOK_URL": secret, "SMTP_PORT": "not-a-port", "SMTP_PASSWORD": "hunter2"}
    found = problems(cwd, text.replace("type: slack", "type: slack\n    chanel: x"), env)
    assert found and not any(secret in p or "hunter2" in p for p in found)
    assert "config.yaml:9:5: unknown key 'chanel' (did you mean 'channel'?)" in found


# -- OPML imports ---------------------------------------------------------------------------------


def test_missing_opml_file(cwd: Path) -> None:
    assert problems(cwd, "sources:\n  - opml: feeds/none.opml\nrules: [rules]\n") == [
        "config.yaml:2:11: cannot read OPML file 'feeds/none.opml': No such file or directory"
    ]


def test_broken_opml_is_located_in_the_opml_file(cwd: Path) -> None:
    write(cwd, '<opml version="2.0">\n<body>\n  <outline title="a" xmlUrl="x>\n</body>', "f.opml")
    (found,) = problems(cwd, "sources:\n  - opml: f.opml\nrules: [rules]\n")
    assert found.startswith("f.opml:4:") and "invalid OPML" in found


def test_opml_problems_follow_config_problems(cwd: Path) -> None:
    write(cwd, "<!DOCTYPE opml><opml/>", "f.opml")
    text = "sources:\n  - opml: f.opml\n  - id: X\n    url: https://e.org/x\nrules: [rules]\n"
    assert [p.split(":")[0] for p in problems(cwd, text)] == ["config.yaml", "f.opml"]


def test_opml_without_feeds_is_a_warning(cwd: Path) -> None:
    write(cwd, "<opml><body><outline text='empty folder'/></body></opml>", "f.opml")
    config = load(cwd, "sources:\n  - opml: f.opml\nrules: [rules]\n")
    assert config.warnings == ("config.yaml:2:11: no feeds (outlines with xmlUrl) in 'f.opml'",)


# -- the shipped config.yaml ----------------------------------------------------------------------


def test_shipped_config_loads_with_no_environment() -> None:
    config = load_config(REPO / "config.yaml", env={})
    assert config.rules == (REPO / "rules" / "packs",)
    assert config.database == f"sqlite:///{REPO}/data/monitor.db"
    assert config.default_notify == ("console",) and config.health.notify == ("console",)
    assert list(config.notifiers) == ["console"]
    assert set(config.disabled_notifiers) == {"analysts-slack", "analysts-email"}
    assert len(config.sources) >= 20
    assert len({s.id for s in config.sources}) == len(config.sources)
    assert all(s.url.startswith("https://") for s in config.sources)
    assert {"isw", "38north", "nknews", "meduza", "kyivindependent", "yonhap"} <= {
        s.id for s in config.sources
    }
    assert any("news.google.com/rss/search" in s.url for s in config.sources)


def test_shipped_config_notifiers_switch_on_with_environment() -> None:
    env = {
        "SLACK_WEBHOOK_URL": "https://hooks.slack.example/T/B/x",
        "SMTP_HOST": "smtp.example.org",
        "SMTP_USER": "monitor",
        "SMTP_PASSWORD": "pw",
        "ALERT_EMAIL_FROM": "monitor@example.org",
        "ALERT_EMAIL_TO": "analyst@example.org",
    }
    config = load_config(REPO / "config.yaml", env=env)
    assert list(config.notifiers) == ["console", "analysts-slack", "analysts-email"]
    email = config.notifiers["analysts-email"]
    assert isinstance(email, EmailSettings)
    assert (email.port, email.to) == (587, ["analyst@example.org"])
    assert config.disabled_notifiers == {} and config.warnings == ()


def test_yaml_anchors(cwd: Path) -> None:
    text = """\
    sources:
      - {id: a, url: "https://a.example/rss", tags: &news [news, korea], interval: &slow 1h}
      - {id: b, url: "https://b.example/rss", tags: *news, interval: *slow}
      - {id: c, url: "https://c.example/rss", tags: *news, intervl: *slow}
    rules: [rules]
    """
    assert problems(cwd, text) == [
        "config.yaml:4:56: unknown key 'intervl' (did you mean 'interval'?)"
    ]
    config = load(cwd, text.replace("intervl", "interval"))
    assert [(s.id, s.tags, s.interval) for s in config.sources] == [
        (x, ("news", "korea"), timedelta(hours=1)) for x in "abc"
    ]


def test_reference_in_a_block_scalar_points_at_the_value(cwd: Path) -> None:
    text = MINIMAL + "metrics: >-\n  ${M}\n"
    assert problems(cwd, text) == [
        "config.yaml:5:10: environment variable M is not set "
        "(set it, or write ${M:-default} to give a default)"
    ]


def test_opml_id_suffix_when_even_the_digest_is_taken(cwd: Path) -> None:
    url = "https://n.example/rss"
    write(cwd, f'<opml><body><outline title="News" xmlUrl="{url}"/></body></opml>', "f.opml")
    text = f"""\
    sources:
      - {{id: news, url: "https://a.example/rss"}}
      - {{id: news-{url_digest(url)}, url: "https://b.example/rss"}}
      - opml: f.opml
    rules: [rules]
    """
    config = load(cwd, text)
    assert config.sources[-1].id == f"news-{url_digest(url)}-2"
