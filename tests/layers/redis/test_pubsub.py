"""Pub/sub ownership: one event loop holds a process's subscriptions, and another may take over."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from redis.asyncio import Redis

from wsviews.layers.redis import RedisChannelLayer

from ..contract import TIMEOUT, Inbox, receive
from .conftest import REDIS, unique_prefix


def test_channels_of_this_process_cannot_be_received_on_a_second_open_loop() -> None:
    layer = RedisChannelLayer(hosts=[REDIS], prefix=unique_prefix())
    first = asyncio.new_event_loop()
    try:
        channel = first.run_until_complete(layer.new_channel())
        with pytest.raises(RuntimeError, match="receives on another event loop"):
            async_to_sync(layer.receive, force_new_loop=True)(channel)
        # Sending works from any loop.
        async_to_sync(layer.send, force_new_loop=True)(channel, {"type": "from elsewhere"})
        assert first.run_until_complete(receive(layer, channel))["type"] == "from elsewhere"
        first.run_until_complete(layer.flush())
    finally:
        first.close()


def test_a_new_loop_takes_over_from_a_closed_one() -> None:
    """Groups joined on a loop that closed are subscribed again by the next loop."""
    layer = RedisChannelLayer(hosts=[REDIS], prefix=unique_prefix())
    sender = RedisChannelLayer(hosts=[REDIS], prefix=layer.prefix)
    inbox = Inbox()

    async def join() -> str:
        channel = await layer.new_channel()
        layer.attach(channel, inbox)
        await layer.group_add("room", channel)
        return channel

    async_to_sync(join)()
    assert layer._pubsub.loop is None  # released with its loop

    async def broadcast() -> dict[str, Any]:
        await layer.new_channel()  # this loop takes pub/sub over and subscribes "room" again
        await sender.group_send("room", {"type": "after takeover"})
        message = await inbox.get()
        await sender.close()
        await layer.flush()
        return message

    assert async_to_sync(broadcast)()["type"] == "after takeover"


async def test_a_subscription_connection_killed_by_redis_is_restored(layers: Any) -> None:
    a = layers()
    one, two, three = [await a.new_channel() for _ in range(3)]
    await a.group_add("room", one)
    await a.group_add("room", two)
    async with Redis.from_url(REDIS) as raw:
        conn = a._pubsub.subscribers[0]._conn
        assert conn is not None and conn._writer is not None
        port = conn._writer.get_extra_info("sockname")[1]
        for client in await raw.client_list():
            if client["addr"].endswith(f":{port}"):
                await raw.client_kill_filter(_id=client["id"])
    await a.group_add("room", three)
    await a.group_discard("room", two)
    topic = a._schema.group_topic("room")
    async with asyncio.timeout(TIMEOUT):
        while a.stats["reconnects"] == 0 or not a._pubsub.is_active(0, topic):
            await asyncio.sleep(0.02)  # no event for it: the reconnect has a jittered backoff
    await a.group_send("room", {"type": "message.1"})
    await a.send(two, {"type": "marker"})
    assert (await receive(a, one))["type"] == "message.1"
    assert (await receive(a, three))["type"] == "message.1"
    assert (await receive(a, two))["type"] == "marker"


async def test_a_group_without_local_members_is_unsubscribed(layers: Any) -> None:
    a = layers()
    channel = await a.new_channel()
    a.attach(channel, Inbox())
    await a.group_add("room", channel)
    topic = a._schema.group_topic("room")
    assert a._pubsub.is_active(0, topic)
    a.detach(channel)
    assert not a._pubsub.is_active(0, topic) and topic not in a._pubsub.routes
