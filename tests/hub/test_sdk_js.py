"""The real centrifuge-js SDK works against the protocol core (served by the test driver)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import pytest

from wsviews.hub import config, tokens
from wsviews.hub.events import Refreshed

from .driver import DriverServer
from .sdks import centrifuge_js

HUB = {
    "client": {
        "token": {"hmac_secret_key": "js-test-secret-js-test-secret-0123456789"},
        "ping_interval": "1s",
        "pong_timeout": "800ms",
    },
    "channel": {
        "namespaces": [{
            "name": "chat", "presence": True, "join_leave": True, "force_recovery": True,
            "history_size": 50, "history_ttl": "300s", "allow_subscribe_for_client": True,
            "allow_publish_for_subscriber": True, "allow_presence_for_subscriber": True,
            "allow_history_for_subscriber": True,
        }],
    },
}
SCRIPT = Path(__file__).parent / "js" / "sdk_flow.mjs"


@pytest.fixture(scope="module")
def sdk_dir(request: pytest.FixtureRequest) -> Path:
    where = centrifuge_js(request.config)
    shutil.copy(SCRIPT, where / SCRIPT.name)
    return where


async def test_centrifuge_js_full_flow(sdk_dir: Path) -> None:
    """Connect, subscribe, join, publish, presence, history, RPC, send, recovery, refresh,
    refusals and a server disconnect all behave in centrifuge-js as against Centrifugo."""
    hub_config = config.parse(HUB)
    now = time.time()
    short = tokens.connection_token("ann", config=hub_config, expires_in=4, now=now)
    long = tokens.connection_token("ann", config=hub_config, expires_in=600, now=now)
    bob = tokens.connection_token("bob", config=hub_config, expires_in=600, now=now)
    async with DriverServer(hub_config).running() as hub:
        argument = json.dumps({"url": hub.url, "tokens": {"ann": [short, long, long, long], "bob": bob},
                               "refreshWaitMs": 4500})
        node = await asyncio.create_subprocess_exec(
            "node", str(sdk_dir / SCRIPT.name), argument, cwd=sdk_dir,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(node.communicate(), timeout=60)
    steps = {}
    for line in stdout.decode().splitlines():
        step = json.loads(line)
        steps[step.pop("step")] = step
    assert node.returncode == 0, (steps.get("failed"), stderr.decode()[-2000:])

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
    assert steps["refreshed"] == {"state": "connected", "states": [
        "connecting:0", "connected", "disconnected:0", "connecting:0", "connected"]}
    assert steps["refused"] == {"unknown": 102, "private": 103}
    assert steps["kicked"] == {"code": 3503, "state": "disconnected"}
    assert any(isinstance(event, Refreshed) for event in hub.log)
    assert hub.engine.messages == [b'{"note":"fire and forget"}']
