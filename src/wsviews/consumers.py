"""Serve Channels consumers through a lean dispatch loop.

Channels' own loop (``await_many_dispatch``) creates a task for every message
from each source and hops to a thread before every handler to close stale
database connections. This loop keeps the consumer classes and their semantics
(handler names from message types, ``channel_name``, groups, accept/close,
``StopConsumer``, one message at a time in arrival order) and drops the
per-message overhead:

* client messages are handled inline by the task serving the socket;
* layer messages are pushed by an attachable layer into the consumer's
  mailbox (no waiting task per socket), or pulled by one reader task for
  other layers (:mod:`wsviews.membership`);
* stale database connections are closed at most once a second per process
  (:mod:`wsviews.db`), instead of before every message.

:func:`serve_consumer` makes no handshake decision: the caller admits the
handshake first (:mod:`wsviews.handshake`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
from collections.abc import Awaitable
from typing import Any, NamedTuple

from asgiref.sync import markcoroutinefunction
from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from . import backpressure, db, ratelimit
from .burstlog import BurstLog
from .connection import raised_by_send
from .connections import SCOPE_KEY, Connection
from .db import close_due, close_old_connections
from .frames import DataWriter, data_writer
from .membership import Membership
from .types import Message, Receive, Scope, Send

logger = logging.getLogger("wsviews")

_refused_frames = BurstLog(
    logger, logging.INFO, "closed %d consumer socket(s) for a frame they cannot take (last: %s)"
)


class Shape(NamedTuple):
    """What the lean loop needs to know of a consumer class, worked out once per class."""

    #: Whether it takes text frames and binary frames (see :func:`_inspect_frames_taken`).
    text_ok: bool
    binary_ok: bool
    #: Channels' own ``websocket_receive``: a client frame can go straight to ``receive()``.
    stock_receive: bool
    #: Channels' own ``send`` (``AsyncWebsocketConsumer``'s over ``AsyncConsumer``'s): the
    #: consumer can get :func:`direct_send`.
    stock_send: bool


_shapes: dict[type[Any], Shape] = {}


def shape_of(consumer_class: type[Any]) -> Shape:
    """Return the :class:`Shape` of ``consumer_class`` (cached)."""
    shape = _shapes.get(consumer_class)
    if shape is None:
        websocket = issubclass(consumer_class, AsyncWebsocketConsumer)
        shape = _shapes[consumer_class] = Shape(
            *_inspect_frames_taken(consumer_class),
            stock_receive=websocket
            and consumer_class.websocket_receive is AsyncWebsocketConsumer.websocket_receive,
            stock_send=websocket
            and _definers(consumer_class, "send") == [AsyncWebsocketConsumer, AsyncConsumer],
        )
    return shape


def _definers(cls: type[Any], name: str) -> list[type[Any]]:
    return [klass for klass in cls.__mro__ if name in vars(klass)]


def _inspect_frames_taken(consumer_class: type[Any]) -> tuple[bool, bool]:
    """Return whether ``consumer_class`` takes (text frames, binary frames).

    Only a websocket consumer whose ``receive`` says so by its signature
    refuses a kind: ``receive(self, text_data)`` (the tutorial's) takes no
    binary frame; ``AsyncJsonWebsocketConsumer`` takes no binary frame unless
    ``receive`` is overridden. Anything else is assumed to take both.
    """
    if not issubclass(consumer_class, AsyncWebsocketConsumer):
        return True, True
    if consumer_class.websocket_receive is not AsyncWebsocketConsumer.websocket_receive:
        return True, True
    receive = consumer_class.receive
    if receive is getattr(AsyncJsonWebsocketConsumer, "receive"):  # noqa: B009 (the function itself)
        return True, False
    try:
        parameters = inspect.signature(receive).parameters
    except (TypeError, ValueError):
        return True, True
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return True, True
    return "text_data" in parameters, "bytes_data" in parameters


def direct_send(consumer: AsyncWebsocketConsumer, write: DataWriter | None = None,
                record: Connection | None = None) -> None:
    """Give ``consumer`` a ``send`` that hands its frame on with no coroutine of its own.

    For a class whose ``send`` is Channels' own (:attr:`Shape.stock_send`):
    ``await self.send(text_data=...)`` builds the same ``websocket.send``
    message and awaits ``base_send``'s awaitable directly, instead of through
    two coroutines (``AsyncWebsocketConsumer.send`` and ``AsyncConsumer.send``).
    With the protocol's ``write`` (:func:`wsviews.frames.data_writer`), a
    ``str`` or ``bytes`` it can write at once is written and counted in
    ``record`` without building the message, and the awaitable returned is
    already done; once ``base_send`` is replaced, every frame goes to it
    again. Anything else (``close=``, neither argument) is the class's own
    ``send``.
    """
    stock = consumer.send
    done = _done() if write is not None else None
    count_bytes = record is not None and record.count_bytes
    base = consumer.base_send  # replaced later (a test, a mixin): every frame goes to the new one

    def send(text_data: str | None = None, bytes_data: bytes | None = None,
             close: Any = False) -> Awaitable[None]:
        if not close:
            if text_data is not None:
                if write is not None and type(text_data) is str and consumer.base_send is base \
                        and write(text_data):
                    if record is not None:
                        record.sent += 1
                        if count_bytes:
                            record.bytes_sent += len(text_data.encode())
                    return done  # type: ignore[return-value]
                return consumer.base_send({"type": "websocket.send", "text": text_data})  # type: ignore[no-any-return]
            if bytes_data is not None:
                if write is not None and type(bytes_data) is bytes and consumer.base_send is base \
                        and write(bytes_data):
                    if record is not None:
                        record.sent += 1
                        if count_bytes:
                            record.bytes_sent += len(bytes_data)
                    return done  # type: ignore[return-value]
                return consumer.base_send({"type": "websocket.send", "bytes": bytes_data})  # type: ignore[no-any-return]
        return stock(text_data, bytes_data, close)  # type: ignore[no-any-return]

    consumer.send = markcoroutinefunction(send)


_DONE: asyncio.Future[None] | None = None


def _done() -> asyncio.Future[None]:
    """Return a future that is already done: awaiting it returns at once, in any loop."""
    global _DONE
    if _DONE is None:
        future: asyncio.Future[None] = asyncio.Future(loop=asyncio.get_running_loop())
        future.set_result(None)
        _DONE = future
    return _DONE


def is_invalid_json(consumer: AsyncConsumer, exc: Exception) -> bool:
    """Return whether ``exc`` is a JSON consumer's ``decode_json`` refusing the client's text."""
    if not isinstance(exc, ValueError) or not isinstance(consumer, AsyncJsonWebsocketConsumer):
        return False
    decode = getattr(type(consumer).decode_json, "__func__", type(consumer).decode_json)
    code = getattr(decode, "__code__", None)
    traceback = exc.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code is code:
            return isinstance(exc, json.JSONDecodeError) or traceback.tb_next is not None
        traceback = traceback.tb_next
    return False

_handler_names: dict[str, str] = {}

db.install()


def handler_name(message: Message) -> str:
    """Return the consumer method name for ``message["type"]`` (``a.b`` -> ``a_b``)."""
    try:
        return _handler_names[message["type"]]
    except KeyError:
        pass
    if "type" not in message:
        raise ValueError("Incoming message has no 'type' attribute")
    name: str = message["type"].replace(".", "_")
    if name.startswith("_"):
        raise ValueError("Malformed type in message (leading underscore)")
    if len(_handler_names) < 4096:
        _handler_names[message["type"]] = name
    return name


def is_lean(consumer_class: type) -> bool:
    """Return True if instances of ``consumer_class`` can run on the lean loop."""
    return (
        issubclass(consumer_class, AsyncConsumer)
        and not getattr(consumer_class, "_sync", False)
        and consumer_class.__call__ is AsyncConsumer.__call__
    )


class ConsumerRunner(Membership):
    """Drive one consumer instance for one websocket connection.

    The runner is the consumer's membership and mailbox: client messages are
    ``put`` by the socket loop, layer messages posted by the layer (or by one
    reader task).
    """

    __slots__ = ("consumer", "send", "stopped", "refused", "bucket", "text_ok", "binary_ok", "checked",
                 "task", "custom_dispatch", "receive")

    def __init__(self, consumer: AsyncConsumer, send: Send) -> None:
        consumer.channel_layer = layer = get_channel_layer(consumer.channel_layer_alias)
        super().__init__(layer, send)
        self.consumer = consumer
        self.send = send
        self.stopped = False
        self.refused = False  # closed for a client's mistake: later client frames are dropped
        self.bucket = ratelimit.new_bucket()
        shape = shape_of(type(consumer))
        self.text_ok, self.binary_ok = shape.text_ok, shape.binary_ok
        # Whether a client frame needs any check before its handler (most consumers: one test).
        self.checked = self.bucket is not None or not (self.text_ok and self.binary_ok)
        self.task: asyncio.Task[Any] | None = None
        self.custom_dispatch = type(consumer).dispatch is not AsyncConsumer.dispatch
        # Channels' own websocket_receive: a client frame goes straight to receive().
        self.receive = consumer.receive if shape.stock_receive and not self.custom_dispatch else None

    async def handle(self, message: Message) -> None:
        """Run the handler for ``message``; on error, close the socket with 1011."""
        if self.stopped:
            return
        try:
            if self.custom_dispatch:
                await self.consumer.dispatch(message)
                return
            client = message["type"] == "websocket.receive"
            if client and self.checked:
                if self.refused:
                    return
                bucket = self.bucket
                if bucket is not None and not bucket.take():
                    ratelimit.report(str(self.consumer.scope.get("path")), bucket)
                    await self._refuse(ratelimit.CLOSE_CODE, bucket.reason, logged=True)
                    return
                if not self.binary_ok and message.get("bytes") is not None:
                    await self._refuse(1003, "expected a text frame, got a binary frame")
                    return
                if not self.text_ok and message.get("text") is not None:
                    await self._refuse(1003, "expected a binary frame, got a text frame")
                    return
            if close_due():  # checked first: no coroutine on most messages
                await close_old_connections()
            receive = self.receive
            if client and receive is not None:  # Channels' websocket_receive, without its coroutine
                text = message.get("text")
                if text is not None:
                    await receive(text_data=text)
                else:
                    await receive(bytes_data=message["bytes"])
                return
            handler = getattr(self.consumer, handler_name(message), None)
            if handler is None:
                raise ValueError(f"No handler for message type {message['type']}")
            await handler(message)
        except Exception as exc:
            await self.failed(exc)

    def handler(self, message: Message) -> Awaitable[None]:
        """Return the consumer's own handler coroutine for a layer message that needs no check.

        The mailbox awaits it without :meth:`handle` around it, and hands what
        it raises to :meth:`failed`, as ``handle`` would; a stopped consumer,
        a custom ``dispatch``, a client frame or a due database check go
        through ``handle``.
        """
        if self.stopped or self.custom_dispatch or message["type"] == "websocket.receive" or close_due():
            return self.handle(message)
        method = getattr(self.consumer, handler_name(message), None)
        if method is None:
            raise ValueError(f"No handler for message type {message['type']}")
        return method(message)  # type: ignore[no-any-return]

    async def failed(self, exc: Exception) -> None:
        """Deal with what a handler raised (called in the ``except`` that caught it).

        ``StopConsumer`` ends the consumer; a send that raced the client's
        leaving ends it quietly; invalid JSON from the client closes with
        1007; anything else is a bug of the consumer: logged with its traceback,
        closed with 1011.
        """
        if isinstance(exc, StopConsumer) or (isinstance(exc, OSError) and raised_by_send(exc, self.send)):
            self.stop()
        elif not isinstance(exc, OSError) and is_invalid_json(self.consumer, exc):
            await self._refuse(1007, f"invalid JSON: {exc}"[:120])
        else:
            await self._crash()

    async def _refuse(self, code: int, reason: str, *, logged: bool = False) -> None:
        """Close the socket for a client's mistake: one INFO line (folded in bursts), no traceback.

        The consumer keeps running until the client's disconnect arrives, so
        its ``disconnect()`` runs as after any close; frames the client sends
        meanwhile are dropped.
        """
        if not logged:
            path = self.consumer.scope.get("path")
            _refused_frames.hit(asyncio.get_running_loop(), f"{path}: {code} {reason}")
        self.refused = self.checked = True
        await _close_quietly(self.send, code, reason)

    async def _crash(self) -> None:
        """Log the handler's exception with its traceback, end the consumer and close with 1011."""
        logger.exception(
            "Exception in websocket consumer %s for %s",
            type(self.consumer).__qualname__,
            self.consumer.scope.get("path"),
        )
        self.stop()
        await _close_quietly(self.send, 1011)

    @property
    def path(self) -> str:
        return str(self.consumer.scope.get("path"))

    @property
    def route(self) -> str:
        record = self.consumer.scope.get(SCOPE_KEY)
        return str(record.route) if record is not None else ""

    def close_slow(self) -> None:
        """Send 4008; the socket loop ends with the disconnect that follows (the consumer's own too)."""
        backpressure.close_slow(lambda: self.send({"type": "websocket.close", "code": backpressure.SLOW,
                                                   "reason": backpressure.SLOW_REASON}))

    def stop(self) -> None:
        """End the consumer; wakes the socket loop if a layer message stopped it."""
        self.stopped = True
        task = self.task
        if task is not None and (self.inline or task is not asyncio.current_task()):
            task.cancel()

    async def join_layer(self) -> None:
        """Give the consumer its channel name and start delivery of layer messages."""
        if self.layer is None:
            return
        consumer = self.consumer
        consumer.channel_name = await self.open()
        consumer.channel_receive = functools.partial(self.layer.receive, consumer.channel_name)

    async def leave_layer(self) -> None:
        """Stop layer delivery and leave the consumer's groups (its declared ``groups`` too)."""
        self.stopped = True
        if self.layer is None:
            self.close()
            return
        # Channels leaves declared groups in websocket_disconnect; after an
        # error it never does, so they are left here too (twice is harmless).
        await self.leave_all(getattr(self.consumer, "groups", None) or ())


async def serve_consumer(
    consumer_class: type[AsyncConsumer],
    initkwargs: dict[str, Any],
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Serve one websocket connection with a fresh instance of ``consumer_class``.

    Async consumers run on the lean loop, which lives in this one coroutine:
    an idle socket keeps a single frame of it, and no task. Sync consumers,
    and consumers that override ``__call__``, run on Channels' own loop.
    """
    consumer = consumer_class(**initkwargs)
    record: Connection | None = scope.get(SCOPE_KEY)
    if not is_lean(consumer_class):
        await consumer(scope, receive, counting_send(send, record))
        return
    db.serve_on_lean_loop()  # before the runner takes its context: its handlers see it too
    runner = lean_runner(consumer, scope, send, record)
    await runner.join_layer()
    if record is not None:
        record.mailbox = runner
    runner.task = asyncio.current_task()
    count_bytes = record is not None and record.count_bytes
    # The consumer's receive() when a frame of that kind needs no check first (see handle()).
    unchecked = runner.receive if runner.bucket is None else None
    text_receive = unchecked if runner.text_ok else None
    bytes_receive = unchecked if runner.binary_ok else None
    try:
        while not runner.stopped:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                if record is not None:
                    record.received += 1
                    if count_bytes:
                        record.bytes_received += _payload_size(message)
                text = message.get("text")
                inline = text_receive if text is not None else bytes_receive
                if inline is not None and not runner.refused and not runner.stopped and runner.claim():
                    # What put() and handle() do with a client frame, without their coroutines.
                    try:
                        if close_due():
                            await close_old_connections()
                        if text is not None:
                            await inline(text_data=text)
                        else:
                            await inline(bytes_data=message["bytes"])
                    except Exception as exc:
                        await runner.failed(exc)
                    finally:
                        runner.release()
                    continue
            await runner.put(message)
            if kind == "websocket.disconnect":
                break
    except asyncio.CancelledError:
        if not runner.stopped:
            raise
    finally:
        runner.task = None
        await runner.leave_layer()
        if close_due():
            await close_old_connections()


def lean_runner(consumer: AsyncConsumer, scope: Scope, send: Send,
                record: Connection | None) -> ConsumerRunner:
    """Set ``consumer`` up for the lean loop (scope, ``base_send``, :func:`direct_send`); return a runner."""
    consumer.scope = scope
    consumer.base_send = counting_send(send, record)
    if shape_of(type(consumer)).stock_send:
        direct_send(consumer, data_writer(scope, send), record)
    return ConsumerRunner(consumer, send)


def counting_send(send: Send, record: Connection | None) -> Send:
    """Return ``send``, counting each frame sent in ``record`` (``send`` itself without one).

    A plain function that returns ``send``'s awaitable: no coroutine frame of its own per send.
    """
    if record is None:
        return send

    if record.count_bytes:

        def counted(message: Message) -> Awaitable[None]:
            if message["type"] == "websocket.send":
                record.sent += 1
                record.bytes_sent += _payload_size(message)
            return send(message)
    else:

        def counted(message: Message) -> Awaitable[None]:
            if message["type"] == "websocket.send":
                record.sent += 1
            return send(message)

    # Marked so that Channels' sync consumers (async_to_sync(base_send)) take it as async.
    return markcoroutinefunction(counted)


def _payload_size(message: Message) -> int:
    text = message.get("text")
    if text is not None:
        return len(text.encode())
    return len(message.get("bytes") or b"")


async def _close_quietly(send: Send, code: int, reason: str = "") -> None:
    """Close the socket, ignoring a socket that is already closed."""
    try:
        await send({"type": "websocket.close", "code": code, "reason": reason})
    except (OSError, RuntimeError):
        pass
