"""JSON encoding shared by sockets and broadcasts (orjson: fast, and strict about types)."""

from __future__ import annotations

from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


def dumps(obj: Any) -> str:
    """Return ``obj`` as a JSON string; raise ``TypeError`` if it cannot be encoded."""
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()


def loads(data: str | bytes) -> Any:
    """Parse JSON text; raise ``JSONDecodeError`` (a ``ValueError``) if it is not JSON."""
    return orjson.loads(data)


def frame(message: Any) -> dict[str, Any]:
    """Return the ASGI send event for ``message``: str as text, bytes as binary, else JSON."""
    if isinstance(message, str):
        return {"type": "websocket.send", "text": message}
    if isinstance(message, (bytes, bytearray, memoryview)):
        return {"type": "websocket.send", "bytes": bytes(message)}
    return {"type": "websocket.send", "text": dumps(message)}
