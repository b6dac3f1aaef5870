"""Run ``manage.py serve --workers N``: N worker processes sharing one listening socket.

The parent binds the socket once and hands it to each worker (spawned, so
no Django state, database or Redis connection crosses a fork). One shared
socket rather than one ``SO_REUSEPORT`` socket per worker: Linux does not
move the connections queued on a closing ``SO_REUSEPORT`` socket to its
siblings, so a worker that restarts or drains would reset them, and the
parent keeps the port bound while workers come and go.

On SIGTERM or SIGINT the parent closes its copy of the socket first, then
sends each worker SIGTERM; each drains (:mod:`wsviews.drain`) and exits 0;
the parent exits 0 when they all did. A worker that dies is started again,
unless it failed while starting (status 3), which would only repeat: then
everything stops.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from .serving import STARTUP_FAILURE

logger = logging.getLogger("wsviews.serving")

# A worker that keeps dying is restarted at most this often.
RESTART_DELAY = 1.0


def serve_worker(sock: socket.socket, options: dict[str, Any]) -> None:
    """Set up Django and serve ``sock`` with wsviews' server until SIGTERM (a worker's main)."""
    # Stopped while still starting: nothing to drain yet, so a clean exit.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    import django

    django.setup(set_prefix=False)
    from .server import serve_sockets
    from .serving import asgi_application_setting, load_application

    status = serve_sockets(load_application(asgi_application_setting()), [sock], options)
    if status:
        raise SystemExit(status)


def _exit_cleanly(sig: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


class Supervisor:
    """Keep ``workers`` processes serving ``sock``; stop them all on SIGTERM or SIGINT."""

    def __init__(self, sock: socket.socket, workers: int, options: dict[str, Any],
                 stop_timeout: float) -> None:
        self.sock = sock
        self.workers = workers
        self.options = options
        self.stop_timeout = stop_timeout
        self.processes: list[BaseProcess] = []
        self._context = multiprocessing.get_context("spawn")
        self._stopping = False
        self._failed = False

    def run(self) -> int:
        """Serve until told to stop; return the exit status (0 when every worker drained cleanly)."""
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            logger.info("Started supervisor process [%d] with %d workers", os.getpid(), self.workers)
            self.processes = [self._spawn() for _ in range(self.workers)]
            while not self._stopping:
                self._watch()
            return self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _spawn(self) -> BaseProcess:
        process = self._context.Process(target=serve_worker, args=(self.sock, self.options),
                                        name="wsviews-worker", daemon=False)
        process.start()
        return process

    def _watch(self) -> None:
        wait([p.sentinel for p in self.processes], timeout=0.25)
        for index, process in enumerate(self.processes):
            if process.is_alive() or self._stopping:
                continue
            if process.exitcode == STARTUP_FAILURE:
                logger.error("Worker [%s] failed to start (see above); stopping.", process.pid)
                self._failed = True
                self._stopping = True
                return
            logger.warning("Worker [%s] died with status %s; starting another.",
                           process.pid, process.exitcode)
            time.sleep(RESTART_DELAY)
            self.processes[index] = self._spawn()

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _stop_all(self) -> int:
        # The parent's copy first: while it is open the kernel keeps queueing
        # connections nobody will accept.
        self.sock.close()
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
        status = 1 if self._failed else 0
        for process in self.processes:
            if process.is_alive():
                logger.error("Worker [%s] did not stop within %gs; killing it.",
                             process.pid, self.stop_timeout)
                process.kill()
                process.join()
                status = 1
            elif process.exitcode not in (0, -signal.SIGTERM) and not self._failed:
                # -SIGTERM: stopped before Python ran a line of it, so it served nothing.
                logger.error("Worker [%s] exited with status %s.", process.pid, process.exitcode)
                status = 1
        logger.info("Stopped supervisor process [%d]", os.getpid())
        return status
