"""The Redis engine: the shared contract against a real Redis, then what only Redis has."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from redis.asyncio import Redis

from layers.test_redis_faults import RedisServer
from servers import REDIS_SERVER
from wsviews.hub import engine_redis_scripts as lua
from wsviews.hub.engine import (
    PUBLICATION_MESSAGE_TYPE,
    ClientInfo,
    Engine,
    PresenceStats,
    StreamPosition,
    group_for_channel,
)
from wsviews.hub.engine_redis import RedisEngine
from wsviews.layers import ChannelLayerUnavailable

from .engine_contract import EngineContract, Hub, info, publish_many
from .redis_runner import Receiver, ScriptRunner, parse_payload

REDIS = f"{REDIS_SERVER}/12"


def unique_prefix() -> str:
    return f"wsvhub-{uuid.uuid4().hex[:12]}"


class RedisHub(Hub):
    """A Redis engine on the test Redis, a receiver for its group PUBLISHes, and more processes."""

    unit = 0.5

    def __init__(self, url: str = REDIS, prefix: str | None = None, **engine_options: Any) -> None:
        self.url = url
        self.prefix = prefix or unique_prefix()
        self.engine_options = engine_options
        self.clients: list[Redis] = []
        self.admin = self._client()
        self.runner = ScriptRunner(self._client(), self.prefix)
        self.redis_engine = self._engine(self.runner)
        super().__init__(self.redis_engine)
        self.receiver = Receiver(self._client(), self.prefix, self.deliver)

    def _client(self) -> Redis:
        client = Redis.from_url(self.url, socket_timeout=5)
        self.clients.append(client)
        return client

    def _engine(self, runner: ScriptRunner) -> RedisEngine:
        options = {"history_meta_ttl": self.meta_ttl_units * self.unit, **self.engine_options}
        return RedisEngine(runner, prefix=self.prefix, **options)

    async def elapse(self, units: float) -> None:
        await asyncio.sleep(units * self.unit)

    async def lose_stream(self, channel: str) -> None:
        group = group_for_channel(channel)
        schema = self.redis_engine.schema
        await self.admin.delete(schema.stream(group), schema.meta(group))

    async def processes(self, count: int) -> list[Engine]:
        """Return engines with their own connections, as other processes have."""
        return [self.engine] + [
            self._engine(ScriptRunner(self._client(), self.prefix)) for _ in range(count - 1)
        ]

    async def keys(self) -> list[bytes]:
        return [key async for key in self.admin.scan_iter(match=f"{self.prefix}:*", count=1000)]

    async def aclose(self) -> None:
        await self.receiver.stop()
        with contextlib.suppress(Exception):
            keys = await self.keys()
            if keys:
                await self.admin.delete(*keys)
        for client in self.clients:
            await client.aclose()


@contextlib.asynccontextmanager
async def redis_hub(**options: Any) -> AsyncIterator[RedisHub]:
    hub = RedisHub(**options)
    try:
        await hub.receiver.start()
        yield hub
    finally:
        await hub.aclose()


class TestRedisEngineContract(EngineContract):
    def make_hub(self) -> contextlib.AbstractAsyncContextManager[Hub]:
        return redis_hub()


@pytest.fixture
async def hub() -> AsyncIterator[RedisHub]:
    async with redis_hub() as hub:
        yield hub


# What the scripts PUBLISH


async def test_a_publish_with_history_publishes_the_message_stamped_with_its_position(hub: RedisHub) -> None:
    """The group PUBLISH is "\\0<offset>:<epoch>:" then the layer's envelope of the message."""
    position = await hub.engine.publish(
        "chat:index", b'{"a":1}', history_size=5, history_ttl=60, info=info("c", "u"), tags={"t": "1"}
    )
    assert position is not None
    await hub.wait_delivered(1)
    payload = hub.receiver.payloads[0]
    assert payload.startswith(b"\0%d:%s:" % (position.offset, position.epoch.encode()))
    message = parse_payload(hub.runner.codec, payload)
    assert message == {
        "type": PUBLICATION_MESSAGE_TYPE, "channel": "chat:index", "data": b'{"a":1}',
        "info": ["u", "c", None, None], "tags": {"t": "1"},
        "offset": position.offset, "epoch": position.epoch,
    }


async def test_a_publish_without_history_publishes_the_message_as_is(hub: RedisHub) -> None:
    """Without history the envelope is published unstamped, and no key is written."""
    await hub.engine.publish("plain", b"1", history_size=0, history_ttl=0)
    await hub.wait_delivered(1)
    payload = hub.receiver.payloads[0]
    assert not payload.startswith(b"\0")
    assert "offset" not in parse_payload(hub.runner.codec, payload)
    assert await hub.keys() == []


# Keys


async def test_every_key_has_a_ttl_and_its_groups_hash_tag(hub: RedisHub) -> None:
    """All keys expire, each TTL is the one documented, and each carries its group's hash tag."""
    engine = hub.engine
    channel = "room:42"
    group = group_for_channel(channel)
    await engine.publish(channel, b"1", history_size=3, history_ttl=30, idempotency_key="k",
                         idempotent_result_ttl=20)
    await engine.publish(channel, b"2", history_size=0, history_ttl=0, idempotency_key="k2",
                         idempotent_result_ttl=20)
    await engine.history("room:other", limit=0)
    await engine.add_presence(channel, "c1", info("c1", "u1"))
    keys = sorted(await hub.keys())
    assert len(keys) == 8
    expected_max = {b"stream": 30_000, b"meta": 30_000, b"result": 20_000,
                    b"presence": 60_000}
    for key in keys:
        ttl = await hub.admin.pttl(key)
        kind = key.split(b":")[2]
        assert 0 < ttl <= expected_max[kind], (key, ttl)
        tag = key[key.index(b"{") + 1:key.index(b"}")]
        assert tag in (group.encode(), group_for_channel("room:other").encode()), key
    # The group's pub/sub topic has the same hash tag, so one shard serves them all.
    assert b"{%s}" % group.encode() in hub.runner.schema.group_topic(group)


async def test_the_stream_is_trimmed_exactly(hub: RedisHub) -> None:
    """MAXLEN is exact, so the window is history_size entries, as in the memory engine."""
    await publish_many(hub.engine, "trim", 300, history_size=7)
    stream = hub.redis_engine.schema.stream(group_for_channel("trim"))
    assert await hub.admin.xlen(stream) == 7


async def test_each_call_is_one_round_trip(hub: RedisHub) -> None:
    """Every engine call runs one script: one round trip to Redis."""
    engine = hub.engine
    since = StreamPosition(0, "e")
    calls = [
        engine.publish("rt", b"1", history_size=5, history_ttl=60),
        engine.publish("rt", b"1", history_size=5, history_ttl=60, idempotency_key="k"),
        engine.publish("rt", b"1", history_size=0, history_ttl=0),
        engine.publish("rt", b"1", history_size=0, history_ttl=0, idempotency_key="k"),
        engine.history("rt", limit=0),
        engine.history("rt", since=since, reverse=True),
        engine.recover("rt", since),
        engine.remove_history("rt"),
        engine.add_presence("rt", "c", info("c", "u")),
        engine.refresh_presence("rt", {f"c{n}": info(f"c{n}", "u") for n in range(50)}),
        engine.presence("rt"),
        engine.presence_stats("rt"),
        engine.remove_presence("rt", "c"),
    ]
    for call in calls:
        before = hub.runner.calls
        await call
        assert hub.runner.calls == before + 1


# Losing things


async def test_a_stream_without_its_meta_is_not_served_under_a_new_epoch(hub: RedisHub) -> None:
    """If the meta key is lost (evicted) but the stream survives, the old entries go with the old epoch."""
    positions = await publish_many(hub.engine, "evicted", 3)
    meta = hub.redis_engine.schema.meta(group_for_channel("evicted"))
    await hub.admin.delete(meta)
    history = await hub.engine.history("evicted")
    assert history.publications == () and history.position.offset == 0
    assert history.position.epoch != positions[0].epoch
    await hub.admin.delete(meta)
    again = await hub.engine.publish("evicted", b"new", history_size=10, history_ttl=60)
    assert again is not None and again.offset == 1
    assert [p.data for p in (await hub.engine.history("evicted")).publications] == [b"new"]


async def test_recover_sends_no_entries_when_it_cannot_recover(hub: RedisHub) -> None:
    """The recover script returns entries only when they recover the client (no wasted transfer)."""
    top = (await publish_many(hub.engine, "w", 30, history_size=10))[-1]
    group = group_for_channel("w")
    schema = hub.redis_engine.schema
    keys = [schema.stream(group), schema.meta(group)]

    async def entries(offset: int, epoch: str, limit: int = -1) -> int:
        args = [offset, epoch, limit, 60000, "x", offset + 1]
        reply = await hub.runner.run_script(group, lua.RECOVER, keys, args)
        return (len(reply) - 2) // 2 if len(reply) > 2 else -1

    assert await entries(5, top.epoch) == -1            # before the window
    assert await entries(25, "other") == -1             # another epoch
    assert await entries(31, top.epoch) == -1           # from the future
    assert await entries(25, top.epoch, limit=4) == -1  # over the limit
    assert await entries(25, top.epoch) == 5


async def test_a_restarted_redis_makes_new_epochs(tmp_path: Path) -> None:
    """Redis restarted without persistence: offsets start again under a new epoch; nobody recovers."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        async with redis_hub(url=server.url) as hub:
            before = (await publish_many(hub.engine, "r", 3))[-1]
            server.kill()
            with pytest.raises(ChannelLayerUnavailable):
                await hub.engine.publish("r", b"lost", history_size=10, history_ttl=60)
            server.start()
            after = await hub.engine.publish("r", b"x", history_size=10, history_ttl=60)
            assert after is not None and after.offset == 1 and after.epoch != before.epoch
            recovery = await hub.engine.recover("r", before)
            assert not recovery.recovered and recovery.position == after
    finally:
        server.kill()


# Presence expiry


async def test_the_presence_of_a_process_that_stops_refreshing_vanishes_within_the_ttl() -> None:
    """A live process keeps its clients by refreshing every ttl/3; a dead one's vanish after the ttl."""
    ttl = 1.5
    async with redis_hub(presence_ttl=ttl) as hub:
        alive, dead = await hub.processes(2)
        live_clients = {"a1": info("a1", "alice"), "a2": info("a2", "alice")}
        await alive.refresh_presence("room", live_clients)
        await dead.add_presence("room", "b1", info("b1", "bob"))
        await dead.add_presence("room", "c1", info("c1", "alice"))
        assert await alive.presence_stats("room") == PresenceStats(4, 2)

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(ttl / 3)
                await alive.refresh_presence("room", live_clients)

        beating = asyncio.create_task(heartbeat())
        try:
            await asyncio.sleep(ttl * 1.6)
            assert await alive.presence("room") == live_clients
            assert await alive.presence_stats("room") == PresenceStats(2, 1)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        # Once nobody refreshes, the keys themselves expire.
        await asyncio.sleep(ttl * 1.3)
        assert await hub.keys() == []
        assert await alive.presence_stats("room") == PresenceStats(0, 0)


async def test_presence_after_a_crowd_expired_is_exact() -> None:
    """More expired entries than one call cleans: presence() still lists only live clients."""
    async with redis_hub(presence_ttl=0.3) as hub:
        short = hub.engine
        long_lived = RedisEngine(hub.runner, prefix=hub.prefix, presence_ttl=60)
        await long_lived.add_presence("crowd", "live", info("live", "zed", b'{"x":1}'))
        crowd = {f"c{n}": info(f"c{n}", f"u{n % 700}") for n in range(2500)}
        await short.refresh_presence("crowd", crowd)
        keys = hub.redis_engine.schema.presence(group_for_channel("crowd"))
        # The short ttl did not shorten the keys' lives below the long one's entry.
        assert all([await hub.admin.pttl(key) > 50_000 for key in keys])
        await asyncio.sleep(0.5)
        assert await hub.admin.hlen(keys[0]) == 2501
        assert await long_lived.presence("crowd") == {"live": ClientInfo("zed", "live", b'{"x":1}', None)}
        # One call forgets at most 1000 expired clients, so it never blocks Redis for long.
        assert await hub.admin.zcard(keys[1]) == 1501
        assert (await long_lived.presence_stats("crowd")).num_clients == 1
        for _ in range(3):
            stats = await long_lived.presence_stats("crowd")
        assert stats == PresenceStats(1, 1)
        assert await hub.admin.hlen(keys[0]) == 1 and await hub.admin.zcard(keys[1]) == 1


async def test_presence_info_is_stored_compactly(hub: RedisHub) -> None:
    """A presence entry is the length-prefixed user and the packed infos, readable by Lua."""
    await hub.engine.add_presence("c", "id1", info("id1", "üser:1", b'{"a":1}', None))
    await hub.engine.add_presence("c", "id2", info("id2", ""))
    presence_hash = hub.redis_engine.schema.presence(group_for_channel("c"))[0]
    stored = await hub.admin.hgetall(presence_hash)
    user = "üser:1".encode()
    assert stored[b"id1"] == b"%d:%s" % (len(user), user) + msgpack.packb([b'{"a":1}', None])
    assert stored[b"id2"] == b"0:"
    assert (await hub.engine.presence_stats("c")) == PresenceStats(2, 2)


def test_ttls_must_be_positive() -> None:
    """Zero TTLs are refused with the fix named."""
    runner: Any = object()
    with pytest.raises(ValueError, match="presence_ttl must be > 0"):
        RedisEngine(runner, presence_ttl=0)
    with pytest.raises(ValueError, match="history_meta_ttl must be > 0"):
        RedisEngine(runner, history_meta_ttl=-1)


async def test_the_position_outlives_a_long_history_ttl(hub: RedisHub) -> None:
    """history_ttl above history_meta_ttl: the meta lives as long as the stream, never shorter."""
    await hub.engine.publish("long", b"1", history_size=5, history_ttl=100)
    schema = hub.redis_engine.schema
    group = group_for_channel("long")
    assert hub.redis_engine.history_meta_ttl < 100
    assert await hub.admin.pttl(schema.stream(group)) > 99_000
    assert await hub.admin.pttl(schema.meta(group)) > 99_000
