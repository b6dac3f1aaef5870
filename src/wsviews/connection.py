"""The ``socket`` object handed to ``@websocket`` views."""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import QueryDict
from django.utils.datastructures import CaseInsensitiveMapping
from uvicorn.protocols.utils import ClientDisconnected

from . import encoding
from .layers.base import supports_attach
from .mailbox import Mailbox
from .types import Message, Receive, Scope, Send

logger = logging.getLogger("wsviews")

OnBroadcast = Callable[[Any], Any]


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


# What sending to a client that has already left raises.
CLIENT_GONE = (WebSocketDisconnect, ClientDisconnected)


class WebSocket:
    """One websocket connection, as seen by a ``@websocket`` view.

    The connection moves CONNECTING -> CONNECTED (``accept()``) ->
    DISCONNECTED (``close()`` or the client leaving); calls that do not fit the
    state raise ``RuntimeError`` saying what was expected.
    """

    __slots__ = ("scope", "_receive", "_send", "state", "max_message_size", "subprotocol",
                 "channel_name", "_groups", "_mailbox", "_reader", "_task", "failed")

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
        self.state = WebSocketState.CONNECTING
        self.max_message_size = max_message_size
        self.subprotocol = subprotocol
        self.channel_name: str | None = None
        self._groups: dict[str, OnBroadcast | None] = {}
        self._mailbox: Mailbox | None = None
        self._reader: asyncio.Task[None] | None = None
        self._task: asyncio.Task[Any] | None = None
        self.failed = False

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
        return frozenset(self._groups)

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
        except Exception:  # the client is already gone
            pass

    # Receiving

    async def receive(self) -> str | bytes:
        """Return the next message: ``str`` for a text frame, ``bytes`` for binary.

        Raise ``WebSocketDisconnect`` once the connection is closed.
        """
        self._require_connected()
        message = await self._receive()
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
            return data
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
        """Return the next message; stop iterating when the connection is closed."""
        try:
            return await self.receive()
        except WebSocketDisconnect:
            raise StopAsyncIteration from None

    # Sending

    async def send(self, data: str | bytes) -> None:
        """Send a text frame for ``str``, a binary frame for ``bytes``."""
        self._require_connected()
        if isinstance(data, str):
            await self._send({"type": "websocket.send", "text": data})
        elif isinstance(data, (bytes, bytearray, memoryview)):
            await self._send({"type": "websocket.send", "bytes": bytes(data)})
        else:
            raise TypeError(f"send() takes str or bytes, not {type(data).__name__}; use send_json()")

    async def send_json(self, obj: Any) -> None:
        """Send ``obj`` encoded as JSON in a text frame."""
        await self.send(encoding.dumps(obj))

    # Groups

    async def join(self, group: str, on_broadcast: OnBroadcast | None = None) -> None:
        """Join ``group``: broadcasts to it reach this client until ``leave()`` or disconnect.

        A broadcast message is sent as is (str as text, bytes as binary,
        anything else as JSON) unless ``on_broadcast(message)`` is given, which
        is then called instead (it may be async).
        """
        layer = _channel_layer()
        if self.channel_name is None:
            self.channel_name = await layer.new_channel()
            self._mailbox = _Inbox(self)
            if supports_attach(layer):
                layer.attach(self.channel_name, self._mailbox)
            else:
                receive = functools.partial(layer.receive, self.channel_name)
                self._reader = asyncio.create_task(self._mailbox.pull(receive))
        await layer.group_add(group, self.channel_name)
        self._groups[group] = on_broadcast

    async def leave(self, group: str) -> None:
        """Leave ``group``; leaving a group not joined does nothing."""
        if self._groups.pop(group, _MISSING) is not _MISSING:
            await _channel_layer().group_discard(group, self.channel_name)

    async def _on_layer_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "wsviews.broadcast":
            group = message.get("group")
            if group not in self._groups:
                return  # left the group while the message was on its way
            callback = self._groups[group]
        elif kind == "wsviews.send":
            callback = None
        else:
            logger.warning("Dropped a %r layer message sent to websocket view %s", kind, self.path)
            return
        if self.state is not WebSocketState.CONNECTED:
            return
        try:
            if callback is None:
                await self._send(encoding.frame(message["message"]))
            else:
                result = callback(message["message"])
                if inspect.isawaitable(result):
                    await result
        except CLIENT_GONE:
            pass  # the client left while the message was on its way
        except Exception:
            logger.exception("Exception delivering a broadcast to websocket view %s", self.path)
            self.fail()
            await self.close(1011)

    def fail(self) -> None:
        """Mark the view failed and stop it (used when a background handler raises)."""
        self.failed = True
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def _leave_all(self) -> None:
        """Leave every group and stop layer delivery; called when the view ends."""
        if self.channel_name is None:
            return
        layer = _channel_layer()
        if self._reader is not None:
            self._reader.cancel()
        if self._mailbox is not None:
            self._mailbox.close()
        if supports_attach(layer):
            layer.detach(self.channel_name)
        else:
            for group in list(self._groups):
                try:
                    await layer.group_discard(group, self.channel_name)
                except Exception:
                    logger.warning("Could not leave group %r on disconnect", group, exc_info=True)
        self._groups.clear()


_MISSING = object()


class _Inbox(Mailbox):
    """Broadcasts for one socket, handled one at a time, in order."""

    __slots__ = ("socket",)

    def __init__(self, socket: WebSocket) -> None:
        super().__init__()
        self.socket = socket

    async def handle(self, message: dict[str, Any]) -> None:
        await self.socket._on_layer_message(message)


def _channel_layer() -> Any:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        raise ImproperlyConfigured(
            "Groups need a channel layer: set CHANNEL_LAYERS, or leave it unset for "
            "wsviews' in-memory default."
        )
    return layer
