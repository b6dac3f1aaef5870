"""``runserver`` on uvicorn: HTTP, websockets and static files from one process.

Django's command does the work: options, autoreload, system checks, the
unapplied-migrations warning, the bind errors and the banner. What differs is
the server: Django's ``run()`` calls ``server_cls(address, handler, ipv6=...)``,
``on_bind(port)``, ``set_app(app)`` and ``serve_forever()``, and
:class:`UvicornServer` answers those calls by binding the socket and serving
the ASGI application on it with uvicorn.

Under the autoreloader Django runs ``inner_run`` in a thread, where uvicorn
cannot install signal handlers, so the main thread, which gets the signals and
the reload, stops uvicorn gracefully before the process exits: open sockets
are closed with 1012 (service restart) and the port is free for the next
process.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
from importlib import import_module
from typing import IO, Any, ClassVar

import uvicorn
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.utils import autoreload
from django.utils.module_loading import import_string
from uvicorn.config import LOGGING_CONFIG, WS_PROTOCOLS, LifespanType
from uvicorn.importer import ImportFromStringError, import_from_string

from ...asgi import get_asgi_application, is_wsviews_application
from ...conf import wsviews_settings
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


class Command(RunserverCommand):  # type: ignore[misc, unused-ignore]  # Django is untyped here
    help = (
        "Run the development server on uvicorn: HTTP and websockets from one process, "
        "static files served, code reloaded on change."
    )
    server_name = "ASGI/uvicorn"
    stdout: OutputWrapper

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
        """Read the settings and check the options, then let Django's command run the server."""
        self.asgi_application = _asgi_application_setting()
        try:
            self.max_message_size = wsviews_settings.MAX_MESSAGE_SIZE
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        _check_options(options)
        super().handle(*args, **options)

    def run(self, **options: Any) -> None:
        """Run the server, in a child process that reloads on code changes unless --noreload."""
        self._server = None
        self._server_done = threading.Event()
        self.server_cls = type("UvicornServer", (UvicornServer,), {"command": self, "options": options})
        if not options["use_reloader"]:
            self.inner_run(None, **options)
            return
        try:
            autoreload.run_with_reloader(self.inner_run, **options)
        finally:
            # A reload (SystemExit 3), SIGTERM (SystemExit 0) and Ctrl-C all end up
            # here in the main thread while uvicorn still serves in Django's thread.
            self.stop_server(options["shutdown_timeout"])

    def get_handler(self, *args: Any, **options: Any) -> ASGIApp:
        """Return the ASGI application, serving static files as Django's runserver does."""
        app = load_application(self.asgi_application)
        serve_static = options.get("use_static_handler", False) and (
            settings.DEBUG or options.get("insecure_serving", False)
        )
        if serve_static:
            from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

            static: ASGIApp = ASGIStaticFilesHandler(app)
            return static
        return app

    def on_bind(self, server_port: int) -> None:
        """Print Django's startup banner, naming uvicorn as the server."""
        stdout: OutputWrapper = self.stdout
        self.stdout = _ServerNamed(stdout, self.server_name)
        try:
            super().on_bind(server_port)
        finally:
            self.stdout = stdout

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


class UvicornServer:
    """The ``server_cls`` Django's ``run()`` drives, serving an ASGI application with uvicorn.

    The constructor binds the listening socket, so a busy port raises
    ``OSError`` where Django's ``inner_run`` turns it into its usual
    ``Error: That port is already in use.``; ``serve_forever()`` runs uvicorn
    on that socket. ``Command.run`` makes a subclass carrying the command and
    its options.
    """

    command: ClassVar[Command]
    options: ClassVar[dict[str, Any]]

    def __init__(self, server_address: tuple[str, int], handler_class: Any, ipv6: bool = False) -> None:
        host, port = server_address
        sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET)
        try:
            if os.name == "posix":
                # The reloaded process binds while the old connections sit in TIME_WAIT.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0" if host == "0" else host, port))
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            raise
        self.socket = sock
        self.server_port: int = sock.getsockname()[1]
        self.app: ASGIApp | None = None

    def set_app(self, app: ASGIApp) -> None:
        self.app = app

    def serve_forever(self) -> None:
        assert self.app is not None, "set_app() comes before serve_forever()"
        self.command.serve(self.app, self.socket, self.options)


class _ServerNamed:
    """Django's banner says "Starting [WSGI ]development server"; say which server this is."""

    _STARTING = re.compile(r"Starting (WSGI )?development server")

    def __init__(self, out: OutputWrapper, server_name: str) -> None:
        self._out = out
        self._starting = f"Starting {server_name} development server"

    def write(self, msg: str = "", *args: Any, **kwargs: Any) -> None:
        self._out.write(self._STARTING.sub(self._starting, msg), *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)


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
    return "on" if is_wsviews_application(app) else "auto"


def _add_uvicorn_log_handlers(use_colors: bool | None) -> None:
    """Give uvicorn's loggers the console handlers of uvicorn's ``LOGGING_CONFIG``, unless LOGGING did.

    Passing that config to uvicorn would run ``dictConfig``, which closes
    every handler the project's LOGGING set up; so the handlers it describes
    are built here, for the loggers that have none.
    """
    formatters, handlers = LOGGING_CONFIG["formatters"], LOGGING_CONFIG["handlers"]
    for name, logger_config in LOGGING_CONFIG["loggers"].items():
        logger = logging.getLogger(name)
        if logger.handlers or not logger_config.get("handlers"):
            continue
        for handler_name in logger_config["handlers"]:
            handler_config = handlers[handler_name]
            formatter_config = formatters[handler_config["formatter"]]
            handler = logging.StreamHandler(_stream(handler_config["stream"]))
            handler.setFormatter(import_string(formatter_config["()"])(
                formatter_config["fmt"], use_colors=use_colors))
            logger.addHandler(handler)
        logger.propagate = logger_config.get("propagate", True)


def _stream(name: str) -> IO[str]:
    """Return the stream an ``ext://sys.stderr``-style name refers to."""
    stream: IO[str] = getattr(sys, name.removeprefix("ext://sys."))
    return stream
