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


def test_a_handshake_path_is_resolved_once_and_then_remembered(monkeypatch):
    from wsviews import routing

    routing._matches.clear()
    calls = []
    real = routing.resolve_websocket
    monkeypatch.setattr(routing, "resolve_websocket", lambda path: calls.append(path) or real(path))
    first = routing.match_websocket("/ws/myapp/")  # found in routing.py, after urls.py failed
    assert first.func.consumer_class.__name__ == "MyConsumer"
    assert routing.match_websocket("/ws/myapp/") is first
    assert routing.match_websocket("/nowhere/") is None
    assert routing.match_websocket("/nowhere/") is None
    assert calls == ["/ws/myapp/", "/nowhere/", "/nowhere/"]  # misses are not kept


def test_remembered_matches_follow_djangos_resolver_and_the_discovery_setting():
    from django.urls import clear_url_caches

    from wsviews import routing

    first = routing.match_websocket("/ws/room/lobby/")
    clear_url_caches()  # Django rebuilds its resolver: what was remembered is forgotten
    again = routing.match_websocket("/ws/room/lobby/")
    assert again is not first and again.kwargs == {"room": "lobby"}
    assert routing.match_websocket("/ws/myapp/") is not None
    with override_settings(WSVIEWS_DISCOVER_ROUTING=False):
        assert routing.match_websocket("/ws/myapp/") is None
    assert routing.match_websocket("/ws/myapp/") is not None


def test_remembered_matches_are_bounded(monkeypatch):
    from wsviews import routing

    monkeypatch.setattr(routing, "MATCHES_MAX", 2)
    routing._matches.clear()
    for room in ("a", "b", "c", "d", "e"):
        assert routing.match_websocket(f"/ws/room/{room}/").kwargs == {"room": room}
        assert len(routing._matches) <= 2


async def test_a_consumer_changing_its_url_route_kwargs_does_not_change_the_next_handshakes():
    from inprocess import Client
    from wsviews import routing

    first = Client("/ws/room/lobby/")
    scope = first.scope
    await first.send_input({"type": "websocket.connect"})
    await first.receive_output(5)
    scope["url_route"]["kwargs"]["room"] = "changed"
    await first.send_input({"type": "websocket.disconnect", "code": 1000})
    await first.wait(5)
    assert routing.match_websocket("/ws/room/lobby/").kwargs == {"room": "lobby"}
