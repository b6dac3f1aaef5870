"""Sockets that come and go leave nothing behind: no task, no layer registration, no group."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
import uvicorn
from channels.layers import get_channel_layer
from django.test import override_settings

from servers import free_port
from wsclient import connect, recv
from wsviews.asgi import get_asgi_application


@contextlib.asynccontextmanager
async def in_process_server(app=None) -> AsyncIterator[str]:
    """A real uvicorn in this event loop, so its tasks and layer can be inspected."""
    port = free_port()
    config = uvicorn.Config(app or get_asgi_application(), host="127.0.0.1", port=port,
                            ws="websockets-sansio", lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def settle(baseline: int, timeout: float = 5) -> int:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(asyncio.all_tasks()) > baseline and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    return len(asyncio.all_tasks())


async def raw_echo(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text")})
        else:
            return


async def server_tasks_per_idle_socket() -> float:
    """How many tasks uvicorn itself keeps per idle socket (with an app that adds none)."""
    async with in_process_server(raw_echo) as url:
        await asyncio.sleep(0.1)
        baseline = len(asyncio.all_tasks())
        sockets = [await connect(url + "/") for _ in range(10)]
        per_socket = (len(asyncio.all_tasks()) - baseline) / 10
        for ws in sockets:
            await ws.close()
    return per_socket


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "inprocess.RecordingLayer"}})
async def test_connect_and_disconnect_leave_no_task_and_no_membership(caplog):
    caplog.set_level(logging.WARNING)
    layer = get_channel_layer()
    uvicorn_per_socket = await server_tasks_per_idle_socket()
    async with in_process_server() as url:
        await asyncio.sleep(0.1)
        baseline = len(asyncio.all_tasks())
        sockets = []
        for i in range(20):
            path = ["/ws/member/leak/", "/ws/consumer/leak/", "/ws/myapp/", "/ws/room/r/"][i % 4]
            ws = await connect(url + path)
            sockets.append((path, ws))
        for path, ws in sockets:
            if "leak" in path:
                assert await recv(ws) == "joined"
        await layer.group_send("leak", {"type": "wsviews.broadcast", "group": "leak", "message": "m"})
        assert sum(layer.pushed.values()) == 10  # five views and five consumers in the group
        # Idle sockets, in groups or not, cost no task beyond the server's own.
        per_socket = (len(asyncio.all_tasks()) - baseline) / len(sockets)
        assert per_socket == uvicorn_per_socket
        for _, ws in sockets:
            await ws.close()
        assert await settle(baseline) == baseline
        assert sorted(layer.detached) == sorted(layer.attached)
        await layer.group_send("leak", {"type": "wsviews.broadcast", "group": "leak", "message": "m"})
        assert sum(layer.pushed.values()) == 10  # nobody left in the group
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_client_vanishing_mid_handshake_leaves_no_task(caplog):
    caplog.set_level(logging.WARNING)
    async with in_process_server() as url:
        await asyncio.sleep(0.1)
        baseline = len(asyncio.all_tasks())
        port = int(url.rsplit(":", 1)[1])
        for _ in range(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /ws/myapp/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         b"Sec-WebSocket-Version: 13\r\n\r\n")
            await writer.drain()
            writer.transport.abort()
        assert await settle(baseline) == baseline
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("path", ["/ws/myapp/", "/ws/room/after-close/"])
async def test_frames_after_the_close_frame_are_ignored_quietly(path, caplog):
    caplog.set_level(logging.WARNING)
    async with in_process_server() as url:
        await asyncio.sleep(0.1)
        baseline = len(asyncio.all_tasks())
        ws = await connect(url + path)
        await ws.send("one")
        await recv(ws)
        # A close frame followed by a text frame, written raw past the client's state machine.
        ws.transport.write(b"\x88\x82abcd" + bytes(b ^ k for b, k in zip(b"\x03\xe8", b"ab", strict=True))
                           + b"\x81\x85abcd" + bytes(b ^ k for b, k in zip(b"hello", b"abcda", strict=True)))
        await asyncio.sleep(0.3)
        ws.transport.abort()
        assert await settle(baseline) == baseline
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
