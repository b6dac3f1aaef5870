"""One handshake pass: origin, session and user, permissions, subprotocol, size limit; refusals answered."""

from __future__ import annotations

import asyncio
import contextvars
import logging

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.test import Client as DjangoClient
from django.test import override_settings

from inprocess import Client
from servers import start_uvicorn
from wsclient import InvalidStatus, connect
from wsviews import handshake
from wsviews.decorators import WebSocketOptions
from wsviews.handshake import Admission, Refusal, decide, origin_refusal


def scope(origin: str | None = None, subprotocols=()) -> dict:
    headers = [(b"host", b"127.0.0.1:8000")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "path": "/ws/x/", "headers": headers, "subprotocols": list(subprotocols)}


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "wsviews" and r.levelno == logging.WARNING]


# Origins


def test_no_origin_header_is_a_non_browser_client_and_allowed():
    assert origin_refusal(scope()) is None


def test_an_origin_whose_host_is_in_allowed_hosts_is_allowed():
    assert origin_refusal(scope("http://127.0.0.1:8000")) is None
    assert origin_refusal(scope("http://[::1]:8000")) is None


def test_a_foreign_origin_is_refused_naming_allowed_hosts():
    reason = origin_refusal(scope("https://evil.example"))
    assert reason == ("https://evil.example: host 'evil.example' is not in ALLOWED_HOSTS (add it there, "
                      "or list the origin in WSVIEWS_ALLOWED_ORIGINS)")


def test_allowed_origins_setting_replaces_allowed_hosts_and_is_named():
    with override_settings(WSVIEWS_ALLOWED_ORIGINS=["https://app.example/"]):
        assert origin_refusal(scope("https://app.example")) is None
        assert origin_refusal(scope("http://127.0.0.1:8000")) == \
            "http://127.0.0.1:8000 is not in WSVIEWS_ALLOWED_ORIGINS"
    with override_settings(WSVIEWS_ALLOWED_ORIGINS=["*"]):
        assert origin_refusal(scope("https://anything.example")) is None


def test_a_views_origins_replace_the_setting_and_are_named():
    with override_settings(WSVIEWS_ALLOWED_ORIGINS=["*"]):
        assert origin_refusal(scope("https://a.example"), ["https://b.example"]) == \
            "https://a.example is not in @websocket(origins=...) of this view"


def test_an_origin_without_a_host_is_refused():
    assert origin_refusal(scope("null")) == "'null' is not an origin"


async def test_foreign_origin_to_a_consumer_is_403_and_logged_once(caplog):
    caplog.set_level(logging.INFO, logger="wsviews")
    client = Client("/ws/myapp/", origin="https://evil.example")
    assert await client.handshake() == 403
    assert client.body == b"Forbidden: this origin may not open a websocket here."
    assert warnings_of(caplog) == [
        "Forbidden (websocket origin): /ws/myapp/: https://evil.example: host 'evil.example' is not in "
        "ALLOWED_HOSTS (add it there, or list the origin in WSVIEWS_ALLOWED_ORIGINS)"]


async def test_foreign_origin_to_a_view_is_403_and_an_allowed_host_is_accepted():
    assert await Client("/ws/room/o/", origin="https://evil.example").handshake() == 403
    client = Client("/ws/room/o/", origin="http://127.0.0.1:8000")
    assert await client.handshake() == 101
    await client.leave()


# Decisions


async def test_decide_admits_a_view_with_its_size_limit_and_subprotocol():
    options = WebSocketOptions(subprotocols=["v2", "v1"], max_message_size=16)
    decision = await decide(scope(subprotocols=["v0", "v1"]), options)
    assert decision == Admission(max_message_size=16, subprotocol="v1")


async def test_decide_gives_a_view_the_setting_as_its_default_size_limit():
    with override_settings(WSVIEWS_MAX_MESSAGE_SIZE=512):
        assert await decide(scope(), WebSocketOptions()) == Admission(max_message_size=512)


async def test_decide_admits_a_consumer_with_no_limit_of_ours():
    assert await decide(scope(), None) == Admission()


async def test_decide_refuses_anonymous_for_login_required():
    decision = await decide(scope(), WebSocketOptions(login_required=True))
    assert decision == Refusal(403, "Forbidden: login required",
                               "Forbidden (websocket): /ws/x/: login required")


async def test_decide_loads_session_and_user_into_the_scope():
    handshake_scope = scope()
    await decide(handshake_scope, None)
    assert handshake_scope["cookies"] == {}
    assert handshake_scope["session"].session_key is None
    assert not handshake_scope["user"].is_authenticated


async def test_subprotocol_none_offered_means_none_chosen():
    assert (await decide(scope(), WebSocketOptions(subprotocols=["v1"]))).subprotocol is None


@pytest.fixture
def db_user():
    User.objects.filter(username="ada").delete()
    user = User.objects.create_user("ada", password="correct horse")
    yield user
    user.delete()


@pytest.fixture
def session_cookie(db_user):
    client = DjangoClient()
    assert client.login(username="ada", password="correct horse")
    return f"sessionid={client.cookies['sessionid'].value}"


async def test_login_required_refuses_anonymous_and_accepts_a_session_cookie(session_cookie, caplog):
    caplog.set_level(logging.INFO, logger="wsviews")
    anonymous = Client("/ws/private/")
    assert await anonymous.handshake() == 403
    assert anonymous.body == b"Forbidden: login required"
    assert warnings_of(caplog) == ["Forbidden (websocket): /ws/private/: login required"]
    client = await Client("/ws/private/", headers=[("Cookie", session_cookie)]).accepted()
    assert await client.recv() == "ada"
    await client.leave()


async def test_permission_is_required(session_cookie, db_user):
    headers = [("Cookie", session_cookie)]
    refused = Client("/ws/permitted/", headers=headers)
    assert await refused.handshake() == 403
    assert refused.body == b"Forbidden: permission auth.view_user required"
    await sync_to_async(db_user.user_permissions.add)(
        await sync_to_async(Permission.objects.get)(codename="view_user"))
    client = await Client("/ws/permitted/", headers=headers).accepted()
    assert await client.recv() == "permitted"
    await client.leave()


async def test_subprotocol_is_negotiated_from_the_clients_offer():
    client = await Client("/ws/negotiated/", subprotocols=["v0", "v1.chat"]).accepted()
    assert client.accepted_subprotocol == "v1.chat"
    assert await client.recv() == "v1.chat"
    await client.leave()


# uvicorn's spurious ERROR after a denial response


def test_the_filter_drops_uvicorns_error_only_after_a_denial_response():
    record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1,
                               handshake.UVICORN_INCOMPLETE_HANDSHAKE, None, None)
    other = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application",
                              None, None)
    quiet = handshake.DenialResponseFilter()
    assert quiet.filter(record)  # no denial sent here: a real missing handshake is still logged

    def after_denial() -> tuple[bool, bool]:
        handshake._denial_response_sent.set(True)
        return quiet.filter(record), quiet.filter(other)

    assert contextvars.copy_context().run(after_denial) == (False, True)


def test_the_application_installs_the_filter_on_uvicorns_logger():
    from wsviews.asgi import get_asgi_application

    get_asgi_application()
    assert any(isinstance(f, handshake.DenialResponseFilter)
               for f in logging.getLogger("uvicorn.error").filters)


@pytest.mark.parametrize("ws", ["websockets-sansio", "websockets"])
async def test_refused_handshakes_log_no_error_on_either_uvicorn_implementation(tmp_path, ws):
    """404 and 403 reach the client with their reason; the server logs one WARNING each and no ERROR."""
    server = start_uvicorn("settings_views", tmp_path / "server.log", args=["--ws", ws])
    try:
        refused = {}
        for path, headers in (("/ws/nowhere/", {}), ("/ws/private/", {}),
                              ("/ws/myapp/", {"Origin": "https://evil.example"})):
            with pytest.raises(InvalidStatus) as info:
                async with connect(server.ws + path, additional_headers=headers):
                    pass
            refused[path] = (info.value.response.status_code, info.value.response.body)
        async with connect(server.ws + "/ws/myapp/") as ws_client:  # and the server carries on
            await ws_client.send("still serving")
            assert await asyncio.wait_for(ws_client.recv(), 5) == "still serving"
        await asyncio.sleep(0.3)
        log = server.log()
    finally:
        server.stop()
    assert refused == {
        "/ws/nowhere/": (404, b"Not Found: no websocket route for /ws/nowhere/"),
        "/ws/private/": (403, b"Forbidden: login required"),
        "/ws/myapp/": (403, b"Forbidden: this origin may not open a websocket here."),
    }
    assert "ERROR" not in log, log
    assert "Traceback" not in log
    assert log.count("Not Found (websocket): /ws/nowhere/") == 1
    assert log.count("Forbidden (websocket): /ws/private/: login required") == 1
