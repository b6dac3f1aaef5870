"""Server processes on free ports: uvicorn with any app and options, ``manage.py runserver``, any argv.

A :class:`Server` is a subprocess whose output goes to a log file, known by
the loopback port it listens on. :func:`launch` starts one with a complete
environment (benchmarks build their own); :func:`start` adds the test
environment (the example project and ``tests/`` importable, a settings
module) and waits until the port answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .processes import cpu_seconds, free_port, rss_kib, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example"
TESTS = ROOT / "tests"
# The Redis the tests use (never flushed whole: tests use their own prefixes and dbs).
REDIS_SERVER = os.environ.get("WSVIEWS_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/")
# The websocket implementation wsviews' runserver serves with; tests and benchmarks use it too,
# so that what is measured and tested is what people run.
WS = "websockets-sansio"


@dataclass
class Server:
    """A server subprocess listening (once started) on ``127.0.0.1:port``, its output in ``log_path``."""

    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        """Return what the process has written so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")

    def wait_listening(self, timeout: float = 30) -> None:
        """Return once the port answers; raise ``RuntimeError`` with the log if the process
        exits first or nothing listens within ``timeout`` seconds (then the process is stopped)."""
        try:
            wait_for_port(self.port, self.proc, timeout)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"server {self.describe()} failed to start: {exc}\n{self.log()}") from None

    def check_alive(self) -> None:
        """Raise ``RuntimeError`` with the log if the process has exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"server {self.describe()} exited with {self.proc.returncode}:\n{self.log()}")

    def cpu_seconds(self) -> float:
        """Return the process's CPU time so far (user + system, all threads)."""
        return cpu_seconds(self.proc.pid)

    def rss_kib(self) -> int:
        """Return the process's resident memory in KiB."""
        return rss_kib(self.proc.pid)

    def stop(self, timeout: float = 10) -> None:
        """Stop the process: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        stop_process(self.proc, timeout)

    def describe(self) -> str:
        """Return the port and command line, for error messages."""
        args = self.proc.args
        argv = args if isinstance(args, (list, tuple)) else [args]
        return f"on port {self.port} ({' '.join(str(a) for a in argv)})"

    def __enter__(self) -> Server:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def process_env(
    env: Mapping[str, str] | None = None,
    pythonpath: Sequence[str | Path] = (),
    drop: Iterable[str] = (),
) -> dict[str, str]:
    """Return this process's environment without ``drop``, ``pythonpath`` first on
    ``PYTHONPATH``, unbuffered output, and ``env`` on top."""
    dropped = set(drop)
    merged = {key: value for key, value in os.environ.items() if key not in dropped}
    paths = [str(path) for path in pythonpath]
    if merged.get("PYTHONPATH"):
        paths.append(merged["PYTHONPATH"])
    if paths:
        merged["PYTHONPATH"] = os.pathsep.join(paths)
    merged["PYTHONUNBUFFERED"] = "1"  # the log shows what happened up to a crash
    merged.update(env or {})
    return merged


def server_env(settings: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment of a test server: ``settings`` as DJANGO_SETTINGS_MODULE,
    the example project and ``tests/`` importable, then ``env``."""
    return process_env({"DJANGO_SETTINGS_MODULE": settings, **(env or {})}, [EXAMPLE, TESTS])


def launch(argv: Sequence[str], log_path: Path, port: int, env: Mapping[str, str] | None = None,
           cwd: Path = ROOT) -> Server:
    """Start ``argv`` (which should listen on ``port``) with its output in ``log_path``; do not wait.

    ``env`` is the process's whole environment (default: this one's).
    """
    with open(log_path, "wb") as log:  # the child has its own copy of the descriptor
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env) if env is not None else None,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Server(port=port, proc=proc, log_path=log_path)


def start(argv: Sequence[str], settings: str, log_path: Path, port: int,
          env: Mapping[str, str] | None = None, cwd: Path = EXAMPLE, timeout: float = 30) -> Server:
    """Start ``argv`` in the test environment (:func:`server_env`) and wait until ``port`` answers."""
    server = launch(argv, log_path, port, server_env(settings, env), cwd)
    server.wait_listening(timeout)
    return server


def uvicorn_argv(app: str, port: int, *options: str, python: str = sys.executable, ws: str = WS,
                 log_level: str = "info") -> list[str]:
    """Return the argv of ``python -m uvicorn app`` on ``127.0.0.1:port`` with ``--ws ws``."""
    return [python, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--ws", ws,
            "--log-level", log_level, *options]


def start_uvicorn(
    settings: str,
    log_path: Path,
    app: str = "wsviews.asgi:application",
    env: Mapping[str, str] | None = None,
    args: Sequence[str] | None = None,
) -> Server:
    """Run ``uvicorn app`` (access log on, options ``args``) on a free port; return it listening."""
    port = free_port()
    return start(uvicorn_argv(app, port, *(args or ())), settings, log_path, port, env)


def start_runserver(settings: str, log_path: Path, env: Mapping[str, str] | None = None,
                    args: Sequence[str] | None = None, cwd: Path = EXAMPLE) -> Server:
    """Run ``python manage.py runserver`` of the example project (or a copy, ``cwd``) on a free port."""
    port = free_port()
    argv = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", *(args or ())]
    return start(argv, settings, log_path, port, env, cwd=cwd)
