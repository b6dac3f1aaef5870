"""The serving protocols against a real ``manage.py serve``: timeouts, 1007, slow readers, 503."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from servers import Server
from serving_support import connect_raw, log_lines, start_serve, wait_closed
from wsclient import ConnectionClosed, connect, handshake_status, recv
from wsviews.protocols import DeadlineTransport

STACKS = {"uvloop-httptools": [], "asyncio-h11": ["--loop", "asyncio", "--http", "h11"]}
HANDSHAKE = (b"GET /ws/myapp/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\n\r\n")


@pytest.fixture(scope="module", params=list(STACKS))
def timeouts_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                    _database: None) -> Server:
    log = tmp_path_factory.mktemp("timeouts") / "server.log"
    with (start_serve(log, {"WSVIEWS_HANDSHAKE_TIMEOUT": 2, "WSVIEWS_WRITE_TIMEOUT": 2},
                             STACKS[request.param])) as server:
        yield server


def test_a_connection_that_sends_nothing_is_closed_after_the_handshake_timeout(timeouts_server: Server):
    with connect_raw(timeouts_server.port) as sock:
        elapsed = wait_closed(sock, 10)
    assert 1.5 < elapsed < 4


def test_a_half_written_handshake_is_closed_after_the_handshake_timeout(timeouts_server: Server):
    with connect_raw(timeouts_server.port) as sock:
        sock.sendall(HANDSHAKE[:60])
        elapsed = wait_closed(sock, 10)
    assert 1.5 < elapsed < 4


def test_a_slowloris_is_closed_although_it_keeps_sending(timeouts_server: Server):
    with connect_raw(timeouts_server.port) as sock:
        sock.setblocking(False)
        started = time.monotonic()
        closed_after = None
        for byte in HANDSHAKE:  # one byte every 0.5 s: far longer than the timeout in total
            try:
                sock.send(bytes([byte]))
                if sock.recv(1) == b"":
                    closed_after = time.monotonic() - started
                    break
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
            time.sleep(0.5)
            if time.monotonic() - started > 10:
                break
    assert closed_after is not None and closed_after < 4


async def test_a_keep_alive_connection_and_a_handshake_in_time_are_served(timeouts_server: Server):
    with connect_raw(timeouts_server.port) as sock:
        for _ in range(2):
            sock.sendall(b"GET /slow/?seconds=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert b"slow done" in _read_until(sock, b"slow done")
            time.sleep(1.2)  # idle, but each request's headers arrive at once
    async with connect(f"{timeouts_server.ws}/ws/myapp/") as ws:
        await asyncio.sleep(2.5)  # an open socket is past its handshake: no timeout applies
        await ws.send("still here")
        assert await recv(ws) == "still here"


async def test_invalid_utf8_closes_that_socket_with_1007_and_one_line(timeouts_server: Server):
    before = len(log_lines(timeouts_server))
    with connect_raw(timeouts_server.port) as sock:
        sock.sendall(HANDSHAKE)
        assert sock.recv(4096).startswith(b"HTTP/1.1 101")
        payload = b"\xff\xfe bad"
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)  # masked text frame
        sock.settimeout(5)
        frame = sock.recv(4096)
    assert frame[0] == 0x88 and int.from_bytes(frame[2:4], "big") == 1007
    async with connect(f"{timeouts_server.ws}/ws/myapp/") as ws:  # the server carries on
        await ws.send("ok")
        assert await recv(ws) == "ok"
    new = log_lines(timeouts_server)[before:]
    assert sum("1007: invalid UTF-8" in line for line in new) == 1, new
    assert not any("Traceback" in line or "ERROR" in line for line in new), new


async def test_a_peer_that_never_reads_is_aborted_while_a_healthy_member_keeps_receiving(
        timeouts_server: Server):
    group = f"zero-window-{id(timeouts_server)}"
    stuck = connect_raw(timeouts_server.port, rcvbuf=4096)
    stuck.sendall(HANDSHAKE.replace(b"/ws/myapp/", f"/ws/member/{group}/".encode()))
    time.sleep(0.3)  # the stuck client never reads again after this point
    chunk = "x" * 60_000
    async with connect(f"{timeouts_server.ws}/ws/member/{group}/") as healthy, \
            connect(f"{timeouts_server.ws}/ws/publish/{group}/") as publisher:
        assert await recv(healthy) == "joined"
        started = time.monotonic()
        received = 0
        freed_after = None
        while time.monotonic() - started < 12:
            await publisher.send(chunk)
            assert await recv(healthy) == chunk
            received += 1
            # Freed by the write timeout, or first closed as slow (4008) once it owes 1 MiB
            # (WSVIEWS_MAX_QUEUE_BYTES, kernel send queue included: asyncio's transport
            # lets the kernel take that much before its own buffer fills).
            log = timeouts_server.log()
            if freed_after is None and ("whose peer read nothing for 2s" in log or
                                        "slow socket(s) with 4008" in log):
                freed_after = time.monotonic() - started
            if freed_after is not None and time.monotonic() - started > freed_after + 1:
                break
            await asyncio.sleep(0.02)
    assert freed_after is not None, "the zero-window client was never freed"
    assert freed_after < 2 + 4  # the write timeout, after the kernel buffers fill
    assert received > 50
    # What the stuck client still holds is the part sent before the abort; then the connection is gone.
    with stuck:
        wait_closed(stuck, 5)


def _read_until(sock: socket.socket, marker: bytes, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


async def test_a_handshake_over_the_connection_limit_gets_503(tmp_path: Path):
    with (start_serve(tmp_path / "server.log", {"WSVIEWS_MAX_CONNECTIONS": 2})) as server:
        async with connect(f"{server.ws}/ws/myapp/"), connect(f"{server.ws}/ws/myapp/"):
            assert await handshake_status(f"{server.ws}/ws/myapp/") == 503
        await asyncio.sleep(0.5)
        async with connect(f"{server.ws}/ws/myapp/") as ws:  # room again once they closed
            await ws.send("back")
            assert await recv(ws) == "back"
    assert "Refused 1 websocket handshake(s) with 503: 2 connections are open" in server.log()


async def test_closing_a_transport_that_cannot_flush_ends_in_abort():
    """DeadlineTransport.close() aborts the connection once the deadline passes."""
    loop = asyncio.get_running_loop()
    aborted = asyncio.Event()

    class Stuck:
        def __init__(self) -> None:
            self.closing = False

        def close(self) -> None:
            self.closing = True  # a real transport now waits for its buffer forever

        def abort(self) -> None:
            aborted.set()

        write = writelines = pause_reading = resume_reading = get_extra_info = lambda self, *a: None

        def is_closing(self) -> bool:
            return self.closing

    transport = DeadlineTransport(Stuck(), loop, 0.2)  # type: ignore[arg-type]
    transport.close()
    await asyncio.wait_for(aborted.wait(), 2)


async def test_a_connection_that_goes_away_is_not_aborted_later():
    loop = asyncio.get_running_loop()
    calls: list[str] = []

    class Fine:
        def close(self) -> None:
            calls.append("close")

        def abort(self) -> None:
            calls.append("abort")

        write = writelines = pause_reading = resume_reading = get_extra_info = is_closing = \
            lambda self, *a: None

    transport = DeadlineTransport(Fine(), loop, 0.1)  # type: ignore[arg-type]
    transport.close()
    transport.lost()
    await asyncio.sleep(0.3)
    assert calls == ["close"]


async def test_write_data_writes_a_frame_only_to_an_open_socket_whose_transport_takes_more():
    """write_data() writes at once only while nothing asks the send to wait or to fail."""
    from uvicorn.server import ServerState
    from websockets.protocol import OPEN

    from wsviews.frames import data_frame
    from wsviews.protocols import WebSocketProtocol
    from wsviews.serving import build_config

    async def app(scope: dict, receive: object, send: object) -> None:
        pass

    written: list[bytes] = []

    class Transport:
        write = staticmethod(written.append)
        writelines = pause_reading = resume_reading = abort = close = lambda self, *a: None

        def is_closing(self) -> bool:
            return False

        def get_extra_info(self, name: str, default: object = None) -> object:
            return ("127.0.0.1", 8000) if name in ("peername", "sockname") else default

    config = build_config(app, lifespan="off")
    config.load()
    protocol = WebSocketProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    protocol.connection_made(Transport())
    assert not protocol.write_data("before the handshake")
    protocol.handshake_complete = True
    protocol.conn.state = OPEN
    assert protocol.write_data("one")
    protocol.pause_writing()  # the peer reads slowly: the send waits (uvicorn's writable Event)
    assert not protocol.write_data("two")
    protocol.resume_writing()
    assert protocol.write_data("three")
    protocol.close_sent = True
    assert not protocol.write_data("four")
    assert written == [data_frame("one"), data_frame("three")]


def test_server_keeps_serving_http(timeouts_server: Server):
    with connect_raw(timeouts_server.port) as sock:
        sock.sendall(b"GET /slow/?seconds=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert b"200 OK" in _read_until(sock, b"slow done")


__all__ = ["ConnectionClosed"]


@pytest.mark.parametrize("stack", list(STACKS))
def test_idle_connections_past_the_fd_limit_cost_a_few_lines_and_a_fresh_client_is_served(
        stack: str, tmp_path: Path):
    """1,100 idle connections against RLIMIT_NOFILE 1,024: the server sheds them quietly and recovers."""
    settings = {"WSVIEWS_HANDSHAKE_TIMEOUT": 3}
    server = start_serve(tmp_path / "server.log", settings, [*STACKS[stack], "--no-access-log"],
                         wrapper=["prlimit", "--nofile=1024:1024", "--"])
    with server:
        before = len(log_lines(server))
        idle = []
        try:
            for _ in range(1100):
                try:
                    idle.append(connect_raw(server.port))
                except OSError:
                    pass  # the backlog is full: connect() itself may time out or be refused
            started = time.monotonic()
            served = None
            while time.monotonic() - started < 15:
                try:
                    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as fresh:
                        fresh.sendall(b"GET /slow/?seconds=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                      b"Connection: close\r\n\r\n")
                        if b"slow done" in _read_until(fresh, b"slow done", timeout=3):
                            served = time.monotonic() - started
                            break
                except OSError:
                    pass
                time.sleep(0.2)
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.5)
        lines = log_lines(server)[before:]
    assert served is not None, "no fresh client was served within 15 s"
    assert len(lines) < 20, lines
    assert not any("Traceback" in line for line in lines), lines
