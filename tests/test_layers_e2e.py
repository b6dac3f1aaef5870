"""Two uvicorn processes sharing wsviews' Redis layer: what crosses between them, and under load.

Servers run ``tests/settings_wsredis.py`` (the example project on
``wsviews.layers.RedisChannelLayer``) with a prefix of their own on the shared
Redis.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from servers import Server, start_uvicorn
from wsclient import connect, http, recv

PREFIX = f"wsviews-e2e-{uuid.uuid4().hex[:8]}"
IDLE_SECONDS = 60
POOL_ERRORS = ("MaxConnectionsError", "Too many connections", "No connection available",
               "ChannelLayerUnavailable", "Traceback")


def start(tmp_path_factory: pytest.TempPathFactory, name: str) -> Server:
    log = tmp_path_factory.mktemp(name) / "server.log"
    return start_uvicorn("settings_wsredis", log, env={"WSVIEWS_E2E_PREFIX": PREFIX})


@pytest.fixture(scope="module")
def server_a(tmp_path_factory: pytest.TempPathFactory, _database: None) -> Iterator[Server]:
    server = start(tmp_path_factory, "wsredis-a")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server_b(tmp_path_factory: pytest.TempPathFactory, _database: None) -> Iterator[Server]:
    server = start(tmp_path_factory, "wsredis-b")
    yield server
    server.stop()


class IdleSockets(threading.Thread):
    """Sockets left idle for IDLE_SECONDS in a thread of their own, then made to echo.

    Started by the first test of the module, checked by the last, so that the
    wait overlaps the other tests.
    """

    def __init__(self, urls: list[str]) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.opened = threading.Event()
        self.results: list[Any] = []

    def run(self) -> None:
        asyncio.run(self.idle())

    async def idle(self) -> None:
        async with AsyncExitStack() as stack:
            sockets = [await stack.enter_async_context(connect(url)) for url in self.urls]
            self.opened.set()
            await asyncio.sleep(IDLE_SECONDS)  # idleness is the point
            for n, ws in enumerate(sockets):
                try:
                    await ws.send(f"still there {n}")
                    self.results.append(await recv(ws, 10))
                except Exception as exc:  # reported by the test
                    self.results.append(exc)


@pytest.fixture(scope="module")
def idle_sockets(server_a: Server) -> Iterator[IdleSockets]:
    thread = IdleSockets([f"{server_a.ws}/ws/myapp/", f"{server_a.ws}/ws/sync/"])
    thread.start()
    assert thread.opened.wait(30)
    yield thread
    thread.join(IDLE_SECONDS + 30)


def post(server: Server, group: str, message: Any) -> int:
    status, _ = http(f"{server.http}/announce/{group}/", data=json.dumps(message).encode(),
                     headers={"Content-Type": "application/json"}, method="POST")
    return status


async def test_idle_sockets_opened(idle_sockets: IdleSockets) -> None:
    """The idle sockets are open; test_idle_sockets_still_echo checks them a minute later."""
    assert idle_sockets.is_alive()


async def test_broadcast_from_a_reaches_sockets_on_a_and_b(server_a: Server, server_b: Server) -> None:
    group = f"g{uuid.uuid4().hex[:10]}"
    async with AsyncExitStack() as stack:
        sockets = []
        for server in (server_a, server_b, server_a, server_b):
            ws = await stack.enter_async_context(connect(f"{server.ws}/ws/consumer/{group}/"))
            assert await recv(ws) == "joined"
            sockets.append(ws)
        for server in (server_a, server_b):
            ws = await stack.enter_async_context(connect(f"{server.ws}/ws/member/{group}/"))
            assert await recv(ws) == "joined"
            sockets.append(ws)
        assert await asyncio.to_thread(post, server_a, group, "from A") == 204
        for ws in sockets[:4]:
            assert json.loads(await recv(ws)) == {"consumer": "from A"}
        for ws in sockets[4:]:
            assert await recv(ws) == "from A"


async def test_send_and_group_add_to_a_channel_owned_by_b(server_a: Server, server_b: Server) -> None:
    group = f"g{uuid.uuid4().hex[:10]}"
    async with connect(f"{server_a.ws}/ws/channel/") as on_a, \
            connect(f"{server_b.ws}/ws/channel/") as on_b:
        await recv(on_a)
        channel_b = await recv(on_b)
        await on_a.send(f"send {channel_b} hello from A")
        assert await recv(on_a) == "done send"
        assert await recv(on_b) == "direct hello from A"
        # Process A adds B's channel to a group; B's process subscribes it.
        await on_a.send(f"join {group} {channel_b}")
        assert await recv(on_a) == "done join"
        assert await asyncio.to_thread(post, server_a, group, "to the group") == 204
        assert await recv(on_b) == "broadcast to the group"


async def test_a_thousand_sockets_connect_at_once(server_a: Server) -> None:
    group = f"g{uuid.uuid4().hex[:10]}"
    count = 1000
    async with AsyncExitStack() as stack:

        async def join() -> Any:
            ws = await stack.enter_async_context(
                connect(f"{server_a.ws}/ws/consumer/{group}/", open_timeout=60)
            )
            assert await recv(ws, 60) == "joined"
            return ws

        sockets = await asyncio.gather(*(join() for _ in range(count)))
        assert await asyncio.to_thread(post, server_a, group, "all of you") == 204
        received = await asyncio.gather(*(recv(ws, 60) for ws in sockets))
        assert [json.loads(text) for text in received] == [{"consumer": "all of you"}] * count
    log = server_a.log()
    assert not [line for line in log.splitlines() if any(e in line for e in POOL_ERRORS)]


async def test_idle_sockets_still_echo(idle_sockets: IdleSockets, server_a: Server) -> None:
    """A minute without traffic closes nothing (the redis-py 8 timeout bug closed them with 1011)."""
    await asyncio.to_thread(idle_sockets.join, IDLE_SECONDS + 30)
    assert idle_sockets.results == ["still there 0", "sync:still there 1"]
    assert " 1011" not in server_a.log()
