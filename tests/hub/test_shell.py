"""The hub served by a real uvicorn, driven by the real centrifuge-python and centrifuge-js."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from harness import Server, connect, handshake_status, http, recv, start_uvicorn
from wsviews.hub import config, tokens

from .sdks import centrifuge_js
from .settings_hub import API_KEY, HUBS

HUB_CONFIG = config.parse(HUBS["default"])
SCRIPT = Path(__file__).parent / "js" / "sdk_flow.mjs"


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory: pytest.TempPathFactory, _database: None) -> Iterator[Server]:
    """uvicorn serving the example project with the hub at Centrifugo's paths, layer in memory."""
    with start_uvicorn("hub.settings_hub", tmp_path_factory.mktemp("hub") / "server.log") as server:
        yield server


def ws_url(server: Server) -> str:
    return server.ws + "/connection/websocket"


async def api(server: Server, method: str, body: dict[str, Any], key: str = API_KEY,
              header: str = "X-API-Key") -> tuple[int, Any]:
    """POST to the server HTTP API from a thread (the client's loop keeps answering pings)."""
    value = key if header == "X-API-Key" else f"apikey {key}"
    status, raw = await asyncio.to_thread(http, f"{server.http}/api/{method}", json.dumps(body).encode(),
                       {"Content-Type": "application/json", header: value}, "POST")
    return status, json.loads(raw) if raw.startswith(b"{") else raw


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def disconnect(client: Any) -> None:
    """Disconnect a centrifuge-python client and wait for its socket to close.

    The SDK closes the socket in a background task; a test that ended before
    it ran would leave the socket to the garbage collector (a ResourceWarning).
    """
    await client.disconnect()
    pending = list(getattr(client, "_background_tasks", ()))
    if pending:
        await asyncio.wait(pending, timeout=5)


class Recorder:
    """Subscription events of centrifuge-python, recorded."""

    def __init__(self, centrifuge: Any) -> None:
        self.pubs: list[tuple[Any, int]] = []
        self.subscribed: list[Any] = []
        self.joins: list[str] = []
        recorder = self

        class Events(centrifuge.SubscriptionEventHandler):  # type: ignore[misc]
            async def on_subscribed(self, ctx: Any) -> None:
                recorder.subscribed.append(ctx)

            async def on_publication(self, ctx: Any) -> None:
                recorder.pubs.append((ctx.pub.data, ctx.pub.offset))

            async def on_join(self, ctx: Any) -> None:
                recorder.joins.append(ctx.info.user)

        self.events = Events()


# Bad input -------------------------------------------------------------------

async def closed_with(server: Server, *frames: str | bytes) -> tuple[int, str]:
    async with connect(ws_url(server)) as ws:
        try:
            for frame in frames:
                await ws.send(frame)
            while True:
                await recv(ws)
        except ConnectionClosed as exc:
            assert exc.rcvd is not None
            return exc.rcvd.code, exc.rcvd.reason
    raise AssertionError("not closed")


async def test_bad_input_closes_that_socket_with_the_documented_code(hub_server: Server) -> None:
    """Invalid JSON, an unknown command, an oversized frame, a forged token and a command before
    connect each close only their socket, with Centrifugo's code, logged once, no traceback."""
    async with connect(ws_url(hub_server)) as bystander:
        await bystander.send('{"id":1,"connect":{}}')
        assert "connect" in json.loads(await recv(bystander))
        assert await closed_with(hub_server, "not json") == (3501, "bad request")
        assert await closed_with(hub_server, '{"id":1,"connect":{}}', '{"id":2,"frobnicate":{}}') \
            == (3501, "bad request")
        assert (await closed_with(hub_server, "x" * 70_000))[0] == 1009
        forged = tokens.connection_token("mallory", config=HUB_CONFIG, key="another-secret-" * 3,
                                         algorithm="HS256")
        assert await closed_with(hub_server, json.dumps({"id": 1, "connect": {"token": forged}})) \
            == (3500, "invalid token")
        assert await closed_with(hub_server, '{"id":1,"subscribe":{"channel":"chat:x"}}') \
            == (3501, "bad request")
        # The other connection is untouched.
        await bystander.send('{"id":2,"rpc":{"method":"echo","data":{"still":"here"}}}')
        reply = json.loads(await recv(bystander))
        while "rpc" not in reply:  # pings
            reply = json.loads(await recv(bystander))
        assert reply == {"id": 2, "rpc": {"data": {"still": "here"}}}
    log = hub_server.log()
    assert "Traceback" not in log
    assert log.count("not JSON") == 1


async def test_protobuf_is_refused_with_inappropriate_protocol(hub_server: Server) -> None:
    """A client asking for the Protobuf codec is closed with 3506, which the SDKs do not retry."""
    async with connect(ws_url(hub_server) + "?format=protobuf") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 3506


# centrifuge-python -------------------------------------------------------------

async def test_centrifuge_python_publish_presence_history_rpc(hub_server: Server, centrifuge: Any) -> None:
    """Anonymous and JWT clients subscribe, publish, see joins, presence, history and RPC;
    the server API (X-API-Key and Authorization: apikey) publishes to them."""
    ann_events, bob_events = Recorder(centrifuge), Recorder(centrifuge)
    anon = centrifuge.Client(ws_url(hub_server))
    bob = centrifuge.Client(ws_url(hub_server), token=tokens.connection_token(
        "bob", config=HUB_CONFIG, info={"name": "Bob"}))
    await anon.connect()
    await bob.connect()
    try:
        ann_room = anon.new_subscription("chat:py", events=ann_events.events, join_leave=True)
        await ann_room.subscribe()
        await ann_room.ready()
        bob_room = bob.new_subscription("chat:py", events=bob_events.events)
        await bob_room.subscribe()
        await bob_room.ready()
        await until(lambda: "bob" in ann_events.joins)

        await bob_room.publish({"text": "hi"})
        await until(lambda: len(ann_events.pubs) == 1)
        assert ann_events.pubs == [({"text": "hi"}, 1)]

        status, body = await api(hub_server, "publish", {"channel": "chat:py", "data": {"text": "api"}})
        assert status == 200 and body["result"]["offset"] == 2 and body["result"]["epoch"]
        status, body = await api(hub_server, "publish", {"channel": "chat:py", "data": {"text": "auth"}},
                           header="Authorization")
        assert status == 200 and body["result"]["offset"] == 3
        await until(lambda: len(ann_events.pubs) == 3 and len(bob_events.pubs) == 3)
        assert [d["text"] for d, _ in bob_events.pubs] == ["hi", "api", "auth"]

        presence = await ann_room.presence()
        assert sorted(c.user for c in presence.clients.values()) == ["", "bob"]
        stats = await ann_room.presence_stats()
        assert (stats.num_clients, stats.num_users) == (2, 2)
        status, body = await api(hub_server, "presence_stats", {"channel": "chat:py"})
        assert body == {"result": {"num_clients": 2, "num_users": 2}}

        history = await ann_room.history(limit=10)
        assert [p.offset for p in history.publications] == [1, 2, 3]
        assert [p.data["text"] for p in history.publications] == ["hi", "api", "auth"]

        assert (await bob.rpc("echo", {"a": 1})).data == {"a": 1}
        assert (await bob.rpc("whoami", None)).data == {"user": "bob"}
        for method, code in (("fail", 4001), ("missing", 104)):
            with pytest.raises(centrifuge.ReplyError) as refused:
                await bob.rpc(method, {})
            assert refused.value.code == code

        # Hooks: a denied publish is 103; an allowed one is transformed.
        guarded = Recorder(centrifuge)
        g = bob.new_subscription("guarded:open", events=guarded.events)
        await g.subscribe()
        await g.ready()
        with pytest.raises(centrifuge.ReplyError) as denied:
            await g.publish({"forbidden": True})
        assert denied.value.code == 103
        await g.publish({"text": "quiet"})
        await until(lambda: bool(guarded.pubs))
        assert guarded.pubs == [({"text": "QUIET"}, 1)]
        closed = bob.new_subscription("guarded:closed")
        with pytest.raises(centrifuge.SubscriptionUnsubscribedError):
            await closed.subscribe()
            await closed.ready(timeout=3)
    finally:
        await disconnect(anon)
        await disconnect(bob)
    status, _ = await api(hub_server, "publish", {"channel": "chat:py", "data": {}}, key="wrong")
    assert status == 401
    status, body = await api(hub_server, "publish", {"channel": "nowhere:x", "data": {}})
    assert body["error"]["code"] == 102


async def test_recovery_of_exactly_50_missed_publications_then_live(hub_server: Server,
                                                                    centrifuge: Any) -> None:
    """A subscriber away while 50 publications happen gets exactly those 50, in order, then live."""
    events = Recorder(centrifuge)
    client = centrifuge.Client(ws_url(hub_server))
    await client.connect()
    try:
        sub = client.new_subscription("chat:recover", events=events.events)
        await sub.subscribe()
        await sub.ready()
        await api(hub_server, "publish", {"channel": "chat:recover", "data": {"n": 0}})
        await until(lambda: len(events.pubs) == 1)
        await disconnect(client)
        for n in range(1, 51):
            await api(hub_server, "publish", {"channel": "chat:recover", "data": {"n": n}})
        await client.connect()
        await until(lambda: len(events.subscribed) == 2)
        assert events.subscribed[1].was_recovering and events.subscribed[1].recovered
        await until(lambda: len(events.pubs) == 51)
        await api(hub_server, "publish", {"channel": "chat:recover", "data": {"n": 51}})
        await until(lambda: len(events.pubs) == 52)
        await asyncio.sleep(0.2)
        assert [data["n"] for data, _ in events.pubs] == list(range(52))
        assert [offset for _, offset in events.pubs] == list(range(1, 53))
    finally:
        await disconnect(client)


async def test_history_size_2_is_not_recovered(hub_server: Server, centrifuge: Any) -> None:
    """With history_size 2, a subscriber that missed 5 publications is told recovered: false."""
    events = Recorder(centrifuge)
    client = centrifuge.Client(ws_url(hub_server))
    await client.connect()
    try:
        sub = client.new_subscription("small:x", events=events.events)
        await sub.subscribe()
        await sub.ready()
        await until(lambda: len(events.subscribed) == 1)
        await api(hub_server, "publish", {"channel": "small:x", "data": {"n": 0}})
        await until(lambda: len(events.pubs) == 1)
        await disconnect(client)
        for n in range(1, 6):
            await api(hub_server, "publish", {"channel": "small:x", "data": {"n": n}})
        await client.connect()
        await until(lambda: len(events.subscribed) == 2)
        assert events.subscribed[1].was_recovering and not events.subscribed[1].recovered
        await asyncio.sleep(0.2)
        assert len(events.pubs) == 1
    finally:
        await disconnect(client)


async def test_publish_on_commit_sends_nothing_on_rollback_once_on_commit(hub_server: Server,
                                                                         centrifuge: Any) -> None:
    """wsviews.hub.publish() in a transaction reaches subscribers only when, and once, it commits."""
    events = Recorder(centrifuge)
    client = centrifuge.Client(ws_url(hub_server))
    await client.connect()
    try:
        sub = client.new_subscription("news:commits", events=events.events)
        await sub.subscribe()
        await sub.ready()
        for rollback, text in ((True, "rolled back"), (False, "committed")):
            status, body = await asyncio.to_thread(http, f"{hub_server.http}/test/publish", json.dumps(
                {"channel": "news:commits", "data": {"v": text}, "rollback": rollback}).encode(),
                {"Content-Type": "application/json"}, "POST")
            assert (status, body.decode()) == (200, text)
        await until(lambda: bool(events.pubs))
        await asyncio.sleep(0.3)
        assert events.pubs == [({"v": "committed"}, 0)]
    finally:
        await disconnect(client)


async def test_connection_token_expiry_and_refresh(hub_server: Server, centrifuge: Any) -> None:
    """A connection token of 2 s is refreshed through get_token; the client stays connected."""
    issued: list[str] = []

    async def get_token() -> str:
        status, body = await asyncio.to_thread(http, f"{hub_server.http}/test/token?user=carol&expires=2")
        assert status == 200
        issued.append(json.loads(body)["token"])
        return issued[-1]

    client = centrifuge.Client(ws_url(hub_server), get_token=get_token)
    await client.connect()
    try:
        await until(lambda: len(issued) >= 2, 6)
        assert client.state == centrifuge.ClientState.CONNECTED
        assert (await client.rpc("whoami", None)).data == {"user": "carol"}
    finally:
        await disconnect(client)


# centrifuge-js -----------------------------------------------------------------

async def test_centrifuge_js_full_flow_against_the_real_server(hub_server: Server,
                                                               request: pytest.FixtureRequest) -> None:
    """centrifuge-js in Node: connect with JWTs, subscribe, join, publish, presence, history
    (and error 112), RPC, send, recovery, token refresh, refusals and a server disconnect."""
    where = centrifuge_js(request.config)
    shutil.copy(SCRIPT, where / SCRIPT.name)
    now = time.time()
    short = tokens.connection_token("ann", config=HUB_CONFIG, expires_in=4, now=now)
    long = tokens.connection_token("ann", config=HUB_CONFIG, expires_in=600, now=now)
    bob = tokens.connection_token("bob", config=HUB_CONFIG, expires_in=600, now=now)
    argument = json.dumps({"url": ws_url(hub_server), "tokens": {"ann": [short, long, long, long],
                                                                 "bob": bob}, "refreshWaitMs": 4500})
    node = await asyncio.create_subprocess_exec(
        "node", str(where / SCRIPT.name), argument, cwd=where,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(node.communicate(), timeout=60)
    steps = {}
    for line in stdout.decode().splitlines():
        step = json.loads(line)
        steps[step.pop("step")] = step
    assert node.returncode == 0, (steps.get("failed"), stderr.decode()[-2000:], hub_server.log()[-3000:])
    assert steps["connected"] == {"client": True, "transport": "websocket"}
    assert steps["subscribed"] == {"recoverable": True, "positioned": True, "offset": 0, "epoch": True}
    assert steps["published"] == {"pubs": [{"data": {"text": "hi"}, "offset": 1, "user": "bob"}],
                                  "joins": ["ann", "bob"]}
    assert steps["presence"] == {"users": ["ann", "bob"], "numClients": 2, "numUsers": 2}
    assert steps["history"] == {"offsets": [1, 2, 3], "top": 3, "reversed": ["three", "two"]}
    assert steps["history-epoch"] == {"code": 112}
    assert steps["rpc"] == {"data": {"a": 1}, "missing": 104}
    assert steps["recovered"] == {"wasRecovering": True, "recovered": True,
                                  "missed": ["missed-1", "missed-2"]}
    assert steps["refreshed"]["state"] == "connected"
    assert steps["refused"] == {"unknown": 102, "private": 103}
    assert steps["kicked"] == {"code": 3503, "state": "disconnected"}
    assert "Traceback" not in hub_server.log()


# The Django session ------------------------------------------------------------

@pytest.fixture
def session_cookie(_database: None) -> tuple[str, str]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(username="hub-ada")
    user.set_password("correct horse")
    user.save()
    client = Client()
    assert client.login(username="hub-ada", password="correct horse")
    return f"sessionid={client.cookies['sessionid'].value}", str(user.pk)


async def test_a_same_site_browser_is_its_session_user(hub_server: Server,
                                                       session_cookie: tuple[str, str]) -> None:
    """With the session cookie and no token, the connection's user is request.user; a foreign
    origin is refused."""
    cookie, pk = session_cookie
    origin = f"http://127.0.0.1:{hub_server.port}"
    async with connect(ws_url(hub_server), additional_headers={"Cookie": cookie, "Origin": origin}) as ws:
        await ws.send('{"id":1,"connect":{}}\n{"id":2,"rpc":{"method":"whoami"}}')
        replies = []
        while len(replies) < 2:
            replies += [json.loads(line) for line in (await recv(ws)).split("\n")]
    assert replies[1] == {"id": 2, "rpc": {"data": {"user": pk}}}
    assert await handshake_status(ws_url(hub_server), additional_headers={
        "Cookie": cookie, "Origin": "https://evil.example"}) == 403


async def test_quick_subscribe_unsubscribe_loops_leave_presence_exact(hub_server: Server) -> None:
    """Ten subscribe/unsubscribe pairs in one frame, then a subscribe: one presence entry; after
    the last unsubscribe, none (set-ups and tear-downs of a channel run in order)."""
    async with connect(ws_url(hub_server)) as ws:
        lines = ['{"id":1,"connect":{}}']
        for n in range(10):
            lines += [json.dumps({"id": 2 + 2 * n, "subscribe": {"channel": "chat:loop"}}),
                      json.dumps({"id": 3 + 2 * n, "unsubscribe": {"channel": "chat:loop"}})]
        lines.append('{"id":30,"subscribe":{"channel":"chat:loop"}}')
        await ws.send("\n".join(lines))
        seen: set[int] = set()
        while 30 not in seen:
            seen |= {json.loads(line).get("id", 0) for line in (await recv(ws)).split("\n")}
        await asyncio.sleep(0.2)
        status, body = await api(hub_server, "presence_stats", {"channel": "chat:loop"})
        assert body == {"result": {"num_clients": 1, "num_users": 1}}
        await ws.send('{"id":31,"unsubscribe":{"channel":"chat:loop"}}')
        while 31 not in seen:
            seen |= {json.loads(line).get("id", 0) for line in (await recv(ws)).split("\n")}
        await asyncio.sleep(0.2)
        status, body = await api(hub_server, "presence_stats", {"channel": "chat:loop"})
        assert body == {"result": {"num_clients": 0, "num_users": 0}}
