"""The metrics URL against a real server and real clients: a scrape agrees with what the test did."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import pytest
from django.test import RequestFactory, override_settings

from harness import Server, start_uvicorn
from harness.clients import close_sockets, connect, handshake_status, http, open_sockets, recv
from serving_support import start_serve
from wsviews import metrics

TOKEN = "metrics-token-for-the-tests-0123"
ROOM = 'kind="view",route="ws/room/<slug:room>/"'
CONSUMER = 'kind="consumer",route="ws/consumer/<slug:group>/"'


@pytest.fixture(scope="module", params=["uvicorn", "serve"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Plain uvicorn (every frame through the ASGI send) and ``manage.py serve`` (frames written at once)."""
    log = tmp_path_factory.mktemp(f"metrics-{request.param}") / "server.log"
    env = {"OBSERVE_METRICS_TOKEN": TOKEN, "OBSERVE_METRICS_BYTES": "1"}
    if request.param == "uvicorn":
        started = start_uvicorn("settings_observe", log, env=env)
    else:
        started = start_serve(log, {"ROOT_URLCONF": "urls_observe", "WSVIEWS_METRICS_TOKEN": TOKEN,
                                    "WSVIEWS_METRICS_BYTES": True})
    with started as server:
        yield server


def scrape(server: Server) -> dict[str, float]:
    status, body = http(f"{server.http}/metrics/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def value(samples: dict[str, float], name: str, labels: str = "") -> float:
    return samples.get(f"{name}{{{labels}}}" if labels else name, 0.0)


async def test_a_scrape_agrees_with_the_sockets_messages_and_handshakes_of_the_test(server):
    before = scrape(server)
    rooms = await open_sockets(f"{server.ws}/ws/room/lobby/", 3)
    consumers = await open_sockets(f"{server.ws}/ws/consumer/metrics-group/", 2)
    try:
        for ws in consumers:
            assert await recv(ws) == "joined"
            for n in range(4):
                await ws.send(f"c{n}")  # echoed as it is
                assert await recv(ws) == f"c{n}"
        for ws in rooms:
            for n in range(5):
                await ws.send(f"m{n}")  # 2 bytes, echoed as "lobby:m{n}" (8 bytes)
                assert await recv(ws) == f"lobby:m{n}"
        assert await handshake_status(f"{server.ws}/ws/private/") == 403  # login required
        assert await handshake_status(f"{server.ws}/ws/nowhere/") == 404
        during = scrape(server)
    finally:
        await close_sockets(rooms + consumers)

    def grew(name: str, labels: str = "") -> float:
        return value(during, name, labels) - value(before, name, labels)

    assert value(during, "wsviews_sockets_open", ROOM) == 3
    assert value(during, "wsviews_sockets_open", CONSUMER) == 2
    assert grew("wsviews_messages_received_total", ROOM) == 15
    assert grew("wsviews_messages_sent_total", ROOM) == 15
    assert grew("wsviews_received_bytes_total", ROOM) == 15 * 2
    assert grew("wsviews_sent_bytes_total", ROOM) == 15 * 8
    assert grew("wsviews_messages_received_total", CONSUMER) == 2 * 4
    assert grew("wsviews_messages_sent_total", CONSUMER) == 2 * (1 + 4)  # "joined", then the echoes
    assert grew("wsviews_received_bytes_total", CONSUMER) == 2 * 4 * 2
    assert grew("wsviews_sent_bytes_total", CONSUMER) == 2 * (6 + 4 * 2)
    assert grew("wsviews_handshakes_total", 'outcome="admitted",reason="ok"') == 5
    assert grew("wsviews_handshakes_total", 'outcome="refused",reason="login_required"') == 1
    assert grew("wsviews_handshakes_total", 'outcome="refused",reason="not_found"') == 1
    assert grew("wsviews_layer_events_total", 'event="group_sent",layer="default"') >= 0

    for _ in range(50):  # the server sees the closes a moment after the clients
        after = scrape(server)
        if value(after, "wsviews_sockets_open", ROOM) == 0 == value(after, "wsviews_sockets_open", CONSUMER):
            break
        await asyncio.sleep(0.1)
    assert value(after, "wsviews_sockets_open", ROOM) == 0
    assert value(after, "wsviews_sockets_open", CONSUMER) == 0
    # Closed sockets' counts stay in their route's totals.
    received = "wsviews_messages_received_total"
    assert value(after, received, ROOM) == value(during, received, ROOM)
    server.check_alive()
    assert "Traceback" not in server.log()


async def test_broadcasts_count_as_layer_publishes_and_deliveries(server):
    before = scrape(server)
    async with connect(f"{server.ws}/ws/member/metrics-broadcast/") as ws:
        assert await recv(ws) == "joined"
        status, _ = http(f"{server.http}/announce/metrics-broadcast/", data=b'"hello"')
        assert status == 204
        assert await recv(ws) == "hello"
        after = scrape(server)
    for name in ("wsviews_layer_publishes_total", "wsviews_layer_deliveries_total"):
        assert value(after, name) - value(before, name) >= 1, name
    # broadcast() stamps its send time; the receiving process records the latency once.
    latency = "wsviews_broadcast_latency_seconds"
    assert value(after, f"{latency}_count") - value(before, f"{latency}_count") == 1
    spent = value(after, f"{latency}_sum") - value(before, f"{latency}_sum")
    assert 0 <= spent < 5


def test_the_metrics_url_wants_the_token(server):
    assert http(f"{server.http}/metrics/")[0] == 401
    assert http(f"{server.http}/metrics/", headers={"Authorization": "Bearer wrong"})[0] == 401
    status, body = http(f"{server.http}/metrics/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and b"wsviews_sockets_open" in body
    line = r"Metrics scrape refused 1 time\(s\), the last: missing or wrong bearer token"
    for _ in range(50):
        if re.search(line, server.log()):
            break
        time.sleep(0.05)
    assert re.search(line, server.log())
    assert server.log().count("Metrics scrape refused") == 1  # the second folds into the next line
    assert "Traceback" not in server.log()


@override_settings(WSVIEWS_METRICS_ALLOWED_IPS=["10.0.0.0/8"], WSVIEWS_METRICS_TOKEN=None)
def test_a_client_outside_the_allowed_networks_is_refused():
    factory = RequestFactory()
    assert metrics.allowed(factory.get("/metrics/", REMOTE_ADDR="10.1.2.3")) is None
    status, reason = metrics.allowed(factory.get("/metrics/", REMOTE_ADDR="192.168.1.1"))
    assert status == 403 and "WSVIEWS_METRICS_ALLOWED_IPS" in reason


@pytest.mark.parametrize(("name", "value", "check_id"), [
    ("WSVIEWS_METRICS_TOKEN", "short", "wsviews.E071"),
    ("WSVIEWS_METRICS_ALLOWED_IPS", ["10.0.0.0/8", "not-an-ip"], "wsviews.E072"),
    ("WSVIEWS_METRICS_ALLOWED_IPS", "127.0.0.1", "wsviews.E072"),
    ("WSVIEWS_METRICS_BYTES", "yes", "wsviews.E070"),
])
def test_wrong_metrics_settings_are_check_errors(name, value, check_id):
    from wsviews.checks import check_settings

    with override_settings(**{name: value}):
        errors = [e for e in check_settings() if e.id == check_id]
    assert len(errors) == 1 and name in errors[0].msg


async def test_with_a_multiprocess_dir_any_process_scrapes_the_sum_of_all(tmp_path):
    """Two processes share PROMETHEUS_MULTIPROC_DIR: each syncs once a second; a scrape sums both."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {"OBSERVE_METRICS_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    with start_uvicorn("settings_observe", tmp_path / "a.log", env=env) as a, \
            start_uvicorn("settings_observe", tmp_path / "b.log", env=env) as b:
        on_a = await open_sockets(f"{a.ws}/ws/room/multi/", 2)
        on_b = await open_sockets(f"{b.ws}/ws/room/multi/", 3)
        try:
            for ws in on_a + on_b:
                await ws.send("x")
                assert await recv(ws) == "multi:x"
            await asyncio.sleep(metrics.SYNC_INTERVAL * 1.5)
            for server in (a, b):
                samples = scrape(server)
                assert value(samples, "wsviews_sockets_open", ROOM) == 5
                assert value(samples, "wsviews_messages_received_total", ROOM) == 5
                assert value(samples, "wsviews_handshakes_total", 'outcome="admitted",reason="ok"') == 5
        finally:
            await close_sockets(on_a + on_b)
        assert "Traceback" not in a.log() + b.log()


def test_a_multiprocess_dir_that_is_not_a_directory_is_a_check_error(tmp_path, monkeypatch):
    from wsviews.checks import check_metrics

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    assert [e.id for e in check_metrics()] == ["wsviews.E074"]
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert check_metrics() == []
