"""What channels_redis' own tests (tests/test_core.py, tests/test_pubsub.py) check, restated for our layer.

Each test states, in our words, what one of channels_redis' tests checks,
so that code moving from channels_redis keeps working; this runs in CI,
where scripts/peer-suite-channels-redis (their files, unchanged) does not.
Where channels_redis waits for a timeout to show that a message did not
arrive, these tests send a marker after it and check that the marker comes
first. Where our layer deliberately differs, the test says so.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull

from servers import REDIS_SERVER
from wsviews.layers.redis import RedisChannelLayer

from ..contract import TIMEOUT, Inbox, receive

HOST = f"{REDIS_SERVER}/11"
MULTIPLE_HOSTS = [f"{REDIS_SERVER}/{db}" for db in (11, 12, 13)]


def new_layer(**config: Any) -> RedisChannelLayer:
    config.setdefault("hosts", [HOST])
    config.setdefault("prefix", f"crsuite-{uuid.uuid4().hex[:10]}")
    return RedisChannelLayer(**config)


@pytest.fixture
async def channel_layer() -> AsyncIterator[RedisChannelLayer]:
    layer = new_layer(capacity=3, channel_capacity={"tiny": 1})
    yield layer
    await layer.flush()


@pytest.fixture
async def other_channel_layer(channel_layer: RedisChannelLayer) -> AsyncIterator[RedisChannelLayer]:
    """A second process on the same prefix."""
    layer = new_layer(prefix=channel_layer.prefix)
    yield layer
    await layer.flush()


async def send_three(layer: RedisChannelLayer, channel: str, delay: float, group: bool) -> None:
    for text in ("First!", "Second!", "Third!"):
        if text != "First!":
            await asyncio.sleep(delay)  # the age of each message is the point
        if group:
            await layer.group_send(channel, {"type": "test.message", "text": text})
        else:
            await layer.send(channel, {"type": "test.message", "text": text})


# tests/test_core.py


async def test_send_then_receive_on_a_normal_channel(channel_layer: RedisChannelLayer) -> None:
    await channel_layer.send("test-channel-1", {"type": "test.message", "text": "Ahoy-hoy!"})
    message = await receive(channel_layer, "test-channel-1")
    assert message == {"type": "test.message", "text": "Ahoy-hoy!"}


def test_process_channels_receive_from_fresh_event_loops() -> None:
    """Names made, sent to and received from in different loops (async_to_sync) still meet."""
    layer = new_layer(capacity=3)
    first = async_to_sync(layer.new_channel)()
    second = async_to_sync(layer.new_channel)()
    async_to_sync(layer.send)(first, {"type": "test.message.1"})
    async_to_sync(layer.send)(second, {"type": "test.message.2"})

    async def listen(channel: str) -> str:
        return (await receive(layer, channel))["type"]

    assert async_to_sync(listen)(second) == "test.message.2"
    assert async_to_sync(listen)(first) == "test.message.1"
    async_to_sync(layer.flush)()


async def test_send_over_capacity_raises_channel_full(channel_layer: RedisChannelLayer) -> None:
    for _ in range(3):
        await channel_layer.send("test-channel-1", {"type": "test.message"})
    with pytest.raises(ChannelFull):
        await channel_layer.send("test-channel-1", {"type": "test.message"})


async def test_channel_capacity_overrides_capacity() -> None:
    layer = new_layer(capacity=3, channel_capacity={"one": 1})
    await layer.send("one", {"type": "test.message"})
    with pytest.raises(ChannelFull):
        await layer.send("one", {"type": "test.message"})
    await layer.flush()


async def test_send_then_receive_on_a_process_channel(channel_layer: RedisChannelLayer) -> None:
    channel = await channel_layer.new_channel()
    await channel_layer.send(channel, {"type": "test.message", "text": "Local only please"})
    message = await receive(channel_layer, channel)
    assert message == {"type": "test.message", "text": "Local only please"}


async def test_several_sends_are_received_in_order() -> None:
    layer = new_layer()
    for n in (1, 2, 3):
        await layer.send("test-channel-3", {"type": f"message.{n}"})
    for n in (1, 2, 3):
        assert (await receive(layer, "test-channel-3"))["type"] == f"message.{n}"
    await layer.flush()


async def test_invalid_channel_names_raise_type_error(channel_layer: RedisChannelLayer) -> None:
    with pytest.raises(TypeError):
        await channel_layer.send("=+135!", {"type": "foom"})
    with pytest.raises(TypeError):
        await channel_layer.receive("=+135!")


async def test_receive_refuses_another_process_prefix(channel_layer: RedisChannelLayer) -> None:
    """An AssertionError, as in channels_redis (and a ValueError naming new_channel())."""
    with pytest.raises(AssertionError, match="new_channel"):
        await channel_layer.receive("not-client-prefix!local_part")


async def test_group_send_skips_discarded_members() -> None:
    layer = new_layer()
    one, two, three = [await layer.new_channel(prefix=f"test-gr-chan-{n}") for n in (1, 2, 3)]
    for channel in (one, two, three):
        await layer.group_add("test-group", channel)
    await layer.group_discard("test-group", two)
    await layer.group_send("test-group", {"type": "message.1"})
    await layer.send(two, {"type": "marker"})
    assert (await receive(layer, one))["type"] == "message.1"
    assert (await receive(layer, three))["type"] == "message.1"
    assert (await receive(layer, two))["type"] == "marker"
    await layer.flush()


async def test_group_send_to_a_full_normal_channel_does_not_raise() -> None:
    layer = new_layer(capacity=3)
    await layer.group_add("test-group", "test-gr-chan-1")
    for _ in range(5):
        await layer.group_send("test-group", {"type": "message.1"})
    for _ in range(3):
        assert (await receive(layer, "test-gr-chan-1"))["type"] == "message.1"
    await layer.send("test-gr-chan-1", {"type": "marker"})
    assert (await receive(layer, "test-gr-chan-1"))["type"] == "marker"
    await layer.flush()


async def test_groups_across_several_hosts() -> None:
    layer = new_layer(hosts=MULTIPLE_HOSTS, capacity=100)
    one, two, three = [await layer.new_channel(prefix=f"channel{n}") for n in (1, 2, 3)]
    for channel in (one, two, three):
        await layer.group_add("test-group", channel)
    await layer.group_discard("test-group", two)
    await layer.group_send("test-group", {"type": "message.1"})
    await layer.group_send("test-group", {"type": "message.1"})
    await layer.send(two, {"type": "marker"})
    for channel in (one, three):
        assert (await receive(layer, channel))["type"] == "message.1"
    assert (await receive(layer, two))["type"] == "marker"
    await layer.flush()


async def test_members_with_the_same_name_prefix_all_receive() -> None:
    layer = new_layer()
    channels = [await layer.new_channel(prefix="test-gr-chan") for _ in range(3)]
    for channel in channels:
        await layer.group_add("test-group", channel)
    await layer.group_send("test-group", {"type": "message.1"})
    for channel in channels:
        assert (await receive(layer, channel))["type"] == "message.1"
    await layer.flush()


@pytest.mark.parametrize(("members", "seconds"), [(1, 1), (10, 1), (100, 10)])
async def test_group_send_to_many_members_across_hosts_is_quick(members: int, seconds: float) -> None:
    layer = new_layer(hosts=MULTIPLE_HOSTS, capacity=100)
    channels = []
    for n in range(members):
        channels.append(await layer.new_channel(prefix=f"channel{n}"))
        await layer.group_add("test-group", channels[-1])
    async with asyncio.timeout(seconds):
        await layer.group_send("test-group", {"type": "message.1"})
    async with asyncio.timeout(seconds):
        for channel in channels:
            assert (await layer.receive(channel))["type"] == "message.1"
    await layer.flush()


async def test_group_send_over_capacity_is_dropped_and_logged(
    channel_layer: RedisChannelLayer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "wsviews.layers.redis")
    channel = await channel_layer.new_channel()
    await channel_layer.group_add("test-group", channel)
    witness, inbox = await channel_layer.new_channel(), Inbox()
    channel_layer.attach(witness, inbox)
    await channel_layer.group_add("witness", witness)
    for n in (1, 2, 3, 4):
        await channel_layer.group_send("test-group", {"type": f"message.{n}"})
    # Messages arrive in order: once the witness has its own, all four were offered.
    await channel_layer.group_send("witness", {"type": "witness"})
    await inbox.get()
    for n in (1, 2, 3):
        assert (await receive(channel_layer, channel))["type"] == f"message.{n}"
    await channel_layer.send(channel, {"type": "marker"})
    assert (await receive(channel_layer, channel))["type"] == "marker"
    assert "1 of 1 channels over capacity in group test-group" in caplog.messages
    # Capacity is applied where the message arrives, so the receiving process counts the drop.
    assert channel_layer.stats["dropped_full"] == 1


async def test_group_send_over_capacity_of_one_member_of_two(
    channel_layer: RedisChannelLayer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "wsviews.layers.redis")
    one = await channel_layer.new_channel()
    two = await channel_layer.new_channel(prefix="channel_2")
    await channel_layer.group_add("test-group", one)
    await channel_layer.group_add("test-group", two)
    await channel_layer.send(two, {"type": "message.0"})
    for n in (1, 2, 3):
        await channel_layer.group_send("test-group", {"type": f"message.{n}"})
    for n in (1, 2, 3):
        assert (await receive(channel_layer, one))["type"] == f"message.{n}"
    for n in (0, 1, 2):
        assert (await receive(channel_layer, two))["type"] == f"message.{n}"
    await channel_layer.send(two, {"type": "marker"})
    assert (await receive(channel_layer, two))["type"] == "marker"
    assert "1 of 2 channels over capacity in group test-group" in caplog.messages


def test_repeated_group_send_through_async_to_sync() -> None:
    layer = new_layer(capacity=3)
    async_to_sync(layer.group_send)("channel_name_1", {"type": "test.message.1"})
    async_to_sync(layer.group_send)("channel_name_2", {"type": "test.message.2"})
    assert layer._shards.loops() == []


async def test_cancelling_receive_never_loses_a_message() -> None:
    """channels_redis marks this xfail; here every message is received once."""
    layer = new_layer(capacity=30)
    channel = await layer.new_channel()
    received = 0
    delay = 0.0
    sent = 0
    while delay < 0.01:
        await layer.send(channel, {"type": "test.message", "text": "Ahoy-hoy!"})
        sent += 1
        task = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(delay)
        task.cancel()
        try:
            await task
            received += 1
        except asyncio.CancelledError:
            pass
        delay += 0.001
    while received < sent:
        await receive(layer, channel)
        received += 1
    await layer.flush()


async def test_seeding_random_does_not_repeat_channel_names() -> None:
    layer = new_layer()
    random.seed(1)
    first = await layer.new_channel()
    random.seed(1)
    assert await layer.new_channel() != first
    await layer.flush()


def test_seeding_random_does_not_repeat_process_ids() -> None:
    random.seed(1)
    first = new_layer()
    random.seed(1)
    assert new_layer().client_prefix != first.client_prefix


async def test_old_messages_expire_first() -> None:
    layer = new_layer(expiry=2)
    channel = await layer.new_channel()
    await send_three(layer, channel, delay=1.2, group=False)
    assert (await receive(layer, channel))["text"] == "Second!"
    assert (await receive(layer, channel))["text"] == "Third!"
    await layer.send(channel, {"type": "test.message", "text": "marker"})
    assert (await receive(layer, channel))["text"] == "marker"
    await layer.flush()


async def test_messages_younger_than_expiry_are_all_kept() -> None:
    layer = new_layer(expiry=2)
    channel = await layer.new_channel()
    await send_three(layer, channel, delay=0.4, group=False)
    for text in ("First!", "Second!", "Third!"):
        assert (await receive(layer, channel))["text"] == text
    await layer.flush()


async def test_group_messages_expire_too() -> None:
    # The first message expires while fresh ones wait behind it: the channel keeps its group.
    layer = new_layer(expiry=2)
    channel = await layer.new_channel()
    await layer.group_add("test-group", channel)
    await send_three(layer, "test-group", delay=1.2, group=True)
    assert (await receive(layer, channel))["text"] == "Second!"
    assert (await receive(layer, channel))["text"] == "Third!"
    await layer.flush()


async def test_a_channel_whose_messages_expire_unread_leaves_its_groups() -> None:
    """Where channels_redis' core layer keeps it (its test is xfail), we follow Channels'
    in-memory layer: a channel that read nothing for a whole expiry is gone."""
    layer = new_layer(expiry=1)
    idle, busy = await layer.new_channel(), await layer.new_channel(prefix="channel_2")
    await layer.group_add("test-group", idle)
    await layer.group_add("test-group", busy)
    await layer.send(idle, {"type": "test.message", "text": "Zero!"})
    await asyncio.sleep(1.0 + 2 * layer.sweep_interval)  # expiry, then a sweep
    await layer.group_send("test-group", {"type": "test.message", "text": "First!"})
    await layer.send(idle, {"type": "test.message", "text": "marker"})
    assert (await receive(layer, busy))["text"] == "First!"
    assert (await receive(layer, idle))["text"] == "marker"
    await layer.flush()


def test_group_data_lives_under_the_prefix() -> None:
    """channels_redis checks its group key name; ours carry the prefix and a hash tag."""
    assert RedisChannelLayer()._schema.members("test_group") == "asgi:members:{test_group}"
    layer = RedisChannelLayer(prefix="test_prefix")
    assert layer._schema.members("test_group") == "test_prefix:members:{test_group}"
    assert layer._schema.group_topic("test_group") == b"test_prefix:group:{test_group}"


async def test_an_unread_process_channel_holds_capacity_messages(
    channel_layer: RedisChannelLayer, other_channel_layer: RedisChannelLayer
) -> None:
    """channels_redis bounds its receive buffer, dropping the oldest; we drop what arrives
    over capacity, and count it."""
    channel, witness = await channel_layer.new_channel(), await channel_layer.new_channel()
    for n in range(10):
        await other_channel_layer.send(channel, {"type": "t", "n": n})
    await other_channel_layer.send(witness, {"type": "witness"})
    await receive(channel_layer, witness)
    assert [(await receive(channel_layer, channel))["n"] for _ in range(3)] == [0, 1, 2]
    assert channel_layer.stats["dropped_full"] == 7


# tests/test_pubsub.py


def test_a_layer_used_from_async_to_sync_leaves_nothing_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = new_layer()

    async def use() -> None:
        await layer.send(await layer.new_channel(), {"type": "test.message", "text": "Ahoy!"})

    async_to_sync(use)()
    assert layer._shards.loops() == [] and layer._pubsub.subscribers == {}
    assert not [r for r in caplog.records if r.name == "asyncio"]


async def test_send_receive_on_a_new_channel(channel_layer: RedisChannelLayer) -> None:
    channel = await channel_layer.new_channel()
    await channel_layer.send(channel, {"type": "test.message", "text": "Ahoy-hoy!"})
    assert (await receive(channel_layer, channel))["text"] == "Ahoy-hoy!"


def test_send_from_another_loop_receive_in_the_first() -> None:
    layer = new_layer()
    loop = asyncio.new_event_loop()
    try:
        channel = loop.run_until_complete(layer.new_channel())
        async_to_sync(layer.send, force_new_loop=True)(channel, {"type": "test.message"})
        for n in (1, 2, 3):
            async_to_sync(layer.send)(channel, {"type": f"message.{n}"})
        assert loop.run_until_complete(receive(layer, channel))["type"] == "test.message"
        for n in (1, 2, 3):
            assert loop.run_until_complete(receive(layer, channel))["type"] == f"message.{n}"
        loop.run_until_complete(layer.flush())
    finally:
        loop.close()


async def test_several_sends_to_a_new_channel_keep_order(channel_layer: RedisChannelLayer) -> None:
    channel = await channel_layer.new_channel()
    for n in (1, 2, 3):
        await channel_layer.send(channel, {"type": f"message.{n}"})
    for n in (1, 2, 3):
        assert (await receive(channel_layer, channel))["type"] == f"message.{n}"


async def test_another_process_receives_a_normal_channel(
    channel_layer: RedisChannelLayer, other_channel_layer: RedisChannelLayer
) -> None:
    task = asyncio.ensure_future(other_channel_layer.receive("test-channel"))
    await channel_layer.send("test-channel", {"type": "message.1"})
    async with asyncio.timeout(TIMEOUT):
        assert (await task)["type"] == "message.1"


def test_serialisation_is_plain_msgpack() -> None:
    message = {"a": True, "b": None, "c": {"d": []}}
    codec = new_layer()._codec
    assert codec.dumps(message) == b"\x83\xa1a\xc3\xa1b\xc0\xa1c\x81\xa1d\x90"
    assert codec.loads(b"\x83\xa1a\xc3\xa1b\xc0\xa1c\x81\xa1d\x90") == message
    assert codec.dumps(message) == msgpack.packb(message)


def test_layer_methods_are_coroutine_functions() -> None:
    layer = new_layer()
    for name in ("send", "receive", "new_channel", "group_add", "group_discard",
                 "group_send", "flush", "close"):
        assert inspect.iscoroutinefunction(getattr(layer, name)), name


async def test_receive_without_a_message_waits(channel_layer: RedisChannelLayer) -> None:
    channel = await channel_layer.new_channel(prefix="test-channel")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await channel_layer.receive(channel)


async def test_discard_before_add(channel_layer: RedisChannelLayer) -> None:
    """Discarding a channel that never joined changes nothing: it can join afterwards."""
    channel = await channel_layer.new_channel(prefix="test-channel")
    await channel_layer.group_discard("test-group", channel)
    assert "test-group" not in channel_layer.local.groups
    await channel_layer.group_add("test-group", channel)
    await channel_layer.group_send("test-group", {"type": "joined.after"})
    assert (await receive(channel_layer, channel))["type"] == "joined.after"
