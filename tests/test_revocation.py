"""Revocation against two real server processes on Redis: every socket of the user or session closes."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client as DjangoClient
from django.test import override_settings

from harness import EXAMPLE, REDIS_SERVER, Server, free_port, start, start_uvicorn
from harness.clients import connect, http, recv
from wsviews import revocation

PREFIX = f"wsviews-observe-{uuid.uuid4().hex[:8]}"
REDIS = f"{REDIS_SERVER}/13"
ENV = {"OBSERVE_REDIS": REDIS, "OBSERVE_PREFIX": PREFIX}
LAYERS = {"default": {"BACKEND": "wsviews.layers.RedisChannelLayer",
                      "CONFIG": {"hosts": [REDIS], "prefix": PREFIX}}}
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Process A is ``manage.py serve`` (control channel opened at startup); B is plain uvicorn
    without the ASGI lifespan (control channel opened with its first socket)."""
    logs = tmp_path_factory.mktemp("revocation")
    port = free_port()
    argv = [sys.executable, "manage.py", "serve", f"127.0.0.1:{port}"]
    with start(argv, "settings_observe", logs / "a.log", port, ENV, cwd=EXAMPLE) as a, \
            start_uvicorn("settings_observe", logs / "b.log", env=ENV, args=["--lifespan", "off"]) as b:
        yield a, b


@pytest.fixture
async def layer() -> AsyncIterator[None]:
    """This process on the servers' Redis layer too (a shell, a worker, a management command)."""
    with override_settings(CHANNEL_LAYERS=LAYERS):
        yield
        for backend in list(channel_layers.backends.values()):
            await backend.close()


def _user_with_session(name: str) -> tuple[User, str]:
    User.objects.filter(username=name).delete()
    user = User.objects.create_user(name, password=PASSWORD)
    client = DjangoClient()
    assert client.login(username=name, password=PASSWORD)
    return user, f"sessionid={client.cookies['sessionid'].value}"


user_with_session = sync_to_async(_user_with_session)


async def open_all(servers: tuple[Server, Server], cookie: str, group: str) -> list:
    """Open a view socket and a consumer socket on each server, with ``cookie``."""
    headers = {"Cookie": cookie}
    sockets = []
    for server in servers:
        view = await connect(f"{server.ws}/ws/room/{group}/", additional_headers=headers)
        await view.send("hello")
        assert await recv(view) == f"{group}:hello"
        consumer = await connect(f"{server.ws}/ws/consumer/{group}/", additional_headers=headers)
        assert await recv(consumer) == "joined"
        sockets += [view, consumer]
    await asyncio.sleep(0.3)  # B joins the control group with its first socket, in the background
    return sockets


async def closed_within(sockets: list, timeout: float) -> float:
    """Return how long until every socket is closed by the server; fail after ``timeout``."""
    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(ws.wait_closed() for ws in sockets)), timeout)
    return time.monotonic() - started


async def still_open(sockets: list, group: str) -> None:
    for ws in sockets[::2]:  # the views echo
        await ws.send("still")
        assert await recv(ws) == f"{group}:still"


async def test_logout_closes_the_sessions_sockets_in_both_processes(servers):
    a, b = servers
    _, cookie = await user_with_session("logout-user")
    _, other_cookie = await user_with_session("logout-bystander")
    sockets = await open_all(servers, cookie, "logout")
    others = await open_all(servers, other_cookie, "logout")
    started = time.monotonic()
    status, _ = await asyncio.to_thread(http, f"{a.http}/observe/logout/", b"",
                                        {"Cookie": cookie})
    assert status == 200
    await asyncio.wait_for(asyncio.gather(*(ws.wait_closed() for ws in sockets)), 1.0)
    elapsed = time.monotonic() - started
    print(f"logout: 4 sockets in 2 processes closed in {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0
    assert {ws.close_code for ws in sockets} == {4401}
    assert {ws.close_reason for ws in sockets} == {"logged out"}
    await still_open(others, "logout")
    for ws in others:
        await ws.close()
    assert "Revoked 2 socket(s)" in a.log() and "Revoked 2 socket(s)" in b.log()
    logs = a.log() + b.log()
    assert "Traceback" not in logs and "ERROR" not in logs


@pytest.mark.parametrize("change", ["deactivate", "delete", "password_change"])
async def test_deactivation_deletion_and_password_change_close_the_users_sockets_everywhere(
        servers, layer, change):
    user, cookie = await user_with_session(f"{change}-user")
    _, other_cookie = await user_with_session(f"{change}-bystander")
    sockets = await open_all(servers, cookie, change)
    others = await open_all(servers, other_cookie, change)

    def act() -> None:
        if change == "deactivate":
            user.is_active = False
            user.save()
        elif change == "delete":
            user.delete()
        else:
            # A fast hasher: the time measured is the revocation's, not PBKDF2's.
            with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
                user.set_password("a new one, 2026")
            user.save()

    started = time.monotonic()
    await sync_to_async(act)()
    await asyncio.wait_for(asyncio.gather(*(ws.wait_closed() for ws in sockets)), 1.0)
    elapsed = time.monotonic() - started
    print(f"{change}: 4 sockets in 2 processes closed in {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0
    assert {ws.close_code for ws in sockets} == {4401}
    reasons = {"deactivate": "account deactivated", "delete": "account deleted",
               "password_change": "password changed"}
    assert {ws.close_reason for ws in sockets} == {reasons[change]}
    await still_open(others, change)
    for ws in others:
        await ws.close()
    logs = "".join(server.log() for server in servers)
    assert "Traceback" not in logs and "ERROR" not in logs


async def test_deleting_the_session_row_closes_its_sockets(servers, layer):
    _, cookie = await user_with_session("session-user")
    sockets = await open_all(servers, cookie, "session")
    key = cookie.split("=", 1)[1]
    await sync_to_async(lambda: Session.objects.filter(session_key=key).delete())()
    await closed_within(sockets, 1.0)
    assert {ws.close_reason for ws in sockets} == {"session ended"}


async def test_disconnect_user_by_hand_with_its_own_code_and_reason(servers, layer):
    user, cookie = await user_with_session("by-hand-user")
    sockets = await open_all(servers, cookie, "byhand")
    closed_here = await revocation.adisconnect_user(user, code=4000, reason="maintenance")
    assert closed_here == 0  # none in this process: all in the servers
    await closed_within(sockets, 1.0)
    assert {(ws.close_code, ws.close_reason) for ws in sockets} == {(4000, "maintenance")}


@override_settings(WSVIEWS_REVOKE_ON=["logout"])
async def test_events_left_out_of_revoke_on_close_nothing(servers, layer):
    user, cookie = await user_with_session("kept-user")
    sockets = await open_all(servers, cookie, "kept")

    def deactivate() -> None:
        user.is_active = False
        user.save()

    await sync_to_async(deactivate)()  # this process decides: REVOKE_ON here has no "deactivate"
    await asyncio.sleep(0.5)
    await still_open(sockets, "kept")
    for ws in sockets:
        await ws.close()


@pytest.mark.parametrize(("value", "expected"), [
    (["logut"], "Did you mean 'logout'?"),
    ("logout", "e.g. WSVIEWS_REVOKE_ON = ["),
])
def test_a_wrong_revoke_on_is_a_check_error_naming_the_fix(value, expected):
    from wsviews.checks import check_settings

    with override_settings(WSVIEWS_REVOKE_ON=value):
        errors = [e for e in check_settings() if e.id == "wsviews.E073"]
    assert len(errors) == 1 and expected in errors[0].hint


async def test_a_management_shell_revokes_in_every_serving_process(servers):
    """A process that serves nothing (a shell, a command) reaches the servers through Redis."""
    from harness import server_env

    user, cookie = await user_with_session("shell-user")
    sockets = await open_all(servers, cookie, "shell")
    code = (f"from django.contrib.auth.models import User; u = User.objects.get(pk={user.pk}); "
            "u.is_active = False; u.save()")
    shell = await asyncio.create_subprocess_exec(
        sys.executable, "manage.py", "shell", "-c", code, cwd=EXAMPLE,
        env=server_env("settings_observe", ENV), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(shell.communicate(), 60)
    assert shell.returncode == 0, output.decode()
    assert b"Traceback" not in output and b"Warning" not in output, output.decode()
    await closed_within(sockets, 5.0)
    assert {(ws.close_code, ws.close_reason) for ws in sockets} == {(4401, "account deactivated")}
