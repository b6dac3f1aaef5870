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


# Fan-out without a task per member, and bounded backlogs (regression guards that time nothing)


class CountingTasks:
    """A task factory counting the tasks made on the loop (and their coroutines' names)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, loop, coro, **kwargs):
        self.names.append(getattr(coro, "__qualname__", type(coro).__qualname__))
        return asyncio.Task(coro, loop=loop, **kwargs)


class Sender(Membership):
    """A membership whose handler sends a frame (a no-op) unless told to wait."""

    __slots__ = ("sent", "wait", "closed_slow")

    def __init__(self, layer, wait: asyncio.Event | None = None) -> None:
        super().__init__(layer)
        self.sent: list[str] = []
        self.wait = wait
        self.closed_slow = 0

    def close_slow(self) -> None:
        self.closed_slow += 1

    async def handle(self, message) -> None:
        if self.wait is not None:
            await self.wait.wait()
        self.sent.append(message["text"])


async def test_group_messages_to_members_that_do_not_suspend_create_no_task():
    layer = InMemoryChannelLayer()
    room = group()
    members = [Sender(layer) for _ in range(100)]
    for member in members:
        await member.open()
        await member.join(room)
    loop = asyncio.get_running_loop()
    tasks = CountingTasks()
    loop.set_task_factory(tasks)
    try:
        for n in range(50):
            await layer.group_send(room, {"type": "chat.message", "text": f"m{n}"})
    finally:
        loop.set_task_factory(None)
    assert tasks.names == []  # 5,000 deliveries, not one task
    assert all(member.sent == [f"m{n}" for n in range(50)] for member in members)
    for member in members:
        await member.leave_all()


async def test_a_member_whose_handler_suspends_gets_one_task_at_a_time_and_keeps_its_order():
    layer = InMemoryChannelLayer()
    room = group()
    gate = asyncio.Event()
    waiting, quick = Sender(layer, gate), Sender(layer)
    for member in (waiting, quick):
        await member.open()
        await member.join(room)
    loop = asyncio.get_running_loop()
    tasks = CountingTasks()
    loop.set_task_factory(tasks)
    try:
        for n in range(10):
            await layer.group_send(room, {"type": "chat.message", "text": f"m{n}"})
        assert quick.sent == [f"m{n}" for n in range(10)]  # not held up by the waiting member
        assert waiting.queued.messages == 9 and waiting.sent == []
        gate.set()
        await waiting.wait_idle()
    finally:
        loop.set_task_factory(None)
    assert waiting.sent == [f"m{n}" for n in range(10)]
    # One task for the handler that suspended; the nine queued behind it ran without suspending.
    assert tasks.names == ["_Resumed"]
    assert waiting.queued == (0, 0, 0)


async def test_the_socket_task_is_current_while_a_pushed_message_is_handled_inline():
    layer = InMemoryChannelLayer()
    seen: list[asyncio.Task | None] = []

    class Current(Membership):
        async def handle(self, message) -> None:
            seen.append(asyncio.current_task())

    async def socket_task() -> Current:
        member = Current(layer)
        await member.open()
        return member

    member = await asyncio.create_task(socket_task())
    owner = member._owner
    await layer.send(member.channel_name, {"type": "x"})
    assert seen == [owner] and owner is not asyncio.current_task()
    assert asyncio.current_task() is not None


async def test_a_backlog_past_the_message_bound_closes_the_member_as_slow_and_leaves_its_groups():
    from wsviews import backpressure

    layer = InMemoryChannelLayer()
    room = group()
    gate = asyncio.Event()
    slow, quick = Sender(layer, gate), Sender(layer)
    slow.max_queue_messages = 5
    for member in (slow, quick):
        await member.open()
        await member.join(room)
    before = dict(backpressure.stats)
    for n in range(8):
        await layer.group_send(room, {"type": "chat.message", "text": f"m{n}"})
    assert slow.closed_slow == 1
    assert backpressure.stats["slow_closes"] == before["slow_closes"] + 1
    assert backpressure.stats["slow_dropped"] == before["slow_dropped"] + 6
    assert layer.group_sizes() == {room: 1}  # the slow member left at once
    assert quick.sent == [f"m{n}" for n in range(8)]
    assert slow.queued.messages == 0
    gate.set()


async def test_a_backlog_past_the_byte_bound_counts_the_waiting_messages_bytes():
    layer = InMemoryChannelLayer()
    room = group()
    slow = Sender(layer, asyncio.Event())
    slow.max_queue_bytes = 10_000
    await slow.open()
    await slow.join(room)
    for n in range(3):
        await layer.group_send(room, {"type": "chat.message", "text": "x" * 4000})
        assert slow.closed_slow == 0 and slow.queued.messages == n
    assert slow.queued.bytes > 8000
    await layer.group_send(room, {"type": "chat.message", "text": "x" * 4000})
    assert slow.closed_slow == 1


async def test_redis_commands_per_group_send_do_not_grow_with_the_members(tmp_path):
    """Commands Redis ran (scripts' own included) for 20 group_sends: the same for 5 and 200 members."""
    from layers.redis_server import RedisServer
    from wsviews.layers.redis import RedisChannelLayer

    server = RedisServer(tmp_path, port=6404)
    server.start()
    made: list[RedisChannelLayer] = []
    try:
        calls = {}
        for count in (5, 200):
            prefix = f"fanout-{count}-{uuid.uuid4().hex[:8]}"
            receiver = RedisChannelLayer(hosts=[server.url], prefix=prefix)
            sender = RedisChannelLayer(hosts=[server.url], prefix=prefix)
            made += [receiver, sender]
            room = group()
            members = [Sender(receiver) for _ in range(count)]
            for member in members:
                await member.open()
                await member.join(room)
            await sender.group_send(room, {"type": "chat.message", "text": "warm"})
            await delivered_all(members, 1)
            before = server.command_calls()
            for n in range(20):
                await sender.group_send(room, {"type": "chat.message", "text": f"m{n}"})
            await delivered_all(members, 21)
            after = server.command_calls()
            calls[count] = {name: after[name] - before.get(name, 0) for name in after
                            if name != "info" and after[name] != before.get(name, 0)}
            for member in members:
                await member.leave_all()
        assert calls[200] == calls[5], calls
        assert sum(calls[200].values()) <= 20 * 3, calls  # a script and its PUBLISH per message
    finally:
        for layer in made:
            await layer.close()
        server.kill()


async def delivered_all(members: list[Sender], count: int, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while any(len(member.sent) < count for member in members):
            await asyncio.sleep(0.01)


async def test_a_member_whose_connection_is_backed_up_gets_a_group_message_after_the_others():
    from wsviews import mailbox

    layer = InMemoryChannelLayer()
    room = group()
    order: list[str] = []

    class Named(Sender):
        __slots__ = ("name",)

        async def handle(self, message) -> None:
            order.append(f"{self.name} {message['text']}")

    behind, healthy = Named(layer), Named(layer)
    behind.name, healthy.name = "behind", "healthy"
    behind.transport_bytes = lambda: 200_000  # over 1/8 of the 1 MiB bound, under the bound
    for member in (behind, healthy):  # the backed-up member joins first
        await member.open()
        await member.join(room)
    for n in range(mailbox.CHECK_EVERY):  # the last of these looks at the connection
        await layer.group_send(room, {"type": "chat.message", "text": f"m{n}"})
    await asyncio.sleep(0)
    order.clear()
    await layer.group_send(room, {"type": "chat.message", "text": "late"})
    assert order == ["healthy late"]  # during the fan-out: only the member that keeps up
    await behind.wait_idle()
    assert order == ["healthy late", "behind late"]
    assert behind.closed_slow == 0
