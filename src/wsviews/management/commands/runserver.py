"""``runserver`` on uvicorn: HTTP, websockets and static files from one process.

Django's options and habits are kept (autoreload, system checks, the
unapplied-migrations warning, static files, the banner); only the server
underneath changes. Under the autoreloader Django runs ``inner_run`` in a
thread, where uvicorn cannot install signal handlers, so the main thread, which
gets the signals and the reload, stops uvicorn gracefully before the process
exits: open sockets are closed with 1012 (service restart) and the port is free
for the next process.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import threading
from datetime import datetime
from importlib import import_module
from typing import Any

import uvicorn
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from django.utils import autoreload
from django.utils.version import get_docs_version
from uvicorn.config import WS_PROTOCOLS, LifespanType
from uvicorn.importer import ImportFromStringError, import_from_string
from uvicorn.logging import AccessFormatter, DefaultFormatter

from ...asgi import WSViewsApplication, get_asgi_application
from ...endpoints import DEFAULT_MAX_MESSAGE_SIZE
from ...types import ASGIApp

if apps.is_installed("django.contrib.staticfiles"):
    from django.contrib.staticfiles.management.commands.runserver import (
        Command as RunserverCommand,
    )
else:
    from django.core.management.commands.runserver import Command as RunserverCommand

# uvicorn's sans-I/O websockets protocol where this uvicorn has it (0.35+).
DEFAULT_WS = "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "websockets"
WS_CHOICES = sorted(name for name in WS_PROTOCOLS if name != "none")
# --verbosity 0, 1 (the default: one line per request), 2, 3.
LOG_LEVELS = ("warning", "info", "debug", "trace")
BACKLOG = 2048
BIND_ERRORS = {
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}


class Command(RunserverCommand):
    help = (
        "Run the development server on uvicorn: HTTP and websockets from one process, "
        "static files served, code reloaded on change."
    )
    server_name = "ASGI/uvicorn"

    _server: uvicorn.Server | None = None
    _server_done: threading.Event | None = None

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--ws", choices=WS_CHOICES, default=DEFAULT_WS,
            help=f"uvicorn's websocket implementation (default: {DEFAULT_WS}).",
        )
        parser.add_argument(
            "--ws-ping-interval", type=float, default=20.0, metavar="SECONDS",
            help="Ping each websocket every SECONDS to keep it alive; 0 disables (default: 20).",
        )
        parser.add_argument(
            "--ws-ping-timeout", type=float, default=20.0, metavar="SECONDS",
            help="Close a websocket whose ping is not answered within SECONDS; "
                 "0 waits forever (default: 20).",
        )
        parser.add_argument(
            "--lifespan", choices=("on", "auto", "off"), default=None,
            help="ASGI lifespan events: 'on' stops the server if startup fails, 'auto' "
                 "ignores an application that rejects them (default: 'on' for wsviews' "
                 "application, 'auto' for another ASGI_APPLICATION).",
        )
        parser.add_argument(
            "--shutdown-timeout", type=int, default=3, metavar="SECONDS",
            help="On reload or quit, wait up to SECONDS for open connections to close "
                 "(default: 3).",
        )
        parser.add_argument(
            "--no-access-log", action="store_false", dest="access_log",
            help="Do not log a line for each HTTP request and websocket.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Read the settings and check the options, then run the server."""
        self.asgi_application = _asgi_application_setting()
        self.max_message_size = _max_message_size_setting()
        _check_options(options)
        super().handle(*args, **options)

    def run(self, **options: Any) -> None:
        """Run the server, in a child process that reloads on code changes unless --noreload."""
        self._server = None
        self._server_done = threading.Event()
        if not options["use_reloader"]:
            self.inner_run(None, **options)
            return
        try:
            autoreload.run_with_reloader(self.inner_run, **options)
        finally:
            # A reload (SystemExit 3), SIGTERM (SystemExit 0) and Ctrl-C all end up
            # here in the main thread while uvicorn still serves in Django's thread.
            self.stop_server(options["shutdown_timeout"])

    def inner_run(self, *args: Any, **options: Any) -> None:
        """Check the project, bind the port and serve on uvicorn until stopped."""
        # An exception silenced by ManagementUtility.execute is raised in the child.
        autoreload.raise_last_exception()
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            check_kwargs = BaseCommand.get_check_kwargs(self, options)
            check_kwargs["display_num_errors"] = True
            self.check(**check_kwargs)
        self.check_migrations()
        for conn in connections.all(initialized_only=True):
            conn.close()
        app = self.get_handler(*args, **options)
        try:
            sock = self.bind()
        except OSError as exc:
            self.stderr.write(f"Error: {BIND_ERRORS.get(exc.errno or 0, exc)}")
            os._exit(1)  # sys.exit() would end only Django's thread
        self.on_bind(sock.getsockname()[1])
        try:
            self.serve(app, sock, options)
        except KeyboardInterrupt:  # --noreload: uvicorn re-raises Ctrl-C once it has stopped
            if options.get("shutdown_message"):
                self.stdout.write(options["shutdown_message"])
            sys.exit(0)

    def get_handler(self, *args: Any, **options: Any) -> ASGIApp:
        """Return the ASGI application, serving static files as Django's runserver does."""
        app = load_application(self.asgi_application)
        serve_static = options.get("use_static_handler", False) and (
            settings.DEBUG or options.get("insecure_serving", False)
        )
        if serve_static:
            from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

            return ASGIStaticFilesHandler(app)
        return app

    def bind(self) -> socket.socket:
        """Return a socket listening on the address and port given on the command line."""
        host = "0.0.0.0" if self.addr == "0" else self.addr
        sock = socket.socket(socket.AF_INET6 if self.use_ipv6 else socket.AF_INET)
        try:
            if os.name == "posix":
                # The reloaded process binds while the old connections sit in TIME_WAIT.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, int(self.port)))
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            raise
        return sock

    def serve(self, app: ASGIApp, sock: socket.socket, options: dict[str, Any]) -> None:
        """Serve ``app`` on ``sock`` with uvicorn until it is stopped."""
        server = uvicorn.Server(self.uvicorn_config(app, options))
        self._server = server
        try:
            server.run(sockets=[sock])
        except SystemExit:
            if server.started:
                raise
            # uvicorn exits with 3, which Django's reloader would take as "reload".
            raise CommandError(
                "The ASGI application failed to start: its lifespan startup failed (see "
                "the error above). Fix it, or pass --lifespan off."
            ) from None
        finally:
            sock.close()
            self._server = None
            if self._server_done is not None:
                self._server_done.set()

    def uvicorn_config(self, app: ASGIApp, options: dict[str, Any]) -> uvicorn.Config:
        """Return uvicorn's configuration for ``app`` from the settings and options."""
        level = LOG_LEVELS[max(0, min(int(options["verbosity"]), len(LOG_LEVELS) - 1))]
        colors = False if options.get("no_color") else True if options.get("force_color") else None
        _add_uvicorn_log_handlers(colors)
        return uvicorn.Config(
            app,
            interface="asgi3",
            ws=options["ws"],
            ws_max_size=self.max_message_size,
            ws_ping_interval=options["ws_ping_interval"] or None,
            ws_ping_timeout=options["ws_ping_timeout"] or None,
            lifespan=options["lifespan"] or _default_lifespan(app),
            log_config=None,
            log_level=level,
            access_log=options["access_log"],
            use_colors=colors,
            timeout_graceful_shutdown=options["shutdown_timeout"],
        )

    def stop_server(self, timeout: int) -> None:
        """Ask uvicorn to shut down gracefully; wait for it a little longer than ``timeout``."""
        server, done = self._server, self._server_done
        if server is None or done is None:
            return
        server.should_exit = True
        if not done.wait(timeout + 2):
            self.stderr.write(f"uvicorn did not stop within {timeout + 2}s; exiting anyway.")

    def on_bind(self, server_port: int) -> None:
        """Print Django's startup banner, naming uvicorn as the server."""
        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        if self._raw_ipv6:
            addr = f"[{self.addr}]"
        elif self.addr == "0":
            addr = "0.0.0.0"
        else:
            addr = self.addr
        now = datetime.now().strftime("%B %d, %Y - %X")
        self.stdout.write(
            f"{now}\n"
            f"Django version {self.get_version()}, using settings {settings.SETTINGS_MODULE!r}\n"
            f"Starting {self.server_name} development server at "
            f"{self.protocol}://{addr}:{server_port}/\n"
            f"Quit the server with {quit_command}."
        )
        if os.environ.get("DJANGO_RUNSERVER_HIDE_WARNING") != "true":
            self.stdout.write(self.style.WARNING(
                "WARNING: This is a development server. Do not use it in a production "
                "setting. Use a production ASGI server instead.\nFor more information on "
                "production servers see: https://docs.djangoproject.com/en/"
                f"{get_docs_version()}/howto/deployment/"
            ))


def load_application(path: str | None) -> ASGIApp:
    """Import ``ASGI_APPLICATION``, or build wsviews' application when it is not set."""
    if path is None:
        return get_asgi_application()
    module_path, _, name = path.rpartition(".")
    try:
        module = import_module(module_path)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not missing or not (module_path + ".").startswith(missing + "."):
            raise  # a module imported by the application is missing: keep its traceback
        raise CommandError(
            f"ASGI_APPLICATION {path!r} cannot be imported: there is no module {missing!r}. "
            "Fix the dotted path, or remove ASGI_APPLICATION to serve wsviews' application."
        ) from exc
    try:
        app: ASGIApp = getattr(module, name)
    except AttributeError:
        raise CommandError(
            f"ASGI_APPLICATION {path!r} cannot be imported: module {module_path!r} has no "
            f"attribute {name!r}. Fix the dotted path, or remove ASGI_APPLICATION."
        ) from None
    return app


def _asgi_application_setting() -> str | None:
    """Return ``ASGI_APPLICATION`` if it is set; raise if it is not a dotted path."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if path is None or path == "":
        return None
    if not isinstance(path, str) or "." not in path.strip("."):
        raise CommandError(
            f"ASGI_APPLICATION must be a dotted path such as 'mysite.asgi.application', "
            f"not {path!r}. Fix it, or remove it to serve wsviews' application."
        )
    return path


def _max_message_size_setting() -> int:
    """Return ``WSVIEWS_MAX_MESSAGE_SIZE``; raise if it is not a positive int."""
    size = getattr(settings, "WSVIEWS_MAX_MESSAGE_SIZE", DEFAULT_MAX_MESSAGE_SIZE)
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise CommandError(
            f"WSVIEWS_MAX_MESSAGE_SIZE must be a positive int (bytes), not {size!r}; "
            "e.g. WSVIEWS_MAX_MESSAGE_SIZE = 1024 * 1024."
        )
    return size


def _check_options(options: dict[str, Any]) -> None:
    """Raise if a timeout is negative or the --ws implementation cannot be imported."""
    for name in ("ws_ping_interval", "ws_ping_timeout", "shutdown_timeout"):
        if options[name] < 0:
            raise CommandError(f"--{name.replace('_', '-')} must be 0 or more seconds.")
    try:
        import_from_string(WS_PROTOCOLS[options["ws"]])
    except (ImportFromStringError, ImportError) as exc:
        raise CommandError(
            f"--ws {options['ws']} cannot be used: {exc}. Install its package, or pass "
            f"--ws {DEFAULT_WS}."
        ) from None


def _default_lifespan(app: Any) -> LifespanType:
    """Return 'on' for wsviews' application, which answers lifespan, else 'auto'.

    A Channels ``ProtocolTypeRouter`` or Django's ``ASGIHandler`` raises on
    lifespan, and 'on' would refuse to start them.
    """
    for _ in range(5):  # see through ASGIStaticFilesHandler and similar wrappers
        if isinstance(app, WSViewsApplication):
            return "on"
        app = getattr(app, "application", None)
    return "auto"


def _add_uvicorn_log_handlers(use_colors: bool | None) -> None:
    """Give uvicorn's loggers its usual console handlers, unless LOGGING gave them some.

    uvicorn's own ``log_config`` runs ``dictConfig``, which would close the
    handlers the project's LOGGING set up.
    """
    handlers = (
        ("uvicorn", DefaultFormatter("%(levelprefix)s %(message)s", use_colors=use_colors),
         sys.stderr),
        ("uvicorn.access", AccessFormatter(
            '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
            use_colors=use_colors,
        ), sys.stdout),
    )
    for name, formatter, stream in handlers:
        logger = logging.getLogger(name)
        if logger.handlers:
            continue
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        logger.propagate = False
