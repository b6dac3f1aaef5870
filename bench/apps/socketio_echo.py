"""python-socketio's echo: an ``echo`` event sent back to its sender.

``uvicorn bench.apps.socketio_echo:app``; clients speak Engine.IO 4 over a websocket at
``/socket.io/?EIO=4&transport=websocket`` (no HTTP long-polling first).
"""

from __future__ import annotations

from typing import Any

import socketio

sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket"], logger=False, engineio_logger=False)


@sio.on("echo")  # type: ignore[untyped-decorator,unused-ignore]
async def echo(sid: str, data: Any) -> None:
    await sio.emit("echo", data, to=sid)


app = socketio.ASGIApp(sio)
