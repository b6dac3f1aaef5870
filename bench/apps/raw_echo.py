"""The baseline: a bare ASGI websocket echo, no framework.

Accept, then send every text or binary message back as it came. HTTP gets a
404 and lifespan is answered, so uvicorn runs it with the same options as the
Django applications.
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "websocket":
        while True:
            message = await receive()
            event = message["type"]
            if event == "websocket.receive":
                text = message.get("text")
                if text is not None:
                    await send({"type": "websocket.send", "text": text})
                else:
                    await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
            elif event == "websocket.connect":
                await send({"type": "websocket.accept"})
            else:  # websocket.disconnect
                return
    elif kind == "http":
        await send(
            {"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"Not Found\n"})
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
