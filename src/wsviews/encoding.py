"""JSON encoding shared by sockets and broadcasts (orjson: fast, and strict about types)."""

from __future__ import annotations

import json
from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


def dumps(obj: Any) -> str:
    """Return ``obj`` as a JSON string; raise ``TypeError`` if it cannot be encoded.

    orjson stops at 254 levels of nesting while ``loads`` accepts 1,024, so a
    deeper value (one a client sent, echoed back) is encoded by the standard
    library instead, with the same output.
    """
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError as exc:
        if str(exc) != "Recursion limit reached":
            raise
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


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
