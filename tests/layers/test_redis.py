"""The Redis layer: the shared contract against a real Redis, then what only Redis has."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import channels.exceptions
import msgpack
import pytest
from channels.exceptions import InvalidChannelLayerError
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import SentinelConnectionPool

from servers import REDIS_SERVER
from wsviews.layers import MessageTooLarge
from wsviews.layers.redis.config import make_pool
from wsviews.layers.redis import RedisChannelLayer, check_config

from .contract import TIMEOUT, Inbox, LayerContract, receive

REDIS = f"{REDIS_SERVER}/11"


def unique_prefix() -> str:
    return f"wsvtest-{uuid.uuid4().hex[:12]}"


class TestRedisLayerContract(LayerContract):
    def make_layer(self, **config: Any) -> RedisChannelLayer:
        config.setdefault("hosts", [REDIS])
        config.setdefault("prefix", unique_prefix())
        return RedisChannelLayer(**config)


# What only the Redis layer has: several processes, and Redis itself.


@pytest.fixture
async def layers() -> AsyncIterator[Callable[..., RedisChannelLayer]]:
    """Build layers sharing one prefix: each one stands for a process."""
    prefix = unique_prefix()
    made: list[RedisChannelLayer] = []

    def make(**config: Any) -> RedisChannelLayer:
        config.setdefault("hosts", [REDIS])
        config.setdefault("prefix", prefix)
        made.append(RedisChannelLayer(**config))
        return made[-1]

    yield make
    for layer in made:
        await layer.flush()
        await layer.close()


@pytest.fixture
async def raw() -> AsyncIterator[Redis]:
    """A plain redis-py client, to look at what the layer stores and publishes."""
    client = Redis.from_url(REDIS)
    yield client
    await client.aclose()


async def test_processes_have_distinct_ids(layers: Any) -> None:
    one, two = layers(), layers()
    assert one.client_prefix != two.client_prefix
    assert one.client_prefix in await one.new_channel()


async def test_send_to_a_channel_of_another_process(layers: Any) -> None:
    a, b = layers(), layers()
    queued, attached = await b.new_channel(), await b.new_channel()
    inbox = Inbox()
    b.attach(attached, inbox)
    await a.send(queued, {"type": "to.queued"})
    await a.send(attached, {"type": "to.attached"})
    assert (await receive(b, queued))["type"] == "to.queued"
    assert (await inbox.get())["type"] == "to.attached"


async def test_receive_refuses_channels_of_other_processes(layers: Any) -> None:
    a, b = layers(), layers()
    with pytest.raises(ValueError, match="new_channel"):
        await a.receive(await b.new_channel())
    with pytest.raises(ValueError, match="new_channel"):
        a.attach(await b.new_channel(), Inbox())


async def test_group_send_reaches_every_process_decoding_once(layers: Any) -> None:
    """One group_send is one message per process, fanned out to all its members."""
    a, b, sender = layers(), layers(), layers()
    inboxes = []
    for layer, count in ((a, 30), (b, 20)):
        for _ in range(count):
            channel = await layer.new_channel()
            inboxes.append(Inbox())
            layer.attach(channel, inboxes[-1])
            await layer.group_add("room", channel)
    await sender.group_send("room", {"type": "chat.message", "text": "hi"})
    for inbox in inboxes:
        assert (await inbox.get())["text"] == "hi"
    assert (a.stats["received"], a.stats["delivered"]) == (1, 30)
    assert (b.stats["received"], b.stats["delivered"]) == (1, 20)
    assert sender.stats["group_sent"] == 1


async def test_group_send_is_one_publish(layers: Any, raw: Redis) -> None:
    """The group's pub/sub channel carries one message per group_send, whatever the members."""
    a = layers()
    for _ in range(50):
        channel = await a.new_channel()
        a.attach(channel, Inbox())
        await a.group_add("room", channel)
    pubsub = raw.pubsub()
    await pubsub.subscribe(a._schema.group_topic("room"))
    await a.group_send("room", {"type": "t"})
    await a.group_send("room", {"type": "marker"})
    seen = []
    async with asyncio.timeout(TIMEOUT):
        while len(seen) < 2:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                seen.append(a._codec.unpack(message["data"])[2]["type"])
    assert seen == ["t", "marker"]
    await pubsub.aclose()


async def test_group_add_of_a_channel_of_another_process(layers: Any) -> None:
    """The owner process adds its channel when asked; a group_send right after reaches it."""
    a, b = layers(), layers()
    await a.new_channel()  # a listens, so b's acknowledgement can reach it
    channel = await b.new_channel()
    await a.group_add("room", channel)
    await a.group_send("room", {"type": "joined"})
    assert (await receive(b, channel))["type"] == "joined"
    await a.group_discard("room", channel)
    await a.group_send("room", {"type": "left"})
    await a.send(channel, {"type": "marker"})
    assert (await receive(b, channel))["type"] == "marker"


async def test_normal_channel_messages_go_to_one_receiver(layers: Any) -> None:
    """Workers in several processes share a normal channel; each message is received once."""
    processes = [layers(), layers()]
    received: list[int] = []
    done = asyncio.Event()
    total = 40

    async def worker(layer: RedisChannelLayer) -> None:
        while True:
            received.append((await layer.receive("worker"))["n"])
            if len(received) >= total:
                done.set()

    workers = [asyncio.ensure_future(worker(layer)) for layer in processes for _ in range(2)]
    for n in range(total):
        await processes[n % 2].send("worker", {"type": "job", "n": n})
    async with asyncio.timeout(TIMEOUT):
        await done.wait()
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    assert sorted(received) == list(range(total))


async def test_messages_for_a_process_not_listening_are_parked(layers: Any) -> None:
    """A send while the owner is not subscribed waits for it in Redis, up to expiry."""
    a, b = layers(), layers()
    channel = await b.new_channel()
    await b.close()  # b stops listening, as while it reconnects
    await a.send(channel, {"type": "parked"})
    assert a.stats["parked"] == 1
    assert (await receive(b, channel))["type"] == "parked"


async def test_every_key_has_a_ttl_and_a_hash_tag(layers: Any, raw: Redis) -> None:
    a, b = layers(), layers()
    channel = await b.new_channel()
    await b.close()
    await a.send(channel, {"type": "parked"})
    await a.send("worker", {"type": "queued"})
    await a.send("worker", {"type": "queued"})
    await a.receive("worker")
    await a.group_add("room", "worker")
    keys = [key async for key in raw.scan_iter(match=f"{a.prefix}:*")]
    kinds = {key.decode().split(":")[1] for key in keys}
    assert kinds == {"queue", "members", "backlog"}
    for key in keys:
        assert await raw.pttl(key) > 0, key
        assert b"{" in key and b"}" in key, key


async def test_multiple_hosts_shard_groups_and_channels(layers: Any) -> None:
    hosts = [REDIS, REDIS.replace("/11", "/12")]
    a, b = layers(hosts=hosts), layers(hosts=hosts)
    groups = [f"room{n}" for n in range(8)]
    assert {a._shards.index(g) for g in groups} == {0, 1}
    channel = await b.new_channel()
    inbox = Inbox()
    b.attach(channel, inbox)
    for group in groups:
        await b.group_add(group, channel)
        await a.group_send(group, {"type": group})
    assert sorted([(await inbox.get())["type"] for _ in groups]) == sorted(groups)
    for n in range(4):
        await a.send(f"worker{n}", {"type": "job"})
        assert (await receive(b, f"worker{n}"))["type"] == "job"


# Encryption


async def test_encrypted_messages_are_opaque_in_redis(layers: Any, raw: Redis) -> None:
    keys = ["a-first-key-with-enough-entropy-0123456789"]
    a, b = layers(symmetric_encryption_keys=keys), layers(symmetric_encryption_keys=keys)
    channel = await b.new_channel()
    await b.group_add("room", channel)
    pubsub = raw.pubsub()
    await pubsub.subscribe(a._schema.group_topic("room"))
    await a.group_send("room", {"type": "t", "text": "top secret"})
    assert (await receive(b, channel))["text"] == "top secret"
    async with asyncio.timeout(TIMEOUT):
        while (message := await pubsub.get_message(True, timeout=1)) is None:
            pass
    assert b"top secret" not in message["data"]
    await a.send("worker", {"type": "t", "text": "top secret"})
    (item,) = await raw.lrange(a._schema.queue("worker"), 0, -1)
    assert b"top secret" not in item
    assert (await receive(b, "worker"))["text"] == "top secret"
    await pubsub.aclose()


async def test_rotated_keys_still_decrypt(layers: Any) -> None:
    old, new = "old-key-0123456789-0123456789-0123456789", "new-key-0123456789-0123456789-012345"
    sender = layers(symmetric_encryption_keys=[old])
    receiver = layers(symmetric_encryption_keys=[new, old])
    channel = await receiver.new_channel()
    await sender.send(channel, {"type": "t"})
    assert (await receive(receiver, channel))["type"] == "t"


async def test_wrong_key_is_dropped_and_logged(
    layers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    right = "right-key-0123456789-0123456789-0123456789"
    stranger = layers(symmetric_encryption_keys=["wrong-key-0123456789-0123456789-01234567"])
    friend = layers(symmetric_encryption_keys=[right])
    receiver = layers(symmetric_encryption_keys=[right])
    channel = await receiver.new_channel()
    with caplog.at_level(logging.WARNING, "wsviews.layers.redis"):
        await stranger.send(channel, {"type": "intruder"})
        await friend.send(channel, {"type": "friend"})
        assert (await receive(receiver, channel))["type"] == "friend"
    assert receiver.stats["malformed"] == 1
    assert "symmetric_encryption_keys" in caplog.text


# Malformed payloads


async def test_malformed_payloads_are_dropped_and_subscriptions_survive(
    layers: Any, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    a = layers()
    channel = await a.new_channel()
    inbox = Inbox()
    a.attach(channel, inbox)
    await a.group_add("room", channel)
    garbage = [b"", b"\xc1", b"not msgpack at all", msgpack.packb([1, 0, channel, "no dict"]),
               msgpack.packb({"type": "a bare message"}), msgpack.packb([99, 0, channel, {}])]
    with caplog.at_level(logging.WARNING, "wsviews.layers.redis"):
        for payload in garbage:
            await raw.publish(a._schema.inbox_topic(a.client_prefix), payload)
            await raw.publish(a._schema.group_topic("room"), payload)
        await a.send(channel, {"type": "direct"})
        await a.group_send("room", {"type": "group"})
        assert (await inbox.get())["type"] == "direct"
        assert (await inbox.get())["type"] == "group"
    assert a.stats["malformed"] == 2 * len(garbage)
    assert inbox.messages == []
    assert "malformed" in caplog.text


async def test_malformed_items_in_a_normal_channel_are_skipped(layers: Any, raw: Redis) -> None:
    a = layers()
    await raw.rpush(a._schema.queue("worker"), b"garbage", b"99999999999999\xc1")
    await raw.pexpire(a._schema.queue("worker"), 60_000)
    await a.send("worker", {"type": "job"})
    assert (await receive(a, "worker"))["type"] == "job"
    assert a.stats["malformed"] == 2


# Message size


async def test_message_too_large_is_refused_before_sending(layers: Any) -> None:
    a = layers(max_message_size=1024)
    channel = await a.new_channel()
    big = {"type": "t", "blob": b"x" * 2000}
    for call in (a.send(channel, big), a.send("worker", big), a.group_send("room", big)):
        with pytest.raises(MessageTooLarge, match="max_message_size=1024"):
            await call
    with pytest.raises(channels.exceptions.MessageTooLarge):
        await a.send(channel, big)
    assert a.stats["sent"] == a.stats["group_sent"] == 0
    await a.send(channel, {"type": "small"})
    assert (await receive(a, channel))["type"] == "small"


# Configuration


async def test_hosts_in_every_channels_redis_form(layers: Any) -> None:
    forms: list[Any] = [
        ["redis://127.0.0.1:6379/11"],
        [("127.0.0.1", 6379)],
        [{"address": "redis://127.0.0.1:6379/11", "socket_timeout": 2, "max_connections": 5}],
        [{"host": "127.0.0.1", "port": 6379, "db": 11}],
    ]
    for hosts in forms:
        a, b = layers(hosts=hosts), layers(hosts=hosts)
        channel = await b.new_channel()
        await b.group_add("room", channel)
        await a.group_send("room", {"type": "t"})
        assert (await receive(b, channel))["type"] == "t"


async def test_blocking_receive_outlasts_a_short_socket_timeout(layers: Any) -> None:
    """A socket_timeout shorter than the blocking pop does not break an idle receive()."""
    a = layers(hosts=[{"address": REDIS, "socket_timeout": 0.5}])
    waiting = asyncio.ensure_future(a.receive("worker"))
    await asyncio.sleep(1.2)  # idle for longer than socket_timeout: that is the point
    assert not waiting.done()
    await a.send("worker", {"type": "late"})
    async with asyncio.timeout(TIMEOUT):
        assert (await waiting)["type"] == "late"


def test_no_timeout_is_shorter_than_a_blocking_call() -> None:
    blocking = RedisChannelLayer.blocking_timeout
    for timeout in (None, 0.5, 5, 30):
        host = {"address": REDIS} if timeout is None else {"address": REDIS,
                                                           "socket_timeout": timeout}
        layer = RedisChannelLayer(hosts=[host])
        assert layer._shards[0].timeouts["blocking"] > blocking
        for role in ("commands", "blocking", "subscriber"):
            pool = make_pool(host, role)
            # Timeouts are the layer's, around whole operations; never redis-py's.
            assert pool.connection_kwargs["socket_timeout"] is None
            if role != "subscriber":
                assert isinstance(pool, BlockingConnectionPool)


def test_sentinel_hosts_build_a_sentinel_pool() -> None:
    host = {"sentinels": [("127.0.0.1", 26379)], "master_name": "mymaster",
            "sentinel_kwargs": {"socket_timeout": 1}, "db": 3}
    layer = RedisChannelLayer(hosts=[host])
    assert "mymaster" in repr(layer)
    pool = make_pool(layer.hosts[0], "commands")
    assert isinstance(pool, SentinelConnectionPool)
    assert isinstance(pool, BlockingConnectionPool)
    assert pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 3


def test_unknown_config_key_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="'capcity': did you mean 'capacity'"):
        RedisChannelLayer(hosts=[REDIS], capcity=10)


def test_bad_config_values_are_refused_with_the_fix() -> None:
    with pytest.raises(InvalidChannelLayerError, match=r"write 'hosts': \['redis://x'\]"):
        RedisChannelLayer(hosts="redis://x")
    with pytest.raises(InvalidChannelLayerError, match="expiry"):
        RedisChannelLayer(expiry=-1)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, []),
        ({"hosts": [("localhost", 6379)], "prefix": "app", "capacity": 10, "expiry": 5,
          "group_expiry": 60, "channel_capacity": {"http.*": 5}, "max_message_size": 1000,
          "symmetric_encryption_keys": ["k"], "on_disconnect": "redis.disconnect",
          "serializer_format": "msgpack", "random_prefix_length": 12}, []),
        ({"BACKEND": "wsviews.layers.RedisChannelLayer", "CONFIG": {"hots": []}}, ["'hots'"]),
        ({"hosts": "redis://x"}, ["must be a list"]),
        ({"hosts": [("localhost",)]}, ["(host, port) pair"]),
        ({"hosts": ["http://x"]}, ["redis://, rediss:// or unix://"]),
        ({"hosts": [{"sentinels": [("h", 1)]}]}, ["no 'master_name'"]),
        ({"hosts": [{"address": REDIS, "sockettimeout": 1}]}, ["did you mean 'socket_timeout'"]),
        ({"hosts": [{"address": REDIS, "decode_responses": True}]}, ["decode_responses"]),
        ({"prefix": "a{b}"}, ["braces"]),
        ({"capacity": 0}, ["'capacity' must be a positive int"]),
        ({"channel_capacity": {"x": "big"}}, ["'channel_capacity'['x']"]),
        ({"symmetric_encryption_keys": "secret"}, ["[SECRET_KEY]"]),
        ({"max_message_size": 2**40}, ["max_message_size"]),
        ({"serializer_format": "json"}, ["'serializer_format' 'json'"]),
        ({"on_reconnect": 3}, ["'on_reconnect'"]),
    ],
)
def test_check_config(config: dict[str, Any], expected: list[str]) -> None:
    problems = check_config(config)
    assert len(problems) == len(expected), problems
    for problem, fragment in zip(problems, expected, strict=True):
        assert fragment in problem


# Load


async def test_a_thousand_concurrent_operations_on_a_small_pool(layers: Any) -> None:
    """1,000 sockets connecting, joining and being sent to at once: no pool error."""
    host = {"address": REDIS, "max_connections": 8}
    server, sender = layers(hosts=[host]), layers(hosts=[host])
    inboxes: list[Inbox] = []

    async def connect(n: int) -> str:
        channel = await server.new_channel()
        inboxes.append(Inbox())
        server.attach(channel, inboxes[-1])
        await server.group_add(f"room{n % 10}", channel)
        return channel

    channels_ = await asyncio.gather(*(connect(n) for n in range(1000)))
    await asyncio.gather(*(sender.send(c, {"type": "direct"}) for c in channels_))
    await asyncio.gather(*(sender.group_send(f"room{n}", {"type": "group"}) for n in range(10)))
    await asyncio.gather(*(sender.send("worker", {"type": "job"}) for _ in range(90)))
    for inbox in inboxes:
        assert {(await inbox.get())["type"], (await inbox.get())["type"]} == {"direct", "group"}
    assert server.stats["delivered"] == 2000
    assert server.stats["failed"] == sender.stats["failed"] == 0


async def test_messages_for_a_closed_socket_are_not_kept(layers: Any) -> None:
    """After detach(), messages still on their way to the channel are dropped, not queued."""
    a = layers()
    closed, witness = await a.new_channel(), await a.new_channel()
    a.attach(closed, Inbox())
    a.detach(closed)
    await a.send(closed, {"type": "late"})
    await a.send(witness, {"type": "marker"})
    await receive(a, witness)  # in order: the late message has arrived too
    assert a.stats["undeliverable"] == 1
    assert closed not in a.local.queues
