"""broadcast() from sync Django code reaches sockets in a group, in one process or across two."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import AsyncExitStack

import pytest
from django.test import override_settings

from inprocess import Client, http
from servers import REDIS_SERVER
from wsclient import connect, recv
from wsclient import http as real_http
from wsviews import abroadcast
from wsviews.broadcast import broadcast_event


def group_name() -> str:
    return "g" + uuid.uuid4().hex[:12]


async def members(paths: list[str]) -> list[Client]:
    clients = [await Client(path).accepted() for path in paths]
    for client in clients:
        assert await client.recv() == "joined"
    return clients


async def announce(group: str, message, mode: str = "now") -> int:
    """POST ``message`` to the sync view that broadcasts it (in process)."""
    status, _, _ = await http(f"/announce/{group}/?mode={mode}", method="POST",
                              body=json.dumps(message).encode(),
                              headers=[("Content-Type", "application/json")])
    return status


async def silent(clients: list[Client], wait: float = 0.2) -> bool:
    await asyncio.sleep(wait)
    return all(client.output_queue.empty() for client in clients)


async def leave(clients: list[Client]) -> None:
    for client in clients:
        await client.leave()


async def test_broadcast_from_a_sync_view_reaches_its_group_only():
    room1, room2 = group_name(), group_name()
    in_room = await members([f"/ws/member/{room1}/"] * 3)
    others = await members([f"/ws/member/{room2}/"] * 2)
    assert await announce(room1, {"text": "hello room 1"}) == 204
    for client in in_room:
        assert json.loads(await client.recv()) == {"text": "hello room 1"}
    assert await silent(others)
    await leave(in_room + others)


async def test_on_commit_sends_once_on_commit_and_never_on_rollback():
    group = group_name()
    (client,) = await members([f"/ws/member/{group}/"])
    assert await announce(group, "rolled back", "rollback") == 204
    assert await silent([client])
    assert await announce(group, "committed", "commit") == 204
    assert await client.recv() == "committed"
    assert await silent([client])
    await client.leave()


@pytest.mark.parametrize("backend", ["wsviews.layers.InMemoryChannelLayer",
                                     "channels_redis.core.RedisChannelLayer"])
async def test_consumer_and_view_in_one_group_both_receive(backend):
    config = {"hosts": [f"{REDIS_SERVER}/12"], "prefix": f"t-{uuid.uuid4().hex[:8]}"} \
        if "redis" in backend else {}
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": backend, "CONFIG": config}}):
        group = group_name()
        view, consumer = await members([f"/ws/member/{group}/", f"/ws/consumer/{group}/"])
        await abroadcast(group, {"n": 1})
        assert json.loads(await view.recv()) == {"n": 1}
        assert json.loads(await consumer.recv()) == {"consumer": {"n": 1}}
        await leave([view, consumer])


async def test_leave_stops_delivery():
    group = group_name()
    (client,) = await members([f"/ws/member/{group}/"])
    await client.send_text("leave")
    assert await client.recv() == "left"
    await abroadcast(group, "after leaving")
    assert await silent([client])
    await client.leave()


async def test_on_broadcast_relays_and_an_exception_in_it_closes_1011(caplog):
    group = group_name()
    (client,) = await members([f"/ws/relay/{group}/"])
    await abroadcast(group, "one")
    assert await client.recv() == "relayed one"
    await abroadcast(group, "boom")
    assert (await client.closed())["code"] == 1011
    await client.wait(5)  # the view ended too
    assert "Exception delivering a broadcast to websocket view /ws/relay/" in caplog.text
    assert "on_broadcast boom requested by the test" in caplog.text


async def test_broadcast_to_an_empty_group_is_a_no_op():
    assert await announce(group_name(), {"to": "nobody"}) == 204


async def test_unserialisable_message_raises_type_error_in_the_caller():
    status, _, body = await http(f"/announce/{group_name()}/?mode=unserialisable", method="POST",
                                 body=b"null")
    assert status == 400
    assert b"not JSON serializable" in body or b"Type is not" in body
    with pytest.raises(TypeError):
        broadcast_event("g", {"bad": object()})


def test_str_and_bytes_pass_unchanged():
    assert broadcast_event("g", "text")["message"] == "text"
    assert broadcast_event("g", b"\x00\x01")["message"] == b"\x00\x01"
    before = time.time()
    event = broadcast_event("g", {"a": 1})
    assert before <= event.pop("wsviews_sent_at") <= time.time()
    assert event == {"type": "wsviews.broadcast", "group": "g", "message": {"a": 1}}


async def test_broadcast_reaches_its_group_across_two_redis_processes(redis_server, redis_server_b):
    """The seed's channels_redis layer: a broadcast from one process reaches members in both."""
    room1, room2 = group_name(), group_name()
    async with AsyncExitStack() as stack:
        urls = [f"{redis_server.ws}/ws/member/{room1}/", f"{redis_server_b.ws}/ws/member/{room1}/",
                f"{redis_server.ws}/ws/member/{room2}/", f"{redis_server_b.ws}/ws/member/{room2}/"]
        sockets = [await stack.enter_async_context(connect(url)) for url in urls]
        for ws in sockets:
            assert await recv(ws) == "joined"
        status, _ = await asyncio.to_thread(
            real_http, f"{redis_server.http}/announce/{room1}/", json.dumps({"text": "hi"}).encode(),
            {"Content-Type": "application/json"}, "POST")
        assert status == 204
        for ws in sockets[:2]:
            assert json.loads(await recv(ws)) == {"text": "hi"}
        for ws in sockets[2:]:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.5)
