"""Error, disconnect and unsubscribe codes of the Centrifugal client protocol.

The numbers, messages and reconnect rules are Centrifugo's (``errors.go``,
``disconnect.go`` and ``unsubscribe.go`` of the centrifuge library, and the
"Client protocol codes" page of the Centrifugo documentation), so the official
SDKs react to them as they do against Centrifugo:

* an error (100-1999) answers one command; ``temporary`` errors and 109 make the
  SDK retry, any other error is final for that command;
* a disconnect closes the connection with its code as the websocket close code
  and its reason as the close reason; the SDK reconnects after 3000-3499 and
  4000-4499 and stays disconnected after 3500-3999 and 4500-4999;
* an unsubscribe (push) ends one subscription; the SDK resubscribes after 2500
  and above and stays unsubscribed below.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ClientError", "Disconnect", "Unsubscribe",
    "ERROR_INTERNAL", "ERROR_UNAUTHORIZED", "ERROR_UNKNOWN_CHANNEL", "ERROR_PERMISSION_DENIED",
    "ERROR_METHOD_NOT_FOUND", "ERROR_ALREADY_SUBSCRIBED", "ERROR_LIMIT_EXCEEDED", "ERROR_BAD_REQUEST",
    "ERROR_NOT_AVAILABLE", "ERROR_TOKEN_EXPIRED", "ERROR_EXPIRED", "ERROR_TOO_MANY_REQUESTS",
    "ERROR_UNRECOVERABLE_POSITION",
    "DISCONNECT_CONNECTION_CLOSED", "DISCONNECT_SHUTDOWN", "DISCONNECT_SERVER_ERROR",
    "DISCONNECT_EXPIRED", "DISCONNECT_SUB_EXPIRED", "DISCONNECT_SLOW", "DISCONNECT_WRITE_ERROR",
    "DISCONNECT_INSUFFICIENT_STATE", "DISCONNECT_FORCE_RECONNECT", "DISCONNECT_NO_PONG",
    "DISCONNECT_TOO_MANY_REQUESTS", "DISCONNECT_STATE_INVALIDATED",
    "DISCONNECT_INVALID_TOKEN", "DISCONNECT_BAD_REQUEST", "DISCONNECT_STALE",
    "DISCONNECT_FORCE_NO_RECONNECT", "DISCONNECT_CONNECTION_LIMIT", "DISCONNECT_CHANNEL_LIMIT",
    "DISCONNECT_INAPPROPRIATE_PROTOCOL", "DISCONNECT_PERMISSION_DENIED", "DISCONNECT_NOT_AVAILABLE",
    "DISCONNECT_TOO_MANY_ERRORS", "DISCONNECT_MESSAGE_TOO_BIG",
    "UNSUBSCRIBE_SERVER", "UNSUBSCRIBE_INSUFFICIENT_STATE", "UNSUBSCRIBE_EXPIRED",
    "UNSUBSCRIBE_STATE_INVALIDATED",
]


@dataclass(frozen=True, slots=True)
class ClientError:
    """An error answering one command (``{"id": N, "error": {...}}``).

    Applications may define their own with codes 400-1999; 0-399 belong to the
    protocol.
    """

    code: int
    message: str
    temporary: bool = False

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class Disconnect:
    """A reason to close the connection: the websocket close code and reason.

    Keep ``reason`` under 123 bytes, the most a websocket close frame carries.
    """

    code: int
    reason: str

    @property
    def reconnect(self) -> bool:
        """Return whether the SDKs reconnect after this code (3500-3999, 4500-4999: no)."""
        return not (3500 <= self.code < 4000 or 4500 <= self.code < 5000)

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """A reason the server ends one subscription (the ``unsubscribe`` push).

    Codes 2000-2999 reach the client; the SDKs resubscribe after 2500 and above.
    """

    code: int
    reason: str

    @property
    def resubscribe(self) -> bool:
        """Return whether the SDKs subscribe again after this code."""
        return self.code >= 2500


ERROR_INTERNAL = ClientError(100, "internal server error", temporary=True)
ERROR_UNAUTHORIZED = ClientError(101, "unauthorized")
ERROR_UNKNOWN_CHANNEL = ClientError(102, "unknown channel")
ERROR_PERMISSION_DENIED = ClientError(103, "permission denied")
ERROR_METHOD_NOT_FOUND = ClientError(104, "method not found")
ERROR_ALREADY_SUBSCRIBED = ClientError(105, "already subscribed")
ERROR_LIMIT_EXCEEDED = ClientError(106, "limit exceeded")
ERROR_BAD_REQUEST = ClientError(107, "bad request")
ERROR_NOT_AVAILABLE = ClientError(108, "not available")
ERROR_TOKEN_EXPIRED = ClientError(109, "token expired")
ERROR_EXPIRED = ClientError(110, "expired")
ERROR_TOO_MANY_REQUESTS = ClientError(111, "too many requests", temporary=True)
ERROR_UNRECOVERABLE_POSITION = ClientError(112, "unrecoverable position")

# 3000 is what a server reports when the client went away on its own; it is
# never sent.
DISCONNECT_CONNECTION_CLOSED = Disconnect(3000, "connection closed")
DISCONNECT_SHUTDOWN = Disconnect(3001, "shutdown")
DISCONNECT_SERVER_ERROR = Disconnect(3004, "internal server error")
DISCONNECT_EXPIRED = Disconnect(3005, "connection expired")
DISCONNECT_SUB_EXPIRED = Disconnect(3006, "subscription expired")
DISCONNECT_SLOW = Disconnect(3008, "slow")
DISCONNECT_WRITE_ERROR = Disconnect(3009, "write error")
DISCONNECT_INSUFFICIENT_STATE = Disconnect(3010, "insufficient state")
DISCONNECT_FORCE_RECONNECT = Disconnect(3011, "force reconnect")
DISCONNECT_NO_PONG = Disconnect(3012, "no pong")
DISCONNECT_TOO_MANY_REQUESTS = Disconnect(3013, "too many requests")
DISCONNECT_STATE_INVALIDATED = Disconnect(3014, "state invalidated")

DISCONNECT_INVALID_TOKEN = Disconnect(3500, "invalid token")
DISCONNECT_BAD_REQUEST = Disconnect(3501, "bad request")
DISCONNECT_STALE = Disconnect(3502, "stale")
DISCONNECT_FORCE_NO_RECONNECT = Disconnect(3503, "force disconnect")
DISCONNECT_CONNECTION_LIMIT = Disconnect(3504, "connection limit")
DISCONNECT_CHANNEL_LIMIT = Disconnect(3505, "channel limit")
DISCONNECT_INAPPROPRIATE_PROTOCOL = Disconnect(3506, "inappropriate protocol")
DISCONNECT_PERMISSION_DENIED = Disconnect(3507, "permission denied")
DISCONNECT_NOT_AVAILABLE = Disconnect(3508, "not available")
DISCONNECT_TOO_MANY_ERRORS = Disconnect(3509, "too many errors")

# A frame above the size limit is closed the way websocket servers do (RFC 6455
# 1009); the SDKs report it as "message size limit exceeded" and do not reconnect.
DISCONNECT_MESSAGE_TOO_BIG = Disconnect(1009, "message too big")

UNSUBSCRIBE_SERVER = Unsubscribe(2000, "server unsubscribe")
UNSUBSCRIBE_INSUFFICIENT_STATE = Unsubscribe(2500, "insufficient state")
UNSUBSCRIBE_EXPIRED = Unsubscribe(2501, "subscription expired")
UNSUBSCRIBE_STATE_INVALIDATED = Unsubscribe(2502, "state invalidated")
