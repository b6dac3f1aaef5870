"""Run a resolved websocket endpoint: a ``@websocket`` view or a Channels consumer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from .connection import WebSocket, WebSocketDisconnect, WebSocketState
from .consumers import run_consumer
from .decorators import WebSocketOptions, websocket_options
from .handshake import origin_allowed, refuse
from .types import Receive, Scope, Send

logger = logging.getLogger("wsviews")

DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024


async def run_endpoint(func: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve the connection with ``func``, refusing it first if a handshake rule says so."""
    options = websocket_options(func)
    if not origin_allowed(scope, options.origins if options else None):
        logger.warning("Forbidden (websocket origin): %s from %s", scope["path"],
                       dict(scope.get("headers", ())).get(b"origin", b"").decode("latin-1"))
        await refuse(scope, send, 403, "Forbidden: this origin may not open a websocket here.")
        return
    if options is None:
        await run_consumer(func.consumer_class, func.consumer_initkwargs, scope, receive, send)
    else:
        await run_view(func, options, scope, receive, send)


async def run_view(
    view: Any, options: WebSocketOptions, scope: Scope, receive: Receive, send: Send
) -> None:
    """Call ``view(socket, **url_kwargs)``; an exception closes the socket with 1011."""
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
    route = scope.get("url_route", {})
    try:
        await view(socket, *route.get("args", ()), **route.get("kwargs", {}))
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
