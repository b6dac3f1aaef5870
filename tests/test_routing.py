"""Websocket routes resolved by Django: include(), converters, names, routing.py discovery."""

from __future__ import annotations

from django.test import override_settings
from django.urls import reverse

from wsviews.routing import resolve_websocket, routing_modules, routing_resolver


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


def test_discovery_can_be_switched_off_and_override_settings_resets_it():
    assert routing_resolver() is not None
    with override_settings(WSVIEWS_DISCOVER_ROUTING=False):
        assert routing_resolver() is None
        assert resolve_websocket("/ws/myapp/") is None  # only in mysite/routing.py
        assert resolve_websocket("/websocket/ws/myapp/") is not None  # include()d in urls.py
    assert resolve_websocket("/ws/myapp/") is not None


def test_include_converters_and_re_path_resolve_like_django():
    match = resolve_websocket("/ws/kwargs/2026/hello/")
    assert (match.kwargs, match.url_name) == ({"year": 2026, "slug": "hello"}, "kwargs")
    assert resolve_websocket("/ws/kwargs/not-a-year/hello/") is None
