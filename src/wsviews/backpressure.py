"""Slow receivers: the bounds on each socket's outbound backlog, and what happens past them.

Every socket that receives layer messages has a :class:`~wsviews.mailbox.Mailbox`.
While the socket keeps up, a layer message is handled (and its frame written)
at once; when the socket's transport stops taking data (the peer reads
nothing, its TCP window is shut) the ASGI ``send`` waits, and the messages
that arrive meanwhile wait in the mailbox. Once more than
``WSVIEWS_MAX_QUEUE_MESSAGES`` of them wait, or they and the bytes the
transport holds unflushed weigh more than ``WSVIEWS_MAX_QUEUE_BYTES``, the
socket is *slow*: its backlog is dropped, it stops receiving layer messages
and leaves its groups at once, it is counted in :data:`stats`, and it is
closed with :data:`SLOW` (4008). A peer that never reads never takes the close
frame either: the write timeout (``WSVIEWS_WRITE_TIMEOUT``) then aborts the
connection. The other members of its groups are not held up at any point.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from .burstlog import BurstLog

#: The close code of a socket that fell behind ("slow"), in the private-use range 4000-4999.
SLOW = 4008
SLOW_REASON = "slow: fell behind its outbound limit"

logger = logging.getLogger("wsviews")

#: Counters: ``slow_closes`` sockets closed as slow, ``slow_dropped`` layer messages dropped with them.
stats: dict[str, int] = {"slow_closes": 0, "slow_dropped": 0}

_slow_log = BurstLog(
    logger, logging.WARNING,
    "Closed %d slow socket(s) with 4008: more than WSVIEWS_MAX_QUEUE_MESSAGES (%d) layer messages "
    "or WSVIEWS_MAX_QUEUE_BYTES (%d) bytes were waiting for them (last: %s).")

_closing: set[asyncio.Task[None]] = set()

if sys.platform == "linux":
    import fcntl
    import termios

    _OUTQ: int | None = termios.TIOCOUTQ  # SIOCOUTQ for sockets
else:  # pragma: no cover - elsewhere only the transport's own buffer is counted
    _OUTQ = None
_INT = struct.Struct("i")
_ZERO = bytes(_INT.size)


def transport_bytes_of(send: Any) -> Callable[[], int] | None:
    """Return a callable telling how many bytes behind ``send`` the peer has not taken yet.

    That is the transport's write buffer plus, on Linux, the kernel's send
    queue (``SIOCOUTQ``: sent but not acknowledged, or not sent yet), which
    on loopback or a fast link grows to megabytes before the transport's
    own buffer fills. ``send`` is the server's bound method under uvicorn
    (``send.__self__`` is its protocol); where that cannot be seen, return
    None and only the layer messages waiting count.
    """
    transport: Any = getattr(getattr(send, "__self__", None), "transport", None)
    buffered = getattr(transport, "get_write_buffer_size", None)
    if not callable(buffered):
        return None
    is_closing = transport.is_closing
    sock = transport.get_extra_info("socket")
    outq = _OUTQ
    fd = sock.fileno() if sock is not None and outq is not None else -1
    if fd < 0 or outq is None:
        return buffered  # type: ignore[no-any-return]

    def unflushed() -> int:
        if is_closing():
            return int(buffered())
        try:
            kernel = _INT.unpack(fcntl.ioctl(fd, outq, _ZERO))[0]
        except OSError:
            kernel = 0
        return int(buffered()) + int(kernel)

    return unflushed


def record_slow(path: object, messages: int, limit_messages: int | None, limit_bytes: int | None,
                route: str = "") -> None:
    """Count one socket of ``route`` closed as slow, ``messages`` dropped; log it (a line per burst)."""
    from . import counters

    stats["slow_closes"] += 1
    stats["slow_dropped"] += messages
    counters.slow_close(route)
    _slow_log.hit(asyncio.get_running_loop(), limit_messages or 0, limit_bytes or 0, path)


def close_slow(close: Callable[[], Awaitable[Any]]) -> None:
    """Run ``close()`` (which sends the 4008 close) in a task of its own, kept until it ends.

    The close frame waits behind whatever the transport still holds: sent
    once a slow peer reads, or dropped with the connection when the write
    timeout aborts it. Nobody waits for it meanwhile.
    """
    task = asyncio.get_running_loop().create_task(_quietly(close))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def _quietly(close: Callable[[], Awaitable[Any]]) -> None:
    try:
        await close()
    except (OSError, RuntimeError):
        pass  # the connection is already gone
