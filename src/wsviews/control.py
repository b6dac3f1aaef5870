"""One control channel per serving process, so that any process can reach the sockets of all.

At startup (``WSViewsServer.startup``, or with the first socket under another
server) the process opens a channel on the default channel layer and joins
the group :data:`GROUP`. A message group-sent there reaches every process on
the layer (every process sharing the Redis, with a Redis layer; this process
only, with the in-memory one). Messages carry the sending process's
:data:`ORIGIN`, so the sender, which acted on its own sockets directly, skips
its own copy. Handlers are registered per message type with :func:`on`
(:mod:`wsviews.revocation` handles ``wsviews.revoke``).

The group is joined again every :data:`REJOIN_INTERVAL` seconds, well inside
the layers' group expiry (a day), so a long-lived process stays reachable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from .membership import Membership

logger = logging.getLogger("wsviews")

GROUP = "wsviews.control"
ORIGIN = uuid.uuid4().hex
REJOIN_INTERVAL = 3600.0
RETRY_INTERVAL = 1.0

Handler = Callable[[dict[str, Any]], Awaitable[None]]
_handlers: dict[str, Handler] = {}


class ControlChannel(Membership):
    """The process's member of :data:`GROUP`: hands each message to the handler of its type."""

    __slots__ = ()

    async def open(self) -> str:
        """Return a new channel whose messages one reader task pulls (``receive``, never ``attach``).

        One task per process costs nothing, and the layer's attached channels
        stay those of sockets.
        """
        channel: str = await self.layer.new_channel()
        self.channel_name = channel
        self._reader = asyncio.create_task(self.pull(functools.partial(self.layer.receive, channel)))
        return channel

    async def handle(self, message: dict[str, Any]) -> None:
        if message.get("origin") == ORIGIN:
            return  # sent from here: already acted on
        handler = _handlers.get(str(message.get("type")))
        if handler is None:
            logger.warning("Dropped a control message of unknown type %r", message.get("type"))
            return
        try:
            await handler(message)
        except Exception:
            logger.exception("Exception handling control message %r", message.get("type"))


def on(kind: str, handler: Handler) -> None:
    """Call ``handler(message)`` for each control message of type ``kind`` from another process."""
    _handlers[kind] = handler


class _State:
    loop: asyncio.AbstractEventLoop | None = None
    task: asyncio.Task[None] | None = None
    channel: ControlChannel | None = None


_state = _State()


def running_here() -> bool:
    """Return True if the control channel belongs to the running event loop (started or starting)."""
    try:
        return _state.loop is asyncio.get_running_loop()
    except RuntimeError:
        return False


def loop() -> asyncio.AbstractEventLoop | None:
    """Return the event loop the control channel (and so the process's sockets) runs on."""
    return _state.loop


def ensure_started() -> None:
    """Start the control channel on the running loop unless it is started there already."""
    running = asyncio.get_running_loop()
    if _state.loop is running:
        return
    _state.loop = running
    _state.channel = None
    _state.task = running.create_task(_run(), name="wsviews control channel")


async def _run() -> None:
    from channels.layers import get_channel_layer

    from . import revocation  # noqa: F401 - registers its handler

    layer = get_channel_layer()
    if layer is None:
        return
    channel = ControlChannel(layer)
    warned = False
    while True:
        try:
            await channel.open()
            await channel.join(GROUP)
            break
        except Exception as exc:
            if not warned:
                logger.warning("Control channel not joined (%s); revocation reaches only this "
                               "process's sockets until the channel layer answers. Retrying.",
                               exc or type(exc).__name__)
                warned = True
            await asyncio.sleep(RETRY_INTERVAL)
    _state.channel = channel
    while True:
        await asyncio.sleep(REJOIN_INTERVAL)
        try:
            await layer.group_add(GROUP, channel.channel_name)
        except Exception as exc:
            logger.warning("Control channel could not rejoin %r: %s", GROUP, exc or type(exc).__name__)


async def stop() -> None:
    """Leave :data:`GROUP` and stop the control channel (a server's shutdown)."""
    task, channel = _state.task, _state.channel
    _state.loop = _state.task = _state.channel = None
    if task is not None:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
    if channel is not None:
        try:
            await channel.leave_all()
        except Exception as exc:
            logger.warning("Control channel could not leave %r: %s", GROUP, exc or type(exc).__name__)


async def publish(message: dict[str, Any]) -> None:
    """Send ``message`` to every process's control channel (this one ignores it)."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    await layer.group_send(GROUP, {**message, "origin": ORIGIN})
