"""The behaviour every wsviews channel layer shares: one mixin, subclassed per backend.

A backend's test module subclasses :class:`LayerContract` and implements
``make_layer(**config)``; the ``layer`` fixture builds one with a small
capacity and flushes it afterwards.

Negative checks ("this channel did not get that message") do not wait for a
timeout: they send a marker after the message that must not arrive, and
check that the marker comes first. Layers deliver one sender's messages to
one channel in order, so a stray message would come before the marker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.exceptions import ChannelFull

from wsviews.layers import AttachableChannelLayer, InvalidMessage, supports_attach

TIMEOUT = 5.0


class Inbox:
    """A ``deliver`` callable that records messages and lets a test await them."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()

    def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self._arrived.set()

    async def get(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while not self.messages:
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages.pop(0)


async def receive(layer: Any, channel: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        message: dict[str, Any] = await layer.receive(channel)
        return message


class LayerContract:
    """Channels' layer specification plus wsviews' ``attach`` extension."""

    def make_layer(self, **config: Any) -> AttachableChannelLayer:
        raise NotImplementedError

    @pytest.fixture
    async def layer(self) -> AsyncIterator[Any]:
        layer = self.make_layer(capacity=3, channel_capacity={"tiny": 1})
        yield layer
        await layer.flush()
        await layer.close()

    @pytest.fixture
    async def make(self) -> AsyncIterator[Any]:
        """Build layers with a given config; flush them all afterwards."""
        made: list[Any] = []

        def make(**config: Any) -> Any:
            made.append(self.make_layer(**config))
            return made[-1]

        yield make
        for layer in made:
            await layer.flush()
            await layer.close()

    # The specification

    def test_extensions(self, layer: Any) -> None:
        """The layer declares groups, flush and attach."""
        assert {"groups", "flush", "attach"} <= set(layer.extensions)
        assert supports_attach(layer)

    async def test_send_receive_normal_channel(self, layer: Any) -> None:
        await layer.send("test-channel-1", {"type": "test.message", "text": "Ahoy-hoy!"})
        message = await receive(layer, "test-channel-1")
        assert message == {"type": "test.message", "text": "Ahoy-hoy!"}

    async def test_one_channel_keeps_order(self, layer: Any) -> None:
        for n in range(3):
            await layer.send("test-channel-2", {"type": f"message.{n}"})
        assert [(await receive(layer, "test-channel-2"))["type"] for _ in range(3)] == [
            "message.0", "message.1", "message.2",
        ]

    async def test_new_channel_names(self, layer: Any) -> None:
        """new_channel() names are unique, valid, and process-specific (contain '!')."""
        names = {await layer.new_channel() for _ in range(50)}
        assert len(names) == 50
        for name in names:
            assert "!" in name
            assert layer.require_valid_channel_name(name)
        assert (await layer.new_channel("myprefix")).startswith("myprefix")

    async def test_send_receive_process_channel(self, layer: Any) -> None:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "test.message", "text": "Local only please"})
        assert (await receive(layer, channel))["text"] == "Local only please"

    async def test_sender_changes_after_send_do_not_leak(self, layer: Any) -> None:
        message = {"type": "test.message", "items": [1]}
        await layer.send("test-channel-3", message)
        message["items"].append(2)
        assert (await receive(layer, "test-channel-3"))["items"] == [1]

    async def test_bytes_and_str_stay_distinct(self, layer: Any) -> None:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "t", "b": b"\x00\xff", "s": "\u00e9"})
        message = await receive(layer, channel)
        assert message["b"] == b"\x00\xff" and isinstance(message["b"], bytes)
        assert message["s"] == "\u00e9" and isinstance(message["s"], str)

    async def test_reserved_key_is_refused(self, layer: Any) -> None:
        with pytest.raises(AssertionError):
            await layer.send("test-channel-4", {"type": "t", "__asgi_channel__": "x"})

    async def test_invalid_names_are_refused(self, layer: Any) -> None:
        with pytest.raises(TypeError):
            await layer.send("=+135!", {"type": "foom"})
        with pytest.raises(TypeError):
            await layer.receive("=+135!")
        with pytest.raises(TypeError):
            await layer.group_add("not a group", await layer.new_channel())
        with pytest.raises(TypeError):
            await layer.group_send("x" * 200, {"type": "t"})

    async def test_non_dict_message_is_refused(self, layer: Any) -> None:
        """A TypeError naming the rule, and an AssertionError as Channels' layers raise."""
        for call in (layer.send("test-channel-5", ["not", "a", "dict"]),
                     layer.group_send("test-group", "not a dict")):
            with pytest.raises(InvalidMessage, match="must be a dict, not") as caught:
                await call
            assert isinstance(caught.value, TypeError)
            assert isinstance(caught.value, AssertionError)

    # Capacity and expiry

    async def test_normal_channel_capacity(self, layer: Any) -> None:
        for _ in range(3):
            await layer.send("test-channel-6", {"type": "t"})
        with pytest.raises(ChannelFull):
            await layer.send("test-channel-6", {"type": "t"})

    async def test_channel_capacity_patterns(self, layer: Any) -> None:
        await layer.send("tiny", {"type": "t"})
        with pytest.raises(ChannelFull):
            await layer.send("tiny", {"type": "t"})

    async def test_process_channel_capacity(self, layer: Any) -> None:
        channel = await layer.new_channel()
        for _ in range(3):
            await layer.send(channel, {"type": "t"})
        with pytest.raises(ChannelFull):
            await layer.send(channel, {"type": "t"})

    async def test_receiving_makes_room(self, layer: Any) -> None:
        channel = await layer.new_channel()
        for n in range(3):
            await layer.send(channel, {"type": "t", "n": n})
        assert (await receive(layer, channel))["n"] == 0
        await layer.send(channel, {"type": "t", "n": 3})
        assert [(await receive(layer, channel))["n"] for _ in range(3)] == [1, 2, 3]

    async def test_expired_messages_are_dropped(self, make: Any) -> None:
        layer = make(expiry=1)
        channel = await layer.new_channel()
        await layer.send("test-channel-7", {"type": "old"})
        await layer.send(channel, {"type": "old"})
        await asyncio.sleep(1.3)  # the expiry is the point of the test
        await layer.send("test-channel-7", {"type": "new"})
        await layer.send(channel, {"type": "new"})
        assert (await receive(layer, "test-channel-7"))["type"] == "new"
        assert (await receive(layer, channel))["type"] == "new"

    async def test_cancelled_receive_loses_nothing(self, layer: Any) -> None:
        """Messages survive receivers being cancelled at any point."""
        sent = [{"type": "t", "n": n} for n in range(3)]
        got = []
        for message in sent:
            await layer.send("test-channel-8", message)
            task = asyncio.ensure_future(layer.receive("test-channel-8"))
            await asyncio.sleep(0)
            task.cancel()
            try:
                got.append(await task)
            except asyncio.CancelledError:
                pass
        while len(got) < len(sent):
            got.append(await receive(layer, "test-channel-8"))
        assert sorted(m["n"] for m in got) == [0, 1, 2]

    # Groups

    async def test_group_send_reaches_members_only(self, layer: Any) -> None:
        one, two, three = [await layer.new_channel() for _ in range(3)]
        for channel in (one, two, three):
            await layer.group_add("test-group", channel)
        await layer.group_discard("test-group", two)
        await layer.group_send("test-group", {"type": "message.1"})
        await layer.send(two, {"type": "marker"})
        assert (await receive(layer, one))["type"] == "message.1"
        assert (await receive(layer, three))["type"] == "message.1"
        assert (await receive(layer, two))["type"] == "marker"

    async def test_group_of_normal_channels(self, layer: Any) -> None:
        await layer.group_add("test-group", "test-channel-9")
        await layer.group_send("test-group", {"type": "message.1"})
        assert (await receive(layer, "test-channel-9"))["type"] == "message.1"
        await layer.group_discard("test-group", "test-channel-9")
        await layer.group_send("test-group", {"type": "message.2"})
        await layer.send("test-channel-9", {"type": "marker"})
        assert (await receive(layer, "test-channel-9"))["type"] == "marker"

    async def test_joining_twice_delivers_once(self, layer: Any) -> None:
        channel = await layer.new_channel()
        await layer.group_add("test-group", channel)
        await layer.group_add("test-group", channel)
        await layer.group_send("test-group", {"type": "message.1"})
        await layer.send(channel, {"type": "marker"})
        assert (await receive(layer, channel))["type"] == "message.1"
        assert (await receive(layer, channel))["type"] == "marker"

    async def test_empty_groups_and_unknown_members_are_no_ops(self, layer: Any) -> None:
        """Sending to an empty group and discarding non-members raise nothing and change nothing."""
        channel, member = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("test-group", member)
        await layer.group_send("nobody-here", {"type": "lost"})
        await layer.group_discard("nobody-here", channel)
        await layer.group_discard("test-group", channel)
        await layer.group_discard("test-group", "test-channel-10")
        await layer.group_send("test-group", {"type": "kept"})
        await layer.send(channel, {"type": "marker"})
        assert (await receive(layer, member))["type"] == "kept"
        assert (await receive(layer, channel))["type"] == "marker"

    async def test_discard_before_add(self, layer: Any) -> None:
        """A channel discarded from a group it never joined can join it afterwards."""
        channel = await layer.new_channel()
        await layer.group_discard("test-group", channel)
        await layer.group_add("test-group", channel)
        await layer.group_send("test-group", {"type": "joined.after"})
        assert (await receive(layer, channel))["type"] == "joined.after"

    async def test_group_send_skips_full_members(self, layer: Any) -> None:
        """A member at capacity misses group messages; the others get them; no error."""
        full, other = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("test-group", full)
        await layer.group_add("test-group", other)
        for n in range(3):
            await layer.send(full, {"type": "t", "n": n})
        await layer.group_send("test-group", {"type": "t", "n": 3})
        await layer.group_send("test-group", {"type": "t", "n": 4})
        # Once the other member has both, the full one was offered both too.
        assert [(await receive(layer, other))["n"] for _ in range(2)] == [3, 4]
        assert [(await receive(layer, full))["n"] for _ in range(3)] == [0, 1, 2]
        await layer.group_send("test-group", {"type": "t", "n": 5})
        assert (await receive(layer, full))["n"] == 5

    async def test_group_expiry(self, make: Any) -> None:
        """Unattached members leave a group after group_expiry; attached ones stay."""
        layer = make(group_expiry=1)
        stale, live = await layer.new_channel(), await layer.new_channel()
        inbox = Inbox()
        layer.attach(live, inbox)
        await layer.group_add("test-group", stale)
        await layer.group_add("test-group", live)
        await asyncio.sleep(1.3)  # group_expiry is the point of the test
        await layer.group_send("test-group", {"type": "late"})
        await layer.send(stale, {"type": "marker"})
        assert (await receive(layer, stale))["type"] == "marker"
        assert (await inbox.get())["type"] == "late"

    # The attach extension

    async def test_group_send_isolates_the_sender(self, layer: Any) -> None:
        channel = await layer.new_channel()
        await layer.group_add("test-group", channel)
        message = {"type": "t", "items": [1]}
        await layer.group_send("test-group", message)
        message["items"].append(2)
        assert (await receive(layer, channel))["items"] == [1]

    async def test_stats_count_sends_and_deliveries(self, layer: Any) -> None:
        channel, other = await layer.new_channel(), await layer.new_channel()
        inbox = Inbox()
        layer.attach(channel, inbox)
        await layer.group_add("test-group", channel)
        await layer.group_add("test-group", other)
        await layer.send(channel, {"type": "direct"})
        await layer.group_send("test-group", {"type": "group"})
        await inbox.get()
        await inbox.get()
        await receive(layer, other)
        assert (layer.stats["sent"], layer.stats["group_sent"]) == (1, 1)
        assert layer.stats["delivered"] == 3

    async def test_attach_pushes_direct_and_group_messages(self, layer: Any) -> None:
        channel = await layer.new_channel()
        inbox = Inbox()
        layer.attach(channel, inbox)
        await layer.group_add("test-group", channel)
        await layer.send(channel, {"type": "direct"})
        await layer.group_send("test-group", {"type": "group"})
        assert (await inbox.get())["type"] == "direct"
        assert (await inbox.get())["type"] == "group"

    async def test_attached_channels_are_not_bounded_by_capacity(self, layer: Any) -> None:
        channel = await layer.new_channel()
        inbox = Inbox()
        layer.attach(channel, inbox)
        for n in range(10):
            await layer.send(channel, {"type": "t", "n": n})
        assert [(await inbox.get())["n"] for _ in range(10)] == list(range(10))

    async def test_each_member_gets_its_own_copy(self, layer: Any) -> None:
        one, two = await layer.new_channel(), await layer.new_channel()
        inbox_one, inbox_two = Inbox(), Inbox()
        layer.attach(one, inbox_one)
        layer.attach(two, inbox_two)
        await layer.group_add("test-group", one)
        await layer.group_add("test-group", two)
        await layer.group_send("test-group", {"type": "t", "text": "hi"})
        first, second = await inbox_one.get(), await inbox_two.get()
        assert first == second == {"type": "t", "text": "hi"}
        assert first is not second
        first["text"] = "changed"
        assert second["text"] == "hi"

    async def test_attach_hands_over_queued_messages(self, layer: Any) -> None:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "early"})
        inbox = Inbox()
        layer.attach(channel, inbox)
        await layer.send(channel, {"type": "late"})
        assert (await inbox.get())["type"] == "early"
        assert (await inbox.get())["type"] == "late"

    async def test_detach_stops_delivery_and_leaves_groups(self, layer: Any) -> None:
        channel, other = await layer.new_channel(), await layer.new_channel()
        first, second = Inbox(), Inbox()
        layer.attach(channel, first)
        await layer.group_add("test-group", channel)
        await layer.group_add("test-group", other)
        layer.detach(channel)
        await layer.group_send("test-group", {"type": "after"})
        assert (await receive(layer, other))["type"] == "after"
        layer.attach(channel, second)
        await layer.group_send("test-group", {"type": "again"})
        await layer.send(channel, {"type": "marker"})
        assert (await second.get())["type"] == "marker"
        assert first.messages == []

    async def test_failing_deliver_does_not_starve_other_members(self, layer: Any) -> None:
        broken, fine = await layer.new_channel(), await layer.new_channel()

        def explode(message: dict[str, Any]) -> None:
            raise RuntimeError("receiver bug")

        inbox = Inbox()
        layer.attach(broken, explode)
        layer.attach(fine, inbox)
        await layer.group_add("test-group", broken)
        await layer.group_add("test-group", fine)
        await layer.group_send("test-group", {"type": "t"})
        assert (await inbox.get())["type"] == "t"

    # Flush and close

    async def test_flush_forgets_messages_and_groups(self, layer: Any) -> None:
        channel = await layer.new_channel()
        await layer.send("test-channel-11", {"type": "before"})
        await layer.group_add("test-group", channel)
        await layer.flush()
        await layer.group_send("test-group", {"type": "group"})
        await layer.send("test-channel-11", {"type": "after"})
        await layer.send(channel, {"type": "marker"})
        assert (await receive(layer, "test-channel-11"))["type"] == "after"
        assert (await receive(layer, channel))["type"] == "marker"

    async def test_usable_after_close(self, layer: Any) -> None:
        await layer.close()
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "t"})
        assert (await receive(layer, channel))["type"] == "t"
