"""``python manage.py runserver`` of the example project: HTTP, websockets and static on uvicorn.

Every test but the first two starts a real runserver subprocess on a free port,
on its own copy (in ``tmp_path``) of a database that ``manage.py migrate`` built.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.exceptions import WebSocketException

from servers import (
    EXAMPLE,
    REDIS_SERVER,
    TESTS,
    Server,
    free_port,
    server_env,
    start,
    start_runserver,
)
from wsclient import ConnectionClosed, connect, handshake_status, http, recv

pytestmark = pytest.mark.timeout(30)

SETTINGS = "mysite.settings"
SEED_PATHS = ["/websocket/ws/myapp/", "/ws/myapp/"]
STATIC = "/static/admin/css/base.css"
REDIS_URL = REDIS_SERVER
MIB = 1024 * 1024

# Appended to the copy's consumers.py: the reloaded code answers "version?".
RELOAD_PATCH = '''

# Added by test_runserver: the reloaded consumer answers "version?" with "v2".
_echo = MyConsumer.receive


async def _receive(self, text_data=None, bytes_data=None):
    if text_data == "version?":
        await self.send(text_data="v2")
    else:
        await _echo(self, text_data)


MyConsumer.receive = _receive
'''

RunServer = Callable[..., Server]


def manage(args: list[str], env: dict[str, str], cwd: Path = EXAMPLE,
           settings: str = SETTINGS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=cwd, env=server_env(settings, env),
        capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return an SQLite file migrated by ``manage.py migrate``, for tests to copy."""
    db = tmp_path_factory.mktemp("runserver-db") / "db.sqlite3"
    migrated = manage(["migrate", "--noinput", "-v", "0"], {"DJANGO_DB": str(db)})
    assert migrated.returncode == 0, migrated.stderr
    return db


@pytest.fixture
def runserver(tmp_path: Path, migrated_db: Path) -> Iterator[RunServer]:
    """Start ``manage.py runserver`` on a copy of the migrated database in ``tmp_path``."""
    db = tmp_path / "db.sqlite3"
    shutil.copyfile(migrated_db, db)
    started: list[Server] = []

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path = EXAMPLE) -> Server:
        env = {"DJANGO_DB": str(db), **(env or {})}
        log = tmp_path / f"runserver-{len(started)}.log"
        if cwd == EXAMPLE:
            server = start_runserver(SETTINGS, log, env=env, args=list(args))
        else:
            port = free_port()
            argv = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", *args]
            server = start(argv, SETTINGS, log, port, env, cwd=cwd)
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def wait_for_log(server: Server, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{server.log()}"
        await asyncio.sleep(0.1)


async def echo(url: str, text: str) -> str:
    async with connect(url) as ws:
        await ws.send(text)
        return str(await recv(ws))


async def echo_when_back(url: str, text: str, timeout: float = 15) -> str:
    """Return the first answer to ``text`` once the server accepts again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await echo(url, text)
        except (OSError, WebSocketException):  # TimeoutError is an OSError
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def test_wsviews_runserver_extends_staticfiles_runserver() -> None:
    """The wsviews command wins, keeps Django's options and documents every argument."""
    from django.contrib.staticfiles.management.commands.runserver import (
        Command as StaticRunserver,
    )
    from django.core.management import get_commands, load_command_class

    assert get_commands()["runserver"] == "wsviews"
    command = load_command_class("wsviews", "runserver")
    assert isinstance(command, StaticRunserver)
    parser = command.create_parser("manage.py", "runserver")
    options = {option for action in parser._actions for option in action.option_strings}
    assert {"--ipv6", "--nothreading", "--noreload", "--nostatic", "--insecure",
            "--ws-ping-interval", "--ws-ping-timeout", "--ws"} <= options
    for action in parser._actions:
        assert action.help, f"{action.dest} has no help"
    defaults = parser.parse_args([])
    assert defaults.ws == "websockets-sansio"  # uvicorn 0.54 has it


def test_bad_setting_is_a_command_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "bad_settings.py").write_text(
        "from mysite.settings import *  # noqa: F403\nWSVIEWS_MAX_MESSAGE_SIZE = 'big'\n"
    )
    path = os.pathsep.join([str(tmp_path), str(EXAMPLE), str(TESTS)])
    result = manage(["runserver", "--noreload", str(free_port())],
                    {"PYTHONPATH": path, "DJANGO_DB": str(tmp_path / "db.sqlite3")},
                    settings="bad_settings")
    assert result.returncode == 1
    assert "CommandError: WSVIEWS_MAX_MESSAGE_SIZE must be a positive int" in result.stderr


def test_a_busy_port_is_djangos_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = manage(["runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"],
                        {"DJANGO_DB": str(tmp_path / "db.sqlite3")})
    assert result.returncode == 1
    assert result.stderr.strip().endswith("Error: That port is already in use.")
    assert "Traceback" not in result.stderr


def test_uvicorn_loggers_get_uvicorn_handlers_unless_logging_gave_them_some() -> None:
    import logging

    from uvicorn.logging import AccessFormatter, DefaultFormatter

    from wsviews.serving import add_uvicorn_log_handlers as _add_uvicorn_log_handlers

    loggers = {name: logging.getLogger(name) for name in ("uvicorn", "uvicorn.access")}
    saved = {name: (logger.handlers[:], logger.propagate) for name, logger in loggers.items()}
    kept = logging.NullHandler()
    try:
        loggers["uvicorn"].handlers = []
        loggers["uvicorn.access"].handlers = [kept]
        _add_uvicorn_log_handlers(use_colors=False)
        (handler,) = loggers["uvicorn"].handlers
        assert isinstance(handler.formatter, DefaultFormatter)
        assert handler.stream is sys.stderr
        assert loggers["uvicorn"].propagate is False
        assert loggers["uvicorn.access"].handlers == [kept]  # the project's LOGGING wins
        assert not isinstance(kept.formatter, AccessFormatter)
    finally:
        for name, (handlers, propagate) in saved.items():
            loggers[name].handlers = handlers
            loggers[name].propagate = propagate


@pytest.mark.parametrize("layer", ["memory", "redis"])
async def test_one_process_serves_http_websockets_and_static(runserver: RunServer,
                                                             layer: str) -> None:
    server = runserver(env={"REDIS_URL": REDIS_URL} if layer == "redis" else {})
    for path in SEED_PATHS:
        assert await echo(server.ws + path, "hello ✓") == "hello ✓"
    status, body = http(server.http + "/admin/login/")
    assert (status, b"csrfmiddlewaretoken" in body) == (200, True)
    assert http(server.http + SEED_PATHS[0])[0] == 426
    assert await handshake_status(server.ws + "/ws/nowhere/") == 404
    status, body = http(server.http + STATIC)
    assert (status, b"body" in body) == (200, True)
    log = server.log()
    assert f"Starting ASGI/uvicorn development server at {server.http}/" in log
    assert "Quit the server with CONTROL-C." in log and "WSGI development server" not in log
    assert "Watching for file changes with StatReloader" in log
    assert "Event loop uvloop, HTTP parser httptools, websockets websockets-sansio." in log
    assert "wsviews' serving limits are not applied" not in log
    assert "Application startup complete." in log  # lifespan on
    assert '"GET /admin/login/ HTTP/1.1" 200' in log  # access log
    assert "unreachable" not in log and "Traceback" not in log


async def test_message_size_limit_is_the_setting(runserver: RunServer) -> None:
    server = runserver("--noreload")
    async with connect(server.ws + SEED_PATHS[0], max_size=None) as ws:
        await ws.send("x" * MIB)
        assert len(await recv(ws)) == MIB
        await ws.send("x" * (MIB + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_noreload_serves_in_one_process_and_quits_on_ctrl_c(runserver: RunServer) -> None:
    server = runserver("--noreload", "--nothreading")
    assert await echo(server.ws + SEED_PATHS[1], "one process") == "one process"
    assert "Watching for file changes" not in server.log()
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(10) == 0
    assert "Application shutdown complete." in server.log()
    assert port_is_free(server.port)


def test_insecure_serves_static_without_debug_and_nostatic_stops_it(runserver: RunServer) -> None:
    # With DEBUG off the example's staticfiles_urlpatterns() is empty: only the handler serves.
    production = {"DJANGO_DEBUG": "0"}
    assert http(runserver("--noreload", env=production).http + STATIC)[0] == 404
    assert http(runserver("--noreload", "--insecure", env=production).http + STATIC)[0] == 200
    nostatic = runserver("--noreload", "--insecure", "--nostatic", env=production)
    assert http(nostatic.http + STATIC)[0] == 404


async def test_code_change_reloads_gracefully_on_the_same_port(
    runserver: RunServer, tmp_path: Path
) -> None:
    project = tmp_path / "example"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    server = runserver(cwd=project)
    url = server.ws + SEED_PATHS[0]
    assert await echo(url, "version?") == "version?"
    await asyncio.sleep(1.2)  # let the StatReloader record consumers.py's mtime
    async with connect(url) as ws:
        with (project / "myapp" / "consumers.py").open("a") as source:
            source.write(RELOAD_PATCH)
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws, timeout=15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012  # service restart
    assert await echo_when_back(url, "version?") == "v2"
    assert await echo(url, "still echoing") == "still echoing"
    log = server.log()
    assert "consumers.py changed, reloading." in log
    assert log.count("Starting ASGI/uvicorn development server") == 2

    # Ctrl-C in the reloaded child: uvicorn stops from Django's thread, runserver exits 0.
    child = int(re.findall(r"Started server process \[(\d+)\]", log)[-1])
    os.kill(child, signal.SIGINT)
    assert server.proc.wait(10) == 0
    assert server.log().count("Application shutdown complete.") == 2
    assert port_is_free(server.port)
