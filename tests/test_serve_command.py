"""``manage.py serve`` against real clients: limits from the settings, the foreign-server warning, workers."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from servers import EXAMPLE, Server, server_env, start_uvicorn
from serving_support import rss_bytes, start_serve
from wsclient import ConnectionClosed, connect, http, recv
from wsviews.lifecycle import FOREIGN_SERVER_WARNING

MIB = 1024 * 1024
WARNING_START = FOREIGN_SERVER_WARNING[:60]


@pytest.fixture(scope="module")
def serve_server(tmp_path_factory: pytest.TempPathFactory, _database: None) -> Server:
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with (start_serve(log)) as server:
        yield server


async def test_serves_http_and_websockets_and_says_what_it_runs_on(serve_server: Server):
    status, body = http(f"{serve_server.http}/slow/?seconds=0")
    assert (status, body) == (200, b"slow done")
    async with connect(f"{serve_server.ws}/ws/myapp/") as ws:
        await ws.send("hello")
        assert await recv(ws) == "hello"
    log = serve_server.log()
    assert "on uvloop + httptools (websockets-sansio): messages up to 1048576 bytes" in log
    assert WARNING_START not in log


class _PeakRss:
    """Sample a process's RSS in a thread; ``peak`` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _send_too_big(url: str, size: int) -> int | None:
    """Send one ``size``-byte message; return the close code the server answered with."""
    async with connect(url, max_size=None, write_limit=size + 1) as ws:
        try:
            await ws.send(b"\0" * size)
            await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed:
            pass
        await asyncio.wait_for(ws.wait_closed(), 10)
        return ws.close_code


@pytest.mark.parametrize("route", ["/ws/myapp/", "/ws/room/lobby/"], ids=["consumer", "view"])
async def test_twenty_16_mib_messages_at_once_are_refused_with_1009_before_buffering(
        serve_server: Server, route: str):
    async with connect(f"{serve_server.ws}{route}") as warm:  # the route's code is loaded first
        await warm.send("warm")
        await recv(warm)
    await asyncio.sleep(0.5)
    with _PeakRss(serve_server.proc.pid) as rss:
        before = rss_bytes(serve_server.proc.pid)
        codes = await asyncio.gather(*(_send_too_big(f"{serve_server.ws}{route}", 16 * MIB)
                                       for _ in range(20)))
    assert codes == [1009] * 20
    assert rss.peak - before <= 50 * MIB, f"RSS grew by {(rss.peak - before) / MIB:.1f} MiB"
    async with connect(f"{serve_server.ws}{route}") as ws:  # the server carries on
        await ws.send("after")
        assert "after" in await recv(ws)


def test_plain_uvicorn_warns_that_the_limits_are_not_applied(tmp_path: Path):
    with (start_uvicorn("settings_serving", tmp_path / "uvicorn.log")) as server:
        assert http(f"{server.http}/slow/?seconds=0")[0] == 200
        log = server.log()
    assert log.count(WARNING_START) == 1
    line = next(line for line in log.splitlines() if WARNING_START in line)
    assert "manage.py serve" in line and "Traceback" not in log


def test_sigterm_exits_0_and_the_port_is_released(tmp_path: Path):
    server = start_serve(tmp_path / "server.log")
    assert http(f"{server.http}/slow/?seconds=0")[0] == 200
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0
    assert "Finished server process" in server.log()


async def test_workers_share_the_port_and_all_drain_on_sigterm(tmp_path: Path):
    server = start_serve(tmp_path / "server.log", args=["--workers", "2"],
                         env={"REDIS_URL": _redis_url()})
    with server:
        deadline = time.monotonic() + 30
        while server.log().count("Application startup complete") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(set(re.findall(r"Started server process \[(\d+)\]", server.log()))) == 2
        # Both workers come up; sockets land on them and broadcasts cross between them over Redis.
        sockets = [await connect(f"{server.ws}/ws/member/workers/").__aenter__() for _ in range(8)]
        for ws in sockets:
            assert await recv(ws) == "joined"
        server.proc.send_signal(signal.SIGTERM)
        codes = []
        for ws in sockets:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 15)
            codes.append(ws.close_code)
        assert server.proc.wait(20) == 0
    assert codes == [1012] * 8
    log = server.log()
    assert log.count("Application startup complete") == 2
    assert "Stopped supervisor process" in log


def _redis_url() -> str:
    from servers import REDIS_SERVER

    return REDIS_SERVER


@pytest.mark.parametrize(("setting", "value", "expected"), [
    ("WSVIEWS_WRITE_TIMEOUT", 0, "WSVIEWS_WRITE_TIMEOUT must be a positive number of seconds, not 0; "
                                 "e.g. WSVIEWS_WRITE_TIMEOUT = 10"),
    ("WSVIEWS_BACKLOG", "many", "WSVIEWS_BACKLOG must be a positive int, not 'many'"),
])
def test_a_bad_setting_stops_serve_with_the_message_naming_the_fix(setting: str, value: object,
                                                                   expected: str):
    import json

    result = subprocess.run(
        [sys.executable, "manage.py", "serve", "127.0.0.1:0", "--skip-checks"], cwd=EXAMPLE,
        env={**server_env("settings_serving"), "WSVIEWS_TEST_SETTINGS": json.dumps({setting: value})},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_address_is_one_line():
    result = subprocess.run(
        [sys.executable, "manage.py", "serve", "localhost:http", "--skip-checks"], cwd=EXAMPLE,
        env=server_env("settings_serving"), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "is not a port number or address:port pair" in result.stderr
