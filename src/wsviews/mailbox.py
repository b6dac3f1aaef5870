"""Run one receiver's handlers one at a time, in order, without a task per message.

A socket gets messages from two sources: its client (through the ASGI
``receive``) and the channel layer (pushed synchronously by an attachable
layer). Channels semantics are that a consumer handles them one at a time, in
arrival order. The ``Mailbox`` keeps that order with a deque and a busy flag,
and runs every handler in the receiver's own context (taken when the mailbox
is made, in the socket's task), not in the context of whoever sent the
message, as a Channels consumer's handlers run in its own task.

A message pushed by the layer is handled *inline*: the handler's coroutine is
stepped in place, on the stack of whoever delivered it, with the socket's
task as ``asyncio.current_task()``. Sending a frame to a writable socket does
not suspend, so fan-out to a thousand local sockets costs a thousand calls and
no task at all. Only a handler that really suspends (the socket's send buffer
is full, the handler awaits the database) is finished by a task of its own,
made at that point; messages that arrive meanwhile wait in the deque.

That deque is the socket's outbound backlog, and it is bounded: past
``max_queue_messages`` messages, or ``max_queue_bytes`` bytes counting what
the transport has not yet flushed, :meth:`Mailbox.overflow` is called (the
socket is closed as slow, see :mod:`wsviews.backpressure`). :attr:`Mailbox.queued`
tells how far behind a receiver is.
"""

from __future__ import annotations

import asyncio
import collections.abc
import logging
import time
import types
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from contextvars import Context, copy_context
from typing import Any, NamedTuple

try:
    from asyncio.tasks import _swap_current_task  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.11: the deliverer's task stays current
    _swap_current_task = None

_NOTHING: Any = object()
#: A receiver's connection backlog (a system call) is looked at once every this many group
#: messages; the bytes of the messages waiting in the mailbox are counted at every one.
CHECK_EVERY = 16
#: A receiver whose connection holds more than this fraction of ``max_queue_bytes`` unflushed is
#: *lagging*: its group messages are handled after the fan-out that brought them, not during it.
LAG_FRACTION = 0.125
_next_outage_warning = 0.0
logger = logging.getLogger("wsviews")


class Queued(NamedTuple):
    """How far behind a receiver is: layer messages waiting, their bytes, and unflushed transport bytes."""

    messages: int
    bytes: int
    transport_bytes: int

    @property
    def total_bytes(self) -> int:
        """Queued message bytes plus transport bytes: what the byte bound is checked against."""
        return self.bytes + self.transport_bytes


def message_size(message: Any, _depth: int = 0) -> int:
    """Estimate what ``message`` weighs in bytes: its strings and bytes, two levels deep, plus 64.

    Only messages that have to wait are weighed, so the estimate costs
    nothing on the path of a receiver that keeps up.
    """
    kind = type(message)
    if kind is str or kind is bytes or kind is bytearray:
        return len(message)
    if _depth > 2:
        return 64
    if kind is dict:
        return 64 + sum(message_size(v, _depth + 1) for v in message.values())
    if kind is list or kind is tuple:
        return 64 + sum(message_size(v, _depth + 1) for v in message)
    return 16


class Mailbox:
    """Serialise calls of ``handle(message)``: never two at once, always in order.

    Subclasses implement ``handle``, which owns its error policy and should
    not raise; an exception that escapes it anyway is logged and the mailbox
    carries on. Calling the mailbox posts a message, so a mailbox is itself
    the ``deliver`` callable an attachable layer takes; :meth:`post_shared`
    is the one the local delivery core uses for group messages.

    ``max_queue_messages`` and ``max_queue_bytes`` (None: unbounded) bound
    the layer messages waiting; ``transport_bytes`` (a callable, or None)
    tells what the socket's transport holds unflushed.
    """

    __slots__ = ("_pending", "_busy", "_task", "_idle", "_context", "_owner", "_loop", "closed",
                 "_queued_messages", "_queued_bytes", "max_queue_messages", "max_queue_bytes",
                 "transport_bytes", "inline", "_until_check", "_lagging", "_run")

    def __init__(self) -> None:
        self._pending: deque[Any] | None = None  # made on first need: most sockets never queue
        self._busy = False
        self.closed = False
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.Future[None] | None = None
        self._context: Context = copy_context()
        # Bound once: a bound method made per message is an allocation per member of a fan-out.
        self._run = self._context.run
        self._loop = asyncio.get_running_loop()
        # The socket's task: current while a pushed message is handled inline.
        self._owner = asyncio.current_task(self._loop)
        self._queued_messages = 0
        self._queued_bytes = 0
        self.max_queue_messages: int | None = None
        self.max_queue_bytes: int | None = None
        self.transport_bytes: Callable[[], int] | None = None
        #: True while a handler runs inline on the deliverer's stack (the socket's task is then
        #: ``current_task()`` without running): code that would cancel the socket's task unless
        #: it is the current one checks this too.
        self.inline = False
        self._until_check = CHECK_EVERY
        self._lagging = False  # the connection held over LAG_FRACTION of the byte bound when last looked at

    async def handle(self, message: Any) -> None:
        raise NotImplementedError("Mailbox subclasses implement handle()")

    def handler(self, message: Any) -> Awaitable[None]:
        """Return the awaitable that handles a posted ``message``: ``handle(message)``.

        Called where the handler runs (the receiver's context, its task
        current). A subclass may return the handler's own coroutine when no
        check stands before it, saving ``handle``'s coroutine; what it raises,
        or what that awaitable raises, goes to :meth:`failed`.
        """
        return self.handle(message)

    async def failed(self, exc: Exception) -> None:
        """Deal with what a posted message's handler raised: reported (the default); the mailbox goes on."""
        _report(self._loop, exc)

    # Posting (from the layer: synchronous, never waits)

    def post(self, message: Any) -> None:
        """Handle ``message`` now if nothing else is running, else queue it."""
        if self._busy:
            self._queue(message)
        elif self._step(message):
            self._after_inline()

    __call__ = post

    def post_shared(self, message: dict[str, Any]) -> None:
        """Post ``message``, which other receivers get too: the handler gets its own shallow copy.

        A message that has to wait is queued as it is and copied when its
        turn comes, so a receiver that falls behind holds a reference per
        message, not a copy.
        """
        if self._busy:
            self._queue(message)
            return
        self._until_check -= 1
        if not self._until_check:
            self._until_check = CHECK_EVERY
            if self._over_bytes(0):
                self.overflow()
                return
        if self._lagging:
            # Behind already: handled once this fan-out is over, so the members that keep up
            # get the message first.
            self._busy = True
            self._queue(message)
            self._loop.call_soon(self._drain)
            return
        if self._step(dict(message)):
            self._after_inline()

    def _after_inline(self) -> None:
        if self._pending:
            self._drain()
        else:
            self._set_idle()

    def _queue(self, message: Any) -> None:
        if self.closed:
            return
        if self._pending is None:
            self._pending = deque()
        self._pending.append(message)
        if type(message) is _Put:
            return  # the client's own message: its sender waits for it, so it cannot pile up
        self._queued_messages += 1
        self._queued_bytes += message_size(message)
        limit = self.max_queue_messages
        if limit is not None and self._queued_messages > limit:
            self.overflow()
            return
        limit = self.max_queue_bytes
        if limit is None:
            return
        if self._queued_bytes > limit:
            self.overflow()
            return
        self._until_check -= 1
        if not self._until_check:
            self._until_check = CHECK_EVERY
            if self._over_bytes(self._queued_bytes):
                self.overflow()

    def _over_bytes(self, queued: int) -> bool:
        limit = self.max_queue_bytes
        if limit is None:
            return False
        unflushed = self._transport_bytes()
        self._lagging = unflushed > limit * LAG_FRACTION
        return queued + unflushed > limit

    def _transport_bytes(self) -> int:
        size = self.transport_bytes
        if size is None:
            return 0
        try:
            return size()
        except Exception:  # a transport that is gone holds nothing
            return 0

    @property
    def queued(self) -> Queued:
        """Layer messages waiting for this receiver, their estimated bytes, and unflushed transport bytes."""
        return Queued(self._queued_messages, self._queued_bytes, self._transport_bytes())

    def overflow(self) -> None:
        """Called once the backlog passes a bound; the default drops everything and stops."""
        self.close()

    # Putting (from the socket's own loop: waits for its turn)

    async def put(self, message: Any) -> None:
        """Handle ``message`` after everything posted before it; return once it is handled.

        When nothing is queued the handler runs inline, in the caller's task.
        Messages posted meanwhile are handled afterwards, and ``put`` does not
        wait for them: the socket loop that calls it goes back to reading its
        client, so a steady stream of layer messages cannot hold up the
        client's next frame.
        """
        if not self.claim():
            waiter = self._loop.create_future()
            self._queue(_Put(message, waiter))
            await waiter
            return
        try:
            await self.handle(message)
        finally:
            self.release()

    def claim(self) -> bool:
        """Mark the mailbox busy and return True if nothing is being handled; else return False.

        What :meth:`put` does first, for a caller that runs its own handler
        inline and then calls :meth:`release` (in a ``finally``).
        """
        if self._busy:
            return False
        self._busy = True
        return True

    def release(self) -> None:
        """End an inline handler begun by :meth:`claim`: handle what was posted meanwhile, or go idle."""
        if self._pending:
            self._drain()
        else:
            self._busy = False
            if self._idle is not None:
                self._set_idle()

    async def wait_idle(self) -> None:
        """Wait until every queued message has been handled."""
        while self._busy:
            if self._idle is None:
                self._idle = self._loop.create_future()
            await asyncio.shield(self._idle)

    def close(self) -> None:
        """Drop queued messages and cancel a handler still running from the layer."""
        self.closed = True
        self._drop_pending()
        if self._task is not None:
            self._task.cancel()

    async def pull(self, receive: Callable[[], Awaitable[Any]]) -> None:
        """Post what ``receive()`` returns until closed: the fallback for layers without ``attach``.

        A failing layer (Redis down) is retried with backoff, and warned about
        at most every 30 s per process, instead of crashing the socket. The
        ``closed`` check also ends the loop if a receive swallowed its
        cancellation (``asyncio.wait_for`` on Python 3.11 can).
        """
        global _next_outage_warning
        delay = 0.1
        while not self.closed:
            try:
                message = await receive()
            except Exception as exc:
                now = time.monotonic()
                if now >= _next_outage_warning:
                    _next_outage_warning = now + 30
                    logger.warning("Channel layer receive failed (%s); retrying", exc or type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            if not self.closed:
                self.post(message)

    # Running handlers

    def _step(self, message: Any) -> bool:
        """Handle ``message`` until its handler suspends; return True if done, else a task finishes it.

        Marks the mailbox busy; the caller marks it idle (or drains it) when
        this returns True. The handler is run by a driver (see :func:`_driver`),
        so one that finishes at once raises no ``StopIteration``.
        """
        self._busy = True
        owner = self._owner
        send = _drivers.pop() if _drivers else _new_driver()
        self.inline = True
        try:
            if owner is None or _swap_current_task is None:
                yielded = self._run(send, (self, message))
            else:
                loop = self._loop
                previous = _swap_current_task(loop, owner)
                try:
                    yielded = self._run(send, (self, message))
                finally:
                    _swap_current_task(loop, previous)
        except (KeyboardInterrupt, SystemExit):
            raise
        except asyncio.CancelledError:
            self._drop_pending()
            return True
        except BaseException as exc:
            _report(self._loop, exc)
            return True
        finally:
            self.inline = False
        if yielded is _FINISHED:
            _drivers.append(send)
            return True
        task = self._loop.create_task(_Resumed(send, yielded), context=self._context)
        self._task = task
        task.add_done_callback(self._resumed)
        return False

    def _drain(self) -> None:
        """Handle queued messages in order until one suspends or none is left."""
        pending = self._pending
        while pending:
            message = pending.popleft()
            if type(message) is not _Put:
                self._queued_messages -= 1
                self._queued_bytes -= message_size(message)
                if type(message) is dict:
                    message = dict(message)
            if not self._step(message):
                return
            pending = self._pending  # a handler may have dropped the queue
        self._set_idle()

    async def _handle_put(self, put: _Put) -> None:
        try:
            await self.handle(put.message)
        finally:
            if not put.waiter.done():
                put.waiter.set_result(None)

    def _resumed(self, task: asyncio.Task[None]) -> None:
        self._task = None
        if task.cancelled():
            self._drop_pending()
            self._set_idle()
            return
        exc = task.exception()
        if exc is not None:
            _report(self._loop, exc)
        self._drain()

    def _drop_pending(self) -> None:
        pending, self._pending = self._pending, None
        self._queued_messages = 0
        self._queued_bytes = 0
        for message in pending or ():
            if type(message) is _Put and not message.waiter.done():
                message.waiter.set_result(None)  # its caller returns; the message is dropped

    def _set_idle(self) -> None:
        self._busy = False
        idle, self._idle = self._idle, None
        if idle is not None and not idle.done():
            idle.set_result(None)


class _Put:
    """A message queued by ``put``, with the future its caller waits on."""

    __slots__ = ("message", "waiter")

    def __init__(self, message: Any, waiter: asyncio.Future[None]) -> None:
        self.message = message
        self.waiter = waiter


_FINISHED: Any = object()


@types.coroutine
def _driver() -> Generator[Any, Any, None]:
    """Handle each ``(mailbox, message)`` sent in, passing on what it awaits; then yield ``_FINISHED``.

    Stepping a handler's coroutine with ``coro.send(None)`` would raise
    ``StopIteration`` when it returns, and catching that in Python costs an
    exception, a traceback and a frame object on every message; ``yield
    from`` takes the return value without one. An exception of the handler
    goes to ``mailbox.failed``, in the same place. A driver between messages
    waits in ``_drivers`` for the next; one whose handler suspended goes with
    it to the task that finishes it (:class:`_Resumed`); one that a
    cancellation (or ``failed`` itself) went through is done for.
    """
    while True:
        mailbox, message = yield _FINISHED
        try:
            if type(message) is _Put:
                yield from mailbox._handle_put(message)
            else:
                yield from mailbox.handler(message)
        except Exception as exc:
            yield from mailbox.failed(exc)
        del mailbox, message


#: A driver's bound ``send``: what the mailbox calls, kept bound so that no method object is made per message.
DriverSend = Callable[[Any], Any]


def _new_driver() -> DriverSend:
    driver = _driver()
    driver.send(None)
    return driver.send


# Drivers between coroutines, as their bound ``send``. Taken one each time a handler is stepped, so a
# handler that delivers to another mailbox inline (a group_send answered locally) takes a second one.
_drivers: list[DriverSend] = []
_KEEP_DRIVERS = 64


class _Resumed(collections.abc.Coroutine):  # type: ignore[type-arg]
    """A handler's coroutine that has already run up to its first suspension, for a task to finish.

    Its first ``send`` hands the task what the handler was waiting on
    (``yielded``); after that, and for any ``throw`` (a cancellation before
    the task's first step included), it forwards to the driver that holds the
    handler's coroutine, and returns once that yields ``_FINISHED``.
    """

    __slots__ = ("driver", "yielded")

    def __init__(self, send: DriverSend, yielded: Any) -> None:
        self.driver: Generator[Any, Any, None] = send.__self__  # type: ignore[attr-defined]
        self.yielded = yielded

    def send(self, value: Any) -> Any:
        yielded = self.yielded
        if yielded is not _NOTHING:
            self.yielded = _NOTHING
            return yielded
        return self._finished(self.driver.send(value))

    def throw(self, exc: Any, *args: Any) -> Any:
        self.yielded = _NOTHING
        return self._finished(self.driver.throw(exc, *args))

    def _finished(self, yielded: Any) -> Any:
        if yielded is _FINISHED:
            if len(_drivers) < _KEEP_DRIVERS:  # thousands of handlers may have been waiting at once
                _drivers.append(self.driver.send)
            raise StopIteration
        return yielded

    def close(self) -> None:
        self.driver.close()

    def __await__(self) -> Generator[Any, Any, None]:
        raise TypeError("a resumed handler is run by a task, not awaited")


def _report(loop: asyncio.AbstractEventLoop, exc: BaseException) -> None:
    loop.call_exception_handler({"message": "Unhandled exception in a websocket handler", "exception": exc})
