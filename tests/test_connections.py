"""Per-socket records: what a real server's sockets carry, and the hooks the hub uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client as DjangoClient

from harness import Server, start_uvicorn
from harness.clients import connect, recv
from wsviews import connections, revocation
from wsviews.encoding import loads


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_uvicorn("settings_observe", tmp_path_factory.mktemp("records") / "server.log") as server:
        yield server


def _session_cookie(name: str) -> tuple[str, str, str]:
    User.objects.filter(username=name).delete()
    user = User.objects.create_user(name, password="pw for the record")
    client = DjangoClient()
    assert client.login(username=name, password="pw for the record")
    key = client.cookies["sessionid"].value
    return str(user.pk), key, f"sessionid={key}"


async def test_a_views_record_has_its_route_user_session_and_counts(server):
    user_id, key, cookie = await sync_to_async(_session_cookie)("recorded")
    async with connect(f"{server.ws}/ws/record/one/", additional_headers={"Cookie": cookie}) as ws:
        first = loads(await recv(ws))
        assert first == {"route": "ws/record/<slug:name>/", "path": "/ws/record/one/", "kind": "view",
                         "user": "recorded", "user_id": user_id, "session": key, "received": 0,
                         "sent": 0}
        for n in range(3):
            await ws.send(str(n))
            await recv(ws)
        await ws.send("record")
        again = loads(await recv(ws))
        assert (again["received"], again["sent"]) == (4, 4)  # the record itself was the first send


async def test_an_anonymous_socket_has_no_user_and_no_session(server):
    async with connect(f"{server.ws}/ws/record/two/") as ws:
        first = loads(await recv(ws))
        assert (first["user"], first["user_id"], first["session"]) == (None, None, None)


class _Closer:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    async def __call__(self, code: int, reason: str) -> None:
        self.calls.append((code, reason))


async def test_a_hub_record_closes_its_own_way_with_its_revoke_code():
    view_close, hub_close = _Closer(), _Closer()
    scope = {"path": "/ws/x/", "user": None, "session": None}
    view = connections.register(scope, "ws/x/", "view", view_close)
    view.user_id = "42"
    hub_scope = {"path": "/hub/", "user": None, "session": None}
    hub = connections.register(hub_scope, "hub/", "view", _Closer())
    assert connections.connection_of(hub_scope) is hub
    hub.kind, hub.user_id, hub.revoke_code, hub.on_revoke = "hub", "42", 3500, hub_close
    try:
        closed = await revocation.close_matching({"user": "42", "code": 4401, "reason": "gone"})
    finally:
        connections.unregister(view)
        connections.unregister(hub)
    assert closed == 2
    assert view_close.calls == [(4401, "gone")]
    assert hub_close.calls == [(3500, "gone")]
    assert view not in connections.open_connections()
