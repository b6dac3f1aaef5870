"""Talk to the servers under test: the real ``websockets`` asyncio client, and plain HTTP."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as Connect
from websockets.exceptions import InvalidStatus


def connect(url: str, **options: Any) -> Connect:
    """Return a ``websockets`` client connection to ``url`` (await it, or ``async with`` it).

    Defaults differ from the library's where a test or a benchmark wants them
    to: a 10 s handshake timeout, no keepalive pings (a test that idles must
    not be kept alive by the client), and no proxy from the environment (the
    servers are on loopback). ``options`` override them.
    """
    options.setdefault("open_timeout", 10)
    options.setdefault("ping_interval", None)
    options.setdefault("proxy", None)
    return Connect(url, **options)


async def recv(ws: ClientConnection, timeout: float = 5) -> Any:
    """Return the next message on ``ws``; raise ``TimeoutError`` after ``timeout`` seconds."""
    return await asyncio.wait_for(ws.recv(), timeout)


async def handshake_status(url: str, **options: Any) -> int:
    """Return the HTTP status a refused handshake got (101 if it was accepted)."""
    try:
        async with connect(url, **options):
            return 101
    except InvalidStatus as exc:
        return int(exc.response.status_code)


async def open_sockets(url: str, count: int, batch: int = 200, **options: Any) -> list[ClientConnection]:
    """Open ``count`` sockets to ``url``, ``batch`` handshakes at a time.

    If any handshake fails, close every socket opened and raise its error.
    """
    sockets: list[ClientConnection] = []
    for start in range(0, count, batch):
        results = await asyncio.gather(
            *(connect(url, **options) for _ in range(min(batch, count - start))), return_exceptions=True
        )
        sockets += [ws for ws in results if isinstance(ws, ClientConnection)]
        failed = [error for error in results if isinstance(error, BaseException)]
        if failed:
            await close_sockets(sockets)
            raise failed[0]
    return sockets


async def close_sockets(sockets: Sequence[ClientConnection], batch: int = 500) -> None:
    """Close ``sockets``, ``batch`` at a time, ignoring those already closed or broken."""
    for start in range(0, len(sockets), batch):
        await asyncio.gather(*(ws.close() for ws in sockets[start : start + batch]), return_exceptions=True)


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
         method: str | None = None) -> tuple[int, bytes]:
    """Return the status and body of an HTTP request to ``url`` (an error status is returned, not raised)."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()
