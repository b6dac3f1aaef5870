"""Graceful drain: close websockets in batches spread over a window, so clients do not reconnect at once.

A restart that drops every socket at the same instant sends every client to
the next process at the same instant. As Phoenix's ``PoolDrainer`` does, the
drain closes sockets a batch at a time, batches spread over the first
:data:`SPREAD` of the window (the rest is left for closing handshakes), each
with 1012 (service restart), which clients take as "reconnect". HTTP
requests in flight complete; idle keep-alive connections close at once.

Whoever serves a websocket with its own close semantics (the realtime hub
closes with Centrifugo's 3001 "shutdown") registers a closer with
:func:`on_shutdown`; the drain then awaits that closer instead of sending
1012 itself.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from .protocols import SHUTDOWN_EXTENSION
from .types import Scope

# Batches are this far apart ...
BATCH_INTERVAL = 0.1
# ... and at least this big, so a handful of sockets close at once ...
MIN_BATCH = 10
# ... and spread over this share of the window.
SPREAD = 0.75


def on_shutdown(scope: Scope, close: Callable[[], Awaitable[None]]) -> bool:
    """Have the drain await ``close()`` for this socket instead of closing it with 1012.

    ``close`` should send the application's own close (e.g. 3001) through
    the socket's ASGI ``send``; it gets the close timeout to do so, after
    which the server closes with 1012. Return False when the server is not
    one of wsviews' (nothing is registered; that server closes as it does).
    """
    hook = (scope.get("extensions") or {}).get(SHUTDOWN_EXTENSION)
    if hook is None:
        return False
    hook["close"] = close
    return True


def batch_size(count: int, window: float) -> int:
    """Return how many sockets each batch closes so that ``count`` of them spread over ``window``."""
    batches = max(1, int(window * SPREAD / BATCH_INTERVAL + 1e-9))
    return max(MIN_BATCH, math.ceil(count / batches))


def _is_http(connection: Any) -> bool:
    if isinstance(connection, H11Protocol):
        return True
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return False
    return isinstance(connection, HttpToolsProtocol)


def _close(connection: Any) -> None:
    close = getattr(connection, "close_for_shutdown", None)
    if close is not None:
        close()
    else:  # another websocket implementation (runserver --ws ...): uvicorn's own 1012
        connection.shutdown()


async def drain(connections: Collection[Any], window: float) -> int:
    """Close idle HTTP connections now and websockets in batches over ``window``; return how many sockets.

    ``connections`` is uvicorn's live set of protocols; a socket that went
    away by itself before its batch is skipped.
    """
    sockets = []
    for connection in list(connections):
        if _is_http(connection):
            connection.shutdown()
        else:
            sockets.append(connection)
    size = batch_size(len(sockets), window)
    for start in range(0, len(sockets), size):
        if start:
            await asyncio.sleep(BATCH_INTERVAL)
        for connection in sockets[start:start + size]:
            if connection in connections:
                _close(connection)
    return len(sockets)
