"""One membership for views and consumers: a channel, delivery to a mailbox, groups joined and left."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryLayer

from wsviews.layers import InMemoryChannelLayer
from wsviews.membership import Membership


class Recorder(Membership):
    """A membership that records what it is given."""

    __slots__ = ("received",)

    def __init__(self, layer) -> None:
        super().__init__(layer)
        self.received: list[dict] = []

    async def handle(self, message) -> None:
        self.received.append(message)


def group() -> str:
    return "g" + uuid.uuid4().hex[:10]


@pytest.fixture(params=["attach", "pull"])
def layer(request):
    """wsviews' layer (messages pushed into the mailbox) and Channels' (pulled by one reader task)."""
    return InMemoryChannelLayer() if request.param == "attach" else ChannelsInMemoryLayer()


async def delivered(member: Recorder, count: int, timeout: float = 2) -> list[dict]:
    async with asyncio.timeout(timeout):
        while len(member.received) < count:
            await asyncio.sleep(0.005)
    return member.received


async def test_open_delivers_direct_and_group_messages_to_the_mailbox(layer):
    member = Recorder(layer)
    channel = await member.open()
    assert member.channel_name == channel
    room = group()
    await member.join(room, "tag")
    assert member.groups == {room: "tag"}
    await layer.send(channel, {"type": "direct"})
    await layer.group_send(room, {"type": "to.group"})
    assert [m["type"] for m in await delivered(member, 2)] == ["direct", "to.group"]
    await member.leave_all()


async def test_attachable_layer_needs_no_reader_task():
    before = len(asyncio.all_tasks())
    member = Recorder(InMemoryChannelLayer())
    await member.open()
    assert len(asyncio.all_tasks()) == before
    await member.leave_all()


async def test_leave_stops_group_delivery_and_leaving_twice_is_harmless(layer):
    member = Recorder(layer)
    await member.open()
    room = group()
    await member.join(room)
    await member.leave(room)
    await member.leave(room)
    await layer.group_send(room, {"type": "after.leave"})
    await asyncio.sleep(0.05)
    assert member.received == []


async def test_leave_all_leaves_every_group_and_stops_delivery(layer):
    """After leave_all the channel is in no group: a group message reaches neither mailbox nor queue."""
    member = Recorder(layer)
    channel = await member.open()
    joined, declared = group(), group()
    await member.join(joined)
    await layer.group_add(declared, channel)  # as a consumer does, calling the layer itself
    await member.leave_all(also=[declared])
    assert member.groups == {}
    for room in (joined, declared):
        await layer.group_send(room, {"type": "after.leave_all"})
    await asyncio.sleep(0.05)
    assert member.received == []
    with pytest.raises(TimeoutError):  # not queued for the channel either: it left the groups
        await asyncio.wait_for(layer.receive(channel), 0.1)


async def test_leave_all_with_the_layer_down_logs_one_warning_per_group(caplog):
    class DownLayer(ChannelsInMemoryLayer):
        async def group_discard(self, group, channel):
            raise ConnectionError("Redis is down")

    member = Recorder(DownLayer())
    await member.open()
    await member.join("room")
    with caplog.at_level(logging.WARNING, logger="wsviews"):
        await member.leave_all()
    (record,) = caplog.records
    assert "Could not leave group 'room'" in record.getMessage()
    assert "Redis is down" in record.getMessage()
    assert record.exc_info is None  # the layer being down is not our bug: no traceback


async def test_leave_all_without_a_channel_does_nothing():
    member = Recorder(InMemoryChannelLayer())
    await member.leave_all(also=["never-joined"])
    assert member.closed
