"""Profile the echo benchmark's servers: where does a message's server time go?

Run from the repository root::

    .venv/bin/python bench/profile_echo.py                       # raw, wsviews consumer, view
    .venv/bin/python bench/profile_echo.py --tool callgrind --sockets 1 --messages 1000
    .venv/bin/python bench/profile_echo.py --tool tracemalloc --idle 1000
    .venv/bin/python bench/profile_echo.py --tool py-spy --target view
    .venv/bin/python bench/profile_echo.py --src /tmp/copy --tool callgrind   # a modified copy of wsviews

Each target is served as in ``bench/echo.py`` (same uvicorn options, same
client; ``--python`` picks the servers' interpreter). Four tools:

wsviews' targets are served by ``manage.py serve`` (its protocol classes, as
``bench/run`` serves them) unless ``--ws`` picks another implementation; the
others by ``uvicorn.Config`` with that implementation.

``cprofile`` (default)
    The server runs under ``cProfile``, switched on by SIGUSR1 once the
    sockets are open and warmed up, and off by SIGUSR2 before they close, so
    only the echo loop is recorded (event-loop thread only). Shown: Python
    calls per message (coroutine resumptions count as calls; exact), and the
    functions called at least once per message with their profiled time.
    Profiled times are inflated and noisy; compare them between targets.
``callgrind``
    Runs the server under ``valgrind --tool=callgrind`` and counts the
    instructions it executes between zeroing and dumping the counters (the
    echo loop only), less uvicorn's background work measured over the same
    time idle, with ``PYTHONHASHSEED=0``. Instruction counts do not depend on
    the machine's load: repeated runs agree within 1%, where wall-clock
    ratios on a shared machine move by tens of percent. With one socket
    (``--sockets 1``) no reads are batched, which makes the counts the most
    repeatable. Slow (~100x): 100 round trips per socket by default.
``tracemalloc``
    Traces allocations and snapshots them before and after opening ``--idle``
    idle sockets: bytes and blocks per socket, by line, and by the most recent
    wsviews / Channels / Django frame on the allocation's stack.
``py-spy``
    Samples the unmodified server (``py-spy record --nonblocking``, 1 kHz)
    during the loop. Shown: where the on-CPU samples are, by package
    (innermost frame), and the inclusive share of chosen functions.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import echo  # noqa: E402 - puts tests/ (the harness) on sys.path too
from harness import WS, close_sockets, raise_nofile  # noqa: E402

TARGETS = {t.key: t for t in echo.TARGETS}
WSVIEWS_APP = "wsviews.asgi:application"


# The profiled server (child process)


def serve(app: str, port: int, stats: str, memory: bool, ws: str) -> None:
    """Run uvicorn like ``echo.py`` does, profiling between SIGUSR1 and SIGUSR2.

    With ``memory``, trace allocations instead and write a tracemalloc
    snapshot at each signal (``stats.before``, ``stats.after``).
    """
    import cProfile
    import tracemalloc

    import uvicorn

    profile = cProfile.Profile()
    if memory:
        tracemalloc.start(40)

    def start(*_: object) -> None:
        if memory:
            tracemalloc.take_snapshot().dump(f"{stats}.before")
        else:
            profile.enable()

    def stop(*_: object) -> None:
        if memory:
            tracemalloc.take_snapshot().dump(f"{stats}.after")
            Path(stats).write_text("done")
        else:
            profile.disable()
            profile.dump_stats(stats)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    if app == WSVIEWS_APP and ws == WS:
        # As bench/run serves it: wsviews' entry point, with its own protocol classes.
        import django
        from django.core.management import call_command

        django.setup()
        call_command("serve", f"127.0.0.1:{port}", "--no-access-log", verbosity=0)
        return
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws=ws, log_level="warning", access_log=False, workers=1
    )
    uvicorn.Server(config).run()


class ProfiledServer(echo.Server):
    """``echo.Server`` whose process is this script in ``--serve`` mode."""

    memory = False

    def command(self) -> list[str]:
        self.stats = self.workdir / f"{self.target.key}-{self.port}.prof"
        return [
            self.python, str(Path(__file__).resolve()), "--serve", self.target.app,
            "--port", str(self.port), "--stats", str(self.stats), "--ws", self.ws,
            *(["--memory"] if self.memory else []),
        ]  # fmt: skip


class TracedServer(ProfiledServer):
    memory = True


# The client


async def drive(server: echo.Server, sockets: int, messages: int, on: object, off: object) -> float:
    """Open the sockets, warm up, call ``on()``, run the loop, call ``off()``; return seconds."""
    conns = await asyncio.wait_for(echo.open_clients(server.url, sockets), 60)
    try:
        await asyncio.gather(*(echo.ping_pong(ws, 20) for ws in conns))
        on()  # type: ignore[operator]
        await asyncio.sleep(0.5)
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(echo.ping_pong(ws, messages) for ws in conns)), 300)
        elapsed = time.perf_counter() - t0
        off()  # type: ignore[operator]
    finally:
        await asyncio.wait_for(close_sockets(conns), 60)
    return elapsed


# cProfile


def _where(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name  # a builtin
    parts = Path(filename).parts
    for anchor in ("site-packages", "src", "bench", "lib"):
        if anchor in parts:
            parts = parts[len(parts) - parts[::-1].index(anchor) :]
            break
    return f"{'/'.join(parts)}:{line}({name})"


def cprofile_report(stats_path: Path, msgs: int, top: int) -> list[str]:
    stats = pstats.Stats(str(stats_path))
    raw = stats.stats  # type: ignore[attr-defined]
    total_calls = sum(v[1] for v in raw.values())  # primitive + recursive calls
    total_time = sum(v[2] for v in raw.values())
    lines = [
        f"{total_calls / msgs:.1f} Python/builtin calls per message, {total_time / msgs * 1e6:.1f} µs "
        f"profiled time per message ({msgs} messages)",
        "",
        "| calls/msg | own µs/msg | incl µs/msg | function |",
        "|---:|---:|---:|---|",
    ]
    rows = [
        (v[1] / msgs, v[2] / msgs * 1e6, v[3] / msgs * 1e6, _where(func))
        for func, v in raw.items()
        if v[1] / msgs >= 0.5
    ]
    rows.sort(key=lambda r: -r[1])
    for calls, own, incl, where in rows[:top]:
        lines.append(f"| {calls:.2f} | {own:.2f} | {incl:.2f} | `{where}` |")
    by_package: collections.Counter[str] = collections.Counter()
    for func, v in raw.items():
        by_package[_package(func[0])] += v[2]
    lines += ["", "Own time by package: " + ", ".join(
        f"{pkg} {t / total_time:.0%}" for pkg, t in by_package.most_common() if t / total_time >= 0.01
    )]  # fmt: skip
    return lines


def _package(filename: str) -> str:
    if filename == "~":
        return "builtins (C)"
    for name in ("wsviews", "channels_redis", "channels", "django", "asgiref", "uvicorn", "websockets",
                 "redis", "asyncio", "bench"):  # fmt: skip
        if f"/{name}/" in filename:
            return "raw app" if name == "bench" else name
    return "other stdlib"


# py-spy


def pyspy_report(raw_path: Path, top: int) -> list[str]:
    leaf: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    package: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if "(" in f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        innermost = frames[-1]
        leaf[innermost] += count
        filename = innermost[innermost.rfind("(") + 1 : -1]
        package[_package("/" + filename)] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [
        f"{total} on-CPU samples. Innermost frame by package: "
        + ", ".join(f"{p} {c / total:.0%}" for p, c in package.most_common() if c / total >= 0.01),
        "",
        "| self % | function (innermost frame) |",
        "|---:|---|",
    ]
    lines += [f"| {c / total:.1%} | `{f}` |" for f, c in leaf.most_common(top)]
    lines += ["", "| inclusive % | function |", "|---:|---|"]
    interesting = [
        (f, c) for f, c in inclusive.most_common()
        if any(k in f for k in ("wsviews", "channels", "bench/apps", "asgi_send", "asgi_receive",
                                "run_asgi", "read_message", "write_frame", "ensure_open", "_run_once"))
    ]  # fmt: skip
    lines += [f"| {c / total:.1%} | `{f}` |" for f, c in interesting[:top]]
    return lines


async def run_cprofile(args: argparse.Namespace, target: echo.Target, workdir: Path) -> list[str]:
    server = ProfiledServer(target, args.python, workdir)
    server.wait_ready()
    try:
        await drive(
            server, args.sockets, args.messages,
            lambda: os.kill(server.proc.pid, signal.SIGUSR1),
            lambda: os.kill(server.proc.pid, signal.SIGUSR2),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not server.stats.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # let the dump finish
        return cprofile_report(server.stats, args.sockets * args.messages, args.top)
    finally:
        server.stop()


async def run_pyspy(args: argparse.Namespace, target: echo.Target, workdir: Path) -> list[str]:
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    server = echo.Server(target, args.python, workdir)
    server.wait_ready()
    out = workdir / f"{target.key}.txt"
    spy: list[subprocess.Popen[bytes]] = []

    def on() -> None:
        spy.append(subprocess.Popen(
            [pyspy, "record", "--pid", str(server.proc.pid), "--rate", "1000", "--nonblocking",
             "--format", "raw", "--output", str(out), "--duration", "600"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip

    def off() -> None:
        spy[0].send_signal(signal.SIGINT)

    try:
        await drive(server, args.sockets, args.messages, on, off)
        spy[0].wait(60)
        return pyspy_report(out, args.top)
    finally:
        if spy and spy[0].poll() is None:
            spy[0].kill()
        server.stop()


# tracemalloc: what an idle socket keeps alive


async def run_tracemalloc(args: argparse.Namespace, target: echo.Target, workdir: Path) -> list[str]:
    import tracemalloc

    server = TracedServer(target, args.python, workdir)
    server.wait_ready()
    try:
        await echo.echo_load(server, 20, 20)  # warm up as echo.py's memory test does
        await asyncio.sleep(1)
        os.kill(server.proc.pid, signal.SIGUSR1)
        await asyncio.sleep(2)
        conns = await asyncio.wait_for(echo.open_clients(server.url, args.idle), 600)
        try:
            await asyncio.sleep(2)
            os.kill(server.proc.pid, signal.SIGUSR2)
            deadline = time.monotonic() + 120
            while not server.stats.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        finally:
            await asyncio.wait_for(close_sockets(conns), 300)
    finally:
        server.stop()
    before = tracemalloc.Snapshot.load(f"{server.stats}.before")
    after = tracemalloc.Snapshot.load(f"{server.stats}.after")
    n = args.idle
    total = sum(d.size_diff for d in after.compare_to(before, "filename"))
    blocks = sum(d.count_diff for d in after.compare_to(before, "filename"))
    lines = [
        f"{total / n / 1024:.2f} KiB and {blocks / n:.1f} blocks traced per idle socket ({n} sockets)",
        "",
        "| B/socket | blocks/socket | allocated at (innermost frame) |",
        "|---:|---:|---|",
    ]
    for d in after.compare_to(before, "lineno")[: args.top]:
        frame = d.traceback[0]
        lines.append(
            f"| {d.size_diff / n:.0f} | {d.count_diff / n:.1f} | `{_short(frame.filename)}:{frame.lineno}` |"
        )
    lines += ["", "| B/socket | most recent application frame on the allocation's stack |", "|---:|---|"]
    owners: collections.Counter[str] = collections.Counter()
    for d in after.compare_to(before, "traceback"):
        owners[_owner(d.traceback)] += d.size_diff
    lines += [f"| {size / n:.0f} | `{where}` |" for where, size in owners.most_common(args.top)]
    return lines


def _short(filename: str) -> str:
    return _where((filename, 0, "")).rsplit(":", 1)[0]


def _owner(traceback: object) -> str:
    """Return the most recent frame in application code (wsviews, Channels, Django, the apps).

    Allocations with no such frame belong to the server itself (uvicorn, websockets, asyncio).
    """
    for frame in reversed(traceback):  # type: ignore[call-overload]  # most recent first
        name = frame.filename
        if "profile_echo.py" in name:
            continue
        if any(f"/{p}/" in name for p in ("wsviews", "channels", "django", "asgiref", "myapp", "apps")):
            return f"{_short(name)}:{frame.lineno}"
    return "(server: uvicorn, websockets, asyncio)"


# callgrind: instructions per message, which the machine's noise does not change


class CallgrindServer(echo.Server):
    """``echo.Server`` run under ``valgrind --tool=callgrind`` with collection zeroed on demand."""

    extra_env = {"PYTHONHASHSEED": "0"}  # noqa: RUF012 - dict layouts, hence instruction counts, repeat

    def command(self) -> list[str]:
        self.dump = self.workdir / f"{self.target.key}-{self.port}.cg"
        if self.target.app == WSVIEWS_APP and self.ws == WS:  # as bench/run serves it
            served = [self.python, "-m", "django", "serve", f"127.0.0.1:{self.port}", "--no-access-log",
                      "-v", "0"]
        else:
            served = super().command()
        return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.dump}", *served]

    def control(self, option: str) -> None:
        subprocess.run(["callgrind_control", option, str(self.proc.pid)], check=True, capture_output=True,
                       timeout=120)  # fmt: skip

    def instructions(self, part: int) -> int:
        """Return Ir of dump ``part`` (each ``control("-d")`` writes the next part and zeroes)."""
        for line in Path(f"{self.dump}.{part}").read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
        raise RuntimeError(f"no summary in {self.dump}.{part}")


async def run_callgrind(args: argparse.Namespace, target: echo.Target, workdir: Path) -> int:
    """Return the server's instructions per echoed message, less its idle background work.

    uvicorn does some work per second whatever the load (its 0.1 s tick, timers),
    and a server under valgrind takes ~100x longer per message, so that work
    shows up per message and varies with how much CPU valgrind got. It is
    measured with the sockets open and idle for as long as the load took, and
    subtracted.
    """
    server = CallgrindServer(target, args.python, workdir)
    server.wait_ready(timeout=600)
    msgs: int = args.sockets * args.messages
    try:
        conns = await asyncio.wait_for(echo.open_clients(server.url, args.sockets), 300)
        try:
            await asyncio.gather(*(echo.ping_pong(ws, 20) for ws in conns))
            server.control("-z")
            t0 = time.perf_counter()
            await asyncio.wait_for(
                asyncio.gather(*(echo.ping_pong(ws, args.messages) for ws in conns)), 3000
            )
            busy = time.perf_counter() - t0
            server.control("-d")  # part 1: the load
            t1 = time.perf_counter()
            await asyncio.sleep(busy)
            server.control("-d")  # part 2: idle, as long as the load took
            idle = time.perf_counter() - t1
        finally:
            await asyncio.wait_for(close_sockets(conns), 300)
        load, background = server.instructions(1), server.instructions(2) * busy / idle
        print(f"  {target.key}: load {load / msgs:,.0f} Ir/msg, of which idle background "
              f"{background / msgs:,.0f} ({busy:.1f} s)", flush=True)  # fmt: skip
        return round((load - background) / msgs)
    finally:
        server.stop()


def callgrind_report(results: dict[str, int]) -> list[str]:
    raw = results.get("raw")
    lines = ["| server | layer | instructions per message | vs raw | raw / this (capacity ratio) |",
             "|---|---|---:|---:|---:|"]  # fmt: skip
    for key, ir in results.items():
        t = TARGETS[key]
        vs = f"{ir / raw:.3f}" if raw else "n/a"
        cap = f"{raw / ir:.3f}" if raw else "n/a"
        lines.append(f"| {t.label} | {t.layer} | {ir:,} | {vs} | {cap} |")
    if "wsviews-memory" in results and "channels-memory" in results:
        lines.append(f"\nplain Channels / wsviews consumer, in-memory: "
                     f"{results['channels-memory'] / results['wsviews-memory']:.2f}")  # fmt: skip
    if "wsviews-redis" in results and "channels-redis" in results:
        lines.append(f"plain Channels / wsviews consumer, channels_redis: "
                     f"{results['channels-redis'] / results['wsviews-redis']:.2f}")  # fmt: skip
    return lines


# Main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--stats", help=argparse.SUPPRESS)
    p.add_argument("--target", action="append", choices=list(TARGETS),
                   help="servers to profile (repeatable; default raw, wsviews-memory, view)")  # fmt: skip
    p.add_argument("--tool", choices=["cprofile", "py-spy", "callgrind", "tracemalloc"], default="cprofile",
                   help="profiler (tracemalloc: allocations kept by idle sockets)")  # fmt: skip
    p.add_argument("--idle", type=int, default=1000, help="idle sockets for --tool tracemalloc")
    p.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--python", default=sys.executable, help="interpreter for the servers")
    p.add_argument("--sockets", type=int, default=20, help="concurrent sockets")
    p.add_argument("--messages", type=int, help="round trips per socket (default 500; callgrind 100)")
    p.add_argument("--top", type=int, default=25, help="rows per table")
    p.add_argument("--src", type=Path, help="directory with a modified copy of the wsviews package to serve")
    p.add_argument("--ws", default=WS, choices=["websockets-sansio", "websockets", "wsproto"],
                   help=f"uvicorn --ws implementation (default {WS}, as runserver)")
    args = p.parse_args()
    args.messages = args.messages or (100 if args.tool == "callgrind" else 500)
    return args


async def main_async(args: argparse.Namespace) -> None:
    keys = args.target or ["raw", "wsviews-memory", "view"]
    info = echo.interpreter_info(args.python)
    print(f"# Profile ({args.tool}), Python {info['python']}, uvicorn {info['uvicorn']} --ws {args.ws}, "
          f"{args.sockets} sockets x {args.messages} round trips\n", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="wsviews-profile-") as tmp:
        if args.tool == "callgrind":
            results = {}
            for key in keys:
                results[key] = await run_callgrind(args, TARGETS[key], Path(tmp))
                print(f"{key}: {results[key]:,} instructions per message", flush=True)
            print("\n" + "\n".join(callgrind_report(results)))
            return
        run = {"cprofile": run_cprofile, "py-spy": run_pyspy, "tracemalloc": run_tracemalloc}[args.tool]
        for key in keys:
            target = TARGETS[key]
            print(f"## {target.label} ({target.layer})\n", flush=True)
            print("\n".join(await run(args, target, Path(tmp))) + "\n", flush=True)


def main() -> None:
    args = parse_args()
    if args.serve:
        serve(args.serve, args.port, args.stats, args.memory, args.ws)
        return
    echo.Server.ws = args.ws
    echo.Server.src = args.src.resolve() if args.src else None
    raise_nofile()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
