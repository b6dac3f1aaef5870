"""Graceful drain: batches spread over the window, 1012 to every socket, requests in flight finish, exit 0."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from pathlib import Path

from serving_support import start_serve
from wsclient import ConnectionClosed, connect, http, recv
from wsviews.drain import BATCH_INTERVAL, MIN_BATCH, SPREAD, batch_size, on_shutdown
from wsviews.protocols import SHUTDOWN_EXTENSION


def test_batches_spread_many_sockets_over_the_window_and_close_a_few_at_once():
    assert batch_size(1000, 10) == 14  # 72 batches of 14 within 7.5 s
    assert batch_size(200, 4) == MIN_BATCH  # 20 batches over 2 s
    assert batch_size(3, 10) == MIN_BATCH  # one batch: nothing to spread
    assert batch_size(100_000, 0) == 100_000  # no window: all at once
    for count, window in ((1000, 10), (200, 4), (5000, 2)):
        batches = -(-count // batch_size(count, window))
        assert (batches - 1) * BATCH_INTERVAL <= window * SPREAD + 1e-9


def test_on_shutdown_registers_a_closer_where_the_server_offers_the_hook():
    async def close() -> None: ...

    hook: dict[str, object] = {}
    assert on_shutdown({"extensions": {SHUTDOWN_EXTENSION: hook}}, close) is True
    assert hook["close"] is close
    assert on_shutdown({"extensions": {}}, close) is False  # another server: nothing registered
    assert on_shutdown({}, close) is False


async def _open(url: str, count: int) -> list:
    sockets = []
    for start in range(0, count, 50):
        sockets += await asyncio.gather(*(connect(url).__aenter__() for _ in range(min(50, count - start))))
    return sockets


async def _closed_at(ws) -> tuple[float, int | None]:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 20)
    except ConnectionClosed:
        pass
    return time.monotonic(), ws.close_code


async def test_sigterm_closes_200_sockets_with_1012_in_batches_finishes_requests_and_exits_0(tmp_path: Path):
    window = 4.0
    server = start_serve(tmp_path / "server.log", {"WSVIEWS_DRAIN_TIMEOUT": window}, ["--no-access-log"])
    with server:
        sockets = await _open(f"{server.ws}/ws/myapp/", 200)
        in_flight: dict[str, object] = {}
        request = threading.Thread(target=lambda: in_flight.update(
            answer=http(f"{server.http}/slow/?seconds=2")))
        request.start()
        await asyncio.sleep(0.5)  # the request is being served
        waiters = [asyncio.ensure_future(_closed_at(ws)) for ws in sockets]
        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        refused = _refused(server.port)
        results = await asyncio.gather(*waiters)
        request.join(10)
        status = server.proc.wait(15)
    times = sorted(at - sent for at, _ in results)
    codes = {code for _, code in results}
    assert codes == {1012}
    assert times[-1] < window + 1
    assert times[-1] - times[0] > window * SPREAD * 0.6, times  # spread, not all at once
    batches = len({round(t / BATCH_INTERVAL) for t in times})
    assert batches >= 10, times
    assert in_flight["answer"] == (200, b"slow done")
    assert refused, "a new connection was accepted after the drain started"
    assert status == 0


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sock.settimeout(2)
            return sock.recv(100) == b""
    except OSError:
        return True


async def test_a_socket_that_registered_its_own_closer_is_closed_by_it(tmp_path: Path):
    server = start_serve(tmp_path / "server.log", {"WSVIEWS_DRAIN_TIMEOUT": 2})
    with server:
        async with connect(f"{server.ws}/ws/own-close/") as own, connect(f"{server.ws}/ws/myapp/") as plain:
            assert await recv(own) == "ready"
            server.proc.send_signal(signal.SIGTERM)
            (_, own_code), (_, plain_code) = await asyncio.gather(_closed_at(own), _closed_at(plain))
            assert (own_code, own.close_reason) == (4001, "own shutdown")
            assert plain_code == 1012
        assert server.proc.wait(15) == 0
