"""Close stale database connections for consumers on the lean loop: at most once a second.

Channels hops to a worker thread to run ``close_old_connections()`` before
every handler and again in ``AsyncWebsocketConsumer.websocket_disconnect``.
Consumers served by wsviews check instead before a handler runs and when the
socket ends, and close stale connections only when the last close in this
process is a second old or more.

The close always goes through ``channels.db.close_old_connections``, looked
up when it runs: Channels' test communicators (and users' tests) patch that
name to a no-op so that a ``django.test.TestCase`` keeps its connection, and
calling ``django.db.close_old_connections`` directly would close it under them.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

import channels.consumer
import channels.db
import channels.generic.websocket
from asgiref.sync import sync_to_async

INTERVAL = 1.0
_next_close = 0.0
# Set in the task serving a consumer on the lean loop (and inherited by its handlers' tasks).
_on_lean_loop: ContextVar[bool] = ContextVar("wsviews_on_lean_loop", default=False)


def close_due() -> bool:
    """Return True, at most once a second per process, when stale connections should be closed."""
    global _next_close
    now = time.monotonic()
    if now < _next_close:
        return False
    _next_close = now + INTERVAL
    return True


async def close_old_connections() -> None:
    """Close stale connections now, in asgiref's thread, through ``channels.db``."""
    await sync_to_async(channels.db.close_old_connections)()


async def close_old_connections_if_due() -> None:
    """Close stale connections if a second has passed since the last close in this process."""
    if close_due():
        await close_old_connections()


def serve_on_lean_loop() -> None:
    """Mark the current task as serving a consumer on the lean loop (see :func:`install`)."""
    _on_lean_loop.set(True)


async def _aclose_old_connections() -> None:
    if _on_lean_loop.get():
        await close_old_connections_if_due()
    else:
        await channels.db.aclose_old_connections()


def install() -> None:
    """Make Channels' own ``aclose_old_connections()`` calls follow this module's policy.

    ``AsyncConsumer.dispatch`` and ``AsyncWebsocketConsumer.websocket_disconnect``
    call the name they imported from ``channels.db``; rebinding it in those
    modules changes consumers served by wsviews' lean loop only. Anything
    else (Channels' own loop) still gets a close on every call.
    """
    channels.consumer.aclose_old_connections = _aclose_old_connections
    channels.generic.websocket.aclose_old_connections = _aclose_old_connections
