"""Route a websocket connection to its endpoint: a ``@websocket`` view or a Channels consumer."""

from __future__ import annotations

import functools
from collections.abc import Awaitable
from typing import Any

from django.urls import set_urlconf

from . import connections, control, counters
from .connection import WebSocket
from .consumers import serve_consumer
from .decorators import WebSocketOptions, websocket_options
from .handshake import Refusal, decide, not_found, refuse
from .routing import match_websocket
from .types import Receive, Scope, Send


def serve_websocket(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
    """Resolve the handshake path; return the coroutine that serves the connection.

    A plain function, not a coroutine, so that no frame of it stays alive for
    as long as the socket is open.
    """
    path = scope["path"]
    root = scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root):]
    set_urlconf(None)
    match = match_websocket(path)
    if match is None:
        refusal = not_found(path)
        counters.handshake(refusal)
        return refuse(scope, send, refusal)
    # The scope is updated in place, as Starlette's router does: a copy would
    # be kept alive by every open socket.
    outer = scope.get("url_route")
    if outer:
        scope["url_route"] = {
            "args": tuple(outer["args"]) + tuple(match.args),
            "kwargs": {**outer["kwargs"], **match.kwargs},
        }
    else:
        scope["url_route"] = {"args": match.args, "kwargs": dict(match.kwargs)}  # the match is shared
    func = match.func
    options = websocket_options(func)
    if options is not None:
        return _serve_view(func, options, match.route, scope, receive, send)
    return _serve_consumer(func, match.route, scope, receive, send)


async def _serve_view(view: Any, options: WebSocketOptions, route: str, scope: Scope,
                      receive: Receive, send: Send) -> None:
    decision = await decide(scope, options)
    if isinstance(decision, Refusal):
        counters.handshake(decision)
        await refuse(scope, send, decision)
        return
    counters.handshake(None)
    socket = WebSocket(scope, receive, send, max_message_size=decision.max_message_size,
                       subprotocol=decision.subprotocol)
    socket.record = record = connections.register(scope, route, "view", socket.close)
    _observe()
    try:
        await socket.serve(view)
    finally:
        connections.unregister(record)


async def _serve_consumer(app: Any, route: str, scope: Scope, receive: Receive, send: Send) -> None:
    decision = await decide(scope, None)
    if isinstance(decision, Refusal):
        counters.handshake(decision)
        await refuse(scope, send, decision)
        return
    counters.handshake(None)
    record = connections.register(scope, route, "consumer", functools.partial(_close, send))
    _observe()
    try:
        await serve_consumer(app.consumer_class, app.consumer_initkwargs, scope, receive, send)
    finally:
        connections.unregister(record)


async def _close(send: Send, code: int, reason: str) -> None:
    try:
        await send({"type": "websocket.close", "code": code, "reason": reason})
    except (OSError, RuntimeError):
        pass  # already closed


def _observe() -> None:
    """Start this loop's control channel (and metrics sync) with its first socket; cheap after that."""
    if control.running_here():
        return
    from . import metrics

    control.ensure_started()
    metrics.ensure_syncing()
