"""Prometheus metrics and /healthz: counters as scraped from a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterable

import httpx
import prometheus_client
import pytest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from monitor import __version__
from monitor.errors import ConfigError
from monitor.metrics import INVALID_LABEL, Metrics, MetricsServer, split_address

SECRET_URL = "https://hooks.slack.com/services/T000/B000/hunter2"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample `name{labels}` in exposition `text`, or None when it is absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


def labelled(text: str, name: str) -> list[dict[str, str]]:
    return [
        s.labels
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def scrape(metrics: Metrics) -> str:
    return metrics.render().decode()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics(clock: Clock) -> Metrics:
    return Metrics("host-1", clock=clock)


@pytest.fixture
async def server(metrics: Metrics, clock: Clock) -> AsyncIterator[MetricsServer]:
    async with MetricsServer(metrics, "127.0.0.1:0", stale_after=120.0, clock=clock) as s:
        yield s


@pytest.fixture
async def client(server: MetricsServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as c:
        yield c


async def raw(port: int, request: bytes) -> bytes:
    """Send bytes as they are, then EOF, and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        writer.write_eof()
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


# --- what is counted --------------------------------------------------------------------------


def test_poll_outcomes_and_error_kinds(metrics: Metrics, clock: Clock) -> None:
    for outcome in ["ok", "ok", "not_modified", "unchanged", "timeout", "http_500", "http_500"]:
        metrics.poll("isw", outcome, 0.2)
    text = scrape(metrics)
    assert value(text, "monitor_polls_total", outcome="ok") == 2
    assert value(text, "monitor_polls_total", outcome="not_modified") == 1
    assert value(text, "monitor_polls_total", outcome="unchanged") == 1
    assert value(text, "monitor_polls_total", outcome="error") == 3
    assert value(text, "monitor_poll_errors_total", kind="timeout") == 1
    assert value(text, "monitor_poll_errors_total", kind="http_500") == 2
    assert value(text, "monitor_poll_errors_total", kind="ok") is None
    assert value(text, "monitor_poll_duration_seconds_count") == 7
    assert value(text, "monitor_poll_duration_seconds_bucket", le="0.25") == 7
    assert value(text, "monitor_poll_duration_seconds_bucket", le="0.1") == 0


def test_per_source_timestamps_follow_the_clock(metrics: Metrics, clock: Clock) -> None:
    metrics.poll("isw", "ok", 0.1)
    metrics.items("isw", 3)
    succeeded = clock.now
    clock.now += 60
    metrics.poll("isw", "timeout", 20.0)
    metrics.items("isw", 0)  # a poll with nothing new must not look like fresh news
    text = scrape(metrics)
    assert value(text, "monitor_source_last_poll_timestamp", source="isw") == clock.now
    assert value(text, "monitor_source_last_success_timestamp", source="isw") == succeeded
    assert value(text, "monitor_source_last_new_item_timestamp", source="isw") == succeeded
    assert value(text, "monitor_items_new_total") == 3


def test_a_source_that_never_succeeded_has_no_success_sample(metrics: Metrics) -> None:
    metrics.poll("broken", "dns", 0.01)
    text = scrape(metrics)
    assert value(text, "monitor_source_last_poll_timestamp", source="broken") is not None
    assert value(text, "monitor_source_last_success_timestamp", source="broken") is None


def test_retain_sources_drops_removed_sources(metrics: Metrics) -> None:
    for source in ["a", "b", "c"]:
        metrics.poll(source, "ok", 0.1)
        metrics.items(source, 1)
    metrics.retain_sources(["a", "c"])
    text = scrape(metrics)
    for name in ["last_poll", "last_success", "last_new_item"]:
        found = labelled(text, f"monitor_source_{name}_timestamp")
        assert found == [{"source": "a"}, {"source": "c"}]


def test_alerts_by_rule(metrics: Metrics) -> None:
    metrics.matches("kn23", 2)
    metrics.matches("kn23", 1)
    metrics.matches("depot-strikes", 0)
    text = scrape(metrics)
    assert value(text, "monitor_alerts_total", rule="kn23") == 3
    assert value(text, "monitor_alerts_total", rule="depot-strikes") == 0


def test_deliveries_by_outcome_and_notifier(metrics: Metrics) -> None:
    metrics.delivery("analysts-slack", "sent", 0.3)
    metrics.delivery("analysts-slack", "retry", 4.0)
    metrics.delivery("analysts-email", "dead", 0.02)
    text = scrape(metrics)
    assert value(text, "monitor_deliveries_total", notifier="analysts-slack", outcome="sent") == 1
    assert value(text, "monitor_deliveries_total", notifier="analysts-slack", outcome="retry") == 1
    assert value(text, "monitor_deliveries_total", notifier="analysts-email", outcome="dead") == 1
    slack = {"notifier": "analysts-slack"}
    assert value(text, "monitor_delivery_duration_seconds_count", **slack) == 2
    assert value(text, "monitor_delivery_duration_seconds_bucket", le="1.0", **slack) == 1


@pytest.mark.parametrize("outcome", ["ok", "SENT", "", "retrying"])
def test_unknown_delivery_outcome_is_refused(metrics: Metrics, outcome: str) -> None:
    with pytest.raises(ValueError, match="delivery outcome"):
        metrics.delivery("console", outcome, 0.1)
    assert (
        value(scrape(metrics), "monitor_deliveries_total", notifier="console", outcome=outcome)
        is None
    )


def test_deliveries_by_state_fill_zeros_and_replace(metrics: Metrics) -> None:
    metrics.set_deliveries_by_state({("slack", "pending"): 4, ("email", "dead"): 1})
    text = scrape(metrics)
    name = "monitor_deliveries_by_state"
    assert value(text, name, notifier="slack", state="pending") == 4
    assert value(text, name, notifier="slack", state="dead") == 0
    assert value(text, name, notifier="email", state="dead") == 1
    assert value(text, name, notifier="email", state="sent") == 0
    # The next refresh no longer names email: its series go, rather than freeze at the old value.
    metrics.set_deliveries_by_state({("slack", "sent"): 5, ("slack", "weird"): 2})
    text = scrape(metrics)
    assert value(text, name, notifier="email", state="dead") is None
    assert value(text, name, notifier="slack", state="pending") == 0
    assert value(text, name, notifier="slack", state="sent") == 5
    assert value(text, name, notifier="slack", state="other") == 2


def test_sources_by_status(metrics: Metrics) -> None:
    metrics.set_sources_by_status({"ok": 40, "error": 2})
    text = scrape(metrics)
    assert value(text, "monitor_sources", status="ok") == 40
    assert value(text, "monitor_sources", status="error") == 2
    assert value(text, "monitor_sources", status="disabled") == 0
    assert value(text, "monitor_sources", status="new") == 0
    metrics.set_sources_by_status({"ok": 41, "mystery": 1})
    text = scrape(metrics)
    assert value(text, "monitor_sources", status="ok") == 41
    assert value(text, "monitor_sources", status="error") == 0
    assert value(text, "monitor_sources", status="other") == 1


def test_rules_and_heartbeat(metrics: Metrics) -> None:
    metrics.set_rules(12, reload_ok=True)
    assert value(scrape(metrics), "monitor_rules_reload_ok") == 1
    metrics.set_rules(12, reload_ok=False)
    metrics.heartbeat(1_700_000_123.5)
    text = scrape(metrics)
    assert value(text, "monitor_rules_loaded") == 12
    assert value(text, "monitor_rules_reload_ok") == 0
    assert value(text, "monitor_last_tick_timestamp") == 1_700_000_123.5
    assert metrics.last_tick == 1_700_000_123.5


def test_build_info_and_process_metrics(metrics: Metrics) -> None:
    text = scrape(metrics)
    assert value(text, "monitor_build_info", version=__version__, instance_id="host-1") == 1
    resident = value(text, "process_resident_memory_bytes")
    assert resident is not None
    assert resident > 1_000_000


def test_registries_are_private() -> None:
    one, two = Metrics("one"), Metrics("two")
    one.poll("isw", "ok", 0.1)
    assert value(scrape(one), "monitor_polls_total", outcome="ok") == 1
    assert value(scrape(two), "monitor_polls_total", outcome="ok") is None
    global_text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert "monitor_" not in global_text


@pytest.mark.parametrize(
    "bad_id", [SECRET_URL, "feeds.example.org/rss?token=hunter2", "a\nb", "x" * 101, ""]
)
def test_urls_and_free_text_never_become_labels(metrics: Metrics, bad_id: str) -> None:
    metrics.poll(bad_id, "ok", 0.1)
    metrics.items(bad_id, 1)
    metrics.matches(bad_id, 1)
    metrics.delivery(bad_id, "sent", 0.1)
    metrics.set_deliveries_by_state({(bad_id, "pending"): 1})
    text = scrape(metrics)
    assert "hunter2" not in text
    assert value(text, "monitor_source_last_poll_timestamp", source=INVALID_LABEL) is not None
    assert value(text, "monitor_alerts_total", rule=INVALID_LABEL) == 1
    sent = {"notifier": INVALID_LABEL, "outcome": "sent"}
    assert value(text, "monitor_deliveries_total", **sent) == 1


@pytest.mark.parametrize(
    "kind", [f"http_500: {SECRET_URL}", "Timeout", "connect error", "x" * 41, "dns/hunter2"]
)
def test_error_kinds_outside_the_stable_shape_become_other(metrics: Metrics, kind: str) -> None:
    metrics.poll("isw", kind, 1.0)
    text = scrape(metrics)
    assert "hunter2" not in text
    assert value(text, "monitor_poll_errors_total", kind="other") == 1
    assert value(text, "monitor_polls_total", outcome="error") == 1


def test_ordinary_ids_are_kept(metrics: Metrics) -> None:
    metrics.poll("reuters.world-news_2", "ok", 0.1)
    metrics.delivery("Analysts Slack", "sent", 0.1)
    text = scrape(metrics)
    assert labelled(text, "monitor_source_last_poll_timestamp") == [
        {"source": "reuters.world-news_2"}
    ]
    assert value(text, "monitor_deliveries_total", notifier="Analysts Slack", outcome="sent") == 1


def test_two_thousand_sources_render_and_parse(metrics: Metrics) -> None:
    for i in range(2000):
        metrics.poll(f"source-{i}", "ok" if i % 10 else "timeout", 0.5)
        metrics.items(f"source-{i}", i % 3)
    families = list(text_string_to_metric_families(scrape(metrics)))
    by_name = {f.name: f for f in families}
    assert len(by_name["monitor_source_last_poll_timestamp"].samples) == 2000
    assert len(by_name["monitor_source_last_success_timestamp"].samples) == 1800
    assert len(by_name["monitor_source_last_new_item_timestamp"].samples) == 1333


# --- the HTTP server ------------------------------------------------------------------------------


async def test_scrape_over_http(metrics: Metrics, client: httpx.AsyncClient) -> None:
    metrics.poll("isw", "ok", 0.1)
    metrics.matches("kn23", 1)
    response = await client.get("/metrics")
    assert response.status_code == 200
    # The server spells the type out so that it needs no import of prometheus_client.
    assert response.headers["content-type"] == CONTENT_TYPE_PLAIN_0_0_4
    assert response.headers["connection"] == "close"
    families: Iterable[Metric] = text_string_to_metric_families(response.text)
    names = {f.name for f in families}
    assert {"monitor_polls", "monitor_alerts", "monitor_deliveries_by_state"} <= names
    assert value(response.text, "monitor_alerts_total", rule="kn23") == 1
    # A scrape sees later updates: nothing is cached.
    metrics.matches("kn23", 1)
    again = await client.get("/metrics?debug=1")
    assert value(again.text, "monitor_alerts_total", rule="kn23") == 2


async def test_head_has_headers_only(client: httpx.AsyncClient) -> None:
    response = await client.head("/metrics")
    assert response.status_code == 200
    assert int(response.headers["content-length"]) > 100
    assert response.content == b""


async def test_healthz_turns_503_when_ticks_stop(
    metrics: Metrics, client: httpx.AsyncClient, clock: Clock
) -> None:
    # Starting up counts as a tick, so a daemon still loading is not killed by its supervisor.
    assert (await client.get("/healthz")).status_code == 200
    clock.now += 119
    metrics.heartbeat(clock.now)
    clock.now += 119.9
    response = await client.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok\n")
    clock.now += 0.1
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.text == "stale: last tick 120s ago (limit 120s)\n"
    metrics.heartbeat(clock.now)
    assert (await client.get("/healthz")).status_code == 200


async def test_healthz_without_any_tick_goes_stale(client: httpx.AsyncClient, clock: Clock) -> None:
    clock.now += 121
    assert (await client.get("/healthz")).status_code == 503


@pytest.mark.parametrize(
    "path", ["/", "/metric", "/metrics/", "/healthz/x", "/METRICS", "/favicon.ico"]
)
async def test_unknown_paths_are_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "monitor_" not in response.text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
async def test_other_methods_are_405(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/metrics")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"garbage\r\n\r\n", b"400"),
        (b"GET metrics HTTP/1.1\r\n\r\n", b"400"),
        (b"GET /metrics\r\n\r\n", b"400"),
        (b"GET /metrics SPDY/3\r\n\r\n", b"400"),
        (b"GET  /metrics HTTP/1.1\r\n\r\n", b"400"),
        (b"\x00\xff\xfe\x16\x03\x01\x02\x00\r\n\r\n", b"400"),
        (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n", b"431"),
        (b"GET /metrics HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", b"431"),
        (b"GET /metrics HTTP/1.1\r\nHost: x", b"400"),  # headers cut off by the client
    ],
)
async def test_bad_requests_get_an_error_and_do_not_crash(
    server: MetricsServer, client: httpx.AsyncClient, request_bytes: bytes, status: bytes
) -> None:
    answer = await raw(server.port, request_bytes)
    assert answer.split(b" ")[1] == status
    assert (await client.get("/metrics")).status_code == 200


async def test_client_that_sends_nothing_is_dropped(metrics: Metrics, clock: Clock) -> None:
    async with MetricsServer(metrics, "127.0.0.1:0", clock=clock, read_timeout=0.05) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        assert (await raw(server.port, b"GET /healthz HTTP/1.1\r\n\r\n")).startswith(
            b"HTTP/1.1 200 OK\r\n"
        )


async def test_connect_and_close_without_a_request(server: MetricsServer) -> None:
    assert await raw(server.port, b"") == b""
    assert (await raw(server.port, b"GET /healthz HTTP/1.0\r\n\r\n")).endswith(b"\r\n\r\nok\n")


async def test_concurrent_scrapes(metrics: Metrics, client: httpx.AsyncClient) -> None:
    for i in range(500):
        metrics.poll(f"s{i}", "ok", 0.1)
    responses = await asyncio.gather(*(client.get("/metrics") for _ in range(20)))
    assert {r.status_code for r in responses} == {200}
    assert {value(r.text, "monitor_polls_total", outcome="ok") for r in responses} == {500}


class Broken:
    def collect(self) -> Iterable[Metric]:
        raise RuntimeError("collector bug")


async def test_a_failing_render_answers_500_and_keeps_serving(
    metrics: Metrics, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Broken()
    metrics.registry.register(broken)
    with caplog.at_level(logging.ERROR, logger="monitor.metrics"):
        response = await client.get("/metrics")
    assert response.status_code == 500
    assert "collector bug" not in response.text
    assert "collector bug" in caplog.text
    metrics.registry.unregister(broken)
    assert (await client.get("/metrics")).status_code == 200
    assert (await client.get("/healthz")).status_code == 200


# --- lifecycle and addresses ----------------------------------------------------------------------


async def test_binds_only_the_configured_address(server: MetricsServer) -> None:
    assert server.port > 0
    assert server.addresses == [f"127.0.0.1:{server.port}"]


async def test_stop_frees_the_port(metrics: Metrics, clock: Clock) -> None:
    server = MetricsServer(metrics, "127.0.0.1:0", clock=clock)
    await server.start()
    port = server.port
    assert (await raw(port, b"GET /healthz HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200")
    await server.stop()
    assert server.addresses == []
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    async with MetricsServer(metrics, f"127.0.0.1:{port}", clock=clock) as again:
        assert again.port == port
        assert (await raw(port, b"GET /healthz HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200")


async def test_stop_ends_open_connections(metrics: Metrics, clock: Clock) -> None:
    server = MetricsServer(metrics, "127.0.0.1:0", clock=clock, read_timeout=60.0)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /metrics HTTP/1.1\r\n")  # and never the blank line
    await writer.drain()
    await asyncio.sleep(0)  # let the server accept it
    async with asyncio.timeout(5):
        await server.stop()
        # Ended either way is fine: EOF, or a reset if the request was still unread.
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_start_twice_is_an_error_and_stop_is_idempotent(
    metrics: Metrics, clock: Clock
) -> None:
    server = MetricsServer(metrics, "127.0.0.1:0", clock=clock)
    await server.stop()  # never started: nothing to do
    await server.start()
    with pytest.raises(RuntimeError, match="already started"):
        await server.start()
    await server.stop()
    await server.stop()


async def test_address_in_use_is_a_config_error(metrics: Metrics) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MetricsServer(metrics, f"127.0.0.1:{port}")
        with pytest.raises(ConfigError, match=rf"metrics: cannot listen on 127\.0\.0\.1:{port}: "):
            await server.start()
        assert server.addresses == []


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9108", ("::1", 9108)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_split_address(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize(
    "address", ["9108", "127.0.0.1", "127.0.0.1:", ":9108", "h:65536", "h:-1", "h:9x", "[]:80", ""]
)
def test_bad_addresses(metrics: Metrics, address: str) -> None:
    with pytest.raises(ConfigError, match=r"expected host:port such as 127\.0\.0\.1:9108"):
        MetricsServer(metrics, address)
