"""RedisChannelLayer: the shared contract against a real Redis, then what several processes do."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import channels.exceptions
import msgpack
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from wsviews.layers import ChannelLayerUnavailable, InvalidMessage, MessageTooLarge
from wsviews.layers.redis import ForeignChannel, RedisChannelLayer

from ..contract import TIMEOUT, Inbox, LayerContract, receive
from ..redis_server import RedisServer, free_port
from .conftest import REDIS, unique_prefix


class TestRedisLayerContract(LayerContract):
    def make_layer(self, **config: Any) -> RedisChannelLayer:
        config.setdefault("hosts", [REDIS])
        config.setdefault("prefix", unique_prefix())
        return RedisChannelLayer(**config)


# Several processes (each layer stands for one)


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


async def test_a_group_message_is_decoded_once_per_process(layers: Any) -> None:
    """However many members a process has, it decodes each group message once."""
    receiver, sender = layers(), layers()
    inboxes = [Inbox() for _ in range(40)]
    for inbox in inboxes:
        channel = await receiver.new_channel()
        receiver.attach(channel, inbox)
        await receiver.group_add("room", channel)
    decodes = 0
    loads = receiver._codec.loads

    def counting(data: bytes) -> Any:
        nonlocal decodes
        decodes += 1
        return loads(data)

    receiver._codec.loads = counting  # type: ignore[method-assign]
    for n in range(3):
        await sender.group_send("room", {"type": "t", "n": n})
    for inbox in inboxes:
        assert [(await inbox.get())["n"] for _ in range(3)] == [0, 1, 2]
    assert decodes == 3


async def test_redis_commands_per_group_send_do_not_grow_with_members(
    private_redis: RedisServer,
) -> None:
    """A group_send costs the same Redis commands for 1 member as for 200 in two processes."""
    prefix = unique_prefix()
    made = [RedisChannelLayer(hosts=[private_redis.url], prefix=prefix) for _ in range(3)]
    sender, one, two = made
    inboxes: list[Inbox] = []

    async def join(layer: RedisChannelLayer, count: int) -> None:
        for _ in range(count):
            channel = await layer.new_channel()
            inboxes.append(Inbox())
            layer.attach(channel, inboxes[-1])
            await layer.group_add("room", channel)

    async def commands_of_one_group_send(n: int) -> dict[str, int]:
        before = private_redis.command_calls()
        await sender.group_send("room", {"type": "t", "n": n})
        for inbox in inboxes:
            assert (await inbox.get())["n"] == n
        after = private_redis.command_calls()
        return {k: after[k] - before.get(k, 0) for k in after
                if k != "info" and after[k] != before.get(k, 0)}

    try:
        await join(sender, 1)
        await commands_of_one_group_send(0)  # connects; new inboxes drain their backlogs
        small = await commands_of_one_group_send(1)
        await join(sender, 99)
        await join(one, 50)
        await join(two, 50)
        await commands_of_one_group_send(2)
        large = await commands_of_one_group_send(3)
        assert small == large
        assert sum(large.values()) <= 3, large  # EVALSHA, and the PUBLISH and EXISTS it runs
    finally:
        for layer in made:
            await layer.close()


async def test_sends_of_one_moment_share_round_trips(private_redis: RedisServer) -> None:
    """400 concurrent sends to one process are one pipeline, and few PUBLISHes, in order."""
    prefix = unique_prefix()
    receiver = RedisChannelLayer(hosts=[private_redis.url], prefix=prefix)
    sender = RedisChannelLayer(hosts=[private_redis.url], prefix=prefix)
    try:
        inbox = Inbox()
        channels = []
        for _ in range(200):
            channels.append(await receiver.new_channel())
            receiver.attach(channels[-1], inbox)
        await sender.send(channels[0], {"type": "warm-up"})  # connects
        await inbox.get()
        before = private_redis.command_calls()
        connections = private_redis.info("stats")["total_connections_received"]
        await asyncio.gather(*(sender.send(c, {"type": "t", "c": c, "n": n})
                               for n in range(2) for c in channels))
        got = [await inbox.get() for _ in range(400)]
        after = private_redis.command_calls()
        assert sorted((m["c"], m["n"]) for m in got) == sorted((c, n) for n in range(2)
                                                               for c in channels)
        for channel in channels:  # each channel's two messages, in the order they were sent
            assert [m["n"] for m in got if m["c"] == channel] == [0, 1]
        # Joined per receiving process: a few PUBLISHes, not 400.
        assert 1 <= after["publish"] - before["publish"] <= 4
        assert receiver.stats["received"] == 401
        # One pipeline on the warm-up's connection; one by one, they would have taken 64.
        assert private_redis.info("stats")["total_connections_received"] == connections
    finally:
        await receiver.close()
        await sender.close()


async def test_messages_for_a_process_not_listening_are_parked(layers: Any) -> None:
    """A send while the owner is not subscribed waits for it in Redis, up to expiry."""
    a, b = layers(), layers()
    channel = await b.new_channel()
    await b.close()  # b stops listening, as while it reconnects
    await a.send(channel, {"type": "parked"})
    assert a.stats["parked"] == 1
    assert (await receive(b, channel))["type"] == "parked"


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



# Messages


async def test_a_non_dict_message_is_a_type_error_and_an_assertion_error(layers: Any) -> None:
    a = layers()
    channel = await a.new_channel()
    for call in (a.send(channel, ["not", "a", "dict"]), a.group_send("room", "text"),
                 a.send("worker", {"type": "t", "__asgi_channel__": "x"})):
        with pytest.raises(InvalidMessage) as caught:
            await call
        assert isinstance(caught.value, TypeError) and isinstance(caught.value, AssertionError)
    assert a.stats["sent"] == a.stats["group_sent"] == 0


async def test_a_foreign_channel_is_a_value_error_and_an_assertion_error(layers: Any) -> None:
    a, b = layers(), layers()
    foreign = await b.new_channel()
    with pytest.raises(ForeignChannel) as caught:
        await a.receive(foreign)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, AssertionError)


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



# Extensions' data in Redis: key(), run_script(), group_send_scripted()

# The shape of a history engine: a per-group offset and epoch, a stream of
# publications, and the publication published stamped with its position.
HISTORY = """
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[3]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100, '*', 'offset', offset, 'envelope', ARGV[2])
redis.call('PEXPIRE', KEYS[1], 60000)
redis.call('PEXPIRE', KEYS[2], 60000)
redis.call('PUBLISH', ARGV[1], '\\0' .. offset .. ':' .. epoch .. ':' .. ARGV[2])
return {offset, epoch}
"""


async def test_scripted_group_messages_are_stamped_in_every_process(
    layers: Any, raw: Redis
) -> None:
    a, b, sender = layers(), layers(), layers()
    inboxes = []
    for layer in (a, a, b, b):
        channel = await layer.new_channel()
        inboxes.append(Inbox())
        layer.attach(channel, inboxes[-1])
        await layer.group_add("news", channel)
    keys = [sender.key("position", "news"), sender.key("history", "news")]
    results = [await sender.group_send_scripted("news", {"type": "pub", "n": n}, HISTORY, keys,
                                                ["epoch-1"]) for n in range(3)]
    assert results == [[1, b"epoch-1"], [2, b"epoch-1"], [3, b"epoch-1"]]
    for inbox in inboxes:
        assert [await inbox.get() for _ in range(3)] == [
            {"type": "pub", "n": n, "offset": n + 1, "epoch": "epoch-1"} for n in range(3)
        ]
    assert await raw.xlen(keys[1]) == 3
    assert sender.stats["group_sent"] == 3
    # What the stream holds is the envelope every process decodes.
    (_, fields), = await raw.xrange(keys[1], count=1)
    assert sender._codec.unpack(fields[b"envelope"])[2] == {"type": "pub", "n": 0}
    await sender.flush()  # flush() deletes the keys of kinds named through key()
    assert await raw.exists(*keys) == 0


async def test_a_script_may_publish_unstamped_or_not_at_all(layers: Any) -> None:
    a, sender = layers(), layers()
    channel = await a.new_channel()
    inbox = Inbox()
    a.attach(channel, inbox)
    await a.group_add("news", channel)
    plain = "redis.call('PUBLISH', ARGV[1], ARGV[2]) return 'sent'"
    silent = "return ARGV[3]"
    assert await sender.group_send_scripted("news", {"type": "plain"}, plain, [], []) == b"sent"
    assert await sender.group_send_scripted("news", {"type": "x"}, silent, [], ["quiet"]) == b"quiet"
    await sender.group_send("news", {"type": "marker"})
    assert await inbox.get() == {"type": "plain"}
    assert await inbox.get() == {"type": "marker"}


async def test_run_script_runs_on_the_owner_of_the_hash_name(layers: Any, raw: Redis) -> None:
    hosts = [REDIS, REDIS.replace("/11", "/12")]
    a = layers(hosts=hosts)
    script = "redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000) return redis.call('GET', KEYS[1])"
    for name in ("room1", "room2", "room3", "room4"):
        key = a.key("presence", name)
        assert await a.run_script(name, script, [key], [name]) == name.encode()
        owner = a._shards[a._shards.index(name)].address
        async with Redis.from_url(owner) as server:
            assert await server.get(key) == name.encode()
    await raw.script_flush()  # the next call finds the script unknown: sent whole again
    assert await a.run_script("room1", "return 7", [], []) == 7
    with pytest.raises(ResponseError):
        await a.run_script("room1", "return redis.call('NOSUCHCOMMAND')", [], [])


async def test_keys_of_scripts_must_carry_the_hash_tag(layers: Any) -> None:
    a = layers()
    with pytest.raises(ValueError, match=r"hash tag \{room\}.*layer.key\(kind, 'room'\)"):
        await a.run_script("room", "return 1", [a.key("presence", "other")], [])
    with pytest.raises(ValueError, match="hash tag"):
        await a.group_send_scripted("room", {"type": "t"}, "return 1", ["no-tag"], [])
    assert a.key("presence", "room") == f"{a.prefix}:presence:{{room}}"
    with pytest.raises(ValueError, match="not one the layer uses"):
        a.key("queue", "room")


async def test_run_script_maps_an_unreachable_redis(caplog: pytest.LogCaptureFixture) -> None:
    layer = RedisChannelLayer(hosts=[f"redis://127.0.0.1:{free_port()}/0"])
    with caplog.at_level(logging.WARNING, "wsviews.layers.redis"):
        for _ in range(3):
            with pytest.raises(ChannelLayerUnavailable, match="Cannot run a script on Redis"):
                await layer.run_script("room", "return 1", [], [])
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    await layer.close()


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


# channels_redis' public methods


async def test_serialize_is_what_the_layer_stores(layers: Any, raw: Redis) -> None:
    a = layers(symmetric_encryption_keys=["a-key"])
    message = {"type": "t", "b": b"\x00", "n": [1]}
    assert a.deserialize(a.serialize(message)) == message
    await a.send("worker", message)
    (item,) = await raw.lrange(a._schema.queue("worker"), 0, -1)
    assert a.deserialize(item[14:]) == message  # after the deadline digits
    with pytest.raises(ValueError):
        a.deserialize(b"not a message")


async def test_close_pools_is_close(layers: Any) -> None:
    a = layers()
    channel = await a.new_channel()
    await a.close_pools()
    assert a._shards.loops() == [] and a._pubsub.loop is None
    await a.send(channel, {"type": "after"})
    assert (await receive(a, channel))["type"] == "after"
