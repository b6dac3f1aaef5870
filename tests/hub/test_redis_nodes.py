"""Two uvicorn processes on wsviews' Redis layer share one hub: delivery, presence, recovery."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from harness import REDIS_SERVER, Server, connect, http, recv, start_uvicorn
from wsviews.hub import config, tokens

from .settings_hub import API_KEY, HUBS
from .test_shell import Recorder, disconnect, until

HUB_CONFIG = config.parse(HUBS["default"])
PREFIX = f"hubtest-{uuid.uuid4().hex[:8]}"
REDIS = f"{REDIS_SERVER}/12"


def _start(tmp_path_factory: pytest.TempPathFactory, name: str) -> Server:
    return start_uvicorn("hub.settings_hub", tmp_path_factory.mktemp(name) / "server.log",
                         env={"WSVIEWS_TEST_HUB_REDIS": REDIS, "WSVIEWS_TEST_HUB_PREFIX": PREFIX})


@pytest.fixture(scope="module")
def node_a(tmp_path_factory: pytest.TempPathFactory, _database: None) -> Iterator[Server]:
    with _start(tmp_path_factory, "hub-a") as server:
        yield server


@pytest.fixture(scope="module")
def node_b(tmp_path_factory: pytest.TempPathFactory, _database: None) -> Iterator[Server]:
    with _start(tmp_path_factory, "hub-b") as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    import redis

    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{PREFIX}*"):
        client.delete(key)
    client.close()


async def api(server: Server, method: str, body: dict[str, Any]) -> Any:
    status, raw = await asyncio.to_thread(
        http, f"{server.http}/api/{method}", json.dumps(body).encode(),
        {"Content-Type": "application/json", "X-API-Key": API_KEY}, "POST")
    assert status == 200, raw
    return json.loads(raw)


async def reply(ws: ClientConnection, cmd_id: int) -> dict[str, Any]:
    """Return the reply to command ``cmd_id``, answering pings on the way."""
    while True:
        for line in (await recv(ws)).split("\n"):
            message = json.loads(line)
            if message == {}:
                await ws.send("{}")
            elif message.get("id") == cmd_id:
                return message  # type: ignore[no-any-return]


async def test_publish_in_one_process_reaches_subscribers_of_the_other(
        node_a: Server, node_b: Server, centrifuge: Any) -> None:
    """A subscriber on A gets what the API of B and a client on B publish, with offsets from Redis."""
    events = Recorder(centrifuge)
    a = centrifuge.Client(node_a.ws + "/connection/websocket")
    b = centrifuge.Client(node_b.ws + "/connection/websocket")
    await a.connect()
    await b.connect()
    try:
        sub = a.new_subscription("chat:cross", events=events.events)
        await sub.subscribe()
        await sub.ready()
        result = await api(node_b, "publish", {"channel": "chat:cross", "data": {"from": "api-b"}})
        assert result["result"]["offset"] == 1
        b_sub = b.new_subscription("chat:cross")
        await b_sub.subscribe()
        await b_sub.ready()
        await b_sub.publish({"from": "client-b"})
        await until(lambda: len(events.pubs) == 2)
        assert events.pubs == [({"from": "api-b"}, 1), ({"from": "client-b"}, 2)]
        history = await sub.history(limit=10)
        assert [p.offset for p in history.publications] == [1, 2]
        info = await api(node_a, "info", {})
        assert info["result"]["nodes"][0]["engine"] == "redis"
    finally:
        await disconnect(a)
        await disconnect(b)


async def test_presence_across_processes_counts_a_user_once(node_a: Server, node_b: Server) -> None:
    """One user connected to A and to B is two clients and one user, seen from either process."""
    token = tokens.connection_token("dana", config=HUB_CONFIG)
    async with connect(node_a.ws + "/connection/websocket") as on_a, \
            connect(node_b.ws + "/connection/websocket") as on_b:
        for n, ws in enumerate((on_a, on_b)):
            await ws.send(json.dumps({"id": 1, "connect": {"token": token}}))
            assert "connect" in await reply(ws, 1)
            await ws.send(json.dumps({"id": 2, "subscribe": {"channel": "chat:presence"}}))
            assert "subscribe" in await reply(ws, 2), n
        for server in (node_a, node_b):
            stats = await api(server, "presence_stats", {"channel": "chat:presence"})
            assert stats == {"result": {"num_clients": 2, "num_users": 1}}
        presence = await api(node_a, "presence", {"channel": "chat:presence"})
        assert sorted(c["user"] for c in presence["result"]["presence"].values()) == ["dana", "dana"]


async def test_recovery_after_reconnecting_to_the_other_process(node_a: Server, node_b: Server) -> None:
    """A client at offset N on A, away while 20 publications happen, recovers all 20 on B."""
    async with connect(node_a.ws + "/connection/websocket") as ws:
        await ws.send('{"id":1,"connect":{}}')
        await reply(ws, 1)
        await ws.send('{"id":2,"subscribe":{"channel":"chat:move","recover":true}}')
        subscribed = (await reply(ws, 2))["subscribe"]
    epoch, offset = subscribed["epoch"], subscribed.get("offset", 0)
    for n in range(20):
        await api(node_a if n % 2 else node_b, "publish", {"channel": "chat:move", "data": {"n": n}})
    async with connect(node_b.ws + "/connection/websocket") as ws:
        await ws.send('{"id":1,"connect":{}}')
        await reply(ws, 1)
        await ws.send(json.dumps({"id": 2, "subscribe": {
            "channel": "chat:move", "recover": True, "offset": offset, "epoch": epoch}}))
        recovered = (await reply(ws, 2))["subscribe"]
    assert recovered["recovered"] is True and recovered["epoch"] == epoch
    assert [p["data"]["n"] for p in recovered["publications"]] == list(range(20))
    assert [p["offset"] for p in recovered["publications"]] == list(range(offset + 1, offset + 21))
    for server in (node_a, node_b):
        assert "Traceback" not in server.log()


async def test_sigterm_closes_hub_clients_with_3001_and_they_recover_on_the_other_process(
        tmp_path: Any, node_b: Server) -> None:
    """``manage.py serve`` drained on SIGTERM: its hub client gets 3001 and recovers on B, nothing lost."""
    import signal

    from harness import free_port, start

    port = free_port()
    serving = start([sys.executable, "manage.py", "serve", f"127.0.0.1:{port}", "--no-access-log"],
                    "hub.settings_hub", tmp_path / "serve.log", port,
                    {"WSVIEWS_TEST_HUB_REDIS": REDIS, "WSVIEWS_TEST_HUB_PREFIX": PREFIX})
    with serving:
        seen: list[int] = []
        async with connect(serving.ws + "/connection/websocket") as ws:
            await ws.send('{"id":1,"connect":{}}')
            await reply(ws, 1)
            await ws.send('{"id":2,"subscribe":{"channel":"chat:drain","recover":true}}')
            subscribed = (await reply(ws, 2))["subscribe"]
            epoch = subscribed["epoch"]
            for n in range(5):
                await api(node_b, "publish", {"channel": "chat:drain", "data": {"n": n}})
            while len(seen) < 5:
                for line in (await recv(ws)).split("\n"):
                    message = json.loads(line)
                    if message == {}:
                        await ws.send("{}")
                    elif "pub" in message.get("push", {}):
                        seen.append(message["push"]["pub"]["offset"])
            serving.proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(ws.wait_closed(), 15) or ws.close_code
            assert ws.close_code == 3001 and ws.close_reason == "shutdown", (ws.close_code, code)
        assert await asyncio.to_thread(serving.proc.wait, 15) == 0
        assert "Traceback" not in serving.log()
    for n in range(5, 12):  # published while the client is away
        await api(node_b, "publish", {"channel": "chat:drain", "data": {"n": n}})
    async with connect(node_b.ws + "/connection/websocket") as ws:
        await ws.send('{"id":1,"connect":{}}')
        await reply(ws, 1)
        await ws.send(json.dumps({"id": 2, "subscribe": {
            "channel": "chat:drain", "recover": True, "offset": seen[-1], "epoch": epoch}}))
        recovered = (await reply(ws, 2))["subscribe"]
    assert recovered["recovered"] is True
    assert [p["data"]["n"] for p in recovered["publications"]] == list(range(5, 12))
    assert [p["offset"] for p in recovered["publications"]] == list(range(seen[-1] + 1, seen[-1] + 8))


async def test_disconnect_user_closes_a_token_users_hub_clients_in_both_processes_with_3503(
        node_a: Server, node_b: Server) -> None:
    """Revocation reaches hub clients by their token's ``sub``: a disconnect push, then the close."""
    from channels.layers import channel_layers
    from django.test import override_settings

    from wsviews import revocation

    token = tokens.connection_token("42", config=HUB_CONFIG)
    other = tokens.connection_token("43", config=HUB_CONFIG)
    layers = {"default": {"BACKEND": "wsviews.layers.RedisChannelLayer",
                          "CONFIG": {"hosts": [REDIS], "prefix": PREFIX}}}
    async with connect(node_a.ws + "/connection/websocket") as on_a, \
            connect(node_b.ws + "/connection/websocket") as on_b, \
            connect(node_b.ws + "/connection/websocket") as bystander:
        for ws, user_token in ((on_a, token), (on_b, token), (bystander, other)):
            await ws.send(json.dumps({"id": 1, "connect": {"token": user_token}}))
            assert "connect" in await reply(ws, 1)
        await asyncio.sleep(0.3)  # each process joins the control group with its first socket
        with override_settings(CHANNEL_LAYERS=layers):
            try:
                await revocation.adisconnect_user(42, reason="access revoked")
            finally:
                for backend in list(channel_layers.backends.values()):
                    await backend.close()
        await asyncio.wait_for(asyncio.gather(on_a.wait_closed(), on_b.wait_closed()), 1.0)
        assert {(ws.close_code, ws.close_reason) for ws in (on_a, on_b)} == {(3503, "access revoked")}
        await bystander.send(json.dumps({"id": 2, "presence_stats": {"channel": "chat:x"}}))
        assert "id" in await reply(bystander, 2)


async def test_a_killed_processs_presence_vanishes_within_the_presence_ttl(
        tmp_path_factory: pytest.TempPathFactory, node_b: Server) -> None:
    """SIGKILL leaves no leave push and no cleanup: the entries expire after 2 refreshes + 6 s (8 s here)."""
    import signal
    import time

    from wsviews.hub.node import presence_ttl

    fast = config.parse(HUBS["fast_presence"])
    assert presence_ttl(fast) == 8.0 and presence_ttl(HUB_CONFIG) == 60.0
    doomed = start_uvicorn("hub.settings_hub", tmp_path_factory.mktemp("hub-doomed") / "server.log",
                           env={"WSVIEWS_TEST_HUB_REDIS": REDIS, "WSVIEWS_TEST_HUB_PREFIX": PREFIX,
                                "WSVIEWS_TEST_HUB": "fast_presence"})
    with doomed:
        ws = await connect(doomed.ws + "/connection/websocket")
        try:
            await ws.send('{"id":1,"connect":{}}')
            await reply(ws, 1)
            await ws.send('{"id":2,"subscribe":{"channel":"chat:killed"}}')
            assert "subscribe" in await reply(ws, 2)
            stats = await api(node_b, "presence_stats", {"channel": "chat:killed"})
            assert stats["result"]["num_clients"] == 1
            doomed.proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            while (await api(node_b, "presence_stats", {"channel": "chat:killed"}))["result"]["num_clients"]:
                assert time.monotonic() - killed < 8.0 + 2.0, "presence outlived the documented TTL"
                await asyncio.sleep(0.25)
            gone = time.monotonic() - killed
        finally:
            assert ws.transport is not None
            ws.transport.abort()
    assert gone > 2.0  # it expired; nothing removed it at once (the process could not)


async def test_a_clients_publishes_are_recorded_in_the_order_it_sent_them(node_a: Server) -> None:
    """Thirty publishes in one frame, each its own request: history holds them in the client's order."""
    async with connect(node_a.ws + "/connection/websocket") as ws:
        await ws.send('{"id":1,"connect":{}}')
        await reply(ws, 1)
        await ws.send('{"id":2,"subscribe":{"channel":"chat:order"}}')
        await reply(ws, 2)
        commands = [{"id": 10 + n, "publish": {"channel": "chat:order", "data": {"n": n}}} for n in range(30)]
        await ws.send("\n".join(json.dumps(command) for command in commands))
        await reply(ws, 39)
    history = await api(node_a, "history", {"channel": "chat:order", "limit": 100})
    assert [p["data"]["n"] for p in history["result"]["publications"]] == list(range(30))
