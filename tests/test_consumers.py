"""Channels consumers on wsviews' dispatch loop keep Channels' semantics."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from wsclient import ConnectionClosed, connect, http, recv


def post(server, group: str, message) -> int:
    return http(f"{server.http}/announce/{group}/", data=json.dumps(message).encode(),
                method="POST")[0]


async def test_sync_consumer_runs_on_channels_own_loop(server):
    async with connect(server.ws + "/ws/sync/") as ws:
        await ws.send("x")
        assert await recv(ws) == "sync:x"


async def test_exception_in_consumer_closes_1011_and_others_carry_on(server):
    group = "g" + uuid.uuid4().hex[:10]
    async with connect(f"{server.ws}/ws/myapp/") as bystander:
        async with connect(f"{server.ws}/ws/consumer/{group}/") as ws:
            assert await recv(ws) == "joined"
            await ws.send("boom")
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
        assert info.value.rcvd.code == 1011
        await bystander.send("alive")
        assert await recv(bystander) == "alive"
    await asyncio.sleep(0.2)
    assert "consumer boom requested by the test" in server.log()
    assert "Exception in websocket consumer GroupConsumer" in server.log()


async def test_stop_consumer_raised_by_a_layer_message_ends_the_socket(server):
    group = "g" + uuid.uuid4().hex[:10]
    async with connect(f"{server.ws}/ws/stoppable/{group}/") as ws:
        assert await recv(ws) == "joined"
        await asyncio.to_thread(post, server, group, "first")
        assert await recv(ws) == "first"
        await asyncio.to_thread(post, server, group, "stop")
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
    assert info.value.rcvd.code == 4001


async def test_exception_in_a_layer_handler_closes_1011(server):
    group = "g" + uuid.uuid4().hex[:10]
    async with connect(f"{server.ws}/ws/stoppable/{group}/") as ws:
        assert await recv(ws) == "joined"
        await asyncio.to_thread(post, server, group, "boom")
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
    assert info.value.rcvd.code == 1011
    await asyncio.sleep(0.2)
    assert "layer-side boom requested by the test" in server.log()


async def test_group_is_left_on_disconnect(memory_server):
    """After the socket goes, a broadcast to its group finds nobody (and nothing fails)."""
    group = "g" + uuid.uuid4().hex[:10]
    async with connect(f"{memory_server.ws}/ws/consumer/{group}/") as ws:
        assert await recv(ws) == "joined"
    await asyncio.sleep(0.2)
    assert await asyncio.to_thread(post, memory_server, group, "anyone?") == 204
    async with connect(f"{memory_server.ws}/ws/consumer/{group}/") as ws:
        assert await recv(ws) == "joined"
        await asyncio.to_thread(post, memory_server, group, "only you")
        assert json.loads(await recv(ws)) == {"consumer": "only you"}
