"""Small helpers around the real ``websockets`` client used by the tests."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

__all__ = ["ConnectionClosed", "InvalidStatus", "connect", "handshake_status", "http", "recv"]


def connect(url: str, **kwargs: Any) -> Any:
    kwargs.setdefault("open_timeout", 10)
    kwargs.setdefault("ping_interval", None)
    return websockets.connect(url, **kwargs)


async def recv(ws: Any, timeout: float = 5) -> Any:
    return await asyncio.wait_for(ws.recv(), timeout)


async def handshake_status(url: str, **kwargs: Any) -> int:
    """Return the HTTP status a refused handshake got (101 if it was accepted)."""
    try:
        async with connect(url, **kwargs):
            return 101
    except InvalidStatus as exc:
        return int(exc.response.status_code)


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
         method: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
