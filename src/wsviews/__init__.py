"""wsviews: websockets as first-class Django views."""

from .broadcast import abroadcast, broadcast
from .connection import WebSocket, WebSocketDisconnect
from .decorators import websocket

__all__ = ["WebSocket", "WebSocketDisconnect", "abroadcast", "broadcast", "websocket"]
__version__ = "0.1.0"
