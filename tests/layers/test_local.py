"""The local delivery core on its own: no layer, no Redis, a clock the tests move."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest

from wsviews.layers.local import Capacities, FanOut, LocalChannels


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def core(clock: Clock) -> LocalChannels:
    return LocalChannels(Capacities(3, {"tiny": 1}), expiry=60, group_expiry=600, clock=clock)


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


def test_capacities_take_the_first_matching_pattern() -> None:
    capacities = Capacities(100, {"http.*": 5, re.compile(r"^ws\.\d+$"): 7, "*": 1})
    assert capacities("http.request") == 5
    assert capacities("ws.12") == 7
    assert capacities("ws.x") == 1
    assert Capacities(100)("anything") == 100


def test_put_to_an_attached_channel_calls_deliver(core: LocalChannels) -> None:
    inbox = Recorder()
    core.attach("a!1", inbox)
    message = {"type": "t"}
    assert core.put("a!1", message)
    assert inbox.messages == [message] and inbox.messages[0] is message
    assert core.stats["delivered"] == 1
    assert "a!1" not in core.queues


async def test_put_queues_up_to_capacity_then_refuses(core: LocalChannels) -> None:
    for n in range(3):
        assert core.put("q", {"n": n})
    assert not core.put("q", {"n": 3})
    assert core.put("tiny", {"n": 0})      # the first fits...
    assert not core.put("tiny", {"n": 1})  # ...the second does not
    assert [(await core.get("q"))["n"] for _ in range(3)] == [0, 1, 2]


async def test_get_waits_and_a_put_wakes_it(core: LocalChannels) -> None:
    waiting = asyncio.ensure_future(core.get("q"))
    await asyncio.sleep(0)
    assert not waiting.done()
    core.put("q", {"type": "late"})
    assert (await waiting)["type"] == "late"
    assert "q" not in core.queues  # nothing left behind


async def test_get_skips_expired_messages(core: LocalChannels, clock: Clock) -> None:
    core.put("q", {"n": "old"})
    clock.now += 61
    core.put("q", {"n": "new"})
    assert (await core.get("q"))["n"] == "new"
    assert core.stats["expired"] == 1


async def test_a_cancelled_get_loses_nothing(core: LocalChannels) -> None:
    waiting = asyncio.ensure_future(core.get("q"))
    await asyncio.sleep(0)
    core.put("q", {"type": "handed over"})  # resolves the waiter...
    waiting.cancel()                         # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (await core.get("q"))["type"] == "handed over"


def test_attach_hands_over_queued_unexpired_messages(core: LocalChannels, clock: Clock) -> None:
    core.put("c!1", {"n": 0})
    clock.now += 30
    core.put("c!1", {"n": 1})
    clock.now += 31  # the first has expired, the second has not
    inbox = Recorder()
    core.attach("c!1", inbox)
    assert inbox.messages == [{"n": 1}]
    assert core.stats["expired"] == 1


def test_fan_out_gives_each_member_its_own_copy(core: LocalChannels) -> None:
    inboxes = [Recorder() for _ in range(3)]
    for n, inbox in enumerate(inboxes):
        core.attach(f"c!{n}", inbox)
        core.group_add("g", f"c!{n}")
    core.group_add("g", "queued")
    message = {"type": "t", "items": [1]}
    assert core.fan_out("g", message) == FanOut(members=4, full=0, emptied=False)
    received = [inbox.messages[0] for inbox in inboxes]
    assert all(m == message for m in received)
    assert len({id(m) for m in received} | {id(message)}) == 4
    assert core.queues["queued"].items[0][1] == message
    assert core.stats["delivered"] == 4


def test_fan_out_to_an_unknown_group_does_nothing(core: LocalChannels) -> None:
    assert core.fan_out("nobody", {"type": "t"}) == FanOut(0, 0, False)
    assert core.stats["delivered"] == 0


def test_fan_out_skips_full_members_and_counts_them(core: LocalChannels) -> None:
    core.group_add("g", "tiny")
    core.group_add("g", "roomy")
    core.put("tiny", {"n": "first"})
    assert core.fan_out("g", {"n": "group"}) == FanOut(members=2, full=1, emptied=False)
    assert core.stats["dropped_full"] == 1
    assert len(core.queues["roomy"].items) == 1


def test_a_failing_deliver_is_isolated_and_logged(
    core: LocalChannels, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("receiver bug")

    fine = Recorder()
    core.attach("a!broken", broken)
    core.attach("a!fine", fine)
    core.group_add("g", "a!broken")
    core.group_add("g", "a!fine")
    with caplog.at_level(logging.ERROR, "wsviews.layers"):
        core.fan_out("g", {"type": "t"})
        core.put("a!broken", {"type": "direct"})
    assert fine.messages == [{"type": "t"}]
    assert core.stats["deliver_errors"] == 2
    assert core.stats["delivered"] == 1
    assert "deliver() of channel a!broken raised" in caplog.text


def test_a_deliver_that_detaches_members_during_fan_out(core: LocalChannels) -> None:
    """A member detached by another member's deliver() gets nothing, and nothing breaks."""
    second = Recorder()

    def first(message: dict[str, Any]) -> None:
        core.detach("a!2")

    core.attach("a!1", first)
    core.attach("a!2", second)
    core.group_add("g", "a!1")
    core.group_add("g", "a!2")
    core.fan_out("g", {"type": "t"})
    assert second.messages == []
    assert core.stats["undeliverable"] == 1
    assert list(core.members("g")) == ["a!1"]


def test_membership_index_follows_adds_and_discards(core: LocalChannels) -> None:
    assert core.group_add("g1", "c") is True   # the group's first member
    assert core.group_add("g1", "d") is False
    assert core.group_add("g2", "c") is True
    assert set(core.groups_of("c")) == {"g1", "g2"}
    assert core.group_discard("g1", "c") is False  # d is still in g1
    assert core.group_discard("g1", "c") is False  # not a member any more
    assert set(core.groups_of("c")) == {"g2"}
    assert core.group_discard("g2", "c") is True   # g2 is empty now
    assert "c" not in core.memberships and "g2" not in core.groups
    assert core.group_discard("never", "c") is False


def test_detach_leaves_exactly_the_channels_groups(core: LocalChannels) -> None:
    core.attach("a!1", Recorder())
    for n in range(5):
        core.group_add(f"g{n}", "a!1")
    core.group_add("g0", "other")
    assert sorted(core.detach("a!1")) == ["g1", "g2", "g3", "g4"]
    assert list(core.groups) == ["g0"] and list(core.members("g0")) == ["other"]
    assert "a!1" not in core.memberships and "a!1" not in core.attached


def test_detach_costs_only_the_channels_groups(core: LocalChannels) -> None:
    """detach() looks at the groups of the channel, not at every group (the index is used)."""
    core.attach("a!1", Recorder())
    core.group_add("mine", "a!1")
    for n in range(1000):
        core.group_add(f"other{n}", f"c{n}")

    class Watched(dict[str, dict[str, float]]):
        looked: list[str] = []

        def get(self, key: str, default: Any = None) -> Any:
            self.looked.append(key)
            return super().get(key, default)

    core.groups = Watched(core.groups)
    core.detach("a!1")
    assert Watched.looked == ["mine"]


def test_messages_for_a_detached_channel_are_dropped_for_an_expiry(
    core: LocalChannels, clock: Clock
) -> None:
    core.attach("a!1", Recorder())
    core.detach("a!1")
    assert core.put("a!1", {"type": "late"})
    assert core.stats["undeliverable"] == 1 and "a!1" not in core.queues
    clock.now += 61
    core.sweep()
    assert core.put("a!1", {"type": "much later"})
    assert "a!1" in core.queues  # forgotten: a new consumer of that name may come


def test_stale_unattached_members_leave_on_fan_out(core: LocalChannels, clock: Clock) -> None:
    live = Recorder()
    core.attach("a!live", live)
    core.group_add("g", "a!live")
    core.group_add("g", "queued")
    clock.now += 601
    assert core.fan_out("g", {"type": "t"}) == FanOut(members=1, full=0, emptied=False)
    assert list(core.members("g")) == ["a!live"]
    assert live.messages == [{"type": "t"}]
    core.detach("a!live")
    core.group_add("h", "queued")
    clock.now += 601
    assert core.fan_out("h", {"type": "t"}).emptied is True
    assert "h" not in core.groups


def test_sweep_expires_queues_members_and_reservations(core: LocalChannels, clock: Clock) -> None:
    core.put("unread", {"n": 0})
    core.group_add("g", "unread")
    core.group_add("g2", "loose")       # queued channel, never sent to
    core.attach("a!1", Recorder())
    core.group_add("g2", "a!1")         # attached: never expires
    assert core.reserve("reserved")
    clock.now += 59
    assert core.sweep() == []
    clock.now += 2
    assert core.sweep() == ["g"]       # its only member read nothing for an expiry
    assert core.stats["expired"] == 1
    assert "reserved" not in core.in_flight
    clock.now += 600
    assert core.sweep() == []          # "loose" left g2; a!1 keeps it alive
    assert list(core.members("g2")) == ["a!1"]


def test_a_channel_with_fresh_messages_behind_expired_ones_keeps_its_groups(
    core: LocalChannels, clock: Clock
) -> None:
    core.group_add("g", "slow")
    core.put("slow", {"n": 0})
    clock.now += 40
    core.put("slow", {"n": 1})
    clock.now += 21                    # n=0 has expired, n=1 has not
    assert core.sweep() == []
    assert core.stats["expired"] == 1
    assert list(core.members("g")) == ["slow"]
    clock.now += 40                    # now everything sent to it expired unread
    assert core.sweep() == ["g"]


def test_sweep_looks_only_at_members_that_are_not_attached(core: LocalChannels) -> None:
    for n in range(100):
        core.attach(f"a!{n}", Recorder())
        core.group_add("room", f"a!{n}")
    core.group_add("room", "queued")
    assert core._loose == {"queued"}
    core.attach("queued", Recorder())
    assert core._loose == set()


def test_reservations_count_against_capacity_until_the_message_arrives(
    core: LocalChannels,
) -> None:
    assert [core.reserve("c!1") for _ in range(4)] == [True, True, True, False]
    core.unreserve("c!1")
    assert core.reserve("c!1")
    for _ in range(3):
        assert core.put("c!1", {"type": "arrived"})  # each arrival ends one reservation
    assert "c!1" not in core.in_flight
    assert not core.reserve("c!1")                  # three queued: full
    core.attach("c!2", Recorder())
    assert all(core.reserve("c!2") for _ in range(10))  # attached channels have no capacity


def test_sweep_due_rate_limits(core: LocalChannels, clock: Clock) -> None:
    assert core.sweep_due(1.0)
    assert not core.sweep_due(1.0)
    clock.now += 1.0
    assert core.sweep_due(1.0)


def test_clear_keeps_attachments_and_waiting_receivers(core: LocalChannels) -> None:
    inbox = Recorder()
    core.attach("a!1", inbox)
    core.group_add("g", "a!1")
    core.put("q", {"n": 1})
    assert core.clear() == ["g"]
    assert core.groups == {} and core.memberships == {} and "q" not in core.queues
    core.put("a!1", {"type": "still attached"})
    assert inbox.messages == [{"type": "still attached"}]


def test_local_channels_lists_every_kind(core: LocalChannels) -> None:
    core.attach("a!1", Recorder())
    core.put("q", {})
    core.group_add("g", "member")
    assert core.local_channels() == {"a!1", "q", "member"}


def test_a_hub_style_group_is_just_a_group(core: LocalChannels) -> None:
    """Arbitrary external names mapped to group names: members are attached channels."""
    import hashlib

    def group_for(channel: str) -> str:
        return "hub." + hashlib.blake2b(channel.encode(), digest_size=12).hexdigest()

    connections = [Recorder() for _ in range(3)]
    for n, connection in enumerate(connections):
        core.attach(f"hub!{n}", connection)
        core.group_add(group_for("news:sport/ä €"), f"hub!{n}")
    core.fan_out(group_for("news:sport/ä €"), {"channel": "news:sport/ä €", "offset": 7})
    assert all(c.messages == [{"channel": "news:sport/ä €", "offset": 7}] for c in connections)
