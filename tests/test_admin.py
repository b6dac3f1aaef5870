"""The live admin page in headless Chromium: staff only, and its socket count follows real clients."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from harness import Server
from harness.clients import close_sockets, http, open_sockets

pytest_plugins = ["browser"]

LIVE = "/admin/wsviews/live/"


@pytest.fixture
def run() -> Iterator[Callable[[Coroutine[Any, Any, Any]], Any]]:
    """Run coroutines (real websocket clients) on a loop in another thread: Playwright's sync API
    owns this thread's loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield lambda coro: asyncio.run_coroutine_threadsafe(coro, loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def log_in(open_page, server: Server, username: str, password: str):
    page = open_page(f"{server.http}/admin/login/?next={LIVE}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("input[type=submit]")
    assert page.url == f"{server.http}{LIVE}"
    return page


def test_the_live_page_shows_a_socket_count_change_when_clients_connect(
        example_server: Server, open_page, superuser, run) -> None:
    page = log_in(open_page, example_server, *superuser)
    expect(page.locator("#wsviews-state")).to_have_text("live")
    count = page.locator("#wsviews-sockets")
    expect(count).to_have_text("1")  # the page's own socket
    sockets = run(open_sockets(f"{example_server.ws}/ws/chat/live-admin/", 3))
    try:
        expect(count).to_have_text("4")
        expect(page.locator("#wsviews-routes")).to_contain_text("ws/chat/<slug:room>/")
        expect(page.locator("#wsviews-groups")).to_contain_text("chat-live-admin")
    finally:
        run(close_sockets(sockets))
    expect(count).to_have_text("1")
    assert "Traceback" not in example_server.log()


def test_the_live_page_lists_hub_channels_with_their_subscribers(
        example_server: Server, open_page, superuser, run) -> None:
    """A hub client of the example's chat (token from the page's own token view) shows as a channel row."""
    import json

    from harness.clients import connect, recv

    page = log_in(open_page, example_server, *superuser)
    expect(page.locator("#wsviews-state")).to_have_text("live")
    status, body = http(f"{example_server.http}/hub-chat/token/")
    assert status == 200
    token = json.loads(body)["token"]

    async def subscribe() -> Any:
        ws = await connect(f"{example_server.ws}/connection/websocket")
        await ws.send(json.dumps({"id": 1, "connect": {"token": token}}))
        assert "connect" in json.loads(await recv(ws))
        await ws.send(json.dumps({"id": 2, "subscribe": {"channel": "room:live-admin"}}))
        replies = [json.loads(line) for line in (await recv(ws)).split("\n")]
        assert any(r.get("id") == 2 and "subscribe" in r for r in replies), replies
        return ws

    ws = run(subscribe())
    rows = page.locator("#wsviews-hub-channels")
    try:
        expect(rows).to_contain_text("room:live-admin")
        expect(rows.locator("tr", has_text="room:live-admin")).to_contain_text("1")
        expect(page.locator("#wsviews-routes")).to_contain_text("hub")
    finally:
        run(ws.close())
    expect(rows).not_to_contain_text("room:live-admin")


def test_the_live_page_and_its_socket_are_for_staff_only(example_server: Server, run) -> None:
    status, body = http(f"{example_server.http}{LIVE}")
    assert status == 200 and b'id="id_username"' in body  # redirected to the admin's login page
    from harness.clients import handshake_status

    assert run(handshake_status(f"{example_server.ws}{LIVE}socket/")) == 403


@pytest.fixture(scope="module")
def observe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The test routes on uvicorn, sharing this process's database (users made here log in there)."""
    from harness import start_uvicorn

    with start_uvicorn("settings_observe", tmp_path_factory.mktemp("admin") / "server.log") as server:
        yield server


def _cookie(name: str, staff: bool) -> str:
    """Make the user and log in, in another thread (Playwright's loop may own this one)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_make_and_log_in, name, staff).result(30)


def _make_and_log_in(name: str, staff: bool) -> str:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client as DjangoClient

    User.objects.filter(username=name).delete()
    User.objects.create_user(name, password="pw for the admin", is_staff=staff)
    client = DjangoClient()
    assert client.login(username=name, password="pw for the admin")
    connection.close()  # this thread's connection ends with it
    return f"sessionid={client.cookies['sessionid'].value}"


def test_the_live_socket_refuses_a_logged_in_user_who_is_not_staff(observe_server: Server, run) -> None:
    from harness.clients import connect, handshake_status, recv

    url = f"{observe_server.ws}{LIVE}socket/"
    plain = {"Cookie": _cookie("not-staff", staff=False)}
    assert run(handshake_status(url, additional_headers=plain)) == 403

    async def first_snapshot() -> dict[str, Any]:
        from wsviews.encoding import loads

        async with connect(url, additional_headers={"Cookie": _staff}) as ws:
            return dict(loads(await recv(ws)))

    _staff = _cookie("staff", staff=True)
    snapshot = run(first_snapshot())
    assert snapshot["sockets"] == 1
    assert snapshot["users"] == [{"user": "staff", "count": 1}]
    assert {"route": f"{LIVE.strip('/')}/socket/", "kind": "view", "count": 1} in snapshot["routes"]
