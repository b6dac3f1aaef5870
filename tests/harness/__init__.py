"""The harness shared by the tests and the benchmarks: server processes on free ports, and clients.

Tests import it from ``tests/`` (on ``sys.path`` under pytest); the scripts
in ``bench/`` put ``tests/`` on ``sys.path`` first. ``servers`` and
``wsclient`` in ``tests/`` re-export the names tests have always used.
"""

from .clients import close_sockets, connect, handshake_status, http, open_sockets, recv
from .processes import cpu_seconds, free_port, raise_nofile, rss_kib, stop_process, wait_for_port
from .servers import (
    EXAMPLE,
    REDIS_SERVER,
    ROOT,
    TESTS,
    WS,
    Server,
    launch,
    process_env,
    server_env,
    start,
    start_runserver,
    start_uvicorn,
    uvicorn_argv,
)

__all__ = [
    "EXAMPLE", "REDIS_SERVER", "ROOT", "TESTS", "WS", "Server", "close_sockets", "connect",
    "cpu_seconds", "free_port", "handshake_status", "http", "launch", "open_sockets",
    "process_env", "raise_nofile", "recv", "rss_kib", "server_env", "start", "start_runserver",
    "start_uvicorn", "stop_process", "uvicorn_argv", "wait_for_port",
]
