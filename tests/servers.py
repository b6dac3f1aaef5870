"""Start real servers for the tests: uvicorn (or runserver) in a subprocess on a free port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example"
TESTS = ROOT / "tests"
# The Redis the tests use (never flushed whole: tests use their own prefixes and dbs).
REDIS_SERVER = os.environ.get("WSVIEWS_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def server_env(settings: str, env: dict[str, str] | None = None) -> dict[str, str]:
    merged = dict(os.environ)
    merged.update(
        DJANGO_SETTINGS_MODULE=settings,
        PYTHONPATH=os.pathsep.join([str(EXAMPLE), str(TESTS), merged.get("PYTHONPATH", "")]),
        PYTHONUNBUFFERED="1",
    )
    merged.update(env or {})
    return merged


def start(
    argv: list[str],
    settings: str,
    log_path: Path,
    port: int,
    env: dict[str, str] | None = None,
    cwd: Path = EXAMPLE,
) -> Server:
    log = open(log_path, "wb")  # noqa: SIM115 - the server process owns it
    proc = subprocess.Popen(
        argv, cwd=cwd, env=server_env(settings, env), stdout=log, stderr=subprocess.STDOUT
    )
    server = Server(port=port, proc=proc, log_path=log_path)
    try:
        wait_for_port(port, proc)
    except Exception:
        server.stop()
        raise RuntimeError(f"server failed to start:\n{server.log()}") from None
    return server


def start_uvicorn(
    settings: str,
    log_path: Path,
    app: str = "wsviews.asgi:application",
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> Server:
    """Run ``uvicorn app`` with the websockets implementation on a free port."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--ws", "websockets", "--log-level", "info", *(args or []),
    ]
    return start(argv, settings, log_path, port, env)


def start_runserver(settings: str, log_path: Path, env: dict[str, str] | None = None,
                    args: list[str] | None = None, cwd: Path = EXAMPLE) -> Server:
    """Run ``python manage.py runserver`` of the example project (or a copy, ``cwd``) on a free port."""
    port = free_port()
    argv = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", *(args or [])]
    return start(argv, settings, log_path, port, env, cwd=cwd)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()
