"""Server data frames serialized once per message, however many sockets it goes to.

A group message fanned out to N local sockets is the same text object for
each of them (each handler gets a shallow copy of one message). Serializing
it once and writing the same bytes to every transport is what a broadcast
server should do; uvicorn (through websockets' sans-I/O protocol) serializes
each send on its own. Frames are built by websockets' own :class:`Frame`, so
the encoding stays the library's; this module only remembers the last one.

The cache holds one frame: the last payload sent, by identity (the payload
object is kept alive with it, so an identity match is never a different
object at a recycled address). Payloads over :data:`CACHE_MAX` bytes are
serialized and not kept.

:func:`data_writer` finds the websocket protocol's own way to write such a
frame at once, for views and consumers whose ``send`` nothing wraps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from websockets.frames import Frame, Opcode

from .types import Scope, Send

#: The largest frame kept for the next send (larger ones are built each time).
CACHE_MAX = 64 * 1024

#: Where wsviews' websocket protocol puts its ``write_data`` in the scope's extensions.
WRITER_EXTENSION = "wsviews.write_data"

#: Writes one data frame now if it can, and returns whether it did.
DataWriter = Callable[[str | bytes], bool]

_last: tuple[object, bytes] = (None, b"")


def data_frame(payload: str | bytes | bytearray | memoryview) -> bytes:
    """Return the unmasked, unfragmented server frame for ``payload`` (text for ``str``, else binary)."""
    global _last
    last, frame = _last  # one tuple: a thread that swaps it in between sees a consistent pair
    if last is payload:
        return frame
    kind = type(payload)
    if kind is str:
        frame = Frame(Opcode.TEXT, payload.encode()).serialize(mask=False, extensions=[])  # type: ignore[union-attr]
    else:
        frame = Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=[])  # type: ignore[arg-type]
    if len(frame) <= CACHE_MAX and (kind is str or kind is bytes):  # immutable: a mutable buffer may change
        _last = (payload, frame)
    return frame


def data_writer(scope: Scope, send: Send) -> DataWriter | None:
    """Return the socket protocol's ``write_data`` when ``send`` is that protocol's own ``send``, else None.

    With it a view or consumer writes a data frame without a coroutine per
    send (:meth:`wsviews.protocols.WebSocketProtocol.write_data`), in order
    with its other sends, which go through the same protocol. A ``send``
    that anything wraps (an ASGI middleware, a test) gets None: every frame
    then goes through it.
    """
    extensions: Any = scope.get("extensions") or {}
    write = extensions.get(WRITER_EXTENSION)
    protocol = getattr(write, "__self__", None)
    if protocol is not None and getattr(send, "__self__", None) is protocol:
        return write  # type: ignore[no-any-return]
    return None
