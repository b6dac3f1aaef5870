"""Route a websocket connection to its endpoint: a ``@websocket`` view or a Channels consumer."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from django.urls import set_urlconf

from .connection import WebSocket
from .consumers import serve_consumer
from .decorators import WebSocketOptions, websocket_options
from .handshake import Refusal, decide, not_found, refuse
from .routing import resolve_websocket
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
    match = resolve_websocket(path)
    if match is None:
        return refuse(scope, send, not_found(path))
    # The scope is updated in place, as Starlette's router does: a copy would
    # be kept alive by every open socket.
    outer = scope.get("url_route")
    if outer:
        scope["url_route"] = {
            "args": tuple(outer["args"]) + tuple(match.args),
            "kwargs": {**outer["kwargs"], **match.kwargs},
        }
    else:
        scope["url_route"] = {"args": match.args, "kwargs": match.kwargs}
    func = match.func
    options = websocket_options(func)
    if options is not None:
        return _serve_view(func, options, scope, receive, send)
    return _serve_consumer(func, scope, receive, send)


async def _serve_view(view: Any, options: WebSocketOptions, scope: Scope, receive: Receive,
                      send: Send) -> None:
    decision = await decide(scope, options)
    if isinstance(decision, Refusal):
        await refuse(scope, send, decision)
        return
    socket = WebSocket(scope, receive, send, max_message_size=decision.max_message_size,
                       subprotocol=decision.subprotocol)
    await socket.serve(view)


async def _serve_consumer(app: Any, scope: Scope, receive: Receive, send: Send) -> None:
    decision = await decide(scope, None)
    if isinstance(decision, Refusal):
        await refuse(scope, send, decision)
        return
    await serve_consumer(app.consumer_class, app.consumer_initkwargs, scope, receive, send)
