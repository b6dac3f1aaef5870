"""``gunicorn -k wsviews.workers.UvicornWorker``: wsviews' limits and drain under gunicorn."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from servers import free_port, start
from wsclient import ConnectionClosed, connect, http, recv
from wsviews.lifecycle import FOREIGN_SERVER_WARNING


async def test_gunicorn_workers_apply_the_limits_and_drain_with_1012_and_exit_0(tmp_path: Path):
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "wsviews.asgi:application",
            "-k", "wsviews.workers.UvicornWorker", "-w", "1", "-b", f"127.0.0.1:{port}",
            "--graceful-timeout", "10",
            "--control-socket", str(tmp_path / "gunicorn.ctl")]
    settings = {"WSVIEWS_MAX_MESSAGE_SIZE": 4096, "WSVIEWS_DRAIN_TIMEOUT": 2}
    env = {"WSVIEWS_TEST_SETTINGS": json.dumps(settings)}
    server = start(argv, "settings_serving", tmp_path / "gunicorn.log", port, env)
    with server:
        assert http(f"{server.http}/slow/?seconds=0") == (200, b"slow done")
        async with connect(f"{server.ws}/ws/myapp/") as ws:
            await ws.send("x" * 5000)  # over the limit: the protocol refuses it (consumers have no own limit)
            try:
                await recv(ws)
            except ConnectionClosed:
                pass
            assert ws.close_code == 1009
        async with connect(f"{server.ws}/ws/myapp/") as ws:
            server.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed:
                pass
            assert ws.close_code == 1012
        assert server.proc.wait(15) == 0
    log = server.log()
    assert "wsviews serving on uvloop + httptools (websockets-sansio): messages up to 4096 bytes" in log
    assert FOREIGN_SERVER_WARNING[:60] not in log
    assert "Traceback" not in log and "Error while closing socket" not in log
