"""The ASGI application: HTTP to Django (426 on websocket routes), lifespan; the seed on a real uvicorn."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.testing import ApplicationCommunicator

from inprocess import application, http
from wsclient import connect, recv
from wsviews.asgi import WSViewsApplication, innermost_application, is_wsviews_application

SEED_PATHS = ["/websocket/ws/myapp/", "/ws/myapp/"]


# In process


@pytest.mark.parametrize("path", SEED_PATHS)
async def test_plain_http_to_websocket_route_is_426(path):
    status, headers, body = await http(path)
    assert status == 426
    assert headers["upgrade"] == "websocket"
    assert b"websocket endpoint" in body


async def test_admin_still_served_over_http():
    status, _, body = await http("/admin/login/")
    assert status == 200
    assert b"csrfmiddlewaretoken" in body


async def test_lifespan_startup_and_shutdown_are_answered():
    communicator = ApplicationCommunicator(application(), {"type": "lifespan", "asgi": {"version": "3.0"}})
    await communicator.send_input({"type": "lifespan.startup"})
    assert await communicator.receive_output(5) == {"type": "lifespan.startup.complete"}
    await communicator.send_input({"type": "lifespan.shutdown"})
    assert await communicator.receive_output(5) == {"type": "lifespan.shutdown.complete"}
    await communicator.wait(5)


def test_an_unknown_scope_type_is_refused_saying_which():
    with pytest.raises(ValueError, match="cannot handle ASGI scope type 'webtransport'"):
        application()({"type": "webtransport"}, None, None)


def test_wsviews_application_is_recognised_through_wrappers():
    from channels.auth import AuthMiddlewareStack
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.core.asgi import get_asgi_application as django_application

    app = application()
    assert isinstance(app, WSViewsApplication)
    wrapped = ASGIStaticFilesHandler(AuthMiddlewareStack(app))
    assert innermost_application(wrapped) is app
    assert is_wsviews_application(wrapped)
    assert not is_wsviews_application(ASGIStaticFilesHandler(django_application()))


# On a real uvicorn


async def test_seed_consumer_echoes_on_both_paths(server):
    for path in SEED_PATHS:
        async with connect(server.ws + path) as ws:
            for text in ("hello", "wörld ✓", "x" * 10_000):
                await ws.send(text)
                assert await recv(ws) == text


async def test_500_concurrent_sockets_all_echo(server):
    async def one(i: int) -> str:
        async with connect(server.ws + SEED_PATHS[i % 2], open_timeout=60) as ws:
            await ws.send(f"m{i}")
            return await recv(ws, 60)

    replies = await asyncio.gather(*(one(i) for i in range(500)))
    assert replies == [f"m{i}" for i in range(500)]
    assert "Traceback" not in server.log()
    assert "MaxConnectionsError" not in server.log()


async def test_idle_30s_then_echo_on_the_same_socket(memory_server, redis_server):
    async def idle(server) -> str:
        async with connect(server.ws + SEED_PATHS[0]) as ws:
            await asyncio.sleep(31)
            await ws.send("still here")
            return await recv(ws)

    assert await asyncio.gather(idle(memory_server), idle(redis_server)) == ["still here"] * 2
    assert "Traceback" not in redis_server.log()


async def test_client_leaving_mid_handshake_leaves_no_error(memory_server):
    reader, writer = await asyncio.open_connection("127.0.0.1", memory_server.port)
    writer.write(
        b"GET /ws/myapp/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.5)
    async with connect(memory_server.ws + SEED_PATHS[0]) as ws:
        await ws.send("after")
        assert await recv(ws) == "after"
    log = memory_server.log()
    assert "Traceback" not in log
    assert "ERROR" not in log


async def test_unreachable_redis_at_startup_is_one_clear_log_line(tmp_path):
    from servers import free_port, start_uvicorn

    dead = f"redis://127.0.0.1:{free_port()}"
    server = start_uvicorn("settings_views", tmp_path / "server.log", env={"REDIS_URL": dead})
    try:
        async with connect(server.ws + SEED_PATHS[1]) as ws:
            await ws.send("echo works without the layer")
            assert await recv(ws) == "echo works without the layer"
        log = server.log()
    finally:
        server.stop()
    assert log.count("is unreachable") == 1
    assert "Start Redis or fix the hosts in CHANNEL_LAYERS['default']['CONFIG']" in log
    assert "Traceback" not in log
