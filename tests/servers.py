"""The names tests import to start servers; they live in the shared harness (``tests/harness/``)."""

from harness import (
    EXAMPLE,
    REDIS_SERVER,
    ROOT,
    TESTS,
    WS,
    Server,
    free_port,
    server_env,
    start,
    start_runserver,
    start_uvicorn,
    wait_for_port,
)

__all__ = [
    "EXAMPLE", "REDIS_SERVER", "ROOT", "TESTS", "WS", "Server", "free_port", "server_env", "start",
    "start_runserver", "start_uvicorn", "wait_for_port",
]
