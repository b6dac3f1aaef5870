#!/usr/bin/env python
"""Full-size serving probes that are too heavy for the test suite; each is bounded and stops by itself.

    .venv/bin/python scripts/probe_serving.py drain --clients 1000 --window 10
    .venv/bin/python scripts/probe_serving.py idle --connections 1100 --nofile 1024
    .venv/bin/python scripts/probe_serving.py size --clients 20 --mib 16

Each starts ``manage.py serve`` of the example project (the tests' routes) on
a free loopback port and prints what it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "example")]

from serving_support import connect_raw, log_lines, rss_bytes, start_serve  # noqa: E402
from servers import running  # noqa: E402
from wsclient import ConnectionClosed, connect  # noqa: E402


async def drain(clients: int, window: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_serve(Path(tmp) / "server.log", {"WSVIEWS_DRAIN_TIMEOUT": window}, ["--no-access-log"])
        with running(server):
            sockets = []
            for start in range(0, clients, 100):
                sockets += await asyncio.gather(*(connect(f"{server.ws}/ws/myapp/", open_timeout=30).__aenter__()
                                                  for _ in range(min(100, clients - start))))

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
        with running(server):
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
                        fresh.sendall(b"GET /slow/?seconds=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
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


async def size(clients: int, mib: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_serve(Path(tmp) / "server.log")
        with running(server):
            for route in ("/ws/myapp/", "/ws/room/lobby/"):
                before = rss_bytes(server.proc.pid)
                peak = before
                done = False

                async def sample() -> None:
                    nonlocal peak
                    while not done:
                        peak = max(peak, rss_bytes(server.proc.pid))
                        await asyncio.sleep(0.01)

                async def one() -> int | None:
                    async with connect(f"{server.ws}{route}", max_size=None) as ws:
                        try:
                            await ws.send(b"\0" * (mib << 20))
                            await asyncio.wait_for(ws.recv(), 10)
                        except ConnectionClosed:
                            pass
                        return ws.close_code

                sampler = asyncio.ensure_future(sample())
                codes = await asyncio.gather(*(one() for _ in range(clients)))
                done = True
                await sampler
                print(f"{route}: {clients} x {mib} MiB: close codes {sorted(set(codes))}, "
                      f"server RSS +{(peak - before) / 2**20:.1f} MiB at peak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="probe", required=True)
    p = sub.add_parser("drain")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--window", type=float, default=10.0)
    p = sub.add_parser("idle")
    p.add_argument("--connections", type=int, default=1100)
    p.add_argument("--nofile", type=int, default=1024)
    p.add_argument("--timeout", type=float, default=5.0)
    p = sub.add_parser("size")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--mib", type=int, default=16)
    args = parser.parse_args()
    if args.probe == "drain":
        asyncio.run(drain(args.clients, args.window))
    elif args.probe == "idle":
        idle(args.connections, args.nofile, args.timeout)
    else:
        asyncio.run(size(args.clients, args.mib))


if __name__ == "__main__":
    main()
