"""Start ``manage.py serve`` (and plain uvicorn) for the serving tests, and look at the process."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

from servers import Server, free_port, start


def start_serve(log_path: Path, settings: dict[str, object] | None = None, args: list[str] | None = None,
                wrapper: list[str] | None = None, env: dict[str, str] | None = None) -> Server:
    """Run ``manage.py serve`` of the example project with ``settings`` on a free port."""
    port = free_port()
    argv = [*(wrapper or []), sys.executable, "manage.py", "serve", f"127.0.0.1:{port}", *(args or [])]
    merged = {"WSVIEWS_TEST_SETTINGS": json.dumps(settings or {}), **(env or {})}
    return start(argv, "settings_serving", log_path, port, merged)


def rss_bytes(pid: int) -> int:
    """Return the resident set size of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    """Return the pids of the direct children of ``pid``."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def wait_closed(sock: socket.socket, timeout: float) -> float:
    """Return how long it took the server to close ``sock`` (EOF or reset); raise if it stays open."""
    start_time = time.monotonic()
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                break
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"still open after {timeout}s") from None
    return time.monotonic() - start_time


def log_lines(server: Server) -> list[str]:
    """Return the server log's non-empty lines."""
    return [line for line in server.log().splitlines() if line.strip()]


def connect_raw(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    return sock

