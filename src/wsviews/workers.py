"""``gunicorn -k wsviews.workers.UvicornWorker``: gunicorn manages the processes, wsviews serves.

Each worker runs :class:`wsviews.server.WSViewsServer` with the configuration
of :func:`wsviews.serving.build_config`, so the same limits, timeouts and
drain hold as under ``manage.py serve``. gunicorn's own options still apply
where they mean the same thing: ``--backlog``, ``--keep-alive``,
``--max-requests``, ``--forwarded-allow-ips``, TLS, and ``--timeout`` (the
worker heartbeat). gunicorn closes the listening sockets, then sends SIGTERM:
the worker drains and exits 0; SIGQUIT and SIGINT stop it at once.
"""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType
from typing import Any

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from .server import WSViewsServer
from .serving import build_config

logger = logging.getLogger("wsviews.serving")


class UvicornWorker(Worker):  # type: ignore[misc]  # gunicorn is untyped
    """A gunicorn worker serving the ASGI application with wsviews' server."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's lines go where gunicorn's do (--error-logfile, --access-logfile).
        for name, source in (("uvicorn.error", self.log.error_log), ("uvicorn.access", self.log.access_log),
                             ("wsviews.serving", self.log.error_log)):
            target = logging.getLogger(name)
            target.handlers = list(source.handlers)
            target.setLevel(source.level)
            target.propagate = False
        self._server: WSViewsServer | None = None

    def init_signals(self) -> None:
        # TERM and INT are the server's (drain); gunicorn's handlers would
        # only clear self.alive, which nothing here reads.
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.siginterrupt(signal.SIGUSR1, False)
        signal.signal(signal.SIGQUIT, self._quit_now)

    def _quit_now(self, sig: int, frame: FrameType | None) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True

    def run(self) -> None:
        config = build_config(self.wsgi, **self._config_kwargs())
        self._server = WSViewsServer(config)
        window = config.limits.drain_timeout
        if window + 1 >= self.cfg.graceful_timeout:
            logger.warning(
                "WSVIEWS_DRAIN_TIMEOUT (%gs) does not fit in gunicorn's --graceful-timeout (%ss): "
                "gunicorn kills workers before they drain. Pass --graceful-timeout %d.",
                window, self.cfg.graceful_timeout, int(window) + 5)
        # The sockets themselves, not gunicorn's wrappers: the loop closes them with its server.
        self._server.run(sockets=[getattr(sock, "sock", sock) for sock in self.sockets])
        if not self._server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def _config_kwargs(self) -> dict[str, Any]:
        cfg = self.cfg
        kwargs: dict[str, Any] = {
            "timeout_keep_alive": cfg.keepalive,
            "timeout_notify": self.timeout,
            "callback_notify": self._notify,
            "limit_max_requests": self.max_requests,
            "forwarded_allow_ips": cfg.forwarded_allow_ips,
        }
        if cfg.is_ssl:
            options = cfg.ssl_options
            kwargs.update(
                ssl_keyfile=options.get("keyfile"), ssl_certfile=options.get("certfile"),
                ssl_keyfile_password=options.get("password"), ssl_version=options.get("ssl_version"),
                ssl_cert_reqs=options.get("cert_reqs"), ssl_ca_certs=options.get("ca_certs"),
                ssl_ciphers=options.get("ciphers"),
            )
        return kwargs

    async def _notify(self) -> None:
        self.notify()
