"""uvicorn's ``Server`` as wsviews runs it: a quiet accept error, a graceful drain, exit status 0.

What differs from ``uvicorn.Server``:

* at startup the loop's exception handler folds asyncio's "socket.accept()
  out of system resource" (logged with a traceback for every failed accept
  when file descriptors run out) into one WARNING per burst, and the line
  saying which loop, parser and limits serve is logged;
* on SIGTERM or SIGINT the listening sockets close first, then
  :func:`wsviews.drain.drain` closes websockets in batches over the drain
  window while HTTP requests in flight complete; whatever is still open at
  the end of the window is aborted, then the lifespan shutdown runs;
* the signal is not re-raised after that shutdown (uvicorn re-raises it,
  so the process died of SIGTERM, status -15): a drained process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Generator
from typing import Any

import uvicorn
from uvicorn.server import HANDLED_SIGNALS

from . import control
from .burstlog import BurstLog
from .drain import drain
from .serving import (
    STARTUP_FAILURE,
    ServingConfig,
    add_uvicorn_log_handlers,
    build_config,
    describe,
    mark_applied,
)

logger = logging.getLogger("wsviews.serving")

_ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"
_accept_errors = BurstLog(
    logger, logging.WARNING,
    "Accepting connections failed %d time(s): %s. New connections wait in the backlog until "
    "connections close; raise RLIMIT_NOFILE (ulimit -n; systemd LimitNOFILE=) or add workers.")
# After the window, how long aborted connections and cancelled tasks get to finish.
_AFTER_WINDOW = 1.0


class WSViewsServer(uvicorn.Server):
    """``uvicorn.Server`` with wsviews' startup line, accept-error handling and drain."""

    config: ServingConfig

    def __init__(self, config: ServingConfig) -> None:
        super().__init__(config)
        mark_applied()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        _quiet_accept_errors(asyncio.get_running_loop())
        await super().startup(sockets=sockets)
        if self.started:
            logger.info(describe(self.config))
            _start_observing()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        config = self.config
        config.draining = True
        window = config.limits.drain_timeout
        deadline = loop.time() + window
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            # The loop closed the listening socket with its server (uvloop at the
            # descriptor level, behind the object's back): detach the object so
            # nothing closes that descriptor number again. gunicorn wraps it.
            inner = getattr(sock, "sock", sock)
            if isinstance(inner, socket.socket):
                inner.detach()
        state = self.server_state
        closing = drain(state.connections, window)
        drained = await _until(closing, deadline, lambda: self.force_exit)
        left = round(max(0.0, deadline - loop.time()), 1)
        logger.info("Draining: closed %s websocket(s) in batches; waiting up to %gs for connections "
                    "to finish", "the" if drained is None else drained, left)
        while (state.connections or state.tasks) and not self.force_exit and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if state.connections or state.tasks:
            logger.warning("Drain window of %gs is over: aborting %d connection(s) and cancelling %d "
                           "task(s) still open.", window, len(state.connections), len(state.tasks))
            for connection in list(state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
            for task in list(state.tasks):
                task.cancel(msg="wsviews: the drain window is over")
            if state.tasks:
                await asyncio.wait(list(state.tasks), timeout=_AFTER_WINDOW)
        for server in self.servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), _AFTER_WINDOW)
        await control.stop()
        if not self.force_exit:
            await self.lifespan.shutdown()


async def _until(work: Any, deadline: float, forced: Any) -> int | None:
    """Run ``work`` until it ends, ``deadline`` passes or ``forced()``; return its result or None."""
    task = asyncio.ensure_future(work)
    while not task.done():
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0 or forced():
            task.cancel()
            return None
        await asyncio.wait([task], timeout=min(remaining, 0.1))
    result: int = task.result()
    return result


def _start_observing() -> None:
    """Open the control channel (revocation across processes) and start syncing metrics."""
    from . import metrics

    control.ensure_started()
    metrics.ensure_syncing()


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Fold asyncio's per-accept "out of system resource" tracebacks into one WARNING per burst."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith(_ACCEPT_OUT_OF_RESOURCES):
            _accept_errors.hit(loop, context.get("exception"))
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def serve_sockets(app: Any, sockets: list[socket.socket], options: dict[str, Any]) -> int:
    """Serve ``app`` on the listening ``sockets`` until SIGTERM/SIGINT; return the exit status.

    ``options`` are :func:`~wsviews.serving.build_config`'s keyword
    arguments (``loop``, ``http``, ``log_level``, ``access_log``, ...).
    """
    add_uvicorn_log_handlers(options.get("use_colors"))
    server = WSViewsServer(build_config(app, **options))
    try:
        server.run(sockets=sockets)
    except SystemExit as exc:  # uvicorn exits when the lifespan startup fails
        return int(exc.code or 0) if isinstance(exc.code, int) else STARTUP_FAILURE
    return 0 if server.started else STARTUP_FAILURE
