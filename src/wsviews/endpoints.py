"""Route a websocket connection to its endpoint: a ``@websocket`` view or a Channels consumer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.urls import set_urlconf

from .connection import WebSocket, WebSocketDisconnect, WebSocketState
from .consumers import serve_consumer
from .decorators import WebSocketOptions, websocket_options
from .handshake import admit, refuse
from .routing import resolve_websocket
from .types import Receive, Scope, Send

logger = logging.getLogger("wsviews")

DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024


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
        logger.warning("Not Found (websocket): %s", path)
        return refuse(scope, send, 404, f"Not Found: no websocket route for {path}")
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
        return serve_view(func, options, scope, receive, send)
    return serve_consumer(func.consumer_class, func.consumer_initkwargs, scope, receive, send)


async def serve_view(
    view: Any, options: WebSocketOptions, scope: Scope, receive: Receive, send: Send
) -> None:
    """Call ``view(socket, **url_kwargs)``; an exception closes the socket with 1011."""
    if not await admit(scope, send, options.origins):
        return
    denied = await _denied(options, scope)
    if denied:
        logger.warning("Forbidden (websocket): %s: %s", scope["path"], denied)
        await refuse(scope, send, 403, f"Forbidden: {denied}")
        return
    socket = WebSocket(
        scope, receive, send,
        max_message_size=_max_message_size(options),
        subprotocol=_negotiate(options, scope),
    )
    socket._task = asyncio.current_task()
    route = scope["url_route"]
    try:
        await view(socket, *route["args"], **route["kwargs"])
    except WebSocketDisconnect:
        pass
    except asyncio.CancelledError:
        if not socket.failed:
            raise
    except Exception:
        logger.exception("Exception in websocket view %s for %s", _name(view), scope["path"])
        if socket.state is WebSocketState.CONNECTING:
            socket.state = WebSocketState.DISCONNECTED
            await refuse(scope, send, 500, "Internal Server Error")
        else:
            await socket.close(1011)
    finally:
        await socket._leave_all()
    # A view that returns without closing closes normally (before accept: refused).
    await socket.close(1000)


async def _denied(options: WebSocketOptions, scope: Scope) -> str | None:
    user = scope.get("user")
    if options.login_required and not (user is not None and user.is_authenticated):
        return "login required"
    if options.permissions:
        if user is None or not await sync_to_async(user.has_perms)(options.permissions):
            return f"permission {', '.join(options.permissions)} required"
    return None


def _max_message_size(options: WebSocketOptions) -> int:
    if options.max_message_size is not None:
        return options.max_message_size
    return int(getattr(settings, "WSVIEWS_MAX_MESSAGE_SIZE", DEFAULT_MAX_MESSAGE_SIZE))


def _negotiate(options: WebSocketOptions, scope: Scope) -> str | None:
    for offered in scope.get("subprotocols", ()):
        if offered in options.subprotocols:
            return str(offered)
    return None


def _name(view: Any) -> str:
    return f"{getattr(view, '__module__', '?')}.{getattr(view, '__qualname__', view)}"
