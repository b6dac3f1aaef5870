"""The Redis layer when Redis goes away: our own redis-server, stopped, frozen and restarted.

Each test runs a private redis-server on a free port (never the shared one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from wsviews.layers import ChannelLayerUnavailable
from wsviews.layers.redis import RedisChannelLayer
from wsviews.layers.redis.subscriber import Subscriber

from .contract import TIMEOUT, receive
from .redis_server import REDIS_SERVER, RedisServer, free_port

LOGGER = "wsviews.layers.redis"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.thaw()
    server.kill()


@pytest.fixture
async def layers() -> AsyncIterator[Any]:
    made: list[RedisChannelLayer] = []

    def make(url: str, **config: Any) -> RedisChannelLayer:
        made.append(RedisChannelLayer(hosts=[url], prefix="faults", **config))
        return made[-1]

    yield make
    for layer in made:
        await layer.close()


def collect_loop_errors() -> list[dict[str, Any]]:
    """Collect exceptions that escape to the event loop (crashed tasks, unretrieved errors)."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
    return errors


class Members:
    """Attached members of one group; records when each broadcast reached all of them."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.seen: Counter[int] = Counter()
        self.complete: dict[int, float] = {}
        self.types: Counter[str] = Counter()
        self.changed = asyncio.Event()

    def deliver(self, message: dict[str, Any]) -> None:
        self.types[message["type"]] += 1
        if message["type"] == "broadcast":
            n = message["n"]
            self.seen[n] += 1
            if self.seen[n] == self.count:
                self.complete[n] = time.monotonic()
        self.changed.set()

    async def wait_for(self, predicate: Any, timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    async def join(self, layer: RedisChannelLayer, group: str) -> list[str]:
        channels = []
        for _ in range(self.count):
            channel = await layer.new_channel()
            layer.attach(channel, self.deliver)
            await layer.group_add(group, channel)
            channels.append(channel)
        return channels


def warnings_of(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def test_restart_under_broadcast_load(
    server: RedisServer, layers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis killed for 3 s and restarted: nothing crashes, broadcasts resume within 2 s."""
    caplog.set_level(logging.INFO, LOGGER)
    errors = collect_loop_errors()
    sender = layers(server.url)
    receiver = layers(server.url, on_disconnect="redis.disconnect", on_reconnect="redis.reconnect")
    local, remote = Members(50), Members(50)
    await local.join(sender, "room")
    remote_channels = await remote.join(receiver, "room")
    sent: dict[int, float] = {}
    failures: list[ChannelLayerUnavailable] = []
    stop = asyncio.Event()

    async def broadcast() -> None:
        n = 0
        while not stop.is_set():
            try:
                await sender.group_send("room", {"type": "broadcast", "n": n})
                sent[n] = time.monotonic()
            except ChannelLayerUnavailable as exc:
                failures.append(exc)
            n += 1
            await asyncio.sleep(0.01)  # the broadcast rate: ~100 per second

    task = asyncio.ensure_future(broadcast())
    await local.wait_for(lambda: len(local.complete) >= 20)
    await remote.wait_for(lambda: len(remote.complete) >= 20)
    server.kill()
    killed = time.monotonic()
    await asyncio.sleep(3)  # the length of the outage is the point of the test
    back = await asyncio.to_thread(server.start)
    # Resumed: a broadcast sent after Redis came back has reached every member.
    for members in (local, remote):
        await members.wait_for(
            lambda m=members: any(sent.get(n, 0) > back for n in m.complete)
        )
    resumed = time.monotonic()
    stop.set()
    await task

    assert resumed - back <= 2.0
    assert failures, "group_send during the outage must raise, not lose messages silently"
    assert all(f"127.0.0.1:{server.port}" in str(exc) for exc in failures)
    assert all(isinstance(exc, ConnectionError) for exc in failures)
    assert max(n for n in sent if sent[n] < killed) in local.complete
    # One warning per process and outage; one recovery line each.
    assert len(warnings_of(caplog)) == 2, warnings_of(caplog)
    assert len(warnings_of(caplog, logging.INFO)) == 2, warnings_of(caplog, logging.INFO)
    assert sender.stats["outages"] == receiver.stats["outages"] == 1
    assert sender.stats["failed"] == len(failures)
    assert remote.types["redis.disconnect"] == remote.types["redis.reconnect"] == 50
    # The inbox is subscribed again too.
    await sender.send(remote_channels[0], {"type": "direct"})
    await remote.wait_for(lambda: remote.types["direct"] == 1)
    assert errors == []


async def test_unreachable_at_startup(
    tmp_path: Path, layers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """No Redis yet: one clear warning, sockets still connect, and it all works once Redis runs."""
    caplog.set_level(logging.INFO, LOGGER)
    errors = collect_loop_errors()
    server = RedisServer(tmp_path)
    layer = layers(server.url)
    members = Members(3)
    channels = await members.join(layer, "room")  # connects and joins, as sockets would
    with pytest.raises(ChannelLayerUnavailable, match=f"127.0.0.1:{server.port}"):
        await layer.group_send("room", {"type": "broadcast", "n": 0})
    await asyncio.sleep(1.5)  # the subscriber retries meanwhile; it must not log each retry
    assert len(warnings_of(caplog)) == 1
    assert "Cannot reach Redis" in warnings_of(caplog)[0]
    try:
        await asyncio.to_thread(server.start)
        async with asyncio.timeout(2.5):
            n = 1
            while not members.complete:
                with contextlib.suppress(ChannelLayerUnavailable):
                    await layer.group_send("room", {"type": "broadcast", "n": n})
                n += 1
                await asyncio.sleep(0.05)  # the broadcast rate
        await layer.send(channels[0], {"type": "direct"})
        await members.wait_for(lambda: members.types["direct"] == 1)
    finally:
        server.kill()
    assert "Reached Redis" in " ".join(warnings_of(caplog, logging.INFO))
    assert errors == []


async def test_frozen_redis_is_detected_without_a_reset(
    server: RedisServer, layers: Any, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that stops answering (a network cut: no RST) is noticed by PINGs and timeouts."""
    caplog.set_level(logging.WARNING, LOGGER)
    monkeypatch.setattr(Subscriber, "ping_interval", 0.3)
    monkeypatch.setattr("wsviews.layers.redis.config.POOL_WAIT_ALLOWANCE", 0.5)
    layer = layers(server.url)
    sender = layers(f"{server.url}?socket_timeout=0.5")
    members = Members(2)
    await members.join(layer, "room")
    await sender.group_send("room", {"type": "broadcast", "n": 0})
    await members.wait_for(lambda: 0 in members.complete)
    server.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(ChannelLayerUnavailable, match="TimeoutError"):
            await sender.group_send("room", {"type": "broadcast", "n": 1})
        assert time.monotonic() - started < 3
        # The subscriber notices the silence by itself (no answer to its PING).
        async with asyncio.timeout(5):
            while layer.stats["outages"] == 0:
                await asyncio.sleep(0.05)  # stats have no event; the PING period is 0.3 s
    finally:
        server.thaw()
    async with asyncio.timeout(5):
        while 2 not in members.complete:
            with contextlib.suppress(ChannelLayerUnavailable):
                await sender.group_send("room", {"type": "broadcast", "n": 2})
            await asyncio.sleep(0.05)  # the broadcast rate
    assert layer.stats["reconnects"] >= 1


async def test_sentinel(tmp_path: Path, layers: Any) -> None:
    """A Sentinel-form host finds the master through a real sentinel."""
    master = RedisServer(tmp_path / "master")
    master.directory.mkdir()
    master.start()
    sentinel_dir = tmp_path / "sentinel"
    sentinel_dir.mkdir()
    port = free_port()
    conf = sentinel_dir / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {sentinel_dir}\n"
        f"sentinel monitor wsvmaster 127.0.0.1 {master.port} 1\n"
    )
    sentinel = subprocess.Popen([REDIS_SERVER, str(conf), "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.execute_command("SENTINEL", "get-master-addr-by-name", "wsvmaster"):
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)  # polling a process that has no readiness event
        client.close()
        host = {"sentinels": [("127.0.0.1", port)], "master_name": "wsvmaster"}
        a, b = layers(host), layers(host)
        channel = await b.new_channel()
        await b.group_add("room", channel)
        await a.group_send("room", {"type": "via.sentinel"})
        assert (await receive(b, channel))["type"] == "via.sentinel"
        await a.send("worker", {"type": "job"})
        assert (await receive(b, "worker"))["type"] == "job"
        await a.flush()
    finally:
        sentinel.kill()
        sentinel.wait(10)
        master.kill()


async def test_many_layers_in_one_test_do_not_share_outage_state(
    server: RedisServer, tmp_path: Path, layers: Any
) -> None:
    """An outage of one Redis does not mark another, healthy one as down."""
    other = RedisServer(tmp_path / "other")
    other.directory.mkdir()
    other.start()
    try:
        healthy, doomed = layers(other.url), layers(server.url)
        channel = await healthy.new_channel()
        server.kill()
        with pytest.raises(ChannelLayerUnavailable):
            await doomed.group_send("room", {"type": "t"})
        await healthy.send(channel, {"type": "fine"})
        assert (await receive(healthy, channel))["type"] == "fine"
        assert healthy.stats["outages"] == 0
    finally:
        other.kill()

