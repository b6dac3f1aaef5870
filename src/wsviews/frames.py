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
"""

from __future__ import annotations

from websockets.frames import Frame, Opcode

#: The largest frame kept for the next send (larger ones are built each time).
CACHE_MAX = 64 * 1024

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
