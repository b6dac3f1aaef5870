"""The server HTTP API at api/<method>: Centrifugo's own Python client ``cent`` works against it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from harness import Server, http, start_uvicorn

from .sdks import cent
from .settings_hub import API_KEY
from .test_shell import Recorder, disconnect, until

CENT_SCRIPT = """
import json, sys
from cent import (BroadcastRequest, Client, HistoryRequest, PresenceStatsRequest, PublishRequest,
                  CentApiResponseError)
client = Client(sys.argv[1], sys.argv[2])
out = {}
out["publish"] = client.publish(PublishRequest(channel="chat:cent", data={"via": "cent"})).model_dump()
out["broadcast"] = len(client.broadcast(BroadcastRequest(channels=["chat:cent", "news:cent"],
                                                         data={"via": "broadcast"})).responses)
out["stats"] = client.presence_stats(PresenceStatsRequest(channel="chat:cent")).model_dump()
history = client.history(HistoryRequest(channel="chat:cent", limit=10))
out["history"] = [p.data for p in history.publications]
try:
    client.publish(PublishRequest(channel="nowhere:x", data={}))
except CentApiResponseError as exc:
    out["error"] = exc.code
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory: pytest.TempPathFactory, _database: None) -> Iterator[Server]:
    with start_uvicorn("hub.settings_hub", tmp_path_factory.mktemp("hub-api") / "server.log") as server:
        yield server


async def test_cent_publishes_through_the_http_api(hub_server: Server, centrifuge: Any,
                                                   request: pytest.FixtureRequest) -> None:
    """cent's publish, broadcast, presence_stats and history; its error for an unknown namespace."""
    where = cent(request.config)
    events = Recorder(centrifuge)
    client = centrifuge.Client(hub_server.ws + "/connection/websocket")
    await client.connect()
    try:
        sub = client.new_subscription("chat:cent", events=events.events)
        await sub.subscribe()
        await sub.ready()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CENT_SCRIPT, hub_server.http + "/api", API_KEY,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(where)})
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, stderr.decode()[-2000:]
        out = json.loads(stdout)
        assert out["publish"]["offset"] == 1 and out["publish"]["epoch"]
        assert out["broadcast"] == 2
        assert out["stats"] == {"num_clients": 1, "num_users": 1}
        assert out["history"] == [{"via": "cent"}, {"via": "broadcast"}]
        assert out["error"] == 102
        await until(lambda: len(events.pubs) == 2)
        assert events.pubs == [({"via": "cent"}, 1), ({"via": "broadcast"}, 2)]
    finally:
        await disconnect(client)


def post(server: Server, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    status, raw = http(f"{server.http}/{path}", body, headers, "POST")
    return status, json.loads(raw)


def test_api_refusals(hub_server: Server) -> None:
    """No key 401, wrong key 401, body not JSON 400, unknown method 104, missing field 107, GET 405."""
    key = {"X-API-Key": API_KEY}
    assert post(hub_server, "api/publish", b"{}", {})[0] == 401
    assert post(hub_server, "api/publish", b"{}", {"X-API-Key": "nope"})[0] == 401
    assert post(hub_server, "api/publish", b"{not json", key)[0] == 400
    assert post(hub_server, "api/frobnicate", b"{}", key) == (
        200, {"error": {"code": 104, "message": "method not found: 'frobnicate'"}})
    status, body = post(hub_server, "api/publish", b'{"channel": "chat:x"}', key)
    assert status == 200 and body["error"]["code"] == 107
    assert http(f"{hub_server.http}/api/publish", headers=key)[0] == 405
    status, body = post(hub_server, "api", json.dumps({"commands": [
        {"publish": {"channel": "news:batch", "data": 1}}, {"info": {}}]}).encode(), key)
    assert status == 200 and len(body["replies"]) == 2 and "result" in body["replies"][0]
    assert "Traceback" not in hub_server.log()
