"""A handshake is routed by Django's resolver to its view or consumer, or refused with 404."""

from __future__ import annotations

import json
import logging

import pytest

from inprocess import Client

SEED_PATHS = ["/websocket/ws/myapp/", "/ws/myapp/"]


@pytest.mark.parametrize("path", SEED_PATHS)
async def test_the_seed_consumer_is_reached_on_both_paths(path):
    client = await Client(path).accepted()
    for text in ("hello", "wörld ✓", "x" * 10_000):
        await client.send_text(text)
        assert await client.recv() == text
    await client.leave()


async def test_a_view_is_reached_with_its_url_kwargs():
    client = await Client("/ws/room/lobby-1/").accepted()
    await client.send_text("hi")
    assert await client.recv() == "lobby-1:hi"
    await client.leave()


async def test_unknown_path_is_404_with_a_reason_and_one_log_line(caplog):
    caplog.set_level(logging.INFO, logger="wsviews")
    client = Client("/ws/nowhere/")
    assert await client.handshake() == 404
    assert client.body == b"Not Found: no websocket route for /ws/nowhere/"
    (record,) = [r for r in caplog.records if r.name == "wsviews"]
    assert (record.levelno, record.getMessage()) == (logging.WARNING, "Not Found (websocket): /ws/nowhere/")
    assert record.exc_info is None


async def test_an_http_route_is_not_a_websocket_route():
    assert await Client("/admin/login/").handshake() == 404


async def test_without_the_denial_extension_a_refusal_is_a_close_with_the_reason():
    client = Client("/ws/nowhere/", denial_response=False)
    assert await client.handshake() == 403  # how servers answer a close before accept
    assert client.close_code == 1008
    assert client.body == b"Not Found: no websocket route for /ws/nowhere/"


async def test_url_route_reaches_consumers_like_channels_urlrouter():
    client = await Client("/ws/kwargs/2026/hello-world/").accepted()
    assert json.loads(await client.recv()) == {"args": [], "kwargs": {"year": 2026, "slug": "hello-world"},
                                               "user": "AnonymousUser"}
    await client.leave()


async def test_an_outer_url_route_is_extended_not_replaced():
    client = Client("/ws/kwargs/2026/x/")
    client.scope["url_route"] = {"args": (), "kwargs": {"tenant": "acme"}}
    await client.accepted()
    assert json.loads(await client.recv())["kwargs"] == {"tenant": "acme", "year": 2026, "slug": "x"}
    await client.leave()


async def test_root_path_is_stripped_before_resolving():
    client = Client("/prefix/ws/myapp/")
    client.scope["root_path"] = "/prefix"
    await client.accepted()
    await client.send_text("under a prefix")
    assert await client.recv() == "under a prefix"
    await client.leave()
