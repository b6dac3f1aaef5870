"""Live Django templates in headless Chromium, with htmx and Turbo from npm, against real uvicorn.

The example's htmx chat and Turbo list; changes made in the admin, in a
transaction, while a page is disconnected, and in another process over
Redis; and every fragment builder applied by real htmx and real Turbo.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from myapp.models import Item, Message
from servers import REDIS_SERVER, Server, free_port
from wsclient import http
from wsviews import htmx, turbo

pytest_plugins = ["browser", "html_pages"]
pytestmark = pytest.mark.timeout(90)

OpenPage = Callable[..., Page]
StartServer = Callable[..., Server]
ADMIN = ("root", "a long enough admin password")
# A dropped page reconnects with backoff: htmx-ext-ws waits up to 2**retries s.
RECONNECT_TIMEOUT = 40_000


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for_log(server: Server, text: str, count: int = 1, timeout: float = 15) -> None:
    """Wait until ``text`` appears ``count`` times in the server's log."""
    deadline = time.monotonic() + timeout
    while server.log().count(text) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} seen {server.log().count(text)} times, not {count}:\n"
                                 f"{server.log()[-3000:]}")
        time.sleep(0.05)


def orm(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run an ORM call in a thread: Playwright's sync API keeps an event loop in this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(func, *args, **kwargs).result(timeout=30)


def post(url: str, **fields: str) -> tuple[int, bytes]:
    body = "&".join(f"{name}={value}" for name, value in fields.items()).encode()
    return http(url, body, {"Content-Type": "application/x-www-form-urlencoded"})


def broadcast_raw(server: Server, group: str, html: str) -> None:
    """Broadcast ``html`` to ``group`` from the server (the test routes' announce view)."""
    status, _ = http(f"{server.http}/announce/{group}/", json.dumps(html).encode(),
                     {"Content-Type": "application/json"})
    assert status == 204


@pytest.fixture(autouse=True)
def _clean_rows() -> Any:
    yield
    orm(lambda: (Item.objects.all().delete(), Message.objects.all().delete()))


@pytest.fixture
def admin_user(_database: None) -> Any:
    def create() -> None:
        User.objects.filter(username=ADMIN[0]).delete()
        User.objects.create_superuser(ADMIN[0], "", ADMIN[1])

    orm(create)
    yield ADMIN
    orm(lambda: User.objects.filter(username=ADMIN[0]).delete())


def send(page: Page, text: str) -> None:
    page.fill("#message-form input[name=text]", text)
    page.press("#message-form input[name=text]", "Enter")


def chat_lines(page: Page) -> Any:
    return page.locator("#messages li")


def open_items(open_page: OpenPage, server: Server, path: str = "/items/") -> Page:
    page = open_page(server.http + path)
    expect(page.locator("wsviews-stream-source")).to_have_attribute("state", "open")
    return page


def item_names(page: Page) -> Any:
    return page.locator("#items li .text")


# The htmx chat


def test_htmx_chat_message_reaches_every_page_and_a_form_error_only_the_sender(
    live_servers: StartServer, open_page: OpenPage
) -> None:
    """A message sent from one page shows in both, from the template; an error only in the sender's form."""
    server = live_servers()
    room = unique("lobby")
    alice, bob = (open_page(f"{server.http}/htmx-chat/{room}/") for _ in range(2))
    wait_for_log(server, f'"WebSocket /ws/htmx-chat/{room}/" [accepted]', 2)

    send(alice, "hello <b>bob</b>")
    for page in (alice, bob):
        expect(chat_lines(page)).to_have_text(["anonymous: hello <b>bob</b>"])
        expect(page.locator("#messages li .who")).to_have_text(["anonymous:"])
        assert page.locator("#messages b").count() == 0  # the text was escaped by the template
    (message,) = orm(lambda: list(Message.objects.filter(room=room)))
    expect(alice.locator("#messages li")).to_have_attribute("id", f"message-{message.pk}")
    expect(alice.locator("#message-form input[name=text]")).to_have_value("")

    send(bob, "")
    expect(bob.locator("#message-form .errors")).to_have_text("Type a message first.")
    send(alice, "second")
    for page in (alice, bob):
        expect(chat_lines(page)).to_have_text(["anonymous: hello <b>bob</b>", "anonymous: second"])
    assert alice.locator("#message-form .errors").count() == 0
    expect(bob.locator("#message-form .errors")).to_have_text("Type a message first.")
    assert "Traceback" not in server.log()


def test_htmx_chat_shows_what_it_missed_while_disconnected(
    live_servers: StartServer, open_page: OpenPage
) -> None:
    """Messages saved while the server is down appear, once each, after the page reconnects."""
    port = free_port()
    server = live_servers(port)
    room = unique("lobby")
    page = open_page(f"{server.http}/htmx-chat/{room}/")
    wait_for_log(server, f'"WebSocket /ws/htmx-chat/{room}/" [accepted]')
    send(page, "before")
    expect(chat_lines(page)).to_have_text(["anonymous: before"])

    server.stop()
    for text in ("one", "two", "three"):  # saved with no server running: nobody is told
        orm(Message.objects.create, room=room, author="shell", text=text)
    server = live_servers(port)
    expect(chat_lines(page)).to_have_text(
        ["anonymous: before", "shell: one", "shell: two", "shell: three"], timeout=RECONNECT_TIMEOUT)
    send(page, "after")
    expect(chat_lines(page)).to_have_text(
        ["anonymous: before", "shell: one", "shell: two", "shell: three", "anonymous: after"])


def test_htmx_chat_message_during_the_refetch_is_not_lost(
    live_servers: StartServer, open_page: OpenPage
) -> None:
    """A message that arrives while the list's re-fetch (read before it) is under way shows after it."""
    server = live_servers(env={"WSVIEWS_TEST_SLOW_REGION": "2"})
    room = unique("lobby")
    page = open_page(f"{server.http}/htmx-chat/{room}/")
    wait_for_log(server, f'"WebSocket /ws/htmx-chat/{room}/" [accepted]')
    time.sleep(0.5)  # the re-fetch has read the (empty) room and waits to answer
    orm(Message.objects.create, room=room, author="shell", text="unseen")  # no broadcast from here
    send(page, "during the re-fetch")
    wait_for_log(server, f"GET /html/slow-messages/{room}/", 1)  # the stale list is answered
    expect(chat_lines(page)).to_have_text(["shell: unseen", "anonymous: during the re-fetch"])
    wait_for_log(server, f"GET /html/slow-messages/{room}/", 2)  # one more re-fetch, no more
    page.wait_for_timeout(2500)
    assert server.log().count(f"GET /html/slow-messages/{room}/") == 2
    expect(chat_lines(page)).to_have_text(["shell: unseen", "anonymous: during the re-fetch"])


# The Turbo list


def test_turbo_list_follows_the_admin(live_servers: StartServer, open_page: OpenPage,
                                      admin_user: tuple[str, str]) -> None:
    """An item added, edited and deleted in the admin appears, changes and disappears in the open page."""
    server = live_servers()
    page = open_items(open_page, server)
    admin = open_page(f"{server.http}/admin/login/?next=/admin/myapp/item/add/")
    admin.fill("#id_username", admin_user[0])
    admin.fill("#id_password", admin_user[1])
    admin.click("input[type=submit]")

    admin.fill("#id_name", "Apples")
    admin.click("input[name=_save]")
    expect(item_names(page)).to_have_text(["Apples"])
    (item,) = orm(lambda: list(Item.objects.all()))
    expect(page.locator("#items li")).to_have_attribute("id", f"item-{item.pk}")

    admin.goto(f"{server.http}/admin/myapp/item/{item.pk}/change/")
    admin.fill("#id_name", "Green apples")
    admin.check("#id_done")
    admin.click("input[name=_save]")
    expect(item_names(page)).to_have_text(["Green apples"])
    expect(page.locator(f"#item-{item.pk}")).to_have_class("done")

    admin.goto(f"{server.http}/admin/myapp/item/{item.pk}/delete/")
    admin.click("input[type=submit]")
    expect(page.locator("#items li")).to_have_count(0)


def test_turbo_list_changes_only_after_the_commit(live_servers: StartServer, open_page: OpenPage) -> None:
    """A create shows once its transaction commits, not while it is open; a rolled-back one never."""
    server = live_servers()
    page = open_items(open_page, server)
    result: list[Any] = []
    held = threading.Thread(target=lambda: result.append(
        post(f"{server.http}/html/items/create/?mode=hold&seconds=1.5", name="held")))
    held.start()
    wait_for_log(server, "WebSocket /ws/turbo-streams/")  # sanity: the page is connected
    time.sleep(0.8)  # inside the open transaction
    expect(page.locator("#items li")).to_have_count(0)
    held.join(10)
    assert result and result[0][0] == 200
    expect(item_names(page)).to_have_text(["held"])

    assert post(f"{server.http}/html/items/create/?mode=rollback", name="ghost")[0] == 200
    assert post(f"{server.http}/html/items/create/", name="marker")[0] == 200
    expect(item_names(page)).to_have_text(["held", "marker"])  # the rollback's would have come first


def test_turbo_list_shows_what_it_missed_while_disconnected(
    live_servers: StartServer, open_page: OpenPage
) -> None:
    """Three items created while the page's socket is down are all there after it reconnects."""
    port = free_port()
    server = live_servers(port)
    page = open_items(open_page, server)
    server.stop()
    expect(page.locator("wsviews-stream-source")).not_to_have_attribute("state", "open")
    for name in ("one", "two", "three"):
        orm(Item.objects.create, name=name)
    server = live_servers(port)
    expect(item_names(page)).to_have_text(["one", "two", "three"], timeout=RECONNECT_TIMEOUT)
    expect(page.locator("wsviews-stream-source")).to_have_attribute("state", "open")
    assert post(f"{server.http}/html/items/create/", name="four")[0] == 200
    expect(item_names(page)).to_have_text(["one", "two", "three", "four"])


def test_a_change_during_the_reload_is_applied_after_it(
    live_servers: StartServer, open_page: OpenPage
) -> None:
    """A broadcast that arrives while the frame reloads (from older data) is held, then applied."""
    server = live_servers()
    page = open_items(open_page, server, "/html/slow-items/?delay=2")
    time.sleep(0.5)  # the frame's reload has read the rows and is waiting to answer
    assert post(f"{server.http}/html/items/create/", name="during the reload")[0] == 200
    wait_for_log(server, "GET /html/slow-items/?delay=2", 2)  # the page, then the frame: answered
    expect(item_names(page)).to_have_text(["during the reload"])
    page.wait_for_timeout(300)
    expect(item_names(page)).to_have_text(["during the reload"])


# Two processes on Redis


def test_a_change_in_a_process_without_sockets_reaches_pages_on_other_servers(
    live_servers: StartServer, open_page: OpenPage
) -> None:
    """Items and messages created in a management shell reach Turbo and htmx pages on two servers."""
    env = {"REDIS_URL": REDIS_SERVER}
    one, two = live_servers(env=env), live_servers(env=env)
    room = unique("redis")
    lists = [open_items(open_page, server) for server in (one, two)]
    chats = [open_page(f"{server.http}/htmx-chat/{room}/") for server in (one, two)]
    for server in (one, two):
        wait_for_log(server, f'"WebSocket /ws/htmx-chat/{room}/" [accepted]')

    name = unique("from-the-shell")
    code = ("from myapp.models import Item, Message; "
            f"Item.objects.create(name={name!r}); "
            f"Message.objects.create(room={room!r}, author='shell', text='over redis')")
    from html_pages import run_in_example

    run_in_example(code, Path(os.environ["DJANGO_DB"]), {"REDIS_URL": REDIS_SERVER})
    for page in lists:
        expect(item_names(page)).to_have_text([name])
    for page in chats:
        expect(chat_lines(page)).to_have_text(["shell: over redis"])


# Every builder, applied by the real thing


def fragments_page(open_page: OpenPage, server: Server, kind: str) -> tuple[Page, str]:
    group = unique(kind)
    page = open_page(f"{server.http}/html/fragments/{kind}/{group}/")
    if kind == "htmx":
        expect(page.locator("#ready")).to_have_text("ready")
    else:
        expect(page.locator("wsviews-stream-source")).to_have_attribute("state", "open")
    return page, group


def rows(page: Page) -> list[str]:
    return page.locator("#rows tr").all_inner_texts()


def test_htmx_fragments_swap_as_built(live_servers: StartServer, open_page: OpenPage) -> None:
    """Each htmx builder does what it says in htmx itself, table rows and unless_present included."""
    from django.utils.safestring import mark_safe as safe

    server = live_servers()
    page, group = fragments_page(open_page, server, "htmx")

    def apply(html: str) -> None:
        broadcast_raw(server, group, html)

    apply(htmx.append(safe('<tr id="r1"><td>one</td></tr>'), target="rows", unless_present="r1"))
    expect(page.locator("#rows tr")).to_have_text(["one"])
    apply(htmx.append(safe('<tr id="r1"><td>one again</td></tr>'), target="rows", unless_present="r1"))
    apply(htmx.prepend(safe('<tr id="r0"><td>zero</td></tr>'), target="rows"))
    expect(page.locator("#rows tr")).to_have_text(["zero", "one"])
    apply(htmx.replace(safe('<tr id="r1"><td>ONE</td></tr>')))
    apply(htmx.after(safe("<li>after keep</li>"), target="keep"))
    apply(htmx.before(safe("<li>before keep</li>"), target="keep"))
    apply(htmx.update(safe("<b>new</b>"), target="box"))
    apply(htmx.append(safe("<option>first</option>"), target="choices"))
    apply(htmx.append("<i>escaped</i>", targets="#box, #list"))
    apply(htmx.remove(target="r0"))
    expect(page.locator("#rows tr")).to_have_text(["ONE"])
    expect(page.locator("#list li")).to_have_text(["before keep", "keep", "after keep"])
    expect(page.locator("#list")).to_contain_text("<i>escaped</i>")
    expect(page.locator("#box")).to_have_text("new<i>escaped</i>")
    expect(page.locator("#choices option")).to_have_text(["first"])
    assert page.locator("i").count() == 0

    rendered = page.inner_text("#rendered")
    apply(htmx.refresh())
    expect(page.locator("#rendered")).not_to_have_text(rendered)
    expect(page.locator("#rows tr")).to_have_count(0)  # the body is the page's, as the server renders it
    wait_for_log(server, f"WebSocket /ws/html/listen/{group}/", 2)  # the new body's socket


def test_turbo_fragments_apply_as_built(live_servers: StartServer, open_page: OpenPage) -> None:
    """Each Turbo builder does what it says in Turbo itself; refresh reloads the page."""
    from django.utils.safestring import mark_safe as safe

    server = live_servers()
    page, group = fragments_page(open_page, server, "turbo")

    def apply(html: str) -> None:
        broadcast_raw(server, group, html)

    apply(turbo.append(safe('<tr id="r1"><td>one</td></tr>'), target="rows"))
    apply(turbo.append(safe('<tr id="r1"><td>one, once</td></tr>'), target="rows"))
    apply(turbo.prepend(safe('<tr id="r0"><td>zero</td></tr>'), target="rows"))
    expect(page.locator("#rows tr")).to_have_text(["zero", "one, once"])
    apply(turbo.replace(safe('<tr id="r1"><td>ONE</td></tr>'), target="r1"))
    apply(turbo.after(safe("<li>after keep</li>"), target="keep"))
    apply(turbo.before(safe("<li>before keep</li>"), target="keep"))
    apply(turbo.update(safe("<b>new</b>"), target="box"))
    apply(turbo.append("<i>escaped</i>", targets="#box, #list"))
    apply(turbo.remove(target="r0"))
    expect(page.locator("#rows tr")).to_have_text(["ONE"])
    expect(page.locator("#list li")).to_have_text(["before keep", "keep", "after keep"])
    expect(page.locator("#list")).to_contain_text("<i>escaped</i>")
    expect(page.locator("#box")).to_have_text("new<i>escaped</i>")
    assert page.locator("i").count() == 0

    rendered = page.inner_text("#rendered")
    apply(turbo.refresh())
    expect(page.locator("#rendered")).not_to_have_text(rendered)
    assert re.fullmatch(r"[0-9a-f]{32}", page.inner_text("#rendered"))
