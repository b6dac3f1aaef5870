"""In-process clients for ``wsviews.asgi.application``: the scope a real server would give, no server.

``Client`` is asgiref's ``ApplicationCommunicator`` with the scope uvicorn
builds (client, server, ``Host`` header, the ``websocket.http.response``
extension), a :meth:`Client.handshake` that also understands a denial
response, and frame helpers. (``channels.testing`` would do, but importing
it needs daphne.) ``ChannelsClient`` patches ``close_old_connections`` as
Channels' communicators do. ``http()`` sends one HTTP request through the
same application.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any
from unittest import mock

from asgiref.testing import ApplicationCommunicator

from wsviews.layers import InMemoryChannelLayer

TIMEOUT = 5
HOST = "127.0.0.1:8000"


def application() -> Any:
    from wsviews.asgi import application

    return application


# Made now, at collection: building it runs django.setup(), whose logging
# configuration would drop the handlers pytest's caplog installs for a test.
application()


class Client(ApplicationCommunicator):
    """A websocket client talking to the application in this event loop."""

    def __init__(self, path: str, *, headers: Iterable[tuple[str, str]] = (), origin: str | None = None,
                 subprotocols: Iterable[str] = (), denial_response: bool = True, app: Any = None) -> None:
        raw = [(b"host", HOST.encode())]
        raw += [(name.lower().encode(), value.encode()) for name, value in headers]
        if origin is not None:
            raw.append((b"origin", origin.encode()))
        path, _, query = path.partition("?")
        scope: dict[str, Any] = {
            "type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": path,
            "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
            "headers": raw, "subprotocols": list(subprotocols),
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        }
        if denial_response:
            scope["extensions"] = {"websocket.http.response": {}}
        super().__init__(app or application(), scope)
        self.body = b""
        self.accepted_subprotocol: str | None = None
        self.close_code: int | None = None

    async def handshake(self, timeout: float = TIMEOUT) -> int:
        """Return 101 if the socket was accepted, else the HTTP status it was refused with.

        A close before accept is how servers without the denial-response
        extension refuse: it counts as 403, as uvicorn answers it.
        """
        await self.send_input({"type": "websocket.connect"})
        message = await self.receive_output(timeout)
        if message["type"] == "websocket.accept":
            self.response_headers = message.get("headers", [])
            self.accepted_subprotocol = message.get("subprotocol")
            return 101
        if message["type"] == "websocket.close":
            self.close_code = message.get("code")
            self.body = (message.get("reason") or "").encode()
            return 403
        assert message["type"] == "websocket.http.response.start", message
        status = int(message["status"])
        body = await self.receive_output(timeout)
        assert body["type"] == "websocket.http.response.body", body
        self.body = body["body"]
        return status

    async def accepted(self, timeout: float = TIMEOUT) -> Client:
        """Complete the handshake, which must be accepted; return the client."""
        status = await self.handshake(timeout)
        assert status == 101, f"handshake refused with {status}: {self.body!r}"
        return self

    async def closed(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Return the ``websocket.close`` the application sends next (frames before it are skipped)."""
        while True:
            message = await self.receive_output(timeout)
            if message["type"] == "websocket.close":
                return message

    async def send_text(self, text: str) -> None:
        await self.send_input({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        await self.send_input({"type": "websocket.receive", "bytes": data})

    async def recv(self, timeout: float = TIMEOUT) -> str | bytes:
        """Return the next frame the application sends (text as str, binary as bytes)."""
        message = await self.receive_output(timeout)
        assert message["type"] == "websocket.send", f"expected a frame, got {message}"
        if message.get("text") is not None:
            return str(message["text"])
        return bytes(message["bytes"])

    async def leave(self, code: int = 1000) -> None:
        """Disconnect as the client, and wait for the application to finish."""
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(TIMEOUT)


async def http(path: str, *, method: str = "GET", body: bytes = b"",
               headers: Iterable[tuple[str, str]] = ()) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP request through the application; return status, headers and body."""
    path, _, query = path.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "headers": [(b"host", HOST.encode())] + [(k.lower().encode(), v.encode()) for k, v in headers],
    }
    communicator = ApplicationCommunicator(application(), scope)
    await communicator.send_input({"type": "http.request", "body": body})
    start = await communicator.receive_output(TIMEOUT)
    chunks = []
    while True:
        message = await communicator.receive_output(TIMEOUT)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await communicator.wait(TIMEOUT)
    response_headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
    return start["status"], response_headers, b"".join(chunks)


def _no_op() -> None:
    pass


class ChannelsClient(Client):
    """A client that, like Channels' test communicators, makes ``close_old_connections`` a no-op."""

    async def send_input(self, message: dict[str, Any]) -> None:
        with mock.patch("channels.db.close_old_connections", _no_op):
            await super().send_input(message)

    async def receive_output(self, timeout: float = 1) -> Any:
        with mock.patch("channels.db.close_old_connections", _no_op):
            return await super().receive_output(timeout)


class RecordingLayer(InMemoryChannelLayer):
    """wsviews' in-memory layer, recording which channels are attached and what it pushes to each.

    Configure it as ``CHANNEL_LAYERS = {"default": {"BACKEND": "inprocess.RecordingLayer"}}``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pushed: Counter[str] = Counter()
        self.attached: list[str] = []
        self.detached: list[str] = []

    def attach(self, channel: str, deliver: Any) -> None:
        self.attached.append(channel)

        def counted(message: dict[str, Any]) -> None:
            self.pushed[channel] += 1
            deliver(message)

        super().attach(channel, counted)

    def detach(self, channel: str) -> None:
        self.detached.append(channel)
        super().detach(channel)
