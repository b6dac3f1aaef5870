"""The mailbox runs handlers one at a time, in order, eagerly when they do not suspend."""

from __future__ import annotations

import asyncio
import sys

from wsviews.mailbox import Mailbox


class FnMailbox(Mailbox):
    """A mailbox handing each message to a function."""

    __slots__ = ("fn",)

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    async def handle(self, message) -> None:
        await self.fn(message)


async def test_posted_messages_run_in_order_one_at_a_time():
    events: list[str] = []
    running = 0

    async def handle(message: str) -> None:
        nonlocal running
        running += 1
        assert running == 1, "two handlers ran at once"
        events.append(f"start {message}")
        if message.startswith("slow"):
            await asyncio.sleep(0.01)
        events.append(f"end {message}")
        running -= 1

    box = FnMailbox(handle)
    for message in ("a", "slow-b", "c"):
        box.post(message)
    await box.put("d")
    assert events == ["start a", "end a", "start slow-b", "end slow-b", "start c", "end c",
                      "start d", "end d"]


async def test_put_waits_for_its_own_message():
    handled: list[int] = []

    async def handle(message: int) -> None:
        await asyncio.sleep(0)
        handled.append(message)

    box = FnMailbox(handle)
    box.post(1)
    await box.put(2)
    assert handled == [1, 2]


async def test_a_handler_that_does_not_suspend_runs_before_post_returns():
    handled: list[int] = []

    async def handle(message: int) -> None:
        handled.append(message)

    box = FnMailbox(handle)
    box(1)  # calling the mailbox posts: it is the layer's deliver callable
    if sys.version_info >= (3, 12):
        assert handled == [1]  # eager: no loop turn needed
    await box.wait_idle()
    assert handled == [1]


async def test_close_cancels_a_suspended_handler_and_drops_the_queue():
    started = asyncio.Event()
    cancelled = asyncio.Event()
    handled: list[int] = []

    async def handle(message: int) -> None:
        handled.append(message)
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    box = FnMailbox(handle)
    box.post(1)
    box.post(2)
    await started.wait()
    box.close()
    await asyncio.wait_for(cancelled.wait(), 1)
    await asyncio.wait_for(box.wait_idle(), 1)
    assert handled == [1]


async def test_an_escaping_exception_is_reported_and_the_mailbox_carries_on():
    reported: list[BaseException] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: reported.append(context["exception"]))
    handled: list[int] = []

    async def handle(message: int) -> None:
        await asyncio.sleep(0)
        if message == 1:
            raise ValueError("bad")
        handled.append(message)

    box = FnMailbox(handle)
    box.post(1)
    box.post(2)
    await box.wait_idle()
    assert handled == [2]
    assert isinstance(reported[0], ValueError)
