"""The websocket and HTTP client helpers tests import; they live in the harness (``tests/harness/``)."""

from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness import close_sockets, connect, handshake_status, http, open_sockets, recv

__all__ = [
    "ConnectionClosed", "InvalidStatus", "close_sockets", "connect", "handshake_status", "http",
    "open_sockets", "recv",
]
