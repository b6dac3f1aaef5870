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

from .connection import CLIENT_GONE
from .handshake import admit
from .layers.base import supports_attach
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


def stale_db_check_due() -> bool:
    """Return True, at most once a second per process, when stale DB connections should be closed."""
    global _next_stale_db_check
    now = time.monotonic()
    if now < _next_stale_db_check:
        return False
    _next_stale_db_check = now + _STALE_DB_CHECK_INTERVAL
    return True


def is_lean(consumer_class: type) -> bool:
    """Return True if instances of ``consumer_class`` can run on the lean loop."""
    return (
        issubclass(consumer_class, AsyncConsumer)
        and not getattr(consumer_class, "_sync", False)
        and consumer_class.__call__ is AsyncConsumer.__call__
    )


class ConsumerRunner(Mailbox):
    """Drive one consumer instance for one websocket connection.

    The runner is the consumer's mailbox: client messages are ``put`` by the
    socket loop, layer messages posted by the layer (or by one reader task).
    """

    __slots__ = ("consumer", "send", "stopped", "task", "custom_dispatch", "reader")

    def __init__(self, consumer: AsyncConsumer, send: Send) -> None:
        super().__init__()
        self.consumer = consumer
        self.send = send
        self.stopped = False
        self.task: asyncio.Task[Any] | None = None
        self.reader: asyncio.Task[None] | None = None
        self.custom_dispatch = type(consumer).dispatch is not AsyncConsumer.dispatch

    async def handle(self, message: Message) -> None:
        """Run the handler for ``message``; on error, close the socket with 1011."""
        if self.stopped:
            return
        try:
            if self.custom_dispatch:
                await self.consumer.dispatch(message)
            else:
                handler = getattr(self.consumer, handler_name(message), None)
                if handler is None:
                    raise ValueError(f"No handler for message type {message['type']}")
                if stale_db_check_due():  # checked first: no coroutine on most messages
                    await sync_to_async(close_old_connections)()
                await handler(message)
        except StopConsumer:
            self.stop()
        except CLIENT_GONE:
            self.stop()  # a send raced the client's leaving: nothing to report
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

    async def join_layer(self) -> None:
        """Give the consumer its channel name and start delivery of layer messages."""
        consumer = self.consumer
        layer = consumer.channel_layer = get_channel_layer(consumer.channel_layer_alias)
        if layer is None:
            return
        channel = consumer.channel_name = await layer.new_channel()
        consumer.channel_receive = functools.partial(layer.receive, channel)
        if supports_attach(layer):
            layer.attach(channel, self)
        else:
            self.reader = asyncio.create_task(self.pull(consumer.channel_receive))

    async def leave_layer(self) -> None:
        """Stop layer delivery and leave the consumer's groups."""
        self.stopped = True
        if self.reader is not None:
            self.reader.cancel()
        layer = self.consumer.channel_layer
        if layer is not None:
            await _leave_layer(layer, self.consumer)
        self.close()


async def serve_consumer(
    consumer_class: type[AsyncConsumer],
    initkwargs: dict[str, Any],
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Serve one websocket connection with a fresh instance of ``consumer_class``.

    The socket loop lives in this one coroutine: an idle socket keeps a single
    frame of ours, and no task.
    """
    if not await admit(scope, send):
        return
    consumer = consumer_class(**initkwargs)
    if not is_lean(consumer_class):
        await consumer(scope, receive, send)
        return
    consumer.scope = scope
    consumer.base_send = send
    runner = ConsumerRunner(consumer, send)
    await runner.join_layer()
    runner.task = asyncio.current_task()
    try:
        while not runner.stopped:
            message = await receive()
            await runner.put(message)
            if message["type"] == "websocket.disconnect":
                break
    except asyncio.CancelledError:
        if not runner.stopped:
            raise
    finally:
        runner.task = None
        await runner.leave_layer()


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
