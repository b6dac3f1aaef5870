"""Serve Channels consumers through a lean dispatch loop.

Channels' own loop (``await_many_dispatch``) creates a task for every message
from each source and hops to a thread before every handler to close stale
database connections. This loop keeps the consumer classes and their semantics
(handler names from message types, ``channel_name``, groups, accept/close,
``StopConsumer``) and drops the per-message overhead:

* client messages are handled inline by the task serving the socket;
* layer messages are pushed by an attachable layer into the consumer's
  :class:`~wsviews.mailbox.Mailbox` (no waiting task per socket), or pulled by
  one reader task for other layers;
* stale database connections are closed at most once a second per process,
  and around connect and disconnect, instead of before every message.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from asgiref.sync import sync_to_async
from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from django.db import close_old_connections

from .layers.base import pull, supports_attach
from .mailbox import Mailbox
from .types import Message, Receive, Scope, Send

logger = logging.getLogger("wsviews")

_handler_names: dict[str, str] = {}
_STALE_DB_CHECK_INTERVAL = 1.0
_next_stale_db_check = 0.0


def handler_name(message: Message) -> str:
    """Return the consumer method name for ``message["type"]`` (``a.b`` -> ``a_b``)."""
    try:
        return _handler_names[message["type"]]
    except KeyError:
        pass
    if "type" not in message:
        raise ValueError("Incoming message has no 'type' attribute")
    name = message["type"].replace(".", "_")
    if name.startswith("_"):
        raise ValueError("Malformed type in message (leading underscore)")
    if len(_handler_names) < 4096:
        _handler_names[message["type"]] = name
    return name


async def close_stale_db_connections(force: bool = False) -> None:
    """Close database connections past CONN_MAX_AGE, at most once a second unless forced."""
    global _next_stale_db_check
    now = time.monotonic()
    if force or now >= _next_stale_db_check:
        _next_stale_db_check = now + _STALE_DB_CHECK_INTERVAL
        await sync_to_async(close_old_connections)()


def is_lean(consumer_class: type) -> bool:
    """Return True if instances of ``consumer_class`` can run on the lean loop."""
    return (
        issubclass(consumer_class, AsyncConsumer)
        and not getattr(consumer_class, "_sync", False)
        and consumer_class.__call__ is AsyncConsumer.__call__
    )


class ConsumerRunner:
    """Drive one consumer instance for one websocket connection."""

    __slots__ = ("consumer", "send", "mailbox", "stopped", "task", "dispatch")

    def __init__(self, consumer: AsyncConsumer, send: Send) -> None:
        self.consumer = consumer
        self.send = send
        self.mailbox = Mailbox(self.handle)
        self.stopped = False
        self.task: asyncio.Task[Any] | None = None
        overridden = type(consumer).dispatch is not AsyncConsumer.dispatch
        self.dispatch = consumer.dispatch if overridden else self._dispatch

    async def _dispatch(self, message: Message) -> None:
        handler = getattr(self.consumer, handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await close_stale_db_connections()
        await handler(message)

    async def handle(self, message: Message) -> None:
        """Run the handler for ``message``; on error, close the socket with 1011."""
        if self.stopped:
            return
        try:
            await self.dispatch(message)
        except StopConsumer:
            self.stop()
        except Exception:
            logger.exception(
                "Exception in websocket consumer %s for %s",
                type(self.consumer).__qualname__,
                self.consumer.scope.get("path"),
            )
            self.stop()
            await _close_quietly(self.send, 1011)

    def stop(self) -> None:
        """End the consumer; wakes the socket loop if a layer message stopped it."""
        self.stopped = True
        task = self.task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def run(self, receive: Receive) -> None:
        self.task = asyncio.current_task()
        put = self.mailbox.put
        try:
            while not self.stopped:
                message = await receive()
                await put(message)
                if message["type"] == "websocket.disconnect":
                    break
        except asyncio.CancelledError:
            if not self.stopped:
                raise
        finally:
            self.task = None


async def run_consumer(
    consumer_class: type[AsyncConsumer],
    initkwargs: dict[str, Any],
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Serve one websocket connection with a fresh instance of ``consumer_class``."""
    consumer = consumer_class(**initkwargs)
    if not is_lean(consumer_class):
        await consumer(scope, receive, send)
        return
    consumer.scope = scope
    consumer.base_send = send
    runner = ConsumerRunner(consumer, send)
    layer = consumer.channel_layer = get_channel_layer(consumer.channel_layer_alias)
    reader: asyncio.Task[None] | None = None
    if layer is not None:
        channel = consumer.channel_name = await layer.new_channel()
        consumer.channel_receive = functools.partial(layer.receive, channel)
        if supports_attach(layer):
            layer.attach(channel, runner.mailbox.post)
        else:
            reader = asyncio.create_task(pull(consumer.channel_receive, runner.mailbox.post))
    try:
        await runner.run(receive)
    finally:
        runner.stopped = True
        if reader is not None:
            reader.cancel()
        if layer is not None:
            await _leave_layer(layer, consumer)
        runner.mailbox.close()


async def _leave_layer(layer: Any, consumer: AsyncConsumer) -> None:
    if supports_attach(layer):
        layer.detach(consumer.channel_name)
        return
    # Channels leaves declared groups in websocket_disconnect; after an error it
    # never does, so do it here too (discarding twice is harmless).
    for group in getattr(consumer, "groups", None) or ():
        try:
            await layer.group_discard(group, consumer.channel_name)
        except Exception:  # the layer is down: its group expiry cleans up
            logger.warning("Could not leave group %r on disconnect", group, exc_info=True)


async def _close_quietly(send: Send, code: int, reason: str = "") -> None:
    """Close the socket, ignoring a socket that is already closed."""
    try:
        await send({"type": "websocket.close", "code": code, "reason": reason})
    except Exception:
        pass
