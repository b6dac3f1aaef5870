"""The hub through a Redis restart under load: subscribers end with every publication, once, in order.

A private redis-server with an append-only file (``appendfsync always``), so
history survives the restart, as it does for a Redis run for the hub in
production. Two uvicorn processes on it: centrifuge-python subscribed on A,
publications made through B's server API at a steady rate, each with an
idempotency key and retried until Redis takes it. Redis is killed for 2 s
mid-stream. What A's subscriber missed live (nothing reaches A while its
pub/sub connection is down) it gets back by recovery: A sees the gap in the
offsets, ends the subscription with "insufficient state", and the SDK
resubscribes from its last offset.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from harness import Server, http, start_uvicorn
from layers.redis_server import RedisServer

from .settings_hub import API_KEY
from .test_shell import Recorder, disconnect, until

TOTAL = 80
KILL_AT = 30


async def publish(server: Server, n: int) -> bool:
    body = json.dumps({"channel": "chat:outage", "data": {"n": n}, "idempotency_key": f"n{n}"}).encode()
    try:
        status, raw = await asyncio.to_thread(
            http, f"{server.http}/api/publish", body,
            {"Content-Type": "application/json", "X-API-Key": API_KEY}, "POST")
    except OSError:
        return False
    return status == 200 and "error" not in json.loads(raw)


async def test_a_redis_restart_under_load_loses_no_publication_for_a_recovering_subscriber(
        tmp_path: Path, centrifuge: Any, _database: None) -> None:
    redis = RedisServer(tmp_path, extra=["--appendonly", "yes", "--appendfsync", "always"])
    redis.start()
    env = {"WSVIEWS_TEST_HUB_REDIS": redis.url, "WSVIEWS_TEST_HUB_PREFIX": f"outage-{uuid.uuid4().hex[:6]}"}
    try:
        with start_uvicorn("hub.settings_hub", tmp_path / "a.log", env=env) as a, \
                start_uvicorn("hub.settings_hub", tmp_path / "b.log", env=env) as b:
            events = Recorder(centrifuge)
            client = centrifuge.Client(a.ws + "/connection/websocket")
            await client.connect()
            try:
                sub = client.new_subscription("chat:outage", events=events.events, recoverable=True)
                await sub.subscribe()
                await sub.ready()
                async with asyncio.timeout(60):
                    for n in range(TOTAL):
                        if n == KILL_AT:
                            redis.kill()
                            await asyncio.sleep(2)
                            await asyncio.to_thread(redis.start)
                        while not await publish(b, n):
                            await asyncio.sleep(0.1)  # Redis is down (or just back): try again
                        await asyncio.sleep(0.02)
                started = time.monotonic()
                await until(lambda: len(events.pubs) >= TOTAL, 20)
                recovered_after = time.monotonic() - started
            finally:
                await disconnect(client)
            numbers = [data["n"] for data, _ in events.pubs]
            assert numbers == list(range(TOTAL)), numbers
            offsets = [offset for _, offset in events.pubs]
            assert offsets == list(range(offsets[0], offsets[0] + TOTAL))
            assert len(events.subscribed) >= 2, "the subscription was not recovered after the outage"
            assert any(ctx.recovered for ctx in events.subscribed[1:])
            for server in (a, b):
                assert "Traceback" not in server.log()
            print(f"all {TOTAL} delivered; the last {recovered_after:.1f} s after the stream ended")
    finally:
        redis.kill()
