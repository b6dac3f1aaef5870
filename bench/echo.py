"""Echo throughput and idle memory per socket: raw ASGI, plain Channels, wsviews.

Run from the repository root::

    .venv/bin/python bench/echo.py            # full run (~10 minutes)
    .venv/bin/python bench/echo.py --quick    # smoke run (~1 minute)
    .venv/bin/python bench/echo.py --python /path/to/py311/bin/python --python /path/to/py312/bin/python

Every server is ``python -m uvicorn APP --ws websockets-sansio --log-level
warning --no-access-log --workers 1`` on a free loopback port (``--ws``:
the implementation wsviews' runserver uses), started by this script
(``--python``, repeatable, picks the servers' interpreter: each needs wsviews
and channels_redis installed). This process is the client for all of them
(the ``websockets`` asyncio client, no compression, no keepalive pings), so
only the server differs.

Throughput: S sockets (default 20) each send a text message and await its
echo, M times (default 500), all sockets at once; msg/s counts round trips.
Every server gets a warm-up, then R rounds (default 5) run interleaved, the
server order rotating each round; the table shows the median, and ratios are
medians of per-round ratios. The server's CPU time per message (from
/proc/<pid>/stat, all threads) is shown too: it does not depend on how fast
the client is. "busy" is client + server CPU-seconds per wall-second: well
below 1.6 means something else was using the machine.

Idle memory: a fresh server, warmed up with a few sockets, then N idle sockets
(default 5,000) opened in batches; (VmRSS after - VmRSS before) / N.

Results are printed and written to ``bench/results/echo-<date>[-quick].md``.
Compare ratios within one run only: the machine is shared and noisy. For
counts the noise does not change, see ``bench/profile_echo.py --tool callgrind``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from websockets.asyncio.client import ClientConnection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import (  # noqa: E402
    REDIS_SERVER,
    ROOT,
    WS,
    close_sockets,
    free_port,
    launch,
    open_sockets,
    process_env,
    raise_nofile,
    uvicorn_argv,
)

RESULTS = ROOT / "bench" / "results"
PAYLOAD = '{"type":"chat.message","seq":12345,"text":"hello from the echo benchmark!"}'


# Servers


@dataclass(frozen=True)
class Target:
    """One server configuration: what uvicorn serves and where the echo lives."""

    key: str
    label: str
    app: str
    path: str
    env: dict[str, str] = field(default_factory=dict)
    layer: str = "-"


TARGETS = [
    Target("raw", "(a) raw ASGI echo", "bench.apps.raw_echo:app", "/"),
    Target(
        "channels-memory",
        "(b) MyConsumer, plain Channels",
        "bench.apps.channels_asgi:application",
        "/ws/myapp/",
        {"DJANGO_SETTINGS_MODULE": "bench.apps.channels_settings", "BENCH_LAYER": "memory"},
        "channels in-memory",
    ),
    Target(
        "channels-redis",
        "(b) MyConsumer, plain Channels",
        "bench.apps.channels_asgi:application",
        "/ws/myapp/",
        {"DJANGO_SETTINGS_MODULE": "bench.apps.channels_settings", "BENCH_LAYER": "redis",
         "BENCH_REDIS_URL": REDIS_SERVER},
        "channels_redis",
    ),
    Target(
        "wsviews-memory",
        "(c) MyConsumer, wsviews",
        "wsviews.asgi:application",
        "/ws/myapp/",
        {"DJANGO_SETTINGS_MODULE": "mysite.settings"},
        "wsviews in-memory",
    ),
    Target(
        "wsviews-redis",
        "(c) MyConsumer, wsviews",
        "wsviews.asgi:application",
        "/ws/myapp/",
        {"DJANGO_SETTINGS_MODULE": "mysite.settings", "REDIS_URL": REDIS_SERVER},
        "channels_redis",
    ),
    Target(
        "view",
        "(d) @websocket view, wsviews",
        "wsviews.asgi:application",
        "/bench/echo/",
        {"DJANGO_SETTINGS_MODULE": "bench.apps.view_settings"},
        "wsviews in-memory",
    ),
]
MEMORY_TARGETS = ["raw", "channels-memory", "wsviews-memory", "view"]


class Server:
    """A uvicorn subprocess serving one target with one interpreter (the harness's ``Server`` inside)."""

    ws = WS  # uvicorn's --ws implementation, the same for every server
    src: Path | None = None  # a directory holding a modified copy of wsviews to measure instead
    extra_env: ClassVar[dict[str, str]] = {}  # set by subclasses

    def __init__(self, target: Target, python: str, workdir: Path) -> None:
        self.target = target
        self.python = python
        self.workdir = workdir
        self.port = free_port()
        log_path = workdir / f"{target.key}-{Path(python).parent.parent.name}-{self.port}.log"
        env = process_env(
            {"DJANGO_DEBUG": "0", "DJANGO_DB": str(workdir / "db.sqlite3"), **target.env, **self.extra_env},
            pythonpath=[*([self.src] if self.src else []), ROOT, ROOT / "example"],
            drop=("REDIS_URL", "PYTHONASYNCIODEBUG"),
        )
        self.process = launch(self.command(), log_path, self.port, env, cwd=ROOT)

    def command(self) -> list[str]:
        """Return the server's argv: the same uvicorn options for every target."""
        return uvicorn_argv(self.target.app, self.port, "--no-access-log", "--workers", "1",
                            python=self.python, ws=self.ws, log_level="warning")  # fmt: skip

    @property
    def url(self) -> str:
        return f"{self.process.ws}{self.target.path}"

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.process.proc

    def wait_ready(self, timeout: float = 60) -> None:
        self.process.wait_listening(timeout)

    def log(self) -> str:
        return self.process.log()

    def errors(self) -> int:
        """Return how many tracebacks the server has logged."""
        return self.log().count("Traceback")

    def rss_kib(self) -> int:
        return self.process.rss_kib()

    def cpu_seconds(self) -> float:
        return self.process.cpu_seconds()

    def check_alive(self) -> None:
        self.process.check_alive()

    def stop(self) -> None:
        self.process.stop(timeout=15)  # a server under valgrind takes a while to shut down


def start_all(targets: list[Target], python: str, workdir: Path) -> list[Server]:
    """Start a server per target, then wait until all of them listen."""
    servers = [Server(t, python, workdir) for t in targets]
    try:
        for server in servers:
            server.wait_ready()
    except Exception:
        for server in servers:
            server.stop()
        raise
    return servers


# Client

# The same client for every server: no compression (deflating would cost more than the code
# being compared), no limit on queued frames; no keepalive pings and no proxy (harness defaults).
CLIENT_OPTIONS: dict[str, Any] = {
    "compression": None, "max_queue": None, "open_timeout": 30, "close_timeout": 5,
}


async def open_clients(url: str, count: int) -> list[ClientConnection]:
    """Open ``count`` benchmark clients to ``url``, 200 handshakes at a time."""
    return await open_sockets(url, count, **CLIENT_OPTIONS)


async def ping_pong(ws: ClientConnection, messages: int) -> None:
    """Send PAYLOAD and await its echo, ``messages`` times."""
    for _ in range(messages):
        await ws.send(PAYLOAD)
        reply = await ws.recv()
        if reply != PAYLOAD:
            raise AssertionError(f"bad echo: {reply!r}")


@dataclass
class Throughput:
    msgs: int
    seconds: float
    server_cpu: float
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.msgs / self.seconds

    @property
    def server_us(self) -> float:
        return self.server_cpu / self.msgs * 1e6

    @property
    def client_us(self) -> float:
        return self.client_cpu / self.msgs * 1e6

    @property
    def busy(self) -> float:
        """CPU seconds (server + client) per wall second: near 2 unless the machine stole time."""
        return (self.server_cpu + self.client_cpu) / self.seconds


async def echo_load(server: Server, sockets: int, messages: int, timeout: float = 180) -> Throughput:
    """Time S sockets x M round trips against ``server`` (handshakes not timed)."""
    conns = await asyncio.wait_for(open_clients(server.url, sockets), 60)
    try:
        cpu0, client0, t0 = server.cpu_seconds(), time.process_time(), time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(ping_pong(ws, messages) for ws in conns)), timeout)
        t1, client1, cpu1 = time.perf_counter(), time.process_time(), server.cpu_seconds()
    finally:
        await asyncio.wait_for(close_sockets(conns), 60)
    return Throughput(sockets * messages, t1 - t0, cpu1 - cpu0, client1 - client0)


@dataclass
class Memory:
    sockets: int
    before_kib: int
    after_kib: int

    @property
    def per_socket_kib(self) -> float:
        return (self.after_kib - self.before_kib) / self.sockets


async def idle_memory(server: Server, count: int, settle: float = 2.0) -> Memory:
    """Open ``count`` idle sockets to a warmed-up server and return its RSS growth."""
    await echo_load(server, 20, 20)  # warm up: imports, pools, first-use caches
    await asyncio.sleep(settle)
    before = server.rss_kib()
    conns = await asyncio.wait_for(open_clients(server.url, count), 600)
    try:
        # Every socket is accepted (the client saw 101 + accept); let the loop go quiet.
        await asyncio.sleep(settle)
        server.check_alive()
        after = server.rss_kib()
        # Prove they are all alive: one round trip on a sample.
        await asyncio.wait_for(
            asyncio.gather(*(ping_pong(ws, 1) for ws in conns[:: max(1, count // 50)])), 30
        )
    finally:
        await asyncio.wait_for(close_sockets(conns), 300)
    return Memory(count, before, after)


# Reporting


def interpreter_info(python: str) -> dict[str, str]:
    code = (
        "import json, sys, platform, uvicorn, websockets, django, channels, channels_redis, redis;"
        "print(json.dumps({'python': platform.python_version(), 'uvicorn': uvicorn.__version__,"
        "'websockets': websockets.__version__, 'django': django.__version__,"
        "'channels': channels.__version__, 'channels_redis': channels_redis.__version__,"
        "'redis': redis.__version__}))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    info: dict[str, str] = json.loads(out.stdout)
    return info


def source_state() -> str:
    """Return the commit and whether ``src/`` has uncommitted changes (read-only git calls)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head or 'unknown'}{' + uncommitted changes in src/' if dirty else ''}"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _mark(value: float | None, target: float | None, higher: bool) -> str:
    if value is None or target is None:
        return ""
    return "✓" if (value >= target if higher else value <= target) else "✗"


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"


@dataclass
class Report:
    args: argparse.Namespace
    started: datetime.datetime
    infos: dict[str, dict[str, str]] = field(default_factory=dict)
    runs: dict[tuple[str, str], list[Throughput]] = field(default_factory=dict)
    memory: dict[tuple[str, str], Memory] = field(default_factory=dict)
    errors: dict[tuple[str, str], int] = field(default_factory=dict)
    load_at_start: str = ""
    source: str = ""
    client_websockets: str = ""

    def median(self, py: str, key: str, attr: str = "rate") -> float | None:
        runs = self.runs.get((py, key))
        return statistics.median(getattr(r, attr) for r in runs) if runs else None

    def render(self) -> str:
        a = self.args
        lines = [f"# Echo benchmark, {self.started:%Y-%m-%d %H:%M}", ""]
        lines += [
            f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`  ",
            f"Source: {self.source}.  ",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load average at start "
            f"{self.load_at_start}; client and server share it (one process each).  ",
            f"Client: websockets {self.client_websockets} asyncio client on Python "
            f"{platform.python_version()}, no compression, no keepalive pings.  ",
            f"Server: `python -m uvicorn APP --ws {Server.ws} --log-level warning --no-access-log "
            "--workers 1` (asyncio loop, h11; uvloop/httptools not installed), DJANGO_DEBUG=0.  ",
            f"Throughput: {a.sockets} sockets x {a.messages} round trips of a {len(PAYLOAD)}-char "
            f"text message, all sockets at once; warm-up first; {a.rounds} interleaved rounds, "
            "median shown (min-max in brackets).  ",
            f"Idle memory: {a.idle} idle sockets to a fresh, warmed-up server; (VmRSS after - before) / N.",
            "",
        ]
        for py, info in self.infos.items():
            lines += [
                f"## Python {info['python']} (`{py}`)",
                "",
                f"uvicorn {info['uvicorn']}, websockets {info['websockets']}, Django "
                f"{info['django']}, channels {info['channels']}, channels_redis "
                f"{info['channels_redis']}, redis-py {info['redis']}.",
                "",
            ]
            lines += self._throughput_table(py) + [""] + self._contention(py)
            lines += self._memory_table(py) + [""]
            lines += self._ratios(py) + [""]
        if len(self.infos) > 1:
            lines += self._cross_python() + [""]
        bad = {f"{k[1]} ({k[0]})": n for k, n in self.errors.items() if n}
        lines.append(f"Server tracebacks during the run: {bad or 'none'}.")
        return "\n".join(lines) + "\n"

    def _throughput_table(self, py: str) -> list[str]:
        rows = [
            "| server | layer | msg/s median [min-max] | best msg/s | server CPU µs/msg median (min) "
            "| client CPU µs/msg | busy |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for t in TARGETS:
            runs = self.runs.get((py, t.key))
            if not runs:
                continue
            rates = [r.rate for r in runs]
            cost = [r.server_us for r in runs]
            rows.append(
                f"| {t.label} | {t.layer} | {statistics.median(rates):,.0f} [{min(rates):,.0f}-"
                f"{max(rates):,.0f}] | {max(rates):,.0f} | {statistics.median(cost):.0f} ({min(cost):.0f}) | "
                f"{self.median(py, t.key, 'client_us'):.0f} | {self.median(py, t.key, 'busy'):.2f} |"
            )
        return rows

    def _contention(self, py: str) -> list[str]:
        busy = [r.busy for (p, _), runs in self.runs.items() if p == py for r in runs]
        if not busy or statistics.median(busy) >= 1.3:
            return []
        return [
            f"**Contended run:** client and server together used a median {statistics.median(busy):.2f} "
            "CPU-seconds per wall-second (an otherwise idle 2-core machine gives 1.6-1.9), so "
            "something else was using the CPUs and msg/s is mostly noise. The server CPU/msg "
            "column, and `bench/profile_echo.py --tool callgrind`, are not affected.",
            "",
        ]

    def _memory_table(self, py: str) -> list[str]:
        raw = self.memory.get((py, "raw"))
        rows = [
            "| server (idle sockets) | RSS before (MiB) | RSS after (MiB) | KiB per socket | vs raw |",
            "|---|---:|---:|---:|---:|",
        ]
        labels = {t.key: f"{t.label} ({t.layer})" if t.layer != "-" else t.label for t in TARGETS}
        for key in MEMORY_TARGETS:
            m = self.memory.get((py, key))
            if m is None:
                continue
            rows.append(
                f"| {labels[key]} | {m.before_kib / 1024:.1f} | {m.after_kib / 1024:.1f} | "
                f"{m.per_socket_kib:.1f} | {_ratio(m.per_socket_kib, raw.per_socket_kib if raw else None)} |"
            )
        return rows

    def paired(self, py: str, a: str, b: str, attr: str) -> float | None:
        """Return the median over rounds of ``a / b``, both measured in the same round."""
        runs_a, runs_b = self.runs.get((py, a)), self.runs.get((py, b))
        if not runs_a or not runs_b:
            return None
        return statistics.median(
            float(getattr(x, attr) / getattr(y, attr)) for x, y in zip(runs_a, runs_b, strict=True)
        )

    def best(self, py: str, a: str, b: str) -> float | None:
        """Return best msg/s of ``a`` over best msg/s of ``b`` (the least disturbed rounds)."""
        runs_a, runs_b = self.runs.get((py, a)), self.runs.get((py, b))
        if not runs_a or not runs_b:
            return None
        return max(r.rate for r in runs_a) / max(r.rate for r in runs_b)

    def _ratios(self, py: str) -> list[str]:
        def rate(name: str, a: str, b: str, target: float) -> str:
            cells = [
                self.paired(py, a, b, "rate"),
                self.best(py, a, b),
                self.paired(py, b, a, "server_us"),  # capacity ratio: inverse of the cost ratio
            ]
            shown = " | ".join(f"{_fmt(v)} {_mark(v, target, True)}" for v in cells)
            return f"| {name} | {shown} | >= {target} |"

        def mem(name: str, a: str, b: str, target: float | None) -> str:
            ma, mb = self.memory.get((py, a)), self.memory.get((py, b))
            value = ma.per_socket_kib / mb.per_socket_kib if ma and mb else None
            shown = f"{_fmt(value, 3)} {_mark(value, target, False)}" if target else _fmt(value, 3)
            return f"| {name} | {shown} | | | {'<= ' + str(target) if target else '(reference)'} |"

        return [
            "| ratio | msg/s, median of per-round ratios | best msg/s ratio | server CPU/msg ratio "
            "(median per round) | target |",
            "|---|---:|---:|---:|---:|",
            rate("wsviews consumer / raw (in-memory)", "wsviews-memory", "raw", 0.7),
            rate("wsviews consumer / plain Channels, in-memory", "wsviews-memory", "channels-memory", 1.8),
            rate("wsviews consumer / plain Channels, channels_redis", "wsviews-redis", "channels-redis", 1.8),
            rate("@websocket view / raw", "view", "raw", 0.85),
            mem("wsviews consumer / raw, idle KiB per socket", "wsviews-memory", "raw", 1.1),
            mem("@websocket view / raw, idle KiB per socket", "view", "raw", 1.1),
            mem("plain Channels / raw, idle KiB per socket", "channels-memory", "raw", None),
            "",
            "A throughput ratio is a/b in msg/s; the CPU column is b's server CPU per message over a's, "
            "i.e. the same ratio as if each server had a core to itself. ✓ meets the target, ✗ misses it.",
        ]

    def _cross_python(self) -> list[str]:
        pys = list(self.infos)
        base, names = pys[0], {p: self.infos[p]["python"] for p in pys}
        head = ["server"]
        for p in pys:
            head += [f"{names[p]} msg/s", f"{names[p]} CPU µs/msg"]
        for p in pys[1:]:
            head += [f"{names[p]} / {names[base]} msg/s", f"{names[p]} / {names[base]} by CPU"]
        rows = [
            "## Across interpreters (same run, same client)",
            "",
            "| " + " | ".join(head) + " |",
            "|---|" + "---:|" * (len(head) - 1),
        ]
        for t in TARGETS:
            cells = [f"{t.label} ({t.layer})"]
            rates = [self.median(p, t.key) for p in pys]
            costs = [self.median(p, t.key, "server_us") for p in pys]
            if all(v is None for v in rates):
                continue
            for r, c in zip(rates, costs, strict=True):
                cells += [f"{r:,.0f}" if r else "n/a", f"{c:.0f}" if c else "n/a"]
            for r, c in zip(rates[1:], costs[1:], strict=True):
                cells += [_ratio(r, rates[0]), _ratio(costs[0], c)]
            rows.append("| " + " | ".join(cells) + " |")
        return rows + [
            "",
            "(medians; \"by CPU\" is the older interpreter's server CPU per message over the newer's)",
        ]


# Main


@contextlib.contextmanager
def serving(
    targets: list[Target], pythons: list[str], workdir: Path
) -> Iterator[dict[tuple[str, str], Server]]:
    servers: dict[tuple[str, str], Server] = {}
    try:
        for py in pythons:
            for server in start_all(targets, py, workdir):
                servers[(py, server.target.key)] = server
        yield servers
    finally:
        for server in servers.values():
            server.stop()


async def run_throughput(report: Report, pythons: list[str], workdir: Path) -> None:
    a = report.args
    targets = [t for t in TARGETS if not a.only or t.key in a.only]
    with serving(targets, pythons, workdir) as servers:
        order = list(servers)
        print(f"warm-up: {len(order)} servers x {a.sockets} sockets x {a.warmup} messages", flush=True)
        for key in order:
            await echo_load(servers[key], a.sockets, a.warmup)
        for rnd in range(a.rounds):
            shift = rnd % len(order)
            for key in order[shift:] + order[:shift]:
                result = await echo_load(servers[key], a.sockets, a.messages)
                report.runs.setdefault(key, []).append(result)
                print(
                    f"round {rnd + 1}/{a.rounds}  {key[1]:16} [{report.infos[key[0]]['python']}] "
                    f"{result.rate:8,.0f} msg/s  server {result.server_us:5.0f} µs/msg  "
                    f"client {result.client_us:5.0f} µs/msg  busy {result.busy:.2f}",
                    flush=True,
                )
        for key, server in servers.items():
            server.check_alive()
            report.errors[key] = server.errors()


async def run_memory(report: Report, pythons: list[str], workdir: Path) -> None:
    a = report.args
    for py in pythons:
        for key in MEMORY_TARGETS:
            if a.only and key not in a.only:
                continue
            target = next(t for t in TARGETS if t.key == key)
            server = start_all([target], py, workdir)[0]
            try:
                m = await idle_memory(server, a.idle)
                report.errors[(py, f"{key} (memory)")] = server.errors()
            finally:
                server.stop()
            report.memory[(py, key)] = m
            print(
                f"memory  {key:16} [{report.infos[py]['python']}] {a.idle} sockets: "
                f"{m.before_kib / 1024:.1f} -> {m.after_kib / 1024:.1f} MiB, "
                f"{m.per_socket_kib:.1f} KiB/socket",
                flush=True,
            )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round of 20x100 messages, 500 idle sockets"
    )
    p.add_argument(
        "--python",
        action="append",
        dest="pythons",
        metavar="PATH",
        help="interpreter for the servers (repeat to compare; default: this one)",
    )
    p.add_argument("--sockets", type=int, default=20, help="concurrent sockets for throughput")
    p.add_argument("--messages", type=int, help="round trips per socket (default 500)")
    p.add_argument("--warmup", type=int, default=100, help="warm-up round trips per socket")
    p.add_argument("--rounds", type=int, help="interleaved throughput rounds (default 5)")
    p.add_argument("--idle", type=int, help="idle sockets for the memory test (default 5000)")
    p.add_argument(
        "--only",
        action="append",
        choices=[t.key for t in TARGETS],
        help="run only these servers (repeatable)",
    )
    p.add_argument("--skip-memory", action="store_true", help="throughput only")
    p.add_argument("--skip-throughput", action="store_true", help="idle memory only")
    p.add_argument("--ws", default=WS, choices=["websockets-sansio", "websockets", "wsproto"],
                   help=f"uvicorn --ws implementation of every server (default {WS}, as runserver)")
    p.add_argument("--src", type=Path, help="directory with a modified copy of the wsviews package to serve")
    p.add_argument("--out", type=Path, help="results file (default bench/results/echo-<date>.md)")
    args = p.parse_args(argv)
    args.messages = args.messages or (100 if args.quick else 500)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.idle = args.idle or (500 if args.quick else 5000)
    args.pythons = args.pythons or [sys.executable]
    return args


async def main_async(args: argparse.Namespace) -> Report:
    from websockets.version import version as websockets_version

    report = Report(args, datetime.datetime.now())
    report.load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report.client_websockets = websockets_version
    report.source = source_state()
    for py in args.pythons:
        report.infos[py] = interpreter_info(py)
    with tempfile.TemporaryDirectory(prefix="wsviews-bench-") as tmp:
        workdir = Path(tmp)
        try:
            if not args.skip_throughput:
                await run_throughput(report, args.pythons, workdir)
            if not args.skip_memory:
                await run_memory(report, args.pythons, workdir)
        except BaseException:
            for log in sorted(workdir.glob("*.log")):
                text = log.read_text(errors="replace").strip()
                if text:
                    print(f"--- {log.name}\n{text[-3000:]}", file=sys.stderr)
            raise
    return report


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    Server.ws = args.ws
    Server.src = args.src.resolve() if args.src else None
    raise_nofile()
    report = asyncio.run(main_async(args))
    text = report.render()
    print()
    print(text)
    out = args.out or RESULTS / f"echo-{report.started:%Y-%m-%d}{'-quick' if args.quick else ''}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
