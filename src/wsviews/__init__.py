"""wsviews: websockets as first-class Django views."""

from .broadcast import abroadcast, broadcast
from .decorators import websocket
from .websocket import WebSocket, WebSocketDisconnect

__all__ = ["WebSocket", "WebSocketDisconnect", "abroadcast", "broadcast", "websocket"]
__version__ = "0.1.0"
