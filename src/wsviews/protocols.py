"""uvicorn's protocols with the limits a public server needs.

* HTTP (:class:`HttpToolsProtocol`, :class:`H11Protocol`): a connection that
  has not sent complete request headers (or a websocket handshake) within
  the handshake timeout is closed; a connection past the file descriptor
  budget is closed at accept; a websocket upgrade over ``limit_concurrency``
  or during a drain gets 503, as uvicorn already answers plain requests.
* Websocket (:class:`WebSocketProtocol`, uvicorn's sans-I/O implementation):
  invalid UTF-8 closes with 1007 and one INFO line, no traceback; the drain
  closes with 1012 or with the closer the application registered.
* Both: a connection whose peer reads nothing while the send buffer is full
  is aborted after the write timeout, and a close that cannot flush (the
  peer's window is shut) ends in ``abort()`` instead of waiting forever.

Client behaviour is logged through :class:`~wsviews.burstlog.BurstLog`: one
line per burst, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from uvicorn.protocols.http.h11_impl import H11Protocol as _H11Protocol
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.protocol import OPEN

from .burstlog import BurstLog
from .frames import WRITER_EXTENSION, data_frame
from .serving import Limits, ServingConfig

logger = logging.getLogger("wsviews.serving")

# Where the application finds the drain hook (see wsviews.drain.on_shutdown).
SHUTDOWN_EXTENSION = "wsviews.shutdown"

_head_timeouts = BurstLog(
    logger, logging.INFO,
    "Closed %d connection(s) that sent no complete request or handshake within %gs "
    "(WSVIEWS_HANDSHAKE_TIMEOUT).")
_over_budget = BurstLog(
    logger, logging.WARNING,
    "Closed %d new connection(s) at accept: %d connections are open, the most the file "
    "descriptor limit leaves room for. Raise RLIMIT_NOFILE (ulimit -n; systemd LimitNOFILE=) "
    "or add workers.")
_over_limit = BurstLog(
    logger, logging.WARNING,
    "Refused %d websocket handshake(s) with 503: %d connections are open "
    "(WSVIEWS_MAX_CONNECTIONS, or the file descriptor limit).")
_draining = BurstLog(
    logger, logging.INFO, "Refused %d websocket handshake(s) with 503: the server is draining.")
_write_timeouts = BurstLog(
    logger, logging.INFO,
    "Aborted %d connection(s) whose peer read nothing for %gs with a full send buffer "
    "(WSVIEWS_WRITE_TIMEOUT).")
_close_timeouts = BurstLog(
    logger, logging.INFO,
    "Aborted %d connection(s) whose close could not be flushed within %gs (WSVIEWS_WRITE_TIMEOUT).")

_SERVICE_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 19\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"Service Unavailable"
)


class DeadlineTransport:
    """A transport whose ``close()`` ends in ``abort()`` if the buffered bytes are not taken in time.

    asyncio's and uvloop's ``close()`` wait for the write buffer to drain,
    which never happens when the peer stops reading. The methods uvicorn
    calls per message are the wrapped transport's own bound methods, so the
    wrapper costs nothing on the hot path.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
                 deadline: float) -> None:
        self.transport = transport
        self.write = transport.write
        self.writelines = transport.writelines
        self.is_closing = transport.is_closing
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading
        self.get_extra_info = transport.get_extra_info
        self.abort = transport.abort
        self._loop = loop
        self._deadline = deadline
        self._timer: asyncio.TimerHandle | None = None
        self._lost = False

    @classmethod
    def wrap(cls, transport: Any, loop: asyncio.AbstractEventLoop, deadline: float) -> DeadlineTransport:
        """Return ``transport`` wrapped (once: an upgraded connection keeps its HTTP wrapper)."""
        if isinstance(transport, cls):
            return transport
        return cls(transport, loop, deadline)

    def close(self) -> None:
        if self._timer is None and not self._lost:
            self._timer = self._loop.call_later(self._deadline, self._abort_unflushed)
        self.transport.close()

    def lost(self) -> None:
        """Note that the connection is gone: no abort is due."""
        self._lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _abort_unflushed(self) -> None:
        self._timer = None
        if not self._lost:
            _close_timeouts.hit(self._loop, self._deadline)
            self.transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _WriteTimeout:
    """Abort the transport when the send buffer stays over its high-water mark for the write timeout.

    Mixed into a uvicorn protocol: asyncio calls ``pause_writing()`` when
    the buffer fills and ``resume_writing()`` when the peer has taken enough.
    """

    loop: asyncio.AbstractEventLoop
    transport: Any
    _limits: Limits
    _write_timer: asyncio.TimerHandle | None = None

    def pause_writing(self) -> None:
        super().pause_writing()  # type: ignore[misc]
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self._limits.write_timeout, self._write_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()  # type: ignore[misc]
        self._cancel_write_timer()

    def _cancel_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_timed_out(self) -> None:
        self._write_timer = None
        _write_timeouts.hit(self.loop, self._limits.write_timeout)
        self.transport.abort()


class _ServingHTTP(_WriteTimeout):
    """The HTTP side: handshake timeout, file descriptor budget, 503 for upgrades over the limit."""

    connections: set[Any]
    tasks: set[asyncio.Task[None]]
    limit_concurrency: int | None
    cycle: Any
    _head_timer: asyncio.TimerHandle | None = None

    def __init__(self, config: ServingConfig, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)  # type: ignore[call-arg]
        self._limits = config.limits
        self._serving = config

    def connection_made(self, transport: Any) -> None:
        wrapped = DeadlineTransport.wrap(transport, self.loop, self._limits.write_timeout)
        super().connection_made(wrapped)  # type: ignore[misc]
        budget = self._limits.fd_budget
        if budget is not None and len(self.connections) > budget:
            _over_budget.hit(self.loop, len(self.connections) - 1)
            wrapped.abort()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_write_timer()
        if isinstance(self.transport, DeadlineTransport):
            self.transport.lost()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self._between_requests():
            self._arm_head_timer()
        super().data_received(data)  # type: ignore[misc]
        if self._head_timer is not None and not self._between_requests():
            self._cancel_head_timer()

    def handle_websocket_upgrade(self, *args: Any) -> None:
        self._cancel_head_timer()
        limit = self.limit_concurrency
        if self._serving.draining:
            self._refuse_upgrade(_draining)
        elif limit is not None and (len(self.connections) > limit or len(self.tasks) >= limit):
            # This connection is one of them: ``limit`` sockets may be open, not one fewer.
            self._refuse_upgrade(_over_limit, len(self.connections) - 1)
        else:
            super().handle_websocket_upgrade(*args)  # type: ignore[misc]

    def _refuse_upgrade(self, log: BurstLog, *args: object) -> None:
        log.hit(self.loop, *args)
        self.transport.write(_SERVICE_UNAVAILABLE)
        self.transport.close()

    def _between_requests(self) -> bool:
        cycle = self.cycle
        return cycle is None or bool(cycle.response_complete)

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._limits.handshake_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._between_requests() and not self.transport.is_closing():
            _head_timeouts.hit(self.loop, self._limits.handshake_timeout)
            self.transport.close()


class H11Protocol(_ServingHTTP, _H11Protocol):
    """uvicorn's h11 protocol with wsviews' limits (the pure-Python fallback)."""

    parser_name = "h11"


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpToolsProtocol
except ImportError:  # httptools is not installed: h11 serves
    HttpToolsProtocol: type[Any] = H11Protocol
else:
    class HttpToolsProtocol(_ServingHTTP, _HttpToolsProtocol):  # type: ignore[no-redef]
        """uvicorn's httptools protocol with wsviews' limits."""

        parser_name = "httptools"


Closer = Callable[[], Awaitable[None]]


class WebSocketProtocol(_WriteTimeout, WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websocket protocol with wsviews' write timeout, close deadline, 1007 and drain."""

    def __init__(self, config: ServingConfig, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = config.limits
        # How long a close waits for the peer's close frame before the TCP close.
        self.close_timeout = min(self.close_timeout, self._limits.write_timeout)
        self._shutdown: dict[str, Closer] = {}
        # What write_data() reads for every frame, kept apart from uvicorn's objects so that a
        # fan-out to many sockets touches little memory per socket: the transport's own write
        # (not the wrapper's attribute), whether asyncio paused writing (uvicorn's Event says the
        # same), and, once known, whether the connection's frames are plain (no extension, no
        # debug log).
        self._write_now: Callable[[bytes], None] | None = None
        self._write_paused = False
        self._plain: bool | None = None

    def connection_made(self, transport: Any) -> None:
        wrapped = DeadlineTransport.wrap(transport, self.loop, self._limits.write_timeout)
        self._write_now = wrapped.write
        super().connection_made(cast(asyncio.Transport, wrapped))

    def pause_writing(self) -> None:
        self._write_paused = True
        super().pause_writing()

    def resume_writing(self) -> None:
        self._write_paused = False
        super().resume_writing()

    async def send(self, message: Any) -> None:
        """Send ``message``: a data frame through :meth:`write_data` when it can, else uvicorn's ``send``."""
        if message["type"] == "websocket.send":
            payload = message.get("bytes")
            if payload is None:
                payload = message.get("text")
            if payload is not None and self.write_data(payload):
                return
        await super().send(message)

    def write_data(self, payload: str | bytes) -> bool:
        """Write ``payload`` as one prepared data frame now, if the socket is open and plain; return whether.

        Plain: no extension negotiated (permessage-deflate compresses per
        socket), no fragmented message under way, nothing of the protocol's
        own waiting to be written first, the transport not paused, and
        websockets' debug log off (it logs each frame sent). The frame comes
        from :func:`wsviews.frames.data_frame`, shared by every socket a
        broadcast goes to. False: nothing was written, and the message must
        go through :meth:`send` (which waits, or raises for a closed socket).
        """
        if self._write_paused or not self.handshake_complete or self.close_sent or self.disconnected \
                or self.initial_response is not None:
            return False
        conn = self.conn
        if conn.state is not OPEN or conn.writes or conn.expect_continuation_frame:
            return False
        plain = self._plain
        if plain is None:  # extensions are negotiated in the handshake, which is over
            plain = self._plain = not conn.extensions and not conn.debug
        if not plain:
            return False
        self._write_now(data_frame(payload))  # type: ignore[misc]
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_write_timer()
        if isinstance(self.transport, DeadlineTransport):
            self.transport.lost()
        super().connection_lost(exc)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            extensions = cast(dict[str, Any], scope["extensions"])
            extensions[SHUTDOWN_EXTENSION] = self._shutdown
            extensions[WRITER_EXTENSION] = self.write_data

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "bytes" or self.close_sent:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            # The client's mistake, so one line and no traceback (uvicorn logs one per frame).
            self.frames = []
            logger.info('%s - "WebSocket %s" 1007: invalid UTF-8 in a text message (%s at byte %d)',
                        get_client_addr(self.scope), get_path_with_query_string(self.scope),
                        exc.reason, exc.start)
            self.conn.fail(1007, "invalid UTF-8 in a text message")
            self.handle_parser_exception()
            return
        self.frames = []
        self.queue.put_nowait({"type": "websocket.receive", "text": text})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def close_for_shutdown(self) -> None:
        """Close this socket because the server is draining: with the application's closer if it set one.

        Otherwise send 1012 (service restart: clients reconnect) and tell the
        application the socket is gone, then wait for the peer's close frame
        as long as any close waits.
        """
        closer = self._shutdown.get("close")
        if closer is not None and self.handshake_complete and not self.close_sent:
            self.loop.create_task(self._run_closer(closer))
            return
        if not self.handshake_complete or self.close_sent or self.transport.is_closing():
            self.shutdown()
            return
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1012})
        self.conn.send_close(1012, "server restart")
        self.transport.write(b"".join(self.conn.data_to_send()))
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        if self.close_timer is None:
            self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

    async def _run_closer(self, closer: Closer) -> None:
        try:
            await asyncio.wait_for(closer(), self.close_timeout)
            return
        except TimeoutError:
            pass  # a peer that does not read: the close deadline below ends it
        except Exception:
            logger.exception("The application's shutdown closer failed; closing with 1012 instead")
        self._shutdown.pop("close", None)
        self.close_for_shutdown()
