"""The in-memory layer: the shared contract, then Channels' in-memory semantics over the core."""

from __future__ import annotations

import re
from typing import Any

from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer

from wsviews.layers import InMemoryChannelLayer

from .contract import Inbox, LayerContract, receive


class TestInMemoryLayer(LayerContract):
    def make_layer(self, **config: Any) -> InMemoryChannelLayer:
        return InMemoryChannelLayer(**config)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_config_is_channels_in_memory_config() -> None:
    """The same keyword arguments and defaults as channels.layers.InMemoryChannelLayer."""
    for config in ({}, {"expiry": 5, "group_expiry": 10, "capacity": 7}):
        ours, theirs = InMemoryChannelLayer(**config), ChannelsInMemoryChannelLayer(**config)
        assert (ours.expiry, ours.group_expiry, ours.capacity) == (
            theirs.expiry, theirs.group_expiry, theirs.capacity)
        assert ours.get_capacity("any") == theirs.get_capacity("any")
    # channel_capacity works here (Channels' in-memory layer does not compile its patterns).
    ours = InMemoryChannelLayer(capacity=7, channel_capacity={"x*": 2, re.compile(r"^y\d$"): 3})
    assert [ours.get_capacity(c) for c in ("xy", "y1", "y12")] == [2, 3, 7]


async def test_groups_are_visible_as_channels_shows_them() -> None:
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    assert list(layer.groups) == ["room"] and list(layer.groups["room"]) == [channel]
    await layer.group_discard("room", channel)
    assert layer.groups == {}


async def test_a_channel_whose_messages_expire_unread_leaves_its_groups() -> None:
    layer = InMemoryChannelLayer(expiry=10)
    clock = layer.local.clock = Clock()
    idle, busy = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", idle)
    await layer.group_add("room", busy)
    await layer.send(idle, {"type": "unread"})
    clock.now += 11
    await layer.group_send("room", {"type": "after"})  # sweeps first
    assert list(layer.groups["room"]) == [busy]
    assert layer.stats["expired"] == 1


async def test_members_not_attached_expire_and_attached_ones_stay() -> None:
    layer = InMemoryChannelLayer(group_expiry=100)
    clock = layer.local.clock = Clock()
    queued, attached = await layer.new_channel(), await layer.new_channel()
    inbox = Inbox()
    layer.attach(attached, inbox)
    await layer.group_add("room", queued)
    await layer.group_add("room", attached)
    clock.now += 101
    await layer.group_send("room", {"type": "late"})
    assert (await inbox.get())["type"] == "late"
    assert list(layer.groups["room"]) == [attached]
    await layer.send(queued, {"type": "marker"})
    assert (await receive(layer, queued))["type"] == "marker"


async def test_flush_keeps_attached_channels_attached() -> None:
    layer = InMemoryChannelLayer()
    channel, inbox = await layer.new_channel(), Inbox()
    layer.attach(channel, inbox)
    await layer.group_add("room", channel)
    await layer.flush()
    assert layer.groups == {}
    await layer.send(channel, {"type": "after flush"})
    assert (await inbox.get())["type"] == "after flush"
