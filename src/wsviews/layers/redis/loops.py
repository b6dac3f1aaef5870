"""Release what a layer holds on an event loop before that loop closes.

Why this exists: redis-py connections belong to the event loop that opened
them, and ``async_to_sync()`` (every sync view, management command or signal
handler that sends to the layer) runs each call in a new event loop and
closes it afterwards. Connections left on a closed loop cannot be closed
cleanly any more: the garbage collector finds them later and asyncio logs
"Event loop is closed" errors. asyncio has no "loop closing" event, so the
layer wraps ``loop.close()`` of each loop it opens connections on.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable

LoopCallback = Callable[[asyncio.AbstractEventLoop], None]


def call_before_close(loop: asyncio.AbstractEventLoop, callback: LoopCallback) -> None:
    """Make ``loop.close()`` call ``callback(loop)`` first, while the loop can still run.

    ``callback`` is a bound method, held weakly, so the hook does not keep
    its layer alive. A loop whose ``close`` cannot be replaced
    (uvloop's) leaves its connections to the garbage collector; such loops
    are long-lived server loops, not ``async_to_sync``'s.
    """
    original = loop.close
    ref = weakref.WeakMethod(callback)

    def close() -> None:
        target = ref()
        if target is not None and not loop.is_running() and not loop.is_closed():
            target(loop)
        original()

    with contextlib.suppress(AttributeError, TypeError):
        loop.close = close  # type: ignore[method-assign]
