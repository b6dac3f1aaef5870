"""@websocket function views and the socket object: its state machine, frames, errors and close codes."""

from __future__ import annotations

import asyncio
import logging

import pytest

from inprocess import Client
from wsclient import ConnectionClosed, connect, recv
from wsviews.connection import WebSocket, WebSocketDisconnect, WebSocketState


async def closed(client: Client) -> tuple[int, str]:
    message = await client.closed()
    return message.get("code", 1000), message.get("reason", "")


def errors_of(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_json_round_trip_with_path_and_query():
    client = await Client("/ws/json/?q=find+me").accepted()
    await client.send_text('{"a": [1, 2.5, null], "b": "é"}')
    assert await client.recv() == '{"got":{"a":[1,2.5,null],"b":"é"},"path":"/ws/json/","query":"find me"}'
    await client.leave()


async def test_invalid_json_closes_with_1007_and_a_reason():
    client = await Client("/ws/json/").accepted()
    await client.send_text("{not json")
    code, reason = await closed(client)
    assert code == 1007
    assert reason.startswith("invalid JSON")


async def test_message_over_the_limit_closes_with_1009_giving_the_sizes():
    client = await Client("/ws/small/").accepted()
    await client.send_text("0123456789abcdef")  # 16: at the limit
    assert await client.recv() == "0123456789abcdef"
    await client.send_text("0123456789abcdefg")
    assert await closed(client) == (1009, "message of 17 bytes is over the 16 byte limit")


async def test_async_for_ends_cleanly_when_the_client_closes(caplog):
    caplog.set_level(logging.INFO, logger="tests")
    client = await Client("/ws/iterate/closing-client/").accepted()
    for i in range(3):
        await client.send_text(str(i))
    await client.leave()
    assert "iteration over closing-client ended after 3 messages" in caplog.text
    assert errors_of(caplog) == []


async def test_exception_in_view_closes_1011_logs_the_traceback_and_others_carry_on(caplog):
    bystander = await Client("/ws/room/bystander/").accepted()
    client = await Client("/ws/boom/").accepted()
    await client.send_text("fine")
    assert await client.recv() == "fine"
    await client.send_text("boom")
    assert (await closed(client))[0] == 1011
    await bystander.send_text("still")
    assert await bystander.recv() == "bystander:still"
    await bystander.leave()
    (record,) = errors_of(caplog)
    assert record.getMessage() == "Exception in websocket view urls_views.boom for /ws/boom/"
    assert "RuntimeError: boom requested by the test" in caplog.text


async def run_view(view, messages=(), send=None) -> list[dict]:
    """Serve ``view`` on a WebSocket fed ``messages``; return what it sent."""
    inbox = [{"type": "websocket.connect"}, *messages, {"type": "websocket.disconnect", "code": 1000}]
    sent: list[dict] = []

    async def receive():
        return inbox.pop(0)

    async def record(message):
        sent.append(message)

    scope = {"type": "websocket", "path": "/x/", "headers": [], "extensions": {"websocket.http.response": {}}}
    await WebSocket(scope, receive, send or record).serve(view)
    return sent


async def test_exception_before_accept_refuses_the_handshake_with_500(caplog):
    async def broken(socket):
        raise ValueError("broken before accept")

    sent = await run_view(broken)
    assert [m["type"] for m in sent] == ["websocket.http.response.start", "websocket.http.response.body"]
    assert sent[0]["status"] == 500
    assert "ValueError: broken before accept" in caplog.text


async def test_a_view_returning_before_accept_refuses_and_after_accept_closes_1000():
    async def refuses(socket):
        return

    async def accepts(socket):
        await socket.accept()

    assert await run_view(refuses) == [{"type": "websocket.close", "code": 1000, "reason": ""}]
    sent = await run_view(accepts)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    assert sent[1]["code"] == 1000


async def test_a_client_gone_on_send_ends_the_view_quietly(caplog):
    async def send(message):
        if message["type"] == "websocket.send":
            raise ConnectionResetError("client gone")  # what servers raise: a subclass of OSError

    seen: list[str] = []

    async def talks(socket):
        await socket.accept()
        try:
            await socket.send("hello")
        except WebSocketDisconnect as exc:
            seen.append(f"disconnect {exc.code}")
            raise

    await run_view(talks, send=send)
    assert seen == ["disconnect 1006"]
    assert errors_of(caplog) == []


async def test_receive_text_refuses_a_binary_frame_with_1003():
    async def text_only(socket):
        await socket.accept()
        await socket.receive_text()

    sent = await run_view(text_only, [{"type": "websocket.receive", "bytes": b"\x00"}])
    assert sent[-1] == {"type": "websocket.close", "code": 1003,
                        "reason": "expected a text frame, got a binary frame"}


async def test_state_machine_says_what_it_expected():
    messages = [{"type": "websocket.receive", "text": "early"}]

    async def receive():
        return messages.pop(0)

    async def send(message):
        raise AssertionError("nothing should be sent")

    socket = WebSocket({"type": "websocket", "path": "/x/"}, receive, send)
    with pytest.raises(RuntimeError, match='call "await socket.accept\\(\\)"'):
        await socket.receive()
    with pytest.raises(RuntimeError, match="Expected ASGI message 'websocket.connect'"):
        await socket.accept()
    assert socket.state is WebSocketState.CONNECTING


async def test_send_takes_str_or_bytes_and_says_what_to_use_otherwise():
    async def sends_a_dict(socket):
        await socket.accept()
        with pytest.raises(TypeError, match="use send_json"):
            await socket.send({"a": 1})
        await socket.send_json({"a": 1})
        await socket.send(b"\x01")

    sent = await run_view(sends_a_dict)
    assert sent[1:3] == [{"type": "websocket.send", "text": '{"a":1}'},
                         {"type": "websocket.send", "bytes": b"\x01"}]


def test_sync_function_is_refused_at_import():
    from django.core.exceptions import ImproperlyConfigured

    from wsviews import websocket

    with pytest.raises(ImproperlyConfigured, match="async def"):

        @websocket
        def not_async(socket):  # pragma: no cover - never called
            pass


async def test_close_codes_and_reasons_reach_a_real_client(memory_server):
    """On the wire: 1007 and 1009 with their reasons, 1011 for an exception; the server carries on."""

    async def close_of(path: str, text: str) -> tuple[int, str]:
        async with connect(memory_server.ws + path) as ws:
            await ws.send(text)
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
        assert info.value.rcvd is not None
        return info.value.rcvd.code, info.value.rcvd.reason

    code, reason = await close_of("/ws/json/", "{not json")
    assert (code, reason.startswith("invalid JSON: "), "line 1 column 2" in reason) == (1007, True, True)
    assert await close_of("/ws/small/", "x" * 17) == (1009, "message of 17 bytes is over the 16 byte limit")
    assert (await close_of("/ws/boom/", "boom"))[0] == 1011
    async with connect(memory_server.ws + "/ws/room/after/") as ws:
        await ws.send("alive")
        assert await asyncio.wait_for(ws.recv(), 5) == "after:alive"
