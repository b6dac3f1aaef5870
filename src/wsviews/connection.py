"""The ``socket`` object handed to ``@websocket`` views, and the life of the connection it serves."""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from django.core.exceptions import ImproperlyConfigured
from django.http import QueryDict
from django.utils.datastructures import CaseInsensitiveMapping

from . import backpressure, encoding, ratelimit
from .frames import data_writer
from .handshake import INTERNAL_ERROR, refuse
from .membership import Membership
from .types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from .connections import Connection
    from .htmx import HtmxMessage

logger = logging.getLogger("wsviews")

OnBroadcast = Callable[[Any], Any]
View = Callable[..., Awaitable[Any]]


class WebSocketState(enum.Enum):
    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2


class WebSocketDisconnect(Exception):
    """The connection is closed: by the client, or by the server for a bad message."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


def raised_by_send(exc: BaseException, send: Send) -> bool:
    """Return True if ``exc`` was raised inside the ASGI ``send`` callable (the client has left).

    The ASGI spec has servers raise "a server-specific subclass of OSError"
    from ``send`` once the client is gone; an ``OSError`` raised elsewhere in
    a handler (a network call of its own) is a bug to report, not a client leaving.
    """
    code = getattr(getattr(send, "__func__", send), "__code__", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return True
        tb = tb.tb_next
    return False


class WebSocket:
    """One websocket connection, as seen by a ``@websocket`` view.

    The connection moves CONNECTING -> CONNECTED (``accept()``) ->
    DISCONNECTED (``close()`` or the client leaving); calls that do not fit the
    state raise ``RuntimeError`` saying what was expected. :meth:`serve` runs
    the view and owns the end of the connection: groups left, socket closed.
    """

    __slots__ = ("scope", "_receive", "_send", "_write", "state", "max_message_size", "subprotocol",
                 "_inbox", "_task", "_failed", "_bucket", "record")

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        max_message_size: int | None = None,
        subprotocol: str | None = None,
    ) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        # The protocol's own frame writer when nothing wraps send (see wsviews.frames.data_writer).
        self._write = data_writer(scope, send)
        self.state = WebSocketState.CONNECTING
        self.max_message_size = max_message_size
        self.subprotocol = subprotocol
        self._inbox: _Inbox | None = None
        self._task: asyncio.Task[Any] | None = None
        self._failed = False
        self._bucket = ratelimit.new_bucket()
        # The socket's wsviews.connections record (None when made outside a server): counters.
        self.record: Connection | None = None

    async def serve(self, view: View) -> None:
        """Call ``view(socket, *url_args, **url_kwargs)``; then leave every group and close.

        ``WebSocketDisconnect`` ends the view quietly. Another exception is
        logged with its traceback and closes the socket with 1011 (before
        ``accept()``: refuses the handshake with HTTP 500). A view that returns
        without closing closes with 1000 (before ``accept()``: refused).
        """
        self._task = asyncio.current_task()
        route = self.scope.get("url_route") or _NO_ROUTE
        try:
            await view(self, *route["args"], **route["kwargs"])
        except WebSocketDisconnect:
            pass
        except asyncio.CancelledError:
            if not self._failed:
                raise
        except Exception:
            logger.exception("Exception in websocket view %s for %s", _name(view), self.path)
            if self.state is WebSocketState.CONNECTING:
                self.state = WebSocketState.DISCONNECTED
                await refuse(self.scope, self._send, INTERNAL_ERROR)
            else:
                await self.close(1011)
        finally:
            self._task = None
            if self._inbox is not None:
                await self._inbox.leave_all()
        await self.close(1000)

    # Request data

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    @property
    def url_kwargs(self) -> dict[str, Any]:
        return dict(self.scope.get("url_route", {}).get("kwargs", {}))

    @property
    def query(self) -> QueryDict:
        return QueryDict(self.scope.get("query_string", b"").decode("latin-1"))

    @property
    def headers(self) -> CaseInsensitiveMapping:
        return CaseInsensitiveMapping(
            {k.decode("latin-1"): v.decode("latin-1") for k, v in self.scope.get("headers", [])}
        )

    @property
    def user(self) -> Any:
        return self.scope.get("user")

    @property
    def session(self) -> Any:
        return self.scope.get("session")

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(self._inbox.groups) if self._inbox is not None else frozenset()

    @property
    def channel_name(self) -> str | None:
        """The channel ``layer.send(name, {"type": "wsviews.send", ...})`` reaches; None before ``join()``."""
        return self._inbox.channel_name if self._inbox is not None else None

    # Handshake and close

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        """Complete the handshake, optionally choosing a subprotocol the client offered."""
        if self.state is not WebSocketState.CONNECTING:
            raise RuntimeError(f"Cannot accept a websocket in state {self.state.name}.")
        message = await self._receive()
        if message["type"] != "websocket.connect":
            if message["type"] == "websocket.disconnect":
                self.state = WebSocketState.DISCONNECTED
                raise WebSocketDisconnect(message.get("code", 1006))
            raise RuntimeError(
                f"Expected ASGI message 'websocket.connect', but got {message['type']!r}."
            )
        event: Message = {"type": "websocket.accept", "subprotocol": subprotocol or self.subprotocol}
        if headers:
            event["headers"] = [(k.encode(), v.encode()) if isinstance(k, str) else (k, v)
                                for k, v in headers]
        await self._send(event)
        self.state = WebSocketState.CONNECTED

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (or refuse the handshake, before ``accept()``)."""
        if self.state is WebSocketState.DISCONNECTED:
            return
        self.state = WebSocketState.DISCONNECTED
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except (OSError, RuntimeError):
            pass  # the client is gone (OSError), or the server already closed the socket

    # Receiving

    async def receive(self) -> str | bytes:
        """Return the next message: ``str`` for a text frame, ``bytes`` for binary.

        Raise ``WebSocketDisconnect`` once the connection is closed.
        """
        if self.state is not WebSocketState.CONNECTED:
            self._require_connected()
        message = await self._receive()
        data = self._take(message)
        if data is None:
            data = await self._take_slowly(message)
        return data

    def _take(self, message: Message) -> str | bytes | None:
        """Return the data of a client message that needs nothing more, counted; else None.

        None: a disconnect, a message over the size limit, or one over the
        rate limit (counted, as received), for :meth:`_take_slowly`.
        """
        if message["type"] != "websocket.receive":
            return None
        data = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        limit = self.max_message_size
        if limit is not None and len(data) > limit:
            return None
        record = self.record
        if record is not None:
            record.received += 1
            if record.count_bytes:
                record.bytes_received += _size(data)
        bucket = self._bucket
        if bucket is not None and not bucket.take():
            return None  # counted: received, then refused
        return data

    async def _take_slowly(self, message: Message) -> str | bytes:
        """Handle what :meth:`_take` left: close for a limit, or end with the disconnect."""
        kind = message["type"]
        if kind == "websocket.receive":
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            limit = self.max_message_size
            if limit is not None and len(data) > limit:
                reason = f"message of {len(data)} bytes is over the {limit} byte limit"
                await self.close(1009, reason)
                raise WebSocketDisconnect(1009, reason)
            bucket = cast(ratelimit.TokenBucket, self._bucket)  # _take counted it and found this empty
            ratelimit.report(self.path, bucket)
            await self._refuse(ratelimit.CLOSE_CODE, bucket.reason)
        if kind == "websocket.disconnect":
            self.state = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(message.get("code", 1005), message.get("reason") or "")
        raise RuntimeError(
            f"Expected ASGI message 'websocket.receive' or 'websocket.disconnect', but got {kind!r}."
        )

    def _require_connected(self) -> None:
        if self.state is WebSocketState.DISCONNECTED:
            raise WebSocketDisconnect(1000)
        if self.state is WebSocketState.CONNECTING:
            raise RuntimeError('Expected the websocket to be accepted: call "await socket.accept()".')

    async def receive_text(self) -> str:
        """Return the next text message; a binary frame closes the socket with 1003."""
        data = await self.receive()
        if not isinstance(data, str):
            await self._refuse(1003, "expected a text frame, got a binary frame")
        return data  # type: ignore[return-value]

    async def receive_bytes(self) -> bytes:
        """Return the next binary message; a text frame closes the socket with 1003."""
        data = await self.receive()
        if not isinstance(data, bytes):
            await self._refuse(1003, "expected a binary frame, got a text frame")
        return data  # type: ignore[return-value]

    async def receive_json(self) -> Any:
        """Return the next message parsed as JSON; invalid JSON closes the socket with 1007."""
        data = await self.receive()
        try:
            return encoding.loads(data)
        except encoding.JSONDecodeError as exc:
            await self._refuse(1007, f"invalid JSON: {exc}"[:120])

    async def _refuse(self, code: int, reason: str) -> None:
        await self.close(code, reason)
        raise WebSocketDisconnect(code, reason)

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        """Return the next message; stop iterating when the connection is closed.

        :meth:`receive` written out, so that ``async for`` runs one coroutine per message, not two.
        """
        try:
            if self.state is not WebSocketState.CONNECTED:
                self._require_connected()
            message = await self._receive()
            data = self._take(message)
            if data is None:
                data = await self._take_slowly(message)
        except WebSocketDisconnect:
            raise StopAsyncIteration from None
        return data

    # Sending

    async def send(self, data: str | bytes) -> None:
        """Send a text frame for ``str``, a binary frame for ``bytes``.

        Raise ``WebSocketDisconnect`` (1006) if the client has already left.
        """
        if self.state is not WebSocketState.CONNECTED:
            self._require_connected()
        kind = type(data)
        write = self._write
        if write is None or not (kind is str or kind is bytes) or not write(data):
            # Through the ASGI send: wrapped, a mutable buffer, or nothing the protocol can write now.
            if isinstance(data, str):
                message: Message = {"type": "websocket.send", "text": data}
            elif isinstance(data, (bytes, bytearray, memoryview)):
                message = {"type": "websocket.send", "bytes": bytes(data)}
            else:
                raise TypeError(f"send() takes str or bytes, not {type(data).__name__}; use send_json()")
            try:
                await self._send(message)
            except OSError:
                self.state = WebSocketState.DISCONNECTED
                raise WebSocketDisconnect(1006, "the client left") from None
        record = self.record
        if record is not None:
            record.sent += 1
            if record.count_bytes:
                record.bytes_sent += _size(data)

    async def send_json(self, obj: Any) -> None:
        """Send ``obj`` encoded as JSON in a text frame."""
        await self.send(encoding.dumps(obj))

    async def send_html(self, template_name: str, context: dict[str, Any] | None = None) -> None:
        """Render ``template_name`` for this socket's user and request, and send the HTML."""
        from .rendering import send_html

        await send_html(self, template_name, context)

    async def receive_htmx(self) -> HtmxMessage:
        """Return the next form the htmx websocket extension sent (data and htmx headers)."""
        from .htmx import receive_htmx

        return await receive_htmx(self)

    # Groups

    async def join(self, group: str, on_broadcast: OnBroadcast | None = None) -> None:
        """Join ``group``: broadcasts to it reach this client until ``leave()`` or disconnect.

        A broadcast message is sent as is (str as text, bytes as binary,
        anything else as JSON) unless ``on_broadcast(message)`` is given, which
        is then called instead (it may be async).
        """
        inbox = self._inbox
        if inbox is None:
            inbox = _Inbox(self, _channel_layer())
            await inbox.open()
            self._inbox = inbox
            if self.record is not None:
                self.record.mailbox = inbox
        await inbox.join(group, on_broadcast)

    async def leave(self, group: str) -> None:
        """Leave ``group``; leaving a group not joined does nothing."""
        if self._inbox is not None:
            await self._inbox.leave(group)

    async def _on_layer_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        groups = self._inbox.groups if self._inbox is not None else {}
        if kind == "wsviews.broadcast":
            group = message.get("group")
            if group not in groups:
                return  # left the group while the message was on its way
            callback = groups[group]
        elif kind == "wsviews.send":
            callback = None
        else:
            logger.warning("Dropped a %r layer message sent to websocket view %s", kind, self.path)
            return
        if self.state is not WebSocketState.CONNECTED:
            return
        try:
            if callback is None:
                try:
                    await self._send(encoding.frame(message["message"]))
                except OSError:
                    return  # the client left while the message was on its way
                if self.record is not None:
                    self.record.sent += 1
            else:
                result = callback(message["message"])
                if inspect.isawaitable(result):
                    await result
        except WebSocketDisconnect:
            pass  # raised by socket.send() in the callback: the client left
        except Exception:
            logger.exception("Exception delivering a broadcast to websocket view %s", self.path)
            self._fail()
            await self.close(1011)

    def _fail(self) -> None:
        """Stop the view: a handler of a layer message failed."""
        self._failed = True
        inline = self._inbox is not None and self._inbox.inline
        if self._task is not None and (inline or self._task is not asyncio.current_task()):
            self._task.cancel()


_NO_ROUTE: dict[str, Any] = {"args": (), "kwargs": {}}


class _Inbox(Membership):
    """A view's membership: broadcasts for one socket, handled one at a time, in order."""

    __slots__ = ("socket",)

    def __init__(self, socket: WebSocket, layer: Any) -> None:
        super().__init__(layer, socket._send)
        self.socket = socket

    async def handle(self, message: dict[str, Any]) -> None:
        await self.socket._on_layer_message(message)

    @property
    def path(self) -> str:
        return self.socket.path

    @property
    def route(self) -> str:
        record = self.socket.record
        return str(record.route) if record is not None else ""

    def close_slow(self) -> None:
        """Close with 4008: the view's next send raises ``WebSocketDisconnect``, its receive ends."""
        backpressure.close_slow(lambda: self.socket.close(backpressure.SLOW, backpressure.SLOW_REASON))


def _channel_layer() -> Any:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        raise ImproperlyConfigured(
            "Groups need a channel layer: set CHANNEL_LAYERS, or leave it unset for "
            "wsviews' in-memory default."
        )
    return layer


def _size(data: str | bytes | bytearray | memoryview) -> int:
    """Return the size of a message's payload on the wire, in bytes."""
    return len(data.encode()) if isinstance(data, str) else len(data)


def _name(view: Any) -> str:
    return f"{getattr(view, '__module__', '?')}.{getattr(view, '__qualname__', view)}"
