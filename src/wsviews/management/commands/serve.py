"""``manage.py serve``: the production server, with wsviews' settings applied to it."""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.commands.runserver import naiveip_re

from ...conf import wsviews_settings
from ...serving import (
    asgi_application_setting,
    http_name,
    load_application,
    loop_name,
    message_size_ceiling,
    worker_count,
)

DEFAULT_ADDRPORT = "127.0.0.1:8000"
LOG_LEVELS = ("warning", "info", "debug", "trace")


class Command(BaseCommand):  # type: ignore[misc, unused-ignore]  # Django is untyped here
    help = (
        "Serve HTTP and websockets in production on uvicorn, with wsviews' limits, timeouts "
        "and graceful drain applied (see docs/serving.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "addrport", nargs="?", default=DEFAULT_ADDRPORT,
            help=f"Port or address:port to listen on (default: {DEFAULT_ADDRPORT}; 0:8000 for every "
                 "IPv4 interface, [::]:8000 for IPv6).",
        )
        parser.add_argument(
            "--workers", type=int, default=None, metavar="N",
            help="Worker processes sharing the socket (default: $WEB_CONCURRENCY, else 1). "
                 "Use a Redis channel layer with more than one.",
        )
        parser.add_argument(
            "--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
            help="Event loop (default: auto, uvloop when installed).",
        )
        parser.add_argument(
            "--http", choices=("auto", "httptools", "h11"), default="auto",
            help="HTTP parser (default: auto, httptools when installed).",
        )
        parser.add_argument(
            "--forwarded-allow-ips", default=None, metavar="IPS",
            help="Comma-separated proxy addresses whose X-Forwarded-For/-Proto are trusted "
                 "(default: $FORWARDED_ALLOW_IPS, else 127.0.0.1).",
        )
        parser.add_argument(
            "--no-access-log", action="store_false", dest="access_log",
            help="Do not log a line for each HTTP request and websocket.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Check the settings and options, bind the socket, then serve until SIGTERM."""
        host, port, ipv6 = _parse_addrport(options["addrport"])
        workers = worker_count(options["workers"])
        if workers < 1:
            raise CommandError("--workers must be 1 or more.")
        try:
            path = asgi_application_setting()
            wsviews_settings.MAX_MESSAGE_SIZE  # noqa: B018  (validated now, not in each worker)
            message_size_ceiling()
            for name in ("HANDSHAKE_TIMEOUT", "WRITE_TIMEOUT", "DRAIN_TIMEOUT", "PING_INTERVAL",
                         "PING_TIMEOUT", "MAX_CONNECTIONS", "BACKLOG"):
                getattr(wsviews_settings, name)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        for name, choice, found in (("uvloop", options["loop"], loop_name(options["loop"])),
                                    ("httptools", options["http"], http_name(options["http"]))):
            if choice == name and found == name and not _importable(name):
                raise CommandError(f"--{'loop' if name == 'uvloop' else 'http'} {name} needs "
                                   f"'pip install {name}'; or pass auto.")
        level = LOG_LEVELS[max(0, min(int(options["verbosity"]), len(LOG_LEVELS) - 1))]
        colors = False if options.get("no_color") else True if options.get("force_color") else None
        serve_options: dict[str, Any] = {
            "loop": options["loop"],
            "http": options["http"],
            "log_level": level,
            "access_log": options["access_log"],
            "use_colors": colors,
        }
        if options["forwarded_allow_ips"] is not None:
            serve_options["forwarded_allow_ips"] = options["forwarded_allow_ips"]
        sock = _bind(host, port, ipv6, wsviews_settings.BACKLOG)
        shown = f"[{host}]" if ipv6 else host
        self.stdout.write(
            f"wsviews serving http://{shown}:{sock.getsockname()[1]}/ with {workers} worker(s) on "
            f"{loop_name(options['loop'])} + {http_name(options['http'])}; quit with SIGTERM or CONTROL-C."
        )
        self.stdout.flush()
        if workers == 1:
            from ...server import serve_sockets

            status = serve_sockets(load_application(path), [sock], serve_options)
        else:
            from ...supervisor import Supervisor

            # Workers drain within the window; give them a little more before killing.
            stop_timeout = wsviews_settings.DRAIN_TIMEOUT + 5
            status = Supervisor(sock, workers, serve_options, stop_timeout).run()
        if status:
            sys.exit(status)


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def _parse_addrport(addrport: str) -> tuple[str, int, bool]:
    """Return host, port and whether it is IPv6, from runserver's ``addrport`` forms."""
    match = naiveip_re.match(addrport)
    if match is None:
        raise CommandError(f"{addrport!r} is not a port number or address:port pair "
                           "(e.g. 8000, 127.0.0.1:8000, 0:8000, [::1]:8000).")
    addr, ipv4, ipv6, fqdn, port = match.groups()
    if not port.isdigit():
        raise CommandError(f"{port!r} is not a valid port number.")
    host = addr or "127.0.0.1"
    if ipv6:
        host = host[1:-1]
    elif host == "0":
        host = "0.0.0.0"
    return host, int(port), bool(ipv6)


def _bind(host: str, port: int, ipv6: bool, backlog: int) -> socket.socket:
    """Return a listening socket on ``host:port`` (SO_REUSEADDR: a restart binds past TIME_WAIT)."""
    sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_STREAM)
    try:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
    sock.set_inheritable(True)
    return sock
