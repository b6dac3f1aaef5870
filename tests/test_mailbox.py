"""The mailbox runs handlers one at a time, in order, eagerly when they do not suspend."""

from __future__ import annotations

import asyncio
import contextvars
import sys

import pytest

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


async def test_a_handler_that_does_not_suspend_runs_inside_post_on_312():
    """3.12+: a posted message whose handler never suspends is handled inside post(), leaving no task.

    3.11 has no eager tasks: there post() schedules one and the handler runs on the loop's next turn.
    """
    handled: list[int] = []

    async def handle(message: int) -> None:
        handled.append(message)

    box = FnMailbox(handle)
    tasks_before = len(asyncio.all_tasks())
    box(1)  # calling the mailbox posts: it is the layer's deliver callable
    if sys.version_info >= (3, 12):
        assert (handled, box._busy, len(asyncio.all_tasks())) == ([1], False, tasks_before)
    else:
        assert (handled, box._busy, len(asyncio.all_tasks())) == ([], True, tasks_before + 1)
    await box.wait_idle()
    assert handled == [1]


async def test_a_handler_that_suspends_is_finished_by_the_loop_in_order():
    """A handler that suspends leaves later posts queued; they run after it, in order."""
    events: list[str] = []
    gate = asyncio.Event()

    async def handle(message: str) -> None:
        events.append(f"start {message}")
        if message == "a":
            await gate.wait()
        events.append(f"end {message}")

    box = FnMailbox(handle)
    box("a")
    box("b")
    await asyncio.sleep(0)
    assert events == ["start a"]
    gate.set()
    await box.wait_idle()
    assert events == ["start a", "end a", "start b", "end b"]


async def test_put_returns_once_its_own_message_is_handled_not_when_the_stream_stops():
    """A stream of posted messages that never pauses does not hold up put(): its caller gets back at once."""
    handled: list[object] = []
    box: FnMailbox

    async def handle(message: object) -> None:
        handled.append(message)
        if isinstance(message, int) and not box.closed:
            box.post(message + 1)  # each layer message brings the next: the mailbox never idles
        await asyncio.sleep(0)

    box = FnMailbox(handle)
    await box.put("first")
    box.post(0)
    while len(handled) < 50:
        await asyncio.sleep(0)
    streamed_before = len(handled) - 1
    await asyncio.wait_for(box.put("second"), 1)
    streamed = handled.index("second") - 1
    assert streamed - streamed_before <= 2, f"'second' waited for {streamed - streamed_before} messages"
    assert box._busy, "the stream should still be running"
    box.close()


async def test_handlers_run_in_the_context_the_mailbox_was_made_in():
    """Handlers see the receiver's context variables, not the sender's, as a consumer's own task would."""
    owner: contextvars.ContextVar[str] = contextvars.ContextVar("owner", default="nobody")
    seen: list[str] = []

    async def handle(message: str) -> None:
        await asyncio.sleep(0)
        seen.append(owner.get())

    owner.set("receiver")
    box = FnMailbox(handle)

    async def sender() -> None:
        owner.set("sender")
        box.post("hello")
        await box.wait_idle()

    await asyncio.create_task(sender())
    assert seen == ["receiver"]


async def test_close_resolves_queued_puts():
    """A put() queued behind a handler returns when the mailbox closes; it does not hang."""
    started = asyncio.Event()

    async def handle(message: str) -> None:
        started.set()
        await asyncio.sleep(10)

    box = FnMailbox(handle)
    box.post("slow")
    await started.wait()
    queued = asyncio.create_task(box.put("queued"))
    await asyncio.sleep(0)
    box.close()
    await asyncio.wait_for(queued, 1)


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


@pytest.mark.parametrize("suspends", [True, False], ids=["in a task", "inline"])
async def test_an_escaping_exception_is_reported_and_the_mailbox_carries_on(suspends):
    reported: list[BaseException] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: reported.append(context["exception"]))
    handled: list[int] = []

    async def handle(message: int) -> None:
        if suspends:
            await asyncio.sleep(0)
        if message == 1:
            raise ValueError("bad")
        handled.append(message)

    box = FnMailbox(handle)
    for message in (1, 2, 1, 3):
        box.post(message)
    await box.wait_idle()
    assert handled == [2, 3]
    assert [type(exc) for exc in reported] == [ValueError, ValueError]


def _exceptions_raised(fn) -> int:
    """Call ``fn()`` and count the exceptions raised or caught in Python code meanwhile (3.12+)."""
    monitoring = sys.monitoring
    tool = monitoring.PROFILER_ID
    events = (monitoring.events.RAISE, monitoring.events.RERAISE, monitoring.events.EXCEPTION_HANDLED)
    seen = 0

    def count(code, offset, exc):
        nonlocal seen
        seen += 1

    monitoring.use_tool_id(tool, "test_mailbox")
    try:
        for event in events:
            monitoring.register_callback(tool, event, count)
        monitoring.set_events(tool, events[0] | events[1] | events[2])
        fn()
    finally:
        monitoring.set_events(tool, 0)
        monitoring.free_tool_id(tool)
    return seen


@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.11: no sys.monitoring; handlers run in a task")
async def test_a_handler_that_returns_at_once_raises_nothing_on_the_way():
    """A regression guard without timing: no StopIteration (exception, traceback, frame) per message."""
    handled: list[int] = []

    async def handle(message: int) -> None:
        handled.append(message)

    boxes = [FnMailbox(handle) for _ in range(50)]
    assert _exceptions_raised(lambda: [box.post_shared({"n": 1}) or box.post(2) for box in boxes]) == 0
    assert handled == [{"n": 1}, 2] * 50


async def test_an_inline_handler_may_post_to_another_mailbox_inline():
    """Stepping is re-entrant: a handler that delivers to a second mailbox gets it handled at once."""
    events: list[str] = []

    async def inner(message: str) -> None:
        events.append(f"inner {message}")

    second = FnMailbox(inner)

    async def outer(message: str) -> None:
        events.append(f"outer {message}")
        second.post(message)
        await asyncio.sleep(0) if message == "suspend" else None
        events.append(f"outer done {message}")

    first = FnMailbox(outer)
    first.post("a")
    first.post("suspend")
    first.post("b")
    await first.wait_idle()
    assert events == ["outer a", "inner a", "outer done a", "outer suspend", "inner suspend",
                      "outer done suspend", "outer b", "inner b", "outer done b"]
