"""The JS client and the example pages, in headless Chromium against a real uvicorn."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from harness import Server, free_port

pytest_plugins = ["browser"]
pytestmark = pytest.mark.timeout(30)

OpenPage = Callable[..., Page]


def log_items(page: Page, kind: str) -> list[str]:
    """Return the text of the log lines of ``kind`` ("in", "out", "info", "warn")."""
    return [text.strip() for text in page.locator(f"#log li.{kind} .text").all_inner_texts()]


def send(page: Page, text: str, field: str = "#message") -> None:
    page.fill(field, text)
    page.press(field, "Enter")


def accepted(server: Server, path: str) -> int:
    """Count the handshakes to ``path`` that uvicorn accepted."""
    return server.log().count(f'"WebSocket {path}" [accepted]')


def test_echo_page_connects_and_echoes(
    example_server: Server, open_page: OpenPage, tmp_path: Path
) -> None:
    """The index page shows "open" and logs a typed message going out and coming back."""
    page = open_page(f"{example_server.http}/")
    expect(page.locator("#state")).to_have_text("open")
    expect(page.locator("#log li.info").first).to_have_text(re.compile("connected"))

    send(page, "hello, wsviews")
    expect(page.locator("#log li.in .text")).to_have_text(["hello, wsviews"])
    assert log_items(page, "out") == ["hello, wsviews"]
    assert page.locator("#log li.out .dir").inner_text() == "\u2192"
    assert page.locator("#log li.in .dir").inner_text() == "\u2190"
    assert page.input_value("#message") == ""
    assert accepted(example_server, "/websocket/ws/myapp/") >= 1
    assert page.evaluate("typeof WSViews.connect") == "function"  # for classic scripts
    page.screenshot(path=tmp_path / "index.png", full_page=True)


def test_close_from_the_page_stops_reconnecting(
    example_server: Server, open_page: OpenPage
) -> None:
    """socket.close() closes with 1000 and the client stays closed."""
    page = open_page(f"{example_server.http}/")
    expect(page.locator("#state")).to_have_text("open")
    before = accepted(example_server, "/websocket/ws/myapp/")
    page.evaluate("socket.close()")
    expect(page.locator("#state")).to_have_text("closed")
    expect(page.locator("#log li.warn .text")).to_have_text(
        ["closed: 1000 normal closure; not reconnecting"])
    time.sleep(1)  # twice the first retry's longest delay
    assert accepted(example_server, "/websocket/ws/myapp/") == before


def test_reconnects_after_restart_and_delivers_what_was_queued(
    open_page: OpenPage, start_server: Callable[[int], Server], tmp_path: Path
) -> None:
    """A message typed while the server is down is sent once the page has reconnected."""
    port = free_port()
    server = start_server(port)
    page = open_page(f"{server.http}/")
    expect(page.locator("#state")).to_have_text("open")
    send(page, "before the restart")
    expect(page.locator("#log li.in .text")).to_have_text(["before the restart"])

    server.stop()
    expect(page.locator("#log li.warn .text").first).to_have_text(
        "disconnected: 1012 server restarting")
    expect(page.locator("#state")).to_have_text(re.compile("connecting|reconnecting"))
    expect(page.locator("#log li.info .text", has_text="reconnecting in").first).to_be_visible()

    send(page, "typed while down")
    send(page, "and typed again")
    expect(page.locator("#log li.out .text")).to_have_text([
        "before the restart",
        "typed while down (queued until reconnected)",
        "and typed again (queued until reconnected)",
    ])
    assert page.evaluate("socket.queued") == 2

    server = start_server(port)
    expect(page.locator("#state")).to_have_text("open", timeout=20_000)
    expect(page.locator("#log li.in .text")).to_have_text(
        ["before the restart", "typed while down", "and typed again"])
    expect(page.locator("#log li.info .text", has_text="reconnected")).to_have_text(
        "reconnected, sent 2 queued messages")
    assert page.evaluate("socket.queued") == 0
    page.screenshot(path=tmp_path / "reconnected.png", full_page=True)
    assert accepted(server, "/websocket/ws/myapp/") == 1


@pytest.fixture(params=["memory", "redis"])
def chat_servers(request: pytest.FixtureRequest) -> tuple[Server, Server]:
    """Where alice and bob chat: one in-memory server, or two processes sharing Redis."""
    if request.param == "memory":
        server: Server = request.getfixturevalue("example_server")
        return server, server
    pair: tuple[Server, Server] = request.getfixturevalue("example_redis_servers")
    return pair


def test_chat_reaches_the_room_and_only_the_room(
    chat_servers: tuple[Server, Server], open_page: OpenPage, tmp_path: Path
) -> None:
    """Pages in a room (on one server, or two sharing Redis) see its messages; others do not."""
    one, two = chat_servers
    # Unique rooms: the Redis layer is shared with every other test run.
    lobby, elsewhere = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("lobby", "elsewhere"))
    alice = open_page(f"{one.http}/chat/{lobby}/")
    bob = open_page(f"{two.http}/chat/{lobby}/")
    carol = open_page(f"{one.http}/chat/{elsewhere}/")
    for page in (alice, bob, carol):
        expect(page.locator("#state")).to_have_text("open")

    send(alice, "hello from alice")
    for page in (alice, bob):
        expect(page.locator("#log li.in .text")).to_have_text(["anonymous: hello from alice"])

    send(carol, "carol, alone")
    expect(carol.locator("#log li.in .text")).to_have_text(["anonymous: carol, alone"])

    send(bob, "bob makes an announcement", field="#announcement")
    for page in (alice, bob):
        expect(page.locator("#log li.announcement .text").last).to_have_text(
            "announcement: bob makes an announcement")
    expect(bob.locator("#announcement")).to_have_value("")

    # Everything for the lobby arrived; nothing of it (or of carol's room) crossed over.
    assert log_items(alice, "in") == log_items(bob, "in") == [
        "anonymous: hello from alice", "announcement: bob makes an announcement"]
    assert log_items(carol, "in") == ["anonymous: carol, alone"]
    assert log_items(alice, "warn") == log_items(bob, "warn") == log_items(carol, "warn") == []
    alice.screenshot(path=tmp_path / "chat.png", full_page=True)


def test_chat_signs_messages_with_the_logged_in_user(
    example_server: Server, open_page: OpenPage, superuser: tuple[str, str]
) -> None:
    """After logging in at /admin/, the socket's user is the session's: messages carry the name."""
    username, password = superuser
    page = open_page(f"{example_server.http}/admin/login/?next=/chat/signed/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("input[type=submit]")
    assert page.url == f"{example_server.http}/chat/signed/"
    expect(page.locator("#me")).to_have_text(username)
    expect(page.locator("#state")).to_have_text("open")

    send(page, "signed, sealed, delivered")
    expect(page.locator("#log li.in .text")).to_have_text([f"{username}: signed, sealed, delivered"])


def test_announce_form_posts_without_javascript(
    example_server: Server, open_page: OpenPage
) -> None:
    """With JavaScript off the form posts (CSRF token and all) and the view redirects back."""
    listener = open_page(f"{example_server.http}/chat/plain/")
    expect(listener.locator("#state")).to_have_text("open")
    plain = open_page(f"{example_server.http}/chat/plain/", java_script_enabled=False)

    plain.fill("#announcement", "posted by a plain form")
    with plain.expect_navigation():
        plain.click("#announce button")
    assert plain.url == f"{example_server.http}/chat/plain/"
    expect(listener.locator("#log li.announcement .text")).to_have_text(
        ["announcement: posted by a plain form"])
    assert '"POST /chat/plain/announce/ HTTP/1.1" 302' in example_server.log()


def send_too_long(page: Page) -> None:
    """Type more than the chat view's MAX_TEXT, past the input's maxlength."""
    page.eval_on_selector("#message", "input => input.removeAttribute('maxlength')")
    send(page, "x" * 600)


def send_invalid_json(page: Page) -> None:
    page.evaluate("socket.send('not json')")


@pytest.mark.parametrize(
    ("room", "misbehave", "closed"),
    [
        pytest.param("policy", send_too_long, "closed: 1008 policy violation", id="1008"),
        pytest.param("json", send_invalid_json, "closed: 1007 invalid JSON", id="1007"),
    ],
)
def test_no_reconnect_after_a_close_that_says_do_not_retry(
    example_server: Server,
    open_page: OpenPage,
    room: str,
    misbehave: Callable[[Page], None],
    closed: str,
) -> None:
    """After 1008 or 1007 the client stays closed and refuses to send: a retry would fail again."""
    page = open_page(f"{example_server.http}/chat/{room}/")
    expect(page.locator("#state")).to_have_text("open")

    misbehave(page)

    expect(page.locator("#state")).to_have_text("closed")
    expect(page.locator("#log li.warn .text")).to_have_text([re.compile(
        re.escape(closed) + r".*; not reconnecting")])
    time.sleep(1.5)  # three times the first retry's longest delay
    expect(page.locator("#state")).to_have_text("closed")
    assert accepted(example_server, f"/ws/chat/{room}/") == 1
    assert log_items(page, "info") == [f"joined #{room}"]

    send(page, "anyone there?")
    expect(page.locator("#log li.warn .text").last).to_have_text(
        re.compile("cannot send on a closed socket"))


def test_refused_handshake_is_retried_up_to_max_retries(
    example_server: Server, open_page: OpenPage
) -> None:
    """A 403 handshake looks like a lost connection (1006) to a browser: retried with
    exponential backoff, capped at maxDelay, until maxRetries."""
    page = open_page(f"{example_server.http}/")
    events = page.evaluate("""async () => {
        const { connect } = await import("/static/wsviews/wsviews.js");
        return new Promise((resolve) => {
            const events = [];
            const socket = connect("/ws/test/elsewhere-only/",
                                   { maxRetries: 3, minDelay: 50, maxDelay: 100, jitter: 0 });
            socket.onopen = () => events.push("open");
            socket.addEventListener("reconnect",
                                    (e) => events.push(`reconnect ${e.attempt} after ${e.delay}`));
            socket.addEventListener("close", (e) => {
                events.push(`close ${e.code} ${e.willReconnect ? "retry" : "final"}`);
                if (!e.willReconnect) resolve([...events, socket.state]);
            });
        });
    }""")
    assert events == [
        "close 1006 retry", "reconnect 1 after 50",
        "close 1006 retry", "reconnect 2 after 100",
        "close 1006 retry", "reconnect 3 after 100",  # capped at maxDelay
        "close 1006 final", "closed",
    ]
    assert example_server.log().count('"WebSocket /ws/test/elsewhere-only/" 403') == 4
