"""Instructions per delivery of a group fan-out: the raw ASGI app against wsviews, under callgrind.

Run from the repository root (valgrind installed, a Redis you may publish to
at ``--redis``; only a fresh random prefix is used)::

    .venv/bin/python bench/fanout_callgrind.py                    # 1,000 members, both servers
    .venv/bin/python bench/fanout_callgrind.py --members 200 --broadcasts 15 --target wsviews
    .venv/bin/python bench/fanout_callgrind.py --src /tmp/copy/src     # a modified copy of wsviews
    .venv/bin/python bench/fanout_callgrind.py --cpu --window 8 --broadcasts 400   # CPU time, no valgrind
    .venv/bin/python bench/fanout_callgrind.py --target wsviews --keep /tmp/cg     # then callgrind_annotate

The servers are those of ``bench/run``'s fan-out: ``bench.fanout_apps:raw_app``
on plain uvicorn (uvloop, httptools, websockets-sansio), which sends every
message of its ``/control`` socket to each member itself, and the tutorial
shaped consumer of ``bench.fanout_apps`` on ``manage.py serve`` with
``wsviews.layers.RedisChannelLayer`` (one ``PUBLISH`` per broadcast, read
once by the process). Each runs in one process under ``valgrind
--tool=callgrind``; the members connect, three broadcasts warm up, the
counters are zeroed, ``--broadcasts`` broadcasts are sent one at a time (the
next once every member has the last), and the counters are dumped; the same
time idle is measured and subtracted. Instruction counts do not depend on the
machine's load, so this is the repeatable form of ``bench/run``'s server CPU
per delivery. ``--window N`` keeps N broadcasts in flight.

``--cpu`` runs the same servers and driver without valgrind and reports the
server's user and system CPU time per delivery (``/proc/<pid>/stat``), below
saturation (the one client process is the limit), less what it spends idle
for as long. Set beside the instruction
counts, it shows how many cycles each instruction took: the two servers
execute nearly the same instructions per delivery, and the user time says
whether they run at the same speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = "x" * 48


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _argv(target: str, port: int) -> list[str]:
    if target == "raw":
        return [sys.executable, "-m", "uvicorn", "bench.fanout_apps:raw_app", "--host", "127.0.0.1",
                "--port", str(port), "--ws", "websockets-sansio", "--loop", "uvloop", "--http", "httptools",
                "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return [sys.executable, "-m", "django", "serve", f"127.0.0.1:{port}", "--no-access-log", "-v", "0"]


Publish = Callable[[str], Awaitable[None]]


async def _publisher(target: str, port: int, group: str) -> tuple[Publish, ClientConnection | None]:
    if target == "raw":
        control = await connect(f"ws://127.0.0.1:{port}/control", open_timeout=120)

        async def to_control(text: str) -> None:
            await control.send(text)

        return to_control, control
    import django
    from channels.layers import get_channel_layer

    django.setup()
    layer = get_channel_layer()

    async def to_group(text: str) -> None:
        await layer.group_send(group, {"type": "chat.message", "text": text})

    return to_group, None


def _events(dump: Path) -> dict[str, int]:
    """Return the totals of a callgrind dump by event name (Ir; with ``--cache-sim=yes`` the misses too)."""
    names: list[str] = []
    for line in dump.read_text().splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith("summary:"):
            values = [int(v) for v in line.split()[1:]]  # trailing zeros may be left out
            return dict(zip(names, values + [0] * (len(names) - len(values)), strict=True))
    raise RuntimeError(f"no summary in {dump}")


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """Return the user and system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


async def measure(target: str, members: int, broadcasts: int, window: int, cpu: bool, src: Path | None,
                  redis: str, workdir: Path, cache: bool = False) -> dict[str, float]:
    """Return the server's instructions per delivery less its idle background work (``cpu``: CPU µs;
    ``cache``: simulated cache misses per delivery too)."""
    port = _free_port()
    prefix, group = f"fcg{uuid.uuid4().hex[:8]}", f"g{uuid.uuid4().hex[:8]}"
    os.environ.update({"DJANGO_SETTINGS_MODULE": "bench.fanout_apps", "FANOUT_LAYER": "wsviews",
                       "FANOUT_PREFIX": prefix, "FANOUT_REDIS": redis})  # fmt: skip
    path = [*([str(src)] if src else []), str(ROOT), str(ROOT / "example")]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": os.pathsep.join(path)}
    dump = workdir / f"{target}-{port}.cg"
    with open(workdir / f"{target}-{port}.log", "w") as log:
        valgrind = [] if cpu else ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}",
                                   *(["--cache-sim=yes"] if cache else [])]
        argv = [*valgrind, *_argv(target, port)]
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    sockets: list[ClientConnection] = []
    control: ClientConnection | None = None
    try:
        for _ in range(1200):
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                await asyncio.sleep(0.2)
        for _ in range(members):
            ws = await connect(f"ws://127.0.0.1:{port}/ws/fanout/{group}/", open_timeout=120, max_queue=None,
                               compression=None)  # fmt: skip
            await ws.recv()  # "joined ..."
            sockets.append(ws)
        publish, control = await _publisher(target, port, group)

        async def take(ws: ClientConnection, count: int) -> list[str | bytes]:
            return [await ws.recv() for _ in range(count)]

        async def broadcast(count: int) -> None:
            for n in range(0, count, window):
                texts = [f"message {n + i:06d} {PAYLOAD}" for i in range(window)]
                for text in texts:
                    await publish(text)
                got = await asyncio.gather(*(take(ws, window) for ws in sockets))
                assert all(g == texts for g in got), "a member got another message"

        def control_valgrind(option: str) -> None:
            subprocess.run(["callgrind_control", option, str(proc.pid)], check=True, capture_output=True,
                           timeout=300)  # fmt: skip

        await broadcast(3 * window)
        deliveries = members * broadcasts
        if cpu:
            user0, system0 = _cpu_seconds(proc.pid)
            t0 = time.perf_counter()
            await broadcast(broadcasts)
            busy = time.perf_counter() - t0
            user1, system1 = _cpu_seconds(proc.pid)
            await asyncio.sleep(busy)  # the same time idle, as long
            idle = time.perf_counter() - t0 - busy
            user2, system2 = _cpu_seconds(proc.pid)
            share = busy / idle
            return {"user": (user1 - user0 - (user2 - user1) * share) / deliveries * 1e6,
                    "system": (system1 - system0 - (system2 - system1) * share) / deliveries * 1e6}
        control_valgrind("-z")
        t0 = time.perf_counter()
        await broadcast(broadcasts)
        busy = time.perf_counter() - t0
        control_valgrind("-d")  # part 1: the broadcasts
        t1 = time.perf_counter()
        await asyncio.sleep(busy)
        control_valgrind("-d")  # part 2: idle, as long
        idle = time.perf_counter() - t1
        load, background = _events(Path(f"{dump}.1")), _events(Path(f"{dump}.2"))
        per = {name: (load[name] - background[name] * busy / idle) / deliveries for name in load}
        if not cache:
            return {"instructions": per["Ir"]}
        # Level-1 data misses (reads and writes) and last-level misses, the memory a delivery touches.
        return {"instructions": per["Ir"], "D1 misses": per["D1mr"] + per["D1mw"],
                "LL misses": per["DLmr"] + per["DLmw"]}
    finally:
        for ws in sockets:
            await ws.close()
        if control is not None:
            await control.close()
        proc.terminate()
        proc.wait(120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--broadcasts", type=int, default=10)
    parser.add_argument("--window", type=int, default=1, help="broadcasts in flight")
    parser.add_argument("--cpu", action="store_true", help="CPU time per delivery, without valgrind")
    parser.add_argument("--cache", action="store_true",
                        help="simulate the caches too (--cache-sim=yes): data cache misses per delivery")
    parser.add_argument("--target", action="append", choices=["raw", "wsviews"])
    parser.add_argument("--src", type=Path, help="a directory holding a modified copy of the wsviews package")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--keep", type=Path, help="keep the callgrind dumps in this directory "
                        "(<target>-<port>.cg.1 is the broadcasts, for callgrind_annotate)")
    args = parser.parse_args()
    sys.path[:0] = [*([str(args.src)] if args.src else []), str(ROOT / "src"), str(ROOT)]
    if args.broadcasts % args.window:
        parser.error("--broadcasts must be a multiple of --window")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="wsviews-fanout-callgrind-") as tmp:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = str(args.keep)
        for target in args.target or ["raw", "wsviews"]:
            run = measure(target, args.members, args.broadcasts, args.window, args.cpu, args.src, args.redis,
                          Path(tmp), args.cache)
            results[target] = asyncio.run(run)
            print(f"{target}: {results[target]}", flush=True)
    columns = ["user", "system"] if args.cpu else list(next(iter(results.values())))
    unit = "CPU µs per delivery" if args.cpu else "per delivery"
    # CPU: user + system against raw's; callgrind: each event against raw's.
    ratios = [" + ".join(columns)] if args.cpu else columns
    print(f"\n{args.members:,} members, {args.window} broadcast(s) in flight\n")
    print("| server | " + " | ".join(f"{c} {unit}" for c in columns) + " | "
          + " | ".join(f"{r}: vs raw" for r in ratios) + " |")
    print("|---|" + "---:|" * (len(columns) + len(ratios)))
    raw = results.get("raw")

    def compared(values: dict[str, float]) -> list[float]:
        return [sum(values.values())] if args.cpu else [values[c] for c in columns]

    for target, values in results.items():
        pairs = zip(compared(values), compared(raw or values), strict=True)
        vs = " | ".join(f"{m / b:.3f}" if raw and b else "n/a" for m, b in pairs)
        cells = " | ".join(f"{values[c]:,.2f}" if args.cpu else f"{values[c]:,.1f}" for c in columns)
        print(f"| {target} | {cells} | {vs} |")


if __name__ == "__main__":
    main()
