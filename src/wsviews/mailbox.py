"""Run one receiver's handlers one at a time, without a waiting task per socket.

A socket gets messages from two sources: its client (through the ASGI
``receive``) and the channel layer (pushed synchronously by an attachable
layer). Channels semantics are that a consumer handles them one at a time, in
arrival order. The ``Mailbox`` keeps that order with a deque and a busy flag,
and runs every handler in the receiver's own context (taken when the mailbox
is made, in the socket's task), not in the context of whoever sent the
message, as a Channels consumer's handlers run in its own task.
Messages pushed by the layer start their handler *eagerly* on Python 3.12+
(``Task(eager_start=True)``): the handler runs in place and is only scheduled
on the loop if it actually suspends. Sending a frame to a writable socket does
not suspend, so fan-out to a thousand local sockets costs a thousand calls, not
a thousand scheduled tasks. On Python 3.11 each pushed message is a task.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import Context, copy_context
from typing import Any

if sys.version_info >= (3, 12):

    def start_task(coro: Coroutine[Any, Any, None], context: Context) -> asyncio.Task[None]:
        """Run ``coro`` in ``context`` until it first suspends, then let the loop finish it."""
        return asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True, context=context)

else:  # pragma: no cover - exercised on 3.11 only

    def start_task(coro: Coroutine[Any, Any, None], context: Context) -> asyncio.Task[None]:
        """Schedule ``coro`` as a task in ``context`` (3.11 has no eager start)."""
        return asyncio.get_running_loop().create_task(coro, context=context)


_NOTHING: Any = object()
_next_outage_warning = 0.0
logger = logging.getLogger("wsviews")


class Mailbox:
    """Serialise calls of ``handle(message)``: never two at once, always in order.

    Subclasses implement ``handle``, which owns its error policy and should
    not raise; an exception that escapes it anyway is logged and the mailbox
    carries on. Calling the mailbox posts a message, so a mailbox is itself
    the ``deliver`` callable an attachable layer takes.
    """

    __slots__ = ("_pending", "_busy", "_task", "_idle", "_context", "closed")

    def __init__(self) -> None:
        self._pending: deque[Any] | None = None  # made on first need: most sockets never queue
        self._busy = False
        self.closed = False
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.Future[None] | None = None
        self._context: Context = copy_context()

    async def handle(self, message: Any) -> None:
        raise NotImplementedError("Mailbox subclasses implement handle()")

    def post(self, message: Any) -> None:
        """Handle ``message`` now if nothing else is running, else queue it."""
        if self._busy:
            self._queue(message)
        else:
            self._drain(message)

    __call__ = post

    def _queue(self, message: Any) -> None:
        if self._pending is None:
            self._pending = deque()
        self._pending.append(message)

    async def put(self, message: Any) -> None:
        """Handle ``message`` after everything posted before it; return once it is handled.

        When nothing is queued the handler runs inline, in the caller's task.
        Messages posted meanwhile are handled afterwards by the mailbox's own
        tasks, and ``put`` does not wait for them: the socket loop that calls
        it goes back to reading its client, so a steady stream of layer
        messages cannot hold up the client's next frame.
        """
        if self._busy:
            waiter = asyncio.get_running_loop().create_future()
            self._queue(_Put(message, waiter))
            await waiter
            return
        self._busy = True
        try:
            await self.handle(message)
        finally:
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
                self._idle = asyncio.get_running_loop().create_future()
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

    def _drain(self, message: Any = _NOTHING) -> None:
        self._busy = True
        while message is not _NOTHING or self._pending:
            if message is _NOTHING:
                message = self._pending.popleft()  # type: ignore[union-attr]
            if type(message) is _Put:
                task = start_task(self._handle_put(message), self._context)
            else:
                task = start_task(self.handle(message), self._context)
            message = _NOTHING
            if not task.done():
                self._task = task
                task.add_done_callback(self._resumed)
                return
            _report(task)
        self._set_idle()

    async def _handle_put(self, put: _Put) -> None:
        try:
            await self.handle(put.message)
        finally:
            if not put.waiter.done():
                put.waiter.set_result(None)

    def _resumed(self, task: asyncio.Task[None]) -> None:
        self._task = None
        _report(task)
        if task.cancelled():
            self._drop_pending()
            self._set_idle()
        else:
            self._drain()

    def _drop_pending(self) -> None:
        pending, self._pending = self._pending, None
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


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        loop = asyncio.get_running_loop()
        loop.call_exception_handler(
            {"message": "Unhandled exception in a websocket handler", "exception": task.exception()}
        )
