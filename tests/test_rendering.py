"""Templates rendered once per broadcast, or once per socket with a request built from its handshake."""

from __future__ import annotations

import asyncio
import re
import uuid
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.template import engines
from django.test import Client, override_settings

from servers import Server
from wsclient import connect, http, recv
from wsviews import rendering

pytest_plugins = ["html_pages"]
pytestmark = pytest.mark.usefixtures("example_host")

LOCMEM = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "OPTIONS": {
        "loaders": [("django.template.loaders.locmem.Loader", {
            "note.html": '<p id="note">{{ text }}</p>',
            "whoami.html": "{{ user.get_username }}|{{ request.path }}|{% csrf_token %}",
        })],
        "context_processors": ["django.template.context_processors.request",
                               "django.contrib.auth.context_processors.auth"],
    },
}]
SECRET = "A" * 32  # a well-formed CSRF secret


@pytest.fixture
def example_host() -> Any:
    """Let the fake handshakes' host through ALLOWED_HOSTS."""
    with override_settings(ALLOWED_HOSTS=["example.com", "127.0.0.1", "localhost"]):
        yield


def fake_socket(**scope: Any) -> Any:
    """Return what render_for_socket() reads of a socket: its scope."""
    base = {"type": "websocket", "scheme": "ws", "path": "/ws/here/", "query_string": b"",
            "headers": [(b"host", b"example.com:8000")], "client": ("10.0.0.7", 5555),
            "server": ("127.0.0.1", 8000), "user": AnonymousUser()}
    return SimpleNamespace(scope={**base, **scope})


async def members(group: str, count: int) -> list[str]:
    layer = get_channel_layer()
    channels = [await layer.new_channel() for _ in range(count)]
    for channel in channels:
        await layer.group_add(group, channel)
    return channels


async def received(channel: str, timeout: float = 2) -> Any:
    return (await asyncio.wait_for(get_channel_layer().receive(channel), timeout))["message"]


async def nothing_for(channel: str, wait: float = 0.3) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(get_channel_layer().receive(channel), wait)


# One render per broadcast


@override_settings(TEMPLATES=LOCMEM)
async def test_one_render_reaches_every_member() -> None:
    """broadcast_html() renders once, however many members, and each gets that HTML as text."""
    group = "html-" + uuid.uuid4().hex[:8]
    channels = await members(group, 5)
    with mock.patch.object(rendering, "render_to_string", wraps=rendering.render_to_string) as render:
        html = await sync_to_async(rendering.broadcast_html)(group, "note.html", {"text": "a < b"})
    assert render.call_count == 1
    assert html == '<p id="note">a &lt; b</p>'
    assert [await received(channel) for channel in channels] == [html] * 5


@override_settings(TEMPLATES=LOCMEM)
async def test_abroadcast_html_renders_in_a_thread_and_sends() -> None:
    """The async twin renders (templates may query the database) and sends to the group."""
    group = "html-" + uuid.uuid4().hex[:8]
    (channel,) = await members(group, 1)
    html = await rendering.abroadcast_html(group, ["missing.html", "note.html"], {"text": "second"})
    assert html == '<p id="note">second</p>'
    assert await received(channel) == html


@override_settings(TEMPLATES=LOCMEM)
async def test_on_commit_sends_after_the_commit_and_not_after_a_rollback() -> None:
    """With on_commit=True a rolled-back transaction sends nothing; a committed one sends once."""
    group = "html-" + uuid.uuid4().hex[:8]
    (channel,) = await members(group, 1)

    def in_transaction(text: str, rollback: bool) -> None:
        with transaction.atomic():
            rendering.broadcast_html(group, "note.html", {"text": text}, on_commit=True)
            if rollback:
                transaction.set_rollback(True)

    await sync_to_async(in_transaction)("rolled back", True)
    await nothing_for(channel)
    await sync_to_async(in_transaction)("committed", False)
    assert await received(channel) == '<p id="note">committed</p>'
    await nothing_for(channel)


@override_settings(TEMPLATES=LOCMEM)
def test_a_template_error_is_raised_in_the_caller() -> None:
    """A missing template fails the call, before anything is sent."""
    from django.template import TemplateDoesNotExist

    with pytest.raises(TemplateDoesNotExist):
        rendering.broadcast_html("html-nobody", "missing.html")


# Per socket


def test_the_request_describes_the_handshake() -> None:
    """Path, query, headers, client, host and scheme come from the socket's scope."""
    request = rendering.socket_request(fake_socket(
        path="/app/ws/here/", root_path="/app", query_string=b"q=1&q=2",
        headers=[(b"host", b"example.com:8000"), (b"user-agent", b"test"),
                 (b"cookie", b"a=1"), (b"cookie", b"b=2")]))
    assert (request.method, request.path, request.path_info) == ("GET", "/app/ws/here/", "/ws/here/")
    assert request.GET.getlist("q") == ["1", "2"]
    assert request.headers["User-Agent"] == "test"
    assert request.COOKIES == {"a": "1", "b": "2"}
    assert request.META["REMOTE_ADDR"] == "10.0.0.7"
    assert request.get_host() == "example.com:8000"
    assert request.is_secure() is False
    assert request.build_absolute_uri() == "http://example.com:8000/app/ws/here/?q=1&q=2"
    assert request.user.is_anonymous
    assert rendering.socket_request(fake_socket(scheme="wss")).is_secure() is True


@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_behind_a_tls_proxy_the_request_is_secure() -> None:
    """SECURE_PROXY_SSL_HEADER works as for HTTP requests."""
    socket = fake_socket(headers=[(b"host", b"example.com"), (b"x-forwarded-proto", b"https")])
    assert rendering.socket_request(socket).is_secure() is True


@override_settings(TEMPLATES=LOCMEM)
def test_templates_see_the_user_request_and_the_pages_csrf_token() -> None:
    """With the CSRF cookie the token is rendered (from that secret); without, nothing is."""
    user = User(username="grace")
    with_cookie = fake_socket(user=user, headers=[(b"host", b"example.com"),
                                                  (b"cookie", f"csrftoken={SECRET}".encode())])
    html = rendering.render_for_socket(with_cookie, "whoami.html")
    assert html.startswith("grace|/ws/here/|<input")
    assert 'name="csrfmiddlewaretoken"' in html
    for cookie in (b"csrftoken=short", b"other=1"):
        bad = fake_socket(user=user, headers=[(b"host", b"example.com"), (b"cookie", cookie)])
        with pytest.warns(UserWarning, match="csrf_token"):  # Django's, with DEBUG on
            assert rendering.render_for_socket(bad, "whoami.html") == "grace|/ws/here/|"


@override_settings(TEMPLATES=LOCMEM, CSRF_USE_SESSIONS=True)
def test_with_csrf_in_sessions_the_secret_comes_from_the_session() -> None:
    """CSRF_USE_SESSIONS reads the secret from the handshake's session."""
    from django.middleware.csrf import CSRF_SESSION_KEY

    socket = fake_socket(session={CSRF_SESSION_KEY: SECRET})
    assert 'name="csrfmiddlewaretoken"' in rendering.render_for_socket(socket, "whoami.html")
    with pytest.warns(UserWarning, match="csrf_token"):
        html = rendering.render_for_socket(fake_socket(session={}), "whoami.html")
    assert "csrfmiddlewaretoken" not in html


def test_the_context_given_wins_over_the_context_processors() -> None:
    """A variable passed in the context is not overwritten (here: user)."""
    template = engines["django"].from_string("{{ user }}")
    request = rendering.socket_request(fake_socket(user=User(username="grace")))
    assert template.render({"user": "given"}, request) == "given"


# On a real server


@pytest.fixture
def login_cookie() -> Any:
    User.objects.filter(username="linus").delete()
    User.objects.create_user("linus", password="hunter2-but-longer")
    client = Client()
    assert client.login(username="linus", password="hunter2-but-longer")
    yield f"sessionid={client.cookies['sessionid'].value}"
    User.objects.filter(username="linus").delete()


def attribute(html: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]*)"', html)
    assert match, f"no {name} in {html}"
    return match.group(1)


async def test_send_html_renders_for_each_socket(html_server: Server, login_cookie: str) -> None:
    """Two sockets get the same template rendered with their own user, path and query."""
    async with connect(html_server.ws + "/ws/html/render/?q=anon") as anonymous, \
            connect(html_server.ws + "/ws/html/render/?q=mine",
                    additional_headers={"Cookie": login_cookie}) as mine:
        await anonymous.send("a")
        await mine.send("b")
        theirs, ours = await recv(anonymous), await recv(mine)
    assert (attribute(theirs, "data-user"), attribute(theirs, "data-authenticated")) == ("", "no")
    assert (attribute(ours, "data-user"), attribute(ours, "data-authenticated")) == ("linus", "yes")
    assert attribute(ours, "data-path") == "/ws/html/render/"
    assert (attribute(theirs, "data-query"), attribute(ours, "data-query")) == ("anon", "mine")
    assert attribute(ours, "data-extra") == "b"
    assert attribute(ours, "data-host") == f"127.0.0.1:{html_server.port}"
    assert attribute(ours, "data-secure") == "no"


async def test_the_rendered_csrf_token_passes_djangos_check(html_server: Server) -> None:
    """A token rendered for a socket carrying the page's CSRF cookie is accepted by a POST view."""
    csrf_cookie = await asyncio.to_thread(_csrf_cookie, html_server)
    async with connect(html_server.ws + "/ws/html/render/",
                       additional_headers={"Cookie": f"csrftoken={csrf_cookie}"}) as ws:
        await ws.send("x")
        token = attribute(await recv(ws), "value")
    async with connect(html_server.ws + "/ws/html/render/") as ws:
        await ws.send("x")
        assert "csrfmiddlewaretoken" not in await recv(ws)

    def post(token: str) -> int:
        status, _ = http(html_server.http + "/html/csrf-check/", f"csrfmiddlewaretoken={token}".encode(),
                         {"Cookie": f"csrftoken={csrf_cookie}",
                          "Content-Type": "application/x-www-form-urlencoded",
                          "Origin": html_server.http})
        return status

    assert await asyncio.to_thread(post, token) == 200
    assert await asyncio.to_thread(post, token[::-1]) == 403


def _csrf_cookie(server: Server) -> str:
    """Return the CSRF cookie a page with a form sets."""
    import urllib.request

    with urllib.request.urlopen(server.http + "/chat/lobby/", timeout=10) as response:
        for header in response.headers.get_all("Set-Cookie"):
            if header.startswith("csrftoken="):
                return header.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError("the page set no CSRF cookie")


async def test_broadcast_html_crosses_processes_and_waits_for_the_commit(
    html_redis_servers: tuple[Server, Server],
) -> None:
    """Sent from one process on Redis, the HTML reaches sockets on both; a rollback sends nothing."""
    one, two = html_redis_servers
    group = "html-" + uuid.uuid4().hex[:8]
    async with connect(f"{one.ws}/ws/member/{group}/") as a, connect(f"{two.ws}/ws/member/{group}/") as b:
        assert await recv(a) == await recv(b) == "joined"

        def send(mode: str, n: int) -> None:
            status, _ = http(f"{one.http}/html/send/{group}/?mode={mode}&n={n}", f"text={mode}".encode(),
                             {"Content-Type": "application/x-www-form-urlencoded"})
            assert status == 204

        await asyncio.to_thread(send, "rollback", 1)
        await asyncio.to_thread(send, "commit", 2)
        for ws in (a, b):
            assert await recv(ws) == '<p id="note-2">commit</p>\n'
