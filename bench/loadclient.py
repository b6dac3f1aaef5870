"""The load client of ``bench/run``: picows sockets in worker processes, driven over pipes.

Every server in a run gets the same client: ``Workers`` (in the bench process)
hands jobs to N forked processes, each running uvloop and picows, the fastest
websocket client Python has, so that the client costs far less CPU per message
than the servers it measures. Each reply carries the worker's own CPU time and
wall time for the job, from which the run reports the client's spare capacity.

Jobs (``Workers.each`` / ``Workers.call``):

``open(urls, mode)``
    Open a socket to each URL (100 handshakes at a time). ``mode`` is ``echo``
    (plain text echo), ``sio`` (Engine.IO 4 / Socket.IO ``echo`` events),
    ``hello`` (wait for the server's first ``joined NAME`` frame and return the
    names; then count and time every frame), or ``idle``.
``echo(seconds)``
    Every open socket sends a message, and sends the next one as soon as its
    echo arrives, for ``seconds`` (closed loop). Returns the round trips.
``stats()``
    For ``hello`` sockets: frames received and their latency (the message
    carries its ``time.monotonic()`` send time, the same clock in every
    process) since the previous call.
``close()``
    Close every socket (close handshake, then wait for the disconnect).
``churn(url, seconds, concurrency)``
    ``concurrency`` loops of connect, one echo, close, for ``seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
import traceback
from array import array
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

PAYLOAD = b'{"type":"chat.message","seq":12345,"text":"hello from the echo benchmark!"}'
SIO_PAYLOAD = b'42["echo",' + PAYLOAD + b"]"
OPEN_AT_ONCE = 100


# The worker process


def _listener_classes() -> dict[str, Any]:
    """Build the picows listeners (imported in the worker only)."""
    from picows import WSFrame, WSListener, WSMsgType, WSTransport

    TEXT, CLOSE = WSMsgType.TEXT, WSMsgType.CLOSE

    class Base(WSListener):
        def __init__(self, agent: Agent) -> None:
            self.agent = agent
            self.transport: WSTransport | None = None
            self.ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self.closed = False

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport
            if not self.ready.done() and self.agent.mode in ("echo", "idle"):
                self.ready.set_result("")

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            self.closed = True
            if not self.ready.done():
                self.ready.set_exception(ConnectionError("disconnected during the handshake"))

        def on_close(self, transport: WSTransport, frame: WSFrame) -> None:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    class Echo(Base):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == TEXT:
                agent = self.agent
                agent.received += 1
                if agent.running:
                    transport.send(TEXT, PAYLOAD)
                else:
                    agent.outstanding -= 1
            elif frame.msg_type == CLOSE:
                self.on_close(transport, frame)

    class SocketIO(Base):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == CLOSE:
                self.on_close(transport, frame)
                return
            data = frame.get_payload_as_bytes()
            kind = data[:2]
            if kind == b"42":
                agent = self.agent
                agent.received += 1
                if agent.running:
                    transport.send(TEXT, SIO_PAYLOAD)
                else:
                    agent.outstanding -= 1
            elif data == b"2":  # Engine.IO ping
                transport.send(TEXT, b"3")
            elif data[:1] == b"0":  # Engine.IO open: connect to the default namespace
                transport.send(TEXT, b"40")
            elif kind == b"40" and not self.ready.done():
                self.ready.set_result("")

    class Hello(Base):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == TEXT:
                data = frame.get_payload_as_bytes()
                if not self.ready.done():
                    self.ready.set_result(data.decode().partition(" ")[2])
                    return
                agent = self.agent
                agent.received += 1
                agent.latencies.append(time.monotonic() - float(data[: data.index(b" ")]))
            elif frame.msg_type == CLOSE:
                self.on_close(transport, frame)

    class Churn(Base):
        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport
            transport.send(TEXT, PAYLOAD)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == TEXT and not self.ready.done():
                self.ready.set_result("")
            elif frame.msg_type == CLOSE:
                self.on_close(transport, frame)

    return {"echo": Echo, "sio": SocketIO, "hello": Hello, "idle": Echo, "churn": Churn}


class Agent:
    """One worker process's event loop: runs the jobs the bench process sends."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.classes = _listener_classes()
        self.sockets: list[Any] = []
        self.mode = "echo"
        self.running = False
        self.received = 0
        self.outstanding = 0
        self.latencies = array("d")
        self.stop: asyncio.Future[None] | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.stop = loop.create_future()
        loop.add_reader(self.conn.fileno(), self.command)
        await self.stop
        loop.remove_reader(self.conn.fileno())

    def command(self) -> None:
        try:
            os.set_blocking(self.conn.fileno(), True)  # the loop made it non-blocking; a job may be long
            seq, name, args = self.conn.recv()
        except EOFError:
            assert self.stop is not None
            if not self.stop.done():
                self.stop.set_result(None)
            return
        if name == "exit":
            assert self.stop is not None
            self.stop.set_result(None)
            self.reply((seq, "ok", None))
            return
        job: Callable[..., Awaitable[Any]] = getattr(self, f"do_{name}")
        task = asyncio.ensure_future(self.timed(job, args))
        task.add_done_callback(lambda t: self.reply((seq, *t.result())))

    def reply(self, message: Any) -> None:
        os.set_blocking(self.conn.fileno(), True)
        self.conn.send(message)

    async def timed(self, job: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> tuple[str, Any]:
        cpu, wall = time.process_time(), time.monotonic()
        try:
            result = await job(*args)
        except Exception as exc:
            return "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        return "ok", {"result": result, "cpu": time.process_time() - cpu, "wall": time.monotonic() - wall}

    async def connect(self, url: str, kind: str, timeout: float = 60) -> Any:
        from picows import ws_connect

        _, listener = await ws_connect(
            lambda: self.classes[kind](self), url, websocket_handshake_timeout=timeout
        )
        assert isinstance(listener, self.classes[kind])
        await asyncio.wait_for(listener.ready, timeout)
        return listener

    async def do_open(self, urls: list[str], mode: str) -> list[str]:
        self.mode = mode
        limit = asyncio.Semaphore(OPEN_AT_ONCE)

        async def one(url: str) -> Any:
            async with limit:
                return await self.connect(url, mode)

        self.sockets = list(await asyncio.gather(*(one(url) for url in urls)))
        self.received = 0
        self.latencies = array("d")
        return [s.ready.result() for s in self.sockets]

    async def do_echo(self, seconds: float) -> int:
        payload = SIO_PAYLOAD if self.mode == "sio" else PAYLOAD
        self.received = 0
        self.running = True
        self.outstanding = len(self.sockets)
        from picows import WSMsgType

        for s in self.sockets:
            s.transport.send(WSMsgType.TEXT, payload)
        await asyncio.sleep(seconds)
        self.running = False
        count = self.received
        deadline = time.monotonic() + 10
        while self.outstanding > 0 and time.monotonic() < deadline:  # let the last echoes arrive
            await asyncio.sleep(0.01)
        if any(s.closed for s in self.sockets):
            raise ConnectionError(f"{sum(s.closed for s in self.sockets)} sockets were closed during the run")
        return count

    async def do_stats(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        self.latencies = array("d")
        received, self.received = self.received, 0

        def pct(p: float) -> float | None:
            return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None

        return {"received": received, "p50": pct(0.5), "p99": pct(0.99),
                "closed": sum(s.closed for s in self.sockets)}  # fmt: skip

    async def do_close(self) -> int:
        closed = 0
        for s in self.sockets:
            if s.transport is not None and not s.closed:
                with contextlib.suppress(Exception):
                    s.transport.send_close()
                    closed += 1
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(s.closed for s in self.sockets):
            await asyncio.sleep(0.02)
        for s in self.sockets:
            if not s.closed and s.transport is not None:
                s.transport.disconnect()
        self.sockets = []
        return closed

    async def do_churn(self, url: str, seconds: float, concurrency: int) -> dict[str, int]:
        deadline = time.monotonic() + seconds
        done = errors = 0

        async def loop() -> None:
            nonlocal done, errors
            while time.monotonic() < deadline:
                try:
                    listener = await self.connect(url, "churn", timeout=10)
                    listener.transport.send_close()
                    await asyncio.wait_for(listener.transport.wait_disconnected(), 10)
                    done += 1
                except Exception:
                    errors += 1
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return {"connections": done, "errors": errors}


def _worker_main(conn: Connection) -> None:
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(Agent(conn).run())


# The bench process's side


class Workers:
    """N client processes, forked now (before the bench process starts threads or a loop)."""

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conns: list[Connection] = []
        self.seq = 0
        self.procs: list[Any] = []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child,), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def __len__(self) -> int:
        return len(self.conns)

    async def call(self, index: int, name: str, *args: Any) -> dict[str, Any]:
        """Run job ``name`` on worker ``index``; return its reply (result, cpu, wall)."""
        conn = self.conns[index]
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        self.seq += 1
        seq = self.seq

        def readable() -> None:
            os.set_blocking(conn.fileno(), True)
            try:
                got, status, value = conn.recv()
            except Exception as exc:  # the worker died
                if not reply.done():
                    reply.set_exception(exc)
                return
            if got == seq and not reply.done():  # else: the late reply of a job given up on
                reply.set_result((status, value))

        os.set_blocking(conn.fileno(), True)
        conn.send((seq, name, args))
        loop.add_reader(conn.fileno(), readable)
        try:
            status, value = await reply
        finally:
            loop.remove_reader(conn.fileno())
        if status != "ok":
            raise RuntimeError(f"load client {index}, job {name}: {value}")
        return dict(value)

    async def each(self, name: str, per_worker: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        """Run job ``name`` on workers 0..len(per_worker)-1 at once, worker i with ``per_worker[i]``."""
        return list(await asyncio.gather(*(self.call(i, name, *args) for i, args in enumerate(per_worker))))

    def cpu_seconds(self) -> list[float]:
        from harness import cpu_seconds

        return [cpu_seconds(p.pid) for p in self.procs]

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(Exception):
                conn.send((0, "exit", ()))
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """Split ``items`` into ``parts`` lists of nearly equal length (round robin)."""
    return [items[i::parts] for i in range(parts)]
