"""The example's /hub-chat/<room>/ page: centrifuge-js in headless Chromium against the hub on uvicorn."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest
import redis
from playwright.sync_api import Page, expect

from harness import REDIS_SERVER, Server, free_port

pytest_plugins = ["browser"]
pytestmark = pytest.mark.timeout(60)

OpenPage = Callable[..., Page]


def new_room() -> str:
    return f"r{uuid.uuid4().hex[:10]}"


def open_room(open_page: OpenPage, server: Server, room: str) -> tuple[Page, str]:
    """Open the room's page, wait until it is connected and present; return it and its name."""
    page = open_page(f"{server.http}/hub-chat/{room}/")
    expect(page.locator("#state")).to_have_text("open")
    me = page.locator("#me").inner_text()
    expect(page.locator("#presence li.me")).to_have_text(me)
    page.wait_for_function("hubChat.typing.state === 'subscribed'")
    return page, me


def messages(page: Page) -> list[str]:
    return page.locator("#messages li .text").all_inner_texts()


def send(page: Page, text: str) -> None:
    page.fill("#message", text)
    page.press("#message", "Enter")


def test_two_pages_see_each_others_messages_presence_and_typing(
    example_server: Server, open_page: OpenPage, tmp_path: Path
) -> None:
    """Messages signed with the sender's name, presence with join and leave, typing, history on join."""
    room = new_room()
    a, name_a = open_room(open_page, example_server, room)
    b, name_b = open_room(open_page, example_server, room)
    assert name_a != name_b and name_a.startswith("guest-")
    for page in (a, b):
        expect(page.locator("#presence li")).to_have_text(sorted([name_a, name_b]))

    send(a, "hello from A")
    b.locator("#message").press_sequentially("hi", delay=20)
    expect(a.locator("#typing")).to_have_text(f"{name_b} is typing\u2026")
    b.press("#message", "Enter")
    for page in (a, b):
        expect(page.locator("#messages li .text")).to_have_text(["hello from A", "hi"])
        expect(page.locator("#messages li .who")).to_have_text([name_a, name_b])
    expect(a.locator("#typing")).to_have_text("")  # B's message ends B's typing
    a.screenshot(path=tmp_path / "hub-chat.png", full_page=True)

    b.context.close()
    expect(a.locator("#presence li")).to_have_text([name_a])

    c, _ = open_room(open_page, example_server, room)
    expect(c.locator("#messages li .text")).to_have_text(["hello from A", "hi"])


def test_refused_message_and_django_announcement(
    example_server: Server, open_page: OpenPage
) -> None:
    """The publish hook refuses an empty message with its error; hub.publish() in a view reaches the room."""
    room = new_room()
    page, _ = open_room(open_page, example_server, room)
    refused = page.evaluate(
        "hubChat.chat.publish({text: '   '}).then(() => 'sent', (e) => `${e.code} ${e.message}`)")
    assert refused.startswith("400 a chat message is")
    expect(page.locator("#state")).to_have_text("open")  # the connection carries on

    page.fill("#announcement", "from a Django view")
    page.press("#announcement", "Enter")
    expect(page.locator("#messages li.announcement .text")).to_have_text(["from a Django view"])
    assert messages(page) == ["from a Django view"]


def test_logged_in_user_is_named_by_the_session(
    example_server: Server, open_page: OpenPage, superuser: tuple[str, str]
) -> None:
    """After logging in at /admin/ the page's token names the session's user, as others see it."""
    username, password = superuser
    room = new_room()
    page = open_page(f"{example_server.http}/admin/login/?next=/hub-chat/{room}/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("input[type=submit]")
    expect(page.locator("#me")).to_have_text(username)
    expect(page.locator("#presence li.me")).to_have_text(username)
    guest, name = open_room(open_page, example_server, room)
    expect(guest.locator("#presence li")).to_have_text(sorted([username, name]))
    send(page, "signed by the session")
    expect(guest.locator("#messages li .who")).to_have_text([username])

    # What getToken() fetches when the token expires: a fresh one for the same user.
    token = page.evaluate("fetch('/hub-chat/token/').then((r) => r.json()).then((j) => j.token)")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] != "" and claims["info"] == {"name": username}
    assert 0 < claims["exp"] - time.time() <= 600


def test_in_memory_restart_starts_a_new_stream(
    start_server: Callable[[int], Server], open_page: OpenPage
) -> None:
    """In memory a restart loses the history: the page says it could not recover and starts afresh."""
    port, room = free_port(), new_room()
    server = start_server(port)
    page, _ = open_room(open_page, server, room)
    send(page, "before the restart")
    expect(page.locator("#messages li .text")).to_have_text(["before the restart"])

    server.stop()
    expect(page.locator("#banner")).to_be_visible()
    start_server(port)
    expect(page.locator("#banner")).to_be_hidden(timeout=20_000)
    expect(page.locator("#log li.warn .text").last).to_have_text(re.compile("could not recover"))
    expect(page.locator("#messages li")).to_have_count(0)
    send(page, "after the restart")
    expect(page.locator("#messages li .text")).to_have_text(["after the restart"])


def test_head_counts_of_the_other_rooms_come_from_an_rpc(
    example_server: Server, open_page: OpenPage
) -> None:
    """The page's links show each room's clients, answered by the example's @hub.rpc("rooms")."""
    page, _ = open_room(open_page, example_server, "random")
    expect(page.locator('.count[data-room="lobby"]')).to_have_text(" (0 here)")
    open_room(open_page, example_server, "lobby")
    assert page.evaluate("hubChat.refreshRooms()")["lobby"] == 1
    expect(page.locator('.count[data-room="lobby"]')).to_have_text(" (1 here)")
    expect(page.locator('.count[data-room="django"]')).to_have_text(" (0 here)")


@pytest.fixture
def redis_servers(example_db: Path, tmp_path: Path) -> Iterator[Callable[[int], Server]]:
    """Start the example on wsviews' Redis layer (one prefix per test), as often as a test likes."""
    from browser import start_example  # loaded as a plugin first (pytest_plugins)

    servers: list[Server] = []
    prefix = f"hubchat-{uuid.uuid4().hex[:8]}"
    env = {"WSVIEWS_REDIS_URL": REDIS_SERVER, "WSVIEWS_REDIS_PREFIX": prefix}

    def start_(port: int) -> Server:
        server = start_example(port, tmp_path / f"server-{len(servers)}.log", example_db, env=env)
        servers.append(server)
        return server

    yield start_
    for server in servers:
        server.stop()
    # The streams outlive the test (history_ttl): delete this test's keys, only these.
    client = redis.Redis.from_url(REDIS_SERVER)
    try:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
    finally:
        client.close()


def test_nothing_lost_while_a_pages_server_restarts(
    redis_servers: Callable[[int], Server], open_page: OpenPage
) -> None:
    """B's server restarts while A chats on another: B shows the banner, then every message in order."""
    room = new_room()
    server_a, port_b = redis_servers(free_port()), free_port()
    server_b = redis_servers(port_b)
    a, name_a = open_room(open_page, server_a, room)
    b, name_b = open_room(open_page, server_b, room)
    expect(a.locator("#presence li")).to_have_text(sorted([name_a, name_b]))
    send(a, "before")
    expect(b.locator("#messages li .text")).to_have_text(["before"])
    expect(b.locator("#banner")).to_be_hidden()

    server_b.stop()
    expect(b.locator("#banner")).to_be_visible()
    expect(b.locator("#state")).to_have_text("reconnecting")
    expect(a.locator("#presence li")).to_have_text([name_a])
    away = [f"while B is away {n}" for n in range(1, 6)]
    for text in away:
        send(a, text)
    expect(a.locator("#messages li .text")).to_have_text(["before", *away])
    send(b, "typed by B while away")
    expect(b.locator("#log li.info .text").last).to_have_text(
        "queued until reconnected: typed by B while away")

    redis_servers(port_b)
    expect(b.locator("#banner")).to_be_hidden(timeout=20_000)
    everything = ["before", *away, "typed by B while away"]
    for page in (a, b):
        expect(page.locator("#messages li .text")).to_have_text(everything)
    expect(b.locator("#log li.info", has_text="missed messages recovered")).to_have_count(1)
    send(b, "back")
    for page in (a, b):
        expect(page.locator("#messages li .text")).to_have_text([*everything, "back"])
    expect(a.locator("#presence li")).to_have_text(sorted([name_a, name_b]))
