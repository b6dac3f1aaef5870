"""Websocket routes resolved by Django: include(), converters, names, routing.py discovery."""

from __future__ import annotations

import json

from django.urls import reverse

from wsclient import connect, recv
from wsviews.routing import resolve_websocket, routing_modules


def test_reverse_names_websocket_routes():
    assert reverse("room", kwargs={"room": "lobby"}) == "/ws/room/lobby/"
    assert reverse("kwargs", kwargs={"year": 2026, "slug": "x"}) == "/ws/kwargs/2026/x/"


def test_resolve_finds_urls_py_routes_and_routing_py_routes():
    assert resolve_websocket("/ws/room/lobby/").kwargs == {"room": "lobby"}
    assert resolve_websocket("/websocket/ws/myapp/").func.consumer_class.__name__ == "MyConsumer"
    assert resolve_websocket("/ws/myapp/").func.consumer_class.__name__ == "MyConsumer"
    assert resolve_websocket("/admin/login/") is None  # an HTTP view is not a websocket route
    assert resolve_websocket("/nowhere/") is None


def test_routing_modules_include_the_project_package():
    assert "mysite.routing" in routing_modules()


async def test_url_route_reaches_consumers_like_channels_urlrouter(memory_server):
    async with connect(memory_server.ws + "/ws/kwargs/2026/hello-world/") as ws:
        route = json.loads(await recv(ws))
    assert route == {"args": [], "kwargs": {"year": 2026, "slug": "hello-world"},
                     "user": "AnonymousUser"}
