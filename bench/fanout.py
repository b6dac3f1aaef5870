"""Fan-out and point-to-point through a Redis channel layer: Channels vs wsviews vs raw ASGI.

Run from the repository root (Redis must be up: ``--redis``, default database 11 of
``WSVIEWS_TEST_REDIS`` (``redis://127.0.0.1:6379``), as for the tests)::

    .venv/bin/python bench/fanout.py            # full run (~10 minutes)
    .venv/bin/python bench/fanout.py --quick    # smoke run (~2 minutes)
    .venv/bin/python bench/fanout.py --baseline /path/to/other/checkout/src

``--baseline SRC`` adds a target (c0): wsviews and its layer imported from
another source tree (an older commit), servers and publisher alike, so that a
change is measured against what it replaces in the same run.

Servers (``uvicorn bench.fanout_apps:<app> --ws websockets-sansio``, one worker, loopback):

(a) plain Channels + channels_redis ``RedisChannelLayer``;
(b) plain Channels + channels_redis ``RedisPubSubChannelLayer``;
(c) wsviews + ``wsviews.layers.RedisChannelLayer``;
(c0) the same from ``--baseline SRC``, when given;
(d) a raw ASGI app doing local fan-out over a set of ``send`` callables.

(a)-(c) serve the same consumer: ``group_add`` in ``connect``, and a
``chat_message`` handler that sends the event's text. This process publishes
through the same layer class the servers use (``group_send`` / ``send``); for
(d) it writes to a ``/control`` socket of each server process instead.

Scenarios: ``fanout-1``: MEMBERS sockets in one server process;
``fanout-2``: the same split across two processes; ``p2p``: ``send()`` to
single sockets' channels (MEMBERS sockets on one process, each message to one).

Clients are ``websockets`` asyncio clients in CLIENTS separate processes, the
same for every server. Each message carries its send time; a client records
the latency of every delivery. Phases, per server and scenario, in this order:

* ``max``: WINDOW broadcasts in flight, the next sent as soon as one has
  reached every member (closed loop), ROUNDS rounds of SECONDS: the median
  deliveries per second;
* ``rate``: RATE broadcasts per second for SECONDS (open loop): p50/p99 latency.
  Unless ``--rate`` is given, RATE is half of what raw local fan-out sustained
  in the same run (at most 100/s): a load the machine can carry, the same for
  every server;
* ``p2p``: ROUNDS rounds of MESSAGES sends, WINDOW * 50 in flight: the median
  deliveries per second; the latency of every delivery.

The CPU time of the server processes and of redis-server (from /proc) is
divided by the deliveries: unlike deliveries/s it does not depend on how much
CPU the clients took, which on a small machine they share with the servers.

Results are printed and written to ``bench/results/fanout-<date>[-quick].md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import multiprocessing
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from channels.exceptions import ChannelFull

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import (  # noqa: E402
    REDIS_SERVER,
    ROOT,
    cpu_seconds,
    free_port,
    launch,
    process_env,
    raise_nofile,
    uvicorn_argv,
)

RESULTS = ROOT / "bench" / "results"
REDIS_URL = f"{REDIS_SERVER}/11"  # --redis overrides it
BASELINE_PACKAGE = "wsviews_baseline"
PAD = "x" * 64  # a chat message's worth of text


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    app: str
    layer: str | None
    src: str | None = None  # where wsviews is imported from, if not this checkout


TARGETS = [
    Target("channels_redis", "(a) Channels + channels_redis RedisChannelLayer",
           "bench.fanout_apps:channels_app", "channels_redis"),
    Target("pubsub", "(b) Channels + channels_redis RedisPubSubChannelLayer",
           "bench.fanout_apps:channels_app", "channels_redis_pubsub"),
    Target("wsviews", "(c) wsviews + wsviews RedisChannelLayer",
           "bench.fanout_apps:wsviews_app", "wsviews"),
    Target("raw", "(d) raw ASGI, local fan-out", "bench.fanout_apps:raw_app", None),
]
SCENARIOS = {"fanout-1": 1, "fanout-2": 2, "p2p": 1}


# Servers


class Server:
    """One uvicorn process serving a target (the harness's ``Server`` inside), listening once made."""

    def __init__(self, target: Target, prefix: str, workdir: Path, python: str) -> None:
        self.target = target
        port = free_port()
        env = process_env(
            {"DJANGO_SETTINGS_MODULE": "bench.fanout_apps", "FANOUT_LAYER": target.layer or "wsviews",
             "FANOUT_PREFIX": prefix, "FANOUT_REDIS": REDIS_URL},
            pythonpath=[ROOT, target.src or ROOT / "src"], drop=("REDIS_URL",),
        )
        argv = uvicorn_argv(target.app, port, "--no-access-log", "--workers", "1", python=python,
                            log_level="warning")
        self.process = launch(argv, workdir / f"{target.key}-{port}.log", port, env, cwd=ROOT)
        self.process.wait_listening(60)
        self.log_path = self.process.log_path

    def url(self, path: str) -> str:
        return f"{self.process.ws}{path}"

    def log(self) -> str:
        return self.process.log()

    def cpu(self) -> float:
        return self.process.cpu_seconds()

    def stop(self) -> None:
        self.process.stop(timeout=15)


# Clients (separate processes)


def client_process(conn: Connection, urls: list[str]) -> None:
    raise_nofile()
    asyncio.run(Client(conn, urls).run())


class Client:
    """Open sockets, record the latency of each delivery, report to the bench process."""

    def __init__(self, conn: Connection, urls: list[str]) -> None:
        self.conn = conn
        self.urls = urls
        self.latencies: dict[str, list[float]] = {}
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.counts: dict[tuple[str, int], int] = {}
        self.expected: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.done = asyncio.Event()

    async def run(self) -> None:
        from websockets.asyncio.client import connect

        limit = asyncio.Semaphore(50)

        async def open_one(url: str) -> tuple[Any, str]:
            async with limit:
                ws = await connect(url, compression=None, ping_interval=None, max_size=None,
                                   open_timeout=120, close_timeout=1)
                return ws, str(await ws.recv())

        opened = await asyncio.gather(*(open_one(url) for url in self.urls))
        sockets = [ws for ws, _ in opened]
        self.conn.send(("ready", [hello.partition(" ")[2] for _, hello in opened]))
        loop = asyncio.get_running_loop()
        loop.add_reader(self.conn.fileno(), self.command)
        readers = [asyncio.ensure_future(self.read(ws)) for ws in sockets]
        await self.done.wait()
        loop.remove_reader(self.conn.fileno())
        for task in readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)

    async def read(self, ws: Any) -> None:
        members = len(self.urls)
        monotonic = time.monotonic
        with contextlib.suppress(Exception):
            async for text in ws:
                now = monotonic()
                phase, seq, sent, _ = text.split(" ", 3)
                self.latencies.setdefault(phase, []).append(now - float(sent))
                self.first.setdefault(phase, now)
                self.last[phase] = now
                received = self.received[phase] = self.received.get(phase, 0) + 1
                if phase.startswith("p2p"):
                    if received == self.expected.get(phase):
                        self.conn.send(("done", phase, -1))
                    continue
                key = (phase, int(seq))
                count = self.counts[key] = self.counts.get(key, 0) + 1
                if count == members:
                    del self.counts[key]
                    self.conn.send(("done", phase, int(seq)))

    def command(self) -> None:
        message = self.conn.recv()
        if message[0] == "expect":
            _, phase, count = message
            self.expected[phase] = count
            if self.received.get(phase, 0) >= count:
                self.conn.send(("done", phase, -1))
        elif message[0] == "report":
            phase = message[1]
            self.conn.send(("report", phase, self.latencies.pop(phase, []),
                            self.first.get(phase, 0.0), self.last.get(phase, 0.0)))
        elif message[0] == "close":
            self.done.set()


class Clients:
    """The client processes, as seen from the bench process."""

    def __init__(self, urls: list[str], processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        self.shares = [urls[i::processes] for i in range(processes)]
        for share in self.shares:
            ours, theirs = context.Pipe()
            proc = context.Process(target=client_process, args=(theirs, share), daemon=True)
            proc.start()
            self.pipes.append(ours)
            self.procs.append(proc)
        self.done: dict[tuple[str, int], int] = {}
        self.events: dict[tuple[str, int], asyncio.Event] = {}

    async def ready(self) -> list[str]:
        names: list[str] = []
        for pipe in self.pipes:
            kind, channels = await asyncio.to_thread(pipe.recv)
            assert kind == "ready"
            names += channels
        loop = asyncio.get_running_loop()
        for pipe in self.pipes:
            loop.add_reader(pipe.fileno(), self._on_message, pipe)
        return names

    def _on_message(self, pipe: Connection) -> None:
        message = pipe.recv()
        if message[0] == "done":
            key = (message[1], message[2])
            self.done[key] = self.done.get(key, 0) + 1
            if self.done[key] == len(self.pipes):
                self.events.setdefault(key, asyncio.Event()).set()
        elif message[0] == "report":
            self._reports.append(message)
            if len(self._reports) == len(self.pipes):
                self._reported.set()

    def event(self, phase: str, seq: int) -> asyncio.Event:
        return self.events.setdefault((phase, seq), asyncio.Event())

    async def report(self, phase: str) -> tuple[list[float], float, float]:
        self._reports: list[Any] = []
        self._reported = asyncio.Event()
        for pipe in self.pipes:
            pipe.send(("report", phase))
        await self._reported.wait()
        latencies = [x for r in self._reports for x in r[2]]
        firsts = [r[3] for r in self._reports if r[3]]
        lasts = [r[4] for r in self._reports if r[4]]
        return latencies, min(firsts, default=0.0), max(lasts, default=0.0)

    def expect(self, phase: str, counts: list[int]) -> None:
        for pipe, count in zip(self.pipes, counts, strict=True):
            pipe.send(("expect", phase, count))

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                loop.remove_reader(pipe.fileno())
                pipe.send(("close",))
        for proc in self.procs:
            proc.join(15)
            if proc.is_alive():
                proc.kill()


# Publishing


class Publisher:
    """Send broadcasts and point-to-point messages the way the target's servers expect."""

    def __init__(self, target: Target, prefix: str, servers: list[Server]) -> None:
        self.target = target
        self.servers = servers
        self.layer: Any = None
        self.controls: list[Any] = []
        if target.layer is not None:
            from django.utils.module_loading import import_string

            import bench.fanout_apps as apps

            backend, config = apps._BACKENDS[target.layer]
            config = {**config, "prefix": prefix}
            if target.src is not None:
                backend = backend.replace("wsviews.", f"{load_baseline(target.src)}.", 1)
            self.layer = import_string(backend)(**config)

    async def open(self) -> None:
        if self.layer is None:
            from websockets.asyncio.client import connect

            for server in self.servers:
                ws = await connect(server.url("/control"), compression=None, ping_interval=None,
                                   max_size=None)
                self.controls.append(ws)

    async def broadcast(self, group: str, text: str) -> None:
        if self.layer is not None:
            await self.layer.group_send(group, {"type": "chat.message", "text": text})
        else:
            for ws in self.controls:
                await ws.send(text)

    async def send(self, channel: str, text: str) -> None:
        if self.layer is not None:
            await self.layer.send(channel, {"type": "chat.message", "text": text})
        else:  # one raw server: the "channel" is the socket's index there
            await self.controls[0].send(f"@{channel} {text}")

    async def close(self) -> None:
        for ws in self.controls:
            await ws.close()
        if self.layer is not None:
            await self.layer.flush()
            close = getattr(self.layer, "close", None)
            if close is not None:
                await close()


def load_baseline(src: str) -> str:
    """Import the ``wsviews`` package of ``src`` as BASELINE_PACKAGE; return that name.

    The package imports its own modules relatively, so under another name it
    lives next to this checkout's ``wsviews`` in one process.
    """
    import importlib.util

    if BASELINE_PACKAGE not in sys.modules:
        init = Path(src) / "wsviews" / "__init__.py"
        spec = importlib.util.spec_from_file_location(
            BASELINE_PACKAGE, init, submodule_search_locations=[str(init.parent)]
        )
        assert spec is not None and spec.loader is not None, f"no wsviews package in {src}"
        module = importlib.util.module_from_spec(spec)
        sys.modules[BASELINE_PACKAGE] = module
        spec.loader.exec_module(module)
    return BASELINE_PACKAGE


def payload(phase: str, seq: int) -> str:
    return f"{phase} {seq} {time.monotonic():.6f} {PAD}"


# Measuring


@dataclass
class Result:
    target: Target
    scenario: str
    members: int
    rate_p50: float = float("nan")
    rate_p99: float = float("nan")
    rate_delivered: float = 0.0
    max_per_s: float = 0.0
    rate: float = 0.0
    p2p_per_s: float = 0.0
    p2p_p50: float = float("nan")
    p2p_p99: float = float("nan")
    server_us: float = float("nan")
    redis_us: float = float("nan")
    notes: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Meter:
    """CPU seconds of the servers and of redis-server, between two points."""

    def __init__(self, servers: list[Server], redis_pid: int | None) -> None:
        self.servers = servers
        self.redis_pid = redis_pid

    def read(self) -> tuple[float, float]:
        redis_cpu = cpu_seconds(self.redis_pid) if self.redis_pid else float("nan")
        return sum(s.cpu() for s in self.servers), redis_cpu


async def run_scenario(target: Target, scenario: str, rate: float, args: argparse.Namespace,
                       workdir: Path, redis_pid: int | None) -> Result:
    prefix = f"fanout-{uuid.uuid4().hex[:8]}"
    group = "room"
    servers = [Server(target, prefix, workdir, args.python) for _ in range(SCENARIOS[scenario])]
    result = Result(target, scenario, args.members, rate=rate)
    clients: Clients | None = None
    publisher = Publisher(target, prefix, servers)
    try:
        urls = [servers[i % len(servers)].url(f"/ws/fanout/{group}/") for i in range(args.members)]
        if target.layer is None:
            urls = [servers[i % len(servers)].url("/member") for i in range(args.members)]
        clients = Clients(urls, args.clients)
        channels = await clients.ready()
        await publisher.open()
        meter = Meter(servers, redis_pid)
        if scenario == "p2p":
            await measure_p2p(publisher, clients, channels, args, result, meter)
        else:
            await measure_fanout(publisher, clients, group, args, result, meter)
        for server in servers:
            errors = server.log().count("Traceback")
            if errors:
                result.notes.append(f"{errors} tracebacks in {server.log_path.name}")
    finally:
        if clients is not None:
            clients.close()
        await publisher.close()
        for server in servers:
            server.stop()
    return result


async def measure_fanout(publisher: Publisher, clients: Clients, group: str,
                         args: argparse.Namespace, result: Result, meter: Meter) -> None:
    for seq in range(10):  # warm-up, closed loop
        await publisher.broadcast(group, payload("warm", seq))
        await wait(clients.event("warm", seq), 30)
    await clients.report("warm")

    # As fast as it goes: WINDOW broadcasts in flight, the next one sent when
    # the oldest has reached every member. ROUNDS rounds; the median counts.
    rounds: list[tuple[float, float, float]] = []
    seq = 0
    for _ in range(args.rounds):
        server_cpu, redis_cpu = meter.read()
        start = time.monotonic()
        inflight: list[int] = []
        while time.monotonic() - start < args.seconds:
            while len(inflight) < args.window:
                await publisher.broadcast(group, payload("max", seq))
                inflight.append(seq)
                seq += 1
            if not await wait(clients.event("max", inflight.pop(0)), args.drain):
                result.notes.append("max: a broadcast did not reach every member in time")
                break
        for pending in inflight:
            await wait(clients.event("max", pending), args.drain)
        elapsed = time.monotonic() - start
        latencies, _, _ = await clients.report("max")
        server_cpu2, redis_cpu2 = meter.read()
        deliveries = max(len(latencies), 1)
        rounds.append((len(latencies) / elapsed, (server_cpu2 - server_cpu) / deliveries * 1e6,
                       (redis_cpu2 - redis_cpu) / deliveries * 1e6))
    result.max_per_s = statistics.median(r[0] for r in rounds)
    result.server_us = statistics.median(r[1] for r in rounds)
    result.redis_us = statistics.median(r[2] for r in rounds)

    # A fixed rate, open loop: the latency of each delivery. Unless given, the
    # rate is half of what this (raw) server just sustained.
    if not result.rate:
        result.rate = min(100.0, round(0.5 * result.max_per_s / args.members, 1)) or 1.0
    rate = result.rate
    count = max(1, int(rate * args.seconds))
    start = time.monotonic()
    for seq in range(count):
        delay = start + seq / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await publisher.broadcast(group, payload("rate", seq))
    published = time.monotonic()
    drained = await wait(clients.event("rate", count - 1), args.drain)
    latencies, _, _ = await clients.report("rate")
    result.rate_p50 = percentile(latencies, 0.5) * 1000
    result.rate_p99 = percentile(latencies, 0.99) * 1000
    result.rate_delivered = len(latencies) / (count * args.members)
    if published - start > args.seconds * 1.1:
        result.notes.append(f"rate: publishing {count} broadcasts took {published - start:.1f} s")
    if not drained:
        result.notes.append(f"rate: not all delivered {args.drain:.0f} s after publishing")


async def measure_p2p(publisher: Publisher, clients: Clients, channels: list[str],
                      args: argparse.Namespace, result: Result, meter: Meter) -> None:
    """ROUNDS rounds of MESSAGES sends; the median round counts, latencies are pooled."""
    shares = [len(share) for share in clients.shares]
    offsets = [0]
    for size in shares:
        offsets.append(offsets[-1] + size)
    # Channel names arrive per client process, in the order of its share.
    order: list[str] = channels
    total = args.messages
    rng = random.Random(0)
    rounds: list[tuple[float, float, float]] = []
    pooled: list[float] = []
    full = 0
    for round_ in range(args.rounds):
        phase = f"p2p{round_}"
        targets = [rng.randrange(len(order)) for _ in range(total)]
        per_client = [0] * len(shares)
        for t in targets:
            per_client[next(i for i in range(len(shares)) if offsets[i] <= t < offsets[i + 1])] += 1
        clients.expect(phase, per_client)
        server_cpu, redis_cpu = meter.read()
        start = time.monotonic()
        limit = asyncio.Semaphore(args.window * 50)

        async def send(seq: int, channel: str, phase: str = phase,
                       limit: asyncio.Semaphore = limit) -> None:
            nonlocal full
            async with limit:
                while True:
                    try:
                        await publisher.send(channel, payload(phase, seq))
                        return
                    except ChannelFull:  # backpressure: wait for the receiver to catch up
                        full += 1
                        await asyncio.sleep(0.01)

        await asyncio.gather(*(send(seq, order[t]) for seq, t in enumerate(targets)))
        drained = await wait(clients.event(phase, -1), args.drain)
        elapsed = time.monotonic() - start
        latencies, _, _ = await clients.report(phase)
        server_cpu2, redis_cpu2 = meter.read()
        if not drained:
            result.notes.append(f"{phase}: {total - len(latencies)} of {total} not delivered")
        deliveries = max(len(latencies), 1)
        rounds.append((len(latencies) / elapsed, (server_cpu2 - server_cpu) / deliveries * 1e6,
                       (redis_cpu2 - redis_cpu) / deliveries * 1e6))
        pooled += latencies
    if full:
        result.notes.append(f"p2p: ChannelFull {full} times (retried after 10 ms)")
    result.p2p_per_s = statistics.median(r[0] for r in rounds)
    result.server_us = statistics.median(r[1] for r in rounds)
    result.redis_us = statistics.median(r[2] for r in rounds)
    result.p2p_p50 = percentile(pooled, 0.5) * 1000
    result.p2p_p99 = percentile(pooled, 0.99) * 1000


async def wait(event: asyncio.Event, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
        return True
    except TimeoutError:
        return False


# Reporting


def fmt(value: float, digits: int = 0) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.{digits}f}"


def table(results: list[Result], args: argparse.Namespace) -> str:
    lines = [
        "| server | scenario | max deliveries/s | server CPU µs/delivery | "
        "redis CPU µs/delivery | rate: broadcasts/s | p50 ms | p99 ms | delivered |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.scenario == "p2p":
            lines.append(
                f"| {r.target.label} | p2p | {fmt(r.p2p_per_s)} | {fmt(r.server_us, 1)} | "
                f"{fmt(r.redis_us, 1)} | (as fast as sent) | {fmt(r.p2p_p50, 1)} | "
                f"{fmt(r.p2p_p99, 1)} | - |"
            )
        else:
            lines.append(
                f"| {r.target.label} | {r.scenario} | {fmt(r.max_per_s)} | {fmt(r.server_us, 1)} "
                f"| {fmt(r.redis_us, 1)} | {r.rate:g} | {fmt(r.rate_p50, 1)} | "
                f"{fmt(r.rate_p99, 1)} | {r.rate_delivered:.1%} |"
            )
    return "\n".join(lines)


def ratios(results: list[Result]) -> str:
    by = {(r.target.key, r.scenario): r for r in results}
    baseline = any(key == "baseline" for key, _ in by)
    lines = ["| scenario | wsviews / pubsub layer | wsviews / channels_redis | wsviews / raw |"
             + (" wsviews / (c0) | (c0) / pubsub layer | (c0) / raw |" if baseline else ""),
             "|---|---:|---:|---:|" + ("---:|---:|---:|" if baseline else "")]
    for scenario in SCENARIOS:
        ours = by.get(("wsviews", scenario))
        if ours is None:
            continue

        def ratio(other_key: str, ours: Result | None = ours, scenario: str = scenario) -> str:
            other = by.get((other_key, scenario))
            if other is None or ours is None:
                return "-"
            mine = ours.p2p_per_s if scenario == "p2p" else ours.max_per_s
            theirs = other.p2p_per_s if scenario == "p2p" else other.max_per_s
            return f"{mine / theirs:.2f}x" if theirs else "-"

        line = f"| {scenario} | {ratio('pubsub')} | {ratio('channels_redis')} | {ratio('raw')} |"
        if baseline:
            theirs = by.get(("baseline", scenario))
            line += (f" {ratio('baseline')} | {ratio('pubsub', theirs)} | "
                     f"{ratio('raw', theirs)} |")
        lines.append(line)
    return "\n".join(lines)


def redis_pid() -> int | None:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL)
        pid = int(client.info("server")["process_id"])
        client.close()
        Path(f"/proc/{pid}/stat").read_text()
        return pid
    except Exception:
        return None


async def main(args: argparse.Namespace) -> int:
    global REDIS_URL
    REDIS_URL = args.redis
    os.environ["FANOUT_REDIS"] = REDIS_URL  # read by bench.fanout_apps, here and in the servers
    sys.path[:0] = [str(ROOT), str(ROOT / "src")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.fanout_apps")
    raise_nofile()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fanout-logs-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"server logs in {workdir}", flush=True)
    pid = redis_pid()
    results = []
    chosen = [t for t in TARGETS if t.key in args.targets]
    if args.baseline:
        ours = next(t for t in TARGETS if t.key == "wsviews")
        chosen.append(replace(ours, key="baseline", label=f"(c0) wsviews from {args.baseline}",
                              src=str(Path(args.baseline).resolve())))
    # raw first: the automatic rate is a share of what raw local fan-out sustains.
    targets = sorted(chosen, key=lambda t: t.key != "raw")
    for scenario in args.scenarios:
        rate = args.rate or 0.0
        for target in targets:
            print(f"{target.label} / {scenario} ...", flush=True)
            started = time.monotonic()
            result = await run_scenario(target, scenario, rate, args, workdir, pid)
            if not rate and scenario != "p2p":
                rate = result.rate
                print(f"  rate phase: {rate:g} broadcasts/s (half of raw's max)", flush=True)
            results.append(result)
            print(f"  done in {time.monotonic() - started:.0f} s {'; '.join(result.notes)}",
                  flush=True)
    report = render(results, args, pid)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    suffix = ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")
    out = RESULTS / f"fanout-{datetime.date.today().isoformat()}{suffix}.md"
    out.write_text(report)
    print(f"written to {out.relative_to(ROOT)}")
    return 0


def render(results: list[Result], args: argparse.Namespace, pid: int | None) -> str:
    import channels
    import channels_redis
    import redis
    from websockets.version import version as websockets_version

    notes = [f"- {r.target.label} / {r.scenario}: {n}" for r in results for n in r.notes]
    try:  # redis-py parses replies with hiredis when it is installed: much cheaper per message
        import hiredis

        parser = f"hiredis {hiredis.__version__}"
    except ImportError:
        parser = "redis-py's Python parser (no hiredis)"
    return "\n".join([
        f"# Fan-out benchmark, {datetime.datetime.now().isoformat(timespec='minutes')}",
        "",
        f"`{' '.join(sys.argv)}` on {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; channels {channels.__version__}, channels_redis "
        f"{channels_redis.__version__}, redis-py {redis.__version__}, websockets "
        f"{websockets_version}; {parser} in this process; Redis on loopback"
        f"{'' if pid else ' (its CPU not readable)'}.",
        "",
        f"{args.members} sockets, {args.clients} client processes, servers on "
        f"{args.python}. max: {args.window} broadcasts in flight, median of {args.rounds} "
        f"rounds of {args.seconds:g} s; rate: "
        f"broadcasts/s as shown, for {args.seconds:g} s ({'given' if args.rate else 'half of raw max'}"
        f"); p2p: median of {args.rounds} rounds of {args.messages} messages, "
        f"{args.window * 50} sends in flight.",
        "",
        table(results, args),
        "",
        "Ratios of max deliveries/s (p2p: deliveries/s):",
        "",
        ratios(results),
        "",
        *(["Notes:", "", *notes, ""] if notes else []),
    ])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1000, help="sockets in the group")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--rate", type=float, default=None,
                        help="broadcasts/s of the rate phase (default: half of what raw local "
                             "fan-out sustains in the same run, at most 100)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter of the servers (default: this one)")
    parser.add_argument("--seconds", type=float, default=3,
                        help="length of the rate phase and of each max round")
    parser.add_argument("--window", type=int, default=4, help="broadcasts in flight (max phase)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="max phase rounds per server (the median is reported)")
    parser.add_argument("--messages", type=int, default=10000,
                        help="point-to-point messages per round")
    parser.add_argument("--drain", type=float, default=30, help="seconds to wait for deliveries")
    parser.add_argument("--redis", default=REDIS_URL,
                        help=f"the Redis every layer uses (default: {REDIS_URL})")
    parser.add_argument("--baseline", metavar="SRC",
                        help="also run wsviews imported from SRC (a src/ dir of another checkout)")
    parser.add_argument("--targets", nargs="+", default=[t.key for t in TARGETS],
                        choices=[t.key for t in TARGETS])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--workdir", help="where server logs go (default: a new temporary dir)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--tag", default="", help="appended to the results file name")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.messages, args.drain, args.rounds = 2, 2000, 15, 1
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
