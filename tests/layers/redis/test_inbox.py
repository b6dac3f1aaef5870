"""A process's inbox: messages for its channels, parking while it is away, group control."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from channels.exceptions import ChannelFull
from redis.asyncio import Redis

from wsviews.layers.redis.codec import GROUP_ADD, MESSAGE, join_batch

from ..contract import Inbox, receive


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


async def test_messages_for_a_process_not_listening_are_parked(layers: Any) -> None:
    """A send while the owner is not subscribed waits for it in Redis, up to expiry."""
    a, b = layers(), layers()
    channel = await b.new_channel()
    await b.close()  # b stops listening, as while it reconnects
    await a.send(channel, {"type": "parked"})
    assert a.stats["parked"] == 1
    assert (await receive(b, channel))["type"] == "parked"


async def test_a_full_backlog_refuses_the_send(layers: Any) -> None:
    """While the owner is away, its backlog holds a channel's capacity; past it, ChannelFull."""
    a, b = layers(capacity=2), layers()
    channel = await b.new_channel()
    await b.close()
    for n in range(2):
        await a.send(channel, {"type": "parked", "n": n})
    with pytest.raises(ChannelFull):
        await a.send(channel, {"type": "one too many"})
    assert [(await receive(b, channel))["n"] for _ in range(2)] == [0, 1]


async def test_parked_messages_expire(layers: Any, raw: Redis) -> None:
    a, b = layers(), layers()
    channel = await b.new_channel()
    await b.close()
    await a.send(channel, {"type": "stale"})
    # Age the parked item instead of waiting for the expiry: rewrite its deadline.
    key = a._schema.backlog(b.client_prefix)
    (item,) = await raw.lrange(key, 0, -1)
    await raw.lset(key, 0, b"00000000000001" + item[14:])
    await b.new_channel()  # subscribes the inbox again, which drains the backlog
    await asyncio.gather(*b._inbox._tasks)
    assert b.stats["expired"] == 1
    await a.send(channel, {"type": "marker"})
    assert (await receive(b, channel))["type"] == "marker"


async def test_control_messages_for_channels_of_others_are_refused(
    layers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A group_add naming a channel the inbox's process does not own changes nothing."""
    a, b, c = layers(), layers(), layers()
    await b.new_channel()
    foreign = await c.new_channel()
    with caplog.at_level(logging.WARNING, "wsviews.layers.redis"):
        await a._inbox.send(b.client_prefix, a._codec.pack(GROUP_ADD, ["room", foreign, None, None]),
                            10)
        await a._inbox.send(b.client_prefix, a._codec.pack(GROUP_ADD, ["bad group!", foreign,
                                                                       None, None]), 10)
        witness = await b.new_channel()
        await a.send(witness, {"type": "marker"})
        await receive(b, witness)
    assert b.stats["malformed"] == 2
    assert b.local.groups == {}
    assert "is not ours" in caplog.text


async def test_group_discard_of_a_channel_of_another_process(layers: Any) -> None:
    a, b = layers(), layers()
    await a.new_channel()
    channel, inbox = await b.new_channel(), Inbox()
    b.attach(channel, inbox)
    await a.group_add("room", channel)
    await a.group_discard("room", channel)
    await a.send(channel, {"type": "marker"})  # the discard went first, on the same inbox
    await inbox.get()
    assert "room" not in b.local.groups
    assert not b._pubsub.is_active(b._shards.index("room"), b._schema.group_topic("room"))


async def test_a_bad_payload_in_a_batch_costs_only_itself(layers: Any, raw: Redis) -> None:
    a = layers()
    channel, inbox = await a.new_channel(), Inbox()
    a.attach(channel, inbox)
    good = a._codec.pack(MESSAGE, channel, {"type": "good"})
    await raw.publish(a._inbox.topic, join_batch([b"garbage", good, good]))
    await raw.publish(a._inbox.topic, b"\1not a batch")
    await a.send(channel, {"type": "marker"})
    assert [(await inbox.get())["type"] for _ in range(3)] == ["good", "good", "marker"]
    assert a.stats["malformed"] == 2


async def test_joined_sends_to_an_absent_process_are_all_parked(layers: Any) -> None:
    """A joined PUBLISH nobody heard falls back message by message: each one is parked."""
    a, b = layers(capacity=100), layers()
    channels = [await b.new_channel() for _ in range(5)]
    await b.close()
    await asyncio.gather(*(a.send(c, {"type": "t", "n": n}) for n in range(10) for c in channels))
    assert a.stats["parked"] == 50
    for channel in channels:
        assert sorted([(await receive(b, channel))["n"] for _ in range(10)]) == list(range(10))
