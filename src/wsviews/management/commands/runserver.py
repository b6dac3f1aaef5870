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

import os
import re
import socket
import threading
from typing import Any, ClassVar

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.utils import autoreload
from uvicorn.config import WS_PROTOCOLS
from uvicorn.importer import ImportFromStringError, import_from_string

from ...conf import wsviews_settings
from ...server import WSViewsServer
from ...serving import (
    ServingConfig,
    add_uvicorn_log_handlers,
    asgi_application_setting,
    build_config,
    default_lifespan,
    http_name,
    load_application,
    loop_name,
)
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


class Command(RunserverCommand):  # type: ignore[misc, unused-ignore]  # Django is untyped here
    help = (
        "Run the development server on uvicorn: HTTP and websockets from one process, "
        "static files served, code reloaded on change."
    )
    server_name = "ASGI/uvicorn"
    stdout: OutputWrapper

    _server: WSViewsServer | None = None
    _server_done: threading.Event | None = None

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--ws", choices=WS_CHOICES, default=DEFAULT_WS,
            help=f"uvicorn's websocket implementation (default: {DEFAULT_WS}).",
        )
        parser.add_argument(
            "--ws-ping-interval", type=float, default=None, metavar="SECONDS",
            help="Ping each websocket every SECONDS to keep it alive; 0 disables "
                 "(default: WSVIEWS_PING_INTERVAL, 20).",
        )
        parser.add_argument(
            "--ws-ping-timeout", type=float, default=None, metavar="SECONDS",
            help="Close a websocket whose ping is not answered within SECONDS; "
                 "0 waits forever (default: WSVIEWS_PING_TIMEOUT, 20).",
        )
        parser.add_argument(
            "--lifespan", choices=("on", "auto", "off"), default=None,
            help="ASGI lifespan events: 'on' stops the server if startup fails, 'auto' "
                 "ignores an application that rejects them (default: 'on' for wsviews' "
                 "application, 'auto' for another ASGI_APPLICATION).",
        )
        parser.add_argument(
            "--shutdown-timeout", type=int, default=3, metavar="SECONDS",
            help="On reload or quit, drain open connections within SECONDS "
                 "(default: 3; websockets get 1012).",
        )
        parser.add_argument(
            "--no-access-log", action="store_false", dest="access_log",
            help="Do not log a line for each HTTP request and websocket.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Read the settings and check the options, then let Django's command run the server."""
        try:
            self.asgi_application = asgi_application_setting()
            for name in ("MAX_MESSAGE_SIZE", "HANDSHAKE_TIMEOUT", "WRITE_TIMEOUT", "PING_INTERVAL",
                         "PING_TIMEOUT", "MAX_CONNECTIONS", "BACKLOG"):
                getattr(wsviews_settings, name)
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
        try:
            app: ASGIApp = load_application(self.asgi_application)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
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
        options = getattr(self.server_cls, "options", {})
        self.stdout.write(
            f"Event loop {loop_name()}, HTTP parser {http_name()}, websockets "
            f"{options.get('ws', DEFAULT_WS)} (install uvloop and httptools for the fastest stack)."
            if (loop_name(), http_name()) != ("uvloop", "httptools") else
            f"Event loop uvloop, HTTP parser httptools, websockets {options.get('ws', DEFAULT_WS)}."
        )

    def serve(self, app: ASGIApp, sock: socket.socket, options: dict[str, Any]) -> None:
        """Serve ``app`` on ``sock`` with uvicorn until it is stopped."""
        server = WSViewsServer(self.uvicorn_config(app, options))
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

    def uvicorn_config(self, app: ASGIApp, options: dict[str, Any]) -> ServingConfig:
        """Return uvicorn's configuration for ``app``: wsviews' settings, then the options."""
        level = LOG_LEVELS[max(0, min(int(options["verbosity"]), len(LOG_LEVELS) - 1))]
        colors = False if options.get("no_color") else True if options.get("force_color") else None
        add_uvicorn_log_handlers(colors)
        return build_config(
            app,
            interface="asgi3",
            ws=None if options["ws"] == DEFAULT_WS else options["ws"],
            ping_interval=options["ws_ping_interval"],
            ping_timeout=options["ws_ping_timeout"],
            drain_timeout=options["shutdown_timeout"],
            lifespan=options["lifespan"] or default_lifespan(app),
            log_level=level,
            access_log=options["access_log"],
            use_colors=colors,
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
            sock.listen(wsviews_settings.BACKLOG)
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


def _check_options(options: dict[str, Any]) -> None:
    """Raise if a timeout is negative or the --ws implementation cannot be imported."""
    for name in ("ws_ping_interval", "ws_ping_timeout", "shutdown_timeout"):
        if options[name] is not None and options[name] < 0:
            raise CommandError(f"--{name.replace('_', '-')} must be 0 or more seconds.")
    try:
        import_from_string(WS_PROTOCOLS[options["ws"]])
    except (ImportFromStringError, ImportError) as exc:
        raise CommandError(
            f"--ws {options['ws']} cannot be used: {exc}. Install its package, or pass "
            f"--ws {DEFAULT_WS}."
        ) from None
