"""A redis-server of a test's own, on a free port: to stop, freeze, restart, or count commands on.

Never the shared server: what a test does to it (killing it, reading its
command statistics) concerns nobody else.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of our own that a test may kill, freeze and restart on the same port.

    ``extra`` options come last, so they override the defaults (no persistence).
    """

    def __init__(self, directory: Path, port: int | None = None, extra: list[str] | None = None):
        self.directory = directory
        self.port = port or free_port()
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: redis.Redis | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> float:
        """Start the server; return the monotonic time it answered PING."""
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return time.monotonic()
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise
                    time.sleep(0.02)  # polling a process that has no readiness event
        finally:
            client.close()

    def kill(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def info(self, section: str) -> dict[str, Any]:
        """Return a section of the server's INFO (on one connection, kept: asking costs only INFO)."""
        if self._client is None:
            self._client = redis.Redis(port=self.port)
        return dict(self._client.info(section))

    def command_calls(self) -> dict[str, int]:
        """Return ``{command: calls}`` from INFO commandstats (commands run by scripts included)."""
        stats = self.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
