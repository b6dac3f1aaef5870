"""@websocket function views and the socket object, on a real server."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.test import Client

from wsclient import ConnectionClosed, connect, handshake_status, recv
from wsviews.connection import WebSocket, WebSocketState


async def test_url_kwarg_reaches_the_view(server):
    async with connect(server.ws + "/ws/room/lobby-1/") as ws:
        await ws.send("hi")
        assert await recv(ws) == "lobby-1:hi"


async def test_json_round_trip_with_path_and_query(memory_server):
    async with connect(memory_server.ws + "/ws/json/?q=find+me") as ws:
        await ws.send('{"a": [1, 2.5, null], "b": "é"}')
        assert await recv(ws) == (
            '{"got":{"a":[1,2.5,null],"b":"é"},"path":"/ws/json/","query":"find me"}'
        )


async def test_invalid_json_closes_with_1007_and_a_reason(memory_server):
    async with connect(memory_server.ws + "/ws/json/") as ws:
        await ws.send("{not json")
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
    assert info.value.rcvd.code == 1007
    assert "invalid JSON" in info.value.rcvd.reason


async def test_message_over_the_limit_closes_with_1009(memory_server):
    async with connect(memory_server.ws + "/ws/small/") as ws:
        await ws.send("0123456789abcdef")  # 16: at the limit
        assert await recv(ws) == "0123456789abcdef"
        await ws.send("0123456789abcdefg")
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
    assert info.value.rcvd.code == 1009
    assert "17" in info.value.rcvd.reason


async def test_async_for_ends_cleanly_when_the_client_closes(memory_server):
    async with connect(memory_server.ws + "/ws/iterate/closing-client/") as ws:
        for i in range(3):
            await ws.send(str(i))
        await asyncio.sleep(0.1)
    for _ in range(50):
        if "iteration over closing-client ended after 3 messages" in memory_server.log():
            break
        await asyncio.sleep(0.1)
    assert "iteration over closing-client ended after 3 messages" in memory_server.log()


async def test_exception_in_view_closes_1011_and_others_carry_on(memory_server):
    async with connect(memory_server.ws + "/ws/room/bystander/") as bystander:
        async with connect(memory_server.ws + "/ws/boom/") as ws:
            await ws.send("fine")
            assert await recv(ws) == "fine"
            await ws.send("boom")
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
        assert info.value.rcvd.code == 1011
        await bystander.send("still")
        assert await recv(bystander) == "bystander:still"
    await asyncio.sleep(0.2)
    log = memory_server.log()
    assert "Exception in websocket view" in log
    assert "RuntimeError: boom requested by the test" in log


async def test_subprotocol_is_negotiated_from_the_clients_offer(memory_server):
    async with connect(memory_server.ws + "/ws/negotiated/", subprotocols=["v0", "v1.chat"]) as ws:
        assert ws.subprotocol == "v1.chat"
        assert await recv(ws) == "v1.chat"


async def test_login_required_refuses_anonymous_with_403(memory_server):
    assert await handshake_status(memory_server.ws + "/ws/private/") == 403


@pytest.fixture
def session_cookie(db_user):
    client = Client()
    assert client.login(username="ada", password="correct horse")
    return f"sessionid={client.cookies['sessionid'].value}"


@pytest.fixture
def db_user():
    User.objects.filter(username="ada").delete()
    user = User.objects.create_user("ada", password="correct horse")
    yield user
    user.delete()


async def test_login_required_accepts_a_session_cookie(memory_server, session_cookie):
    async with connect(memory_server.ws + "/ws/private/",
                       additional_headers={"Cookie": session_cookie}) as ws:
        assert await recv(ws) == "ada"


async def test_permission_is_required(memory_server, session_cookie, db_user):
    headers = {"Cookie": session_cookie}
    assert await handshake_status(memory_server.ws + "/ws/permitted/",
                                  additional_headers=headers) == 403
    await sync_to_async(_grant)(db_user, "view_user")
    async with connect(memory_server.ws + "/ws/permitted/", additional_headers=headers) as ws:
        assert await recv(ws) == "permitted"


def _grant(user, codename):
    user.user_permissions.add(Permission.objects.get(codename=codename))


async def test_foreign_origin_is_refused_and_allowed_host_accepted(memory_server):
    url = memory_server.ws + "/ws/room/o/"
    assert await handshake_status(url, origin="https://evil.example") == 403
    assert await handshake_status(url, origin=f"http://127.0.0.1:{memory_server.port}") == 101


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


def test_sync_function_is_refused_at_import():
    from django.core.exceptions import ImproperlyConfigured

    from wsviews import websocket

    with pytest.raises(ImproperlyConfigured, match="async def"):

        @websocket
        def not_async(socket):  # pragma: no cover - never called
            pass
