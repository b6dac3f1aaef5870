"""uvicorn's configuration built from wsviews' settings, shared by every entry point.

``manage.py serve``, ``manage.py runserver`` and ``wsviews.workers.UvicornWorker``
all call :func:`build_config`, so the limits hold however the application is
served by us: the websocket message size ceiling enforced by the protocol
before a message is buffered, ping interval and timeout, handshake and write
timeouts, the connection limit, the listen backlog, the drain window, and the
fastest event loop and HTTP parser that are installed. :func:`mark_applied`
records that they are in force, so the application's lifespan startup can
warn when another server runs it without them.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from typing import IO, Any, Literal

import uvicorn
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from uvicorn.config import LOGGING_CONFIG

from .conf import wsviews_settings

logger = logging.getLogger("wsviews.serving")

STARTUP_FAILURE = 3  # uvicorn's exit status for a server that could not start

LoopChoice = Literal["auto", "uvloop", "asyncio"]
HttpChoice = Literal["auto", "httptools", "h11"]

WS_PROTOCOL = "wsviews.protocols:WebSocketProtocol"
HTTP_PROTOCOLS = {
    "httptools": "wsviews.protocols:HttpToolsProtocol",
    "h11": "wsviews.protocols:H11Protocol",
}
# File descriptors kept free of client connections: Redis and database
# connections, log files, templates and static files still need some.
FD_RESERVE_MIN = 32
FD_RESERVE_FRACTION = 16


@dataclass(frozen=True)
class Limits:
    """What the protocols enforce per connection, and the shutdown window."""

    handshake_timeout: float
    write_timeout: float
    drain_timeout: float
    # Open connections past which a new TCP connection is closed at accept.
    fd_budget: int | None


class ServingConfig(uvicorn.Config):
    """uvicorn's ``Config`` carrying wsviews' :class:`Limits` to the protocols and the server."""

    def __init__(self, app: Any, *, limits: Limits, **kwargs: Any) -> None:
        self.limits = limits
        # Set by the server when it starts draining: late upgrades get 503.
        self.draining = False
        super().__init__(app, **kwargs)


def loop_name(choice: LoopChoice = "auto") -> str:
    """Return the event loop ``choice`` gives here: 'uvloop' when auto finds it importable, else 'asyncio'."""
    if choice != "auto":
        return choice
    if sys.platform != "win32" and importlib.util.find_spec("uvloop") is not None:
        return "uvloop"
    return "asyncio"


def http_name(choice: HttpChoice = "auto") -> str:
    """Return the HTTP parser ``choice`` gives here: 'httptools' when auto finds it, else 'h11'."""
    if choice != "auto":
        return choice
    return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


def stack_description(config: uvicorn.Config) -> str:
    """Return e.g. 'uvloop + httptools' for the loop and HTTP parser ``config`` uses."""
    http = config.http if isinstance(config.http, str) else getattr(config.http, "parser_name", "custom")
    return f"{config.loop} + {http}"


def message_size_ceiling() -> int:
    """Return the largest message any route accepts: the setting, or a larger ``max_message_size``.

    The server refuses anything larger (1009) from the frame header, before
    the payload is buffered; a view with a smaller limit checks its own.
    """
    from .decorators import websocket_options

    ceiling = wsviews_settings.MAX_MESSAGE_SIZE
    for callback in _route_callbacks():
        options = websocket_options(callback)
        if options is not None and options.max_message_size is not None:
            ceiling = max(ceiling, options.max_message_size)
    return ceiling


def _route_callbacks() -> Iterator[Any]:
    from django.urls import get_resolver

    from .routing import routing_resolver

    resolvers = [get_resolver()]
    discovered = routing_resolver()
    if discovered is not None:
        resolvers.append(discovered)
    while resolvers:
        for pattern in resolvers.pop().url_patterns:
            if hasattr(pattern, "url_patterns"):
                resolvers.append(pattern)
            else:
                yield pattern.callback


def raise_fd_limit() -> int | None:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed; return the soft limit in force.

    Return None where there are no such limits (Windows).
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard
    if sys.platform == "darwin":  # macOS refuses RLIM_INFINITY and anything over OPEN_MAX
        wanted = min(hard, 10240)
    if wanted != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            logger.debug("Could not raise RLIMIT_NOFILE from %s to %s: %s", soft, wanted, exc)
    return None if soft == resource.RLIM_INFINITY else soft


def fd_budget(fd_limit: int | None) -> int | None:
    """Return how many client connections fit under ``fd_limit``, keeping a reserve for everything else."""
    if fd_limit is None:
        return None
    return max(1, fd_limit - max(FD_RESERVE_MIN, fd_limit // FD_RESERVE_FRACTION))


def limits(*, drain_timeout: float | None = None, fd_limit: int | None = None) -> Limits:
    """Return the :class:`Limits` of the settings (``drain_timeout`` overrides the setting)."""
    return Limits(
        handshake_timeout=wsviews_settings.HANDSHAKE_TIMEOUT,
        write_timeout=wsviews_settings.WRITE_TIMEOUT,
        drain_timeout=wsviews_settings.DRAIN_TIMEOUT if drain_timeout is None else drain_timeout,
        fd_budget=fd_budget(fd_limit),
    )


def build_config(
    app: Any,
    *,
    loop: LoopChoice = "auto",
    http: HttpChoice = "auto",
    ws: str | None = None,
    drain_timeout: float | None = None,
    ping_interval: float | None = None,
    ping_timeout: float | None = None,
    **kwargs: Any,
) -> ServingConfig:
    """Return uvicorn's configuration for ``app`` with wsviews' settings applied.

    ``ws`` names another of uvicorn's websocket implementations (runserver's
    ``--ws``); it then runs without wsviews' write timeout and close deadline.
    ``ping_interval``/``ping_timeout`` override the settings (0 disables);
    ``kwargs`` go to uvicorn's ``Config`` as they are (host, port, log_level, ...).
    """
    fd_limit = raise_fd_limit()
    serving_limits = limits(drain_timeout=drain_timeout, fd_limit=fd_limit)
    interval = wsviews_settings.PING_INTERVAL if ping_interval is None else ping_interval
    timeout = wsviews_settings.PING_TIMEOUT if ping_timeout is None else ping_timeout
    max_connections = wsviews_settings.MAX_CONNECTIONS
    budget = serving_limits.fd_budget
    if budget is not None:
        max_connections = budget if max_connections is None else min(max_connections, budget)
    parser = http_name(http)
    config = ServingConfig(
        app,
        limits=serving_limits,
        loop=loop_name(loop),
        http=import_string(HTTP_PROTOCOLS[parser].replace(":", ".")),
        ws=ws or import_string(WS_PROTOCOL.replace(":", ".")),
        ws_max_size=message_size_ceiling(),
        ws_ping_interval=interval or None,
        ws_ping_timeout=timeout or None,
        ws_per_message_deflate=wsviews_settings.COMPRESSION,
        limit_concurrency=max_connections,
        backlog=wsviews_settings.BACKLOG,
        timeout_graceful_shutdown=int(serving_limits.drain_timeout) + 1,
        **{"lifespan": default_lifespan(app), "log_config": None, **kwargs},
    )
    return config


def describe(config: ServingConfig) -> str:
    """Return the one line that says what serves and which limits hold."""
    limit = config.limits
    ws = config.ws if isinstance(config.ws, str) else "websockets-sansio"
    return (
        f"wsviews serving on {stack_description(config)} ({ws}): messages up to "
        f"{config.ws_max_size} bytes, handshake timeout {limit.handshake_timeout:g}s, write timeout "
        f"{limit.write_timeout:g}s, drain {limit.drain_timeout:g}s, at most "
        f"{config.limit_concurrency or 'unlimited'} connections"
    )


_applied = False


def mark_applied() -> None:
    """Record that this process serves with wsviews' limits (no foreign-server warning)."""
    global _applied
    _applied = True


def applied() -> bool:
    """Return True if one of wsviews' entry points serves this process."""
    return _applied


def add_uvicorn_log_handlers(use_colors: bool | None = None) -> None:
    """Give uvicorn's loggers the console handlers of uvicorn's ``LOGGING_CONFIG``, unless LOGGING did.

    Passing that config to uvicorn would run ``dictConfig``, which closes
    every handler the project's LOGGING set up; so the handlers it describes
    are built here, for the loggers that have none. wsviews' own serving
    lines go the same way when LOGGING gives the ``wsviews`` logger nothing.
    """
    formatters, handlers = LOGGING_CONFIG["formatters"], LOGGING_CONFIG["handlers"]
    loggers = dict(LOGGING_CONFIG["loggers"])
    loggers["wsviews"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    for name, logger_config in loggers.items():
        named = logging.getLogger(name)
        if named.handlers or not logger_config.get("handlers"):
            continue
        if name == "wsviews" and logging.getLogger().handlers:
            continue  # the root logger (LOGGING or basicConfig) already shows wsviews' lines
        for handler_name in logger_config["handlers"]:
            handler_config = handlers[handler_name]
            formatter_config = formatters[handler_config["formatter"]]
            handler = logging.StreamHandler(_stream(handler_config["stream"]))
            handler.setFormatter(import_string(formatter_config["()"])(
                formatter_config["fmt"], use_colors=use_colors))
            named.addHandler(handler)
        named.propagate = logger_config.get("propagate", True)
        if name == "wsviews" and named.level == logging.NOTSET:
            named.setLevel(logging.INFO)


def _stream(name: str) -> IO[str]:
    """Return the stream an ``ext://sys.stderr``-style name refers to."""
    stream: IO[str] = getattr(sys, name.removeprefix("ext://sys."))
    return stream


def worker_count(value: int | None) -> int:
    """Return ``value``, else ``$WEB_CONCURRENCY``, else 1."""
    if value is not None:
        return value
    return int(os.environ.get("WEB_CONCURRENCY", "1") or "1")


def asgi_application_setting() -> str | None:
    """Return ``ASGI_APPLICATION`` if it is set; raise ``ImproperlyConfigured`` if it is not a dotted path."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if path is None or path == "":
        return None
    if not isinstance(path, str) or "." not in path.strip("."):
        raise ImproperlyConfigured(
            f"ASGI_APPLICATION must be a dotted path such as 'mysite.asgi.application', "
            f"not {path!r}. Fix it, or remove it to serve wsviews' application."
        )
    return path


def load_application(path: str | None) -> Any:
    """Import ``ASGI_APPLICATION`` (``path``), or build wsviews' application when it is not set.

    Raise ``ImproperlyConfigured`` naming the fix when the path does not
    import; an import error inside the application keeps its traceback.
    """
    if path is None:
        from .asgi import get_asgi_application

        return get_asgi_application()
    module_path, _, name = path.rpartition(".")
    try:
        module = import_module(module_path)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not missing or not (module_path + ".").startswith(missing + "."):
            raise  # a module imported by the application is missing: keep its traceback
        raise ImproperlyConfigured(
            f"ASGI_APPLICATION {path!r} cannot be imported: there is no module {missing!r}. "
            "Fix the dotted path, or remove ASGI_APPLICATION to serve wsviews' application."
        ) from exc
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImproperlyConfigured(
            f"ASGI_APPLICATION {path!r} cannot be imported: module {module_path!r} has no "
            f"attribute {name!r}. Fix the dotted path, or remove ASGI_APPLICATION."
        ) from None


def default_lifespan(app: Any) -> Literal["on", "auto"]:
    """Return 'on' for wsviews' application, which answers lifespan, else 'auto'.

    A Channels ``ProtocolTypeRouter`` or Django's ``ASGIHandler`` raises on
    lifespan, and 'on' would refuse to start them.
    """
    from .asgi import is_wsviews_application

    return "on" if is_wsviews_application(app) else "auto"
