"""broadcast() from sync Django code reaches sockets in a group, in one process or across two."""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import AsyncExitStack

import pytest

from wsclient import connect, http, recv
from wsviews.broadcast import broadcast_event


def group_name() -> str:
    return "g" + uuid.uuid4().hex[:12]


async def open_members(stack: AsyncExitStack, urls: list[str]) -> list:
    sockets = [await stack.enter_async_context(connect(url)) for url in urls]
    for ws in sockets:
        assert await recv(ws) == "joined"
    return sockets


async def assert_silent(sockets, wait: float = 0.5) -> None:
    for ws in sockets:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), wait)


def post(server, group: str, message, mode: str = "now") -> tuple[int, bytes]:
    return http(f"{server.http}/announce/{group}/?mode={mode}", data=json.dumps(message).encode(),
                headers={"Content-Type": "application/json"}, method="POST")


async def test_broadcast_reaches_its_group_only_in_memory(memory_server):
    await _room_test(memory_server, memory_server, memory_server)


async def test_broadcast_reaches_its_group_across_two_redis_processes(redis_server, redis_server_b):
    await _room_test(redis_server, redis_server_b, redis_server)


async def _room_test(a, b, sender) -> None:
    room1, room2 = group_name(), group_name()
    async with AsyncExitStack() as stack:
        members = await open_members(stack, [
            f"{a.ws}/ws/member/{room1}/", f"{b.ws}/ws/member/{room1}/", f"{a.ws}/ws/member/{room1}/",
        ])
        others = await open_members(stack, [f"{a.ws}/ws/member/{room2}/",
                                             f"{b.ws}/ws/member/{room2}/"])
        status, _ = await asyncio.to_thread(post, sender, room1, {"text": "hello room 1"})
        assert status == 204
        for ws in members:
            assert json.loads(await recv(ws)) == {"text": "hello room 1"}
        await assert_silent(others)


async def test_on_commit_sends_once_on_commit_and_never_on_rollback(memory_server):
    group = group_name()
    async with AsyncExitStack() as stack:
        (ws,) = await open_members(stack, [f"{memory_server.ws}/ws/member/{group}/"])
        assert (await asyncio.to_thread(post, memory_server, group, "rolled back", "rollback"))[0] == 204
        await assert_silent([ws])
        assert (await asyncio.to_thread(post, memory_server, group, "committed", "commit"))[0] == 204
        assert await recv(ws) == "committed"
        await assert_silent([ws])


async def test_consumer_and_view_in_one_group_both_receive(server):
    group = group_name()
    async with AsyncExitStack() as stack:
        view, consumer = await open_members(stack, [f"{server.ws}/ws/member/{group}/",
                                                    f"{server.ws}/ws/consumer/{group}/"])
        await asyncio.to_thread(post, server, group, {"n": 1})
        assert json.loads(await recv(view)) == {"n": 1}
        assert json.loads(await recv(consumer)) == {"consumer": {"n": 1}}


async def test_leave_stops_delivery(memory_server):
    group = group_name()
    async with AsyncExitStack() as stack:
        (ws,) = await open_members(stack, [f"{memory_server.ws}/ws/member/{group}/"])
        await ws.send("leave")
        assert await recv(ws) == "left"
        await asyncio.to_thread(post, memory_server, group, "after leaving")
        await assert_silent([ws])


def test_broadcast_to_an_empty_group_is_a_no_op(memory_server):
    assert post(memory_server, group_name(), {"to": "nobody"})[0] == 204


def test_unserialisable_message_raises_type_error_in_the_caller(memory_server):
    status, body = post(memory_server, group_name(), None, "unserialisable")
    assert status == 400
    assert b"not JSON serializable" in body or b"Type is not" in body
    with pytest.raises(TypeError):
        broadcast_event("g", {"bad": object()})


def test_str_and_bytes_pass_unchanged():
    assert broadcast_event("g", "text")["message"] == "text"
    assert broadcast_event("g", b"\x00\x01")["message"] == b"\x00\x01"
    assert broadcast_event("g", {"a": 1}) == {"type": "wsviews.broadcast", "group": "g",
                                              "message": {"a": 1}}
