"""The hub's endpoint as a ``@websocket`` view, routed like any other by Django's URLconf."""

from __future__ import annotations

from ..connection import WebSocket
from ..decorators import websocket
from .shell import serve_hub

__all__ = ["connection_websocket"]


# Origins are checked by the hub itself against client.allowed_origins (or, when that is
# empty, WSVIEWS_ALLOWED_ORIGINS and the same-host rule), so the view lets every origin through.
@websocket(origins=["*"])
async def connection_websocket(socket: WebSocket) -> None:
    """Serve one client of the Centrifugal protocol (JSON)."""
    await serve_hub(socket)
