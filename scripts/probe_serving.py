#!/usr/bin/env python
"""Full-size serving probes that are too heavy for the test suite; each is bounded and stops by itself.

    .venv/bin/python scripts/probe_serving.py drain --clients 1000 --window 10
    .venv/bin/python scripts/probe_serving.py idle --connections 1100 --nofile 1024
    .venv/bin/python scripts/probe_serving.py size --clients 20 --mib 16
    .venv/bin/python scripts/probe_serving.py stack --sockets 10 --messages 2000 --rounds 3

Each starts ``manage.py serve`` of the example project (the tests' routes) on
a free loopback port and prints what it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "example")]

from servers import start_uvicorn  # noqa: E402
from serving_support import connect_raw, log_lines, rss_bytes, start_serve  # noqa: E402
from wsclient import ConnectionClosed, connect  # noqa: E402


async def drain(clients: int, window: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_serve(Path(tmp) / "server.log", {"WSVIEWS_DRAIN_TIMEOUT": window}, ["--no-access-log"])
        with server:
            sockets = []
            for start in range(0, clients, 100):
                batch = min(100, clients - start)
                url = f"{server.ws}/ws/myapp/"
                opening = (connect(url, open_timeout=30).__aenter__() for _ in range(batch))
                sockets += await asyncio.gather(*opening)

            async def closed(ws: object) -> tuple[float, int | None]:
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), window + 10)  # type: ignore[attr-defined]
                except ConnectionClosed:
                    pass
                return time.monotonic(), ws.close_code  # type: ignore[attr-defined]

            waiters = [asyncio.ensure_future(closed(ws)) for ws in sockets]
            sent = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*waiters)
            status = server.proc.wait(window + 15)
    times = sorted(at - sent for at, _ in results)
    codes: dict[int | None, int] = {}
    for _, code in results:
        codes[code] = codes.get(code, 0) + 1
    per_second = [sum(1 for t in times if s <= t < s + 1) for s in range(int(times[-1]) + 1)]
    print(f"{clients} sockets, window {window:g}s: closed from {times[0]:.2f}s to {times[-1]:.2f}s "
          f"(median {times[len(times) // 2]:.2f}s); codes {codes}; exit status {status}")
    print(f"closes per second: {per_second}")


def idle(connections: int, nofile: int, timeout: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_serve(Path(tmp) / "server.log", {"WSVIEWS_HANDSHAKE_TIMEOUT": timeout},
                             ["--no-access-log"], wrapper=["prlimit", f"--nofile={nofile}:{nofile}", "--"])
        with server:
            before = len(log_lines(server))
            held = []
            for _ in range(connections):
                try:
                    held.append(connect_raw(server.port))
                except OSError:
                    pass
            started = time.monotonic()
            served = None
            while time.monotonic() - started < 30 and served is None:
                try:
                    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as fresh:
                        fresh.sendall(b"GET /slow/?seconds=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                      b"Connection: close\r\n\r\n")
                        fresh.settimeout(3)
                        if b"200 OK" in fresh.recv(100):
                            served = time.monotonic() - started
                except OSError:
                    time.sleep(0.2)
            for sock in held:
                sock.close()
            time.sleep(1)
            lines = log_lines(server)[before:]
    print(f"{len(held)} idle connections against RLIMIT_NOFILE {nofile}: a fresh client served after "
          f"{served if served is None else round(served, 2)}s; {len(lines)} log lines:")
    for line in lines:
        print("   ", line)


async def _too_big(url: str, mib: int) -> int | None:
    async with connect(url, max_size=None) as ws:
        try:
            await ws.send(b"\0" * (mib << 20))
            await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed:
            pass
        return ws.close_code


async def _peak_rss(pid: int, stop: asyncio.Event) -> int:
    peak = rss_bytes(pid)
    while not stop.is_set():
        peak = max(peak, rss_bytes(pid))
        await asyncio.sleep(0.01)
    return peak


async def size(clients: int, mib: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_serve(Path(tmp) / "server.log")
        with server:
            for route in ("/ws/myapp/", "/ws/room/lobby/"):
                before = rss_bytes(server.pid)
                stop = asyncio.Event()
                sampler = asyncio.ensure_future(_peak_rss(server.pid, stop))
                codes = await asyncio.gather(*(_too_big(f"{server.ws}{route}", mib) for _ in range(clients)))
                stop.set()
                peak = await sampler
                print(f"{route}: {clients} x {mib} MiB: close codes {sorted(set(codes))}, "
                      f"server RSS +{(peak - before) / 2**20:.1f} MiB at peak")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _echo(url: str, sockets: int, messages: int) -> None:
    async def one() -> None:
        async with connect(url) as ws:
            for _ in range(messages):
                await ws.send("ping")
                await ws.recv()
    await asyncio.gather(*(one() for _ in range(sockets)))


async def stack(sockets: int, messages: int, rounds: int) -> None:
    """Server CPU per echoed message: uvicorn's stacks and protocols against wsviews' serve, side by side."""
    fast = ["--loop", "uvloop", "--http", "httptools"]
    slow = ["--loop", "asyncio", "--http", "h11"]
    uvicorn_args = ["--ws", "websockets-sansio", "--no-access-log", "--log-level", "warning"]
    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            "uvicorn asyncio+h11": start_uvicorn("settings_serving", Path(tmp) / "a.log",
                                                 args=[*uvicorn_args, *slow]),
            "uvicorn uvloop+httptools": start_uvicorn("settings_serving", Path(tmp) / "b.log",
                                                      args=[*uvicorn_args, *fast]),
            "serve asyncio+h11": start_serve(Path(tmp) / "c.log", args=["--no-access-log", *slow]),
            "serve uvloop+httptools": start_serve(Path(tmp) / "d.log", args=["--no-access-log", *fast]),
        }
        try:
            cost: dict[str, list[float]] = {name: [] for name in servers}
            for server in servers.values():  # warm-up
                await _echo(f"{server.ws}/ws/myapp/", sockets, 100)
            for _ in range(rounds):
                for name, server in servers.items():
                    before = _cpu_seconds(server.pid)
                    await _echo(f"{server.ws}/ws/myapp/", sockets, messages)
                    spent = _cpu_seconds(server.pid) - before
                    cost[name].append(spent / (sockets * messages) * 1e6)
        finally:
            for server in servers.values():
                server.stop()
    best = {name: min(values) for name, values in cost.items()}
    base = best["uvicorn asyncio+h11"]
    print(f"server CPU per echoed message (MyConsumer, {sockets} sockets x {messages}, best of {rounds}):")
    for name, value in best.items():
        print(f"    {name:28} {value:6.1f} us   {base / value:4.2f}x vs uvicorn asyncio+h11")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="probe", required=True)
    p = sub.add_parser("drain")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--window", type=float, default=10.0)
    p = sub.add_parser("idle")
    p.add_argument("--connections", type=int, default=1100)
    p.add_argument("--nofile", type=int, default=1024)
    p.add_argument("--timeout", type=float, default=5.0)
    p = sub.add_parser("stack")
    p.add_argument("--sockets", type=int, default=10)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p = sub.add_parser("size")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--mib", type=int, default=16)
    args = parser.parse_args()
    if args.probe == "drain":
        asyncio.run(drain(args.clients, args.window))
    elif args.probe == "stack":
        asyncio.run(stack(args.sockets, args.messages, args.rounds))
    elif args.probe == "idle":
        idle(args.connections, args.nofile, args.timeout)
    else:
        asyncio.run(size(args.clients, args.mib))


if __name__ == "__main__":
    main()
