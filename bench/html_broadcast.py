"""One ``broadcast_html()`` to 1,000 sockets: one template render, and deliveries/s next to ``broadcast()``.

Run from the repository root (a Redis to use, by default 127.0.0.1:6379 db 11)::

    .venv/bin/python bench/html_broadcast.py                 # ~1 minute
    .venv/bin/python bench/html_broadcast.py --redis redis://127.0.0.1:6406/11

One uvicorn process serves MEMBERS sockets (a ``@websocket`` view that
joins one group), opened by CLIENTS client processes. This process, a
"Django process with no sockets", sends to the group through
``wsviews.layers.RedisChannelLayer``, from sync code as a view would:

* ``html``: ``broadcast_html(group, template, context)``, a new context each
  time (a Turbo Stream ``append`` of an item row);
* ``plain``: ``broadcast(group, text)``, ``text`` a string of the same length.

Rounds alternate the two kinds (which one goes first alternates too). A
round sends BURST broadcasts back to back and ends when every member has
received all of them; deliveries/s is BURST x MEMBERS over that time, from
the first send to the last arrival; the median round counts. The server's
CPU time per delivery (from /proc) is reported too: unlike deliveries/s it
does not depend on what the client processes took, which here share the
same two cores. Template renders in this process are counted with Django's
``template_rendered`` signal (``setup_test_environment()`` sends it): each
``broadcast_html()`` must cost exactly one, however many members.

Results are printed and written to ``bench/results/html-broadcast-<date>.md``.
This module is also the server's settings and URLconf
(``DJANGO_SETTINGS_MODULE=bench.html_broadcast``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TEMPLATE = "bench/row.html"
ROW = (
    '<turbo-stream action="append" target="items"><template>'
    '<li id="item-{{ item.id }}" class="item{% if item.done %} done{% endif %}">'
    '<span class="name">{{ item.name }}</span> <span class="owner">{{ item.owner }}</span>'
    "<time>{{ item.created|date:'H:i:s' }}</time></li></template></turbo-stream>"
)

# Django settings of the server and of this process (read when this is DJANGO_SETTINGS_MODULE)

SECRET_KEY = "html-broadcast-benchmark"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "bench.html_broadcast"
DATABASES: dict[str, Any] = {}
INSTALLED_APPS = ["wsviews"]
WSVIEWS_DISCOVER_ROUTING = False
CHANNEL_LAYERS = {"default": {
    "BACKEND": "wsviews.layers.RedisChannelLayer",
    "CONFIG": {"hosts": [os.environ.get("HTML_BENCH_REDIS", "redis://127.0.0.1:6379/11")],
               "prefix": os.environ.get("HTML_BENCH_PREFIX", "html-bench"), "capacity": 10_000},
}}
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "OPTIONS": {"loaders": [("django.template.loaders.locmem.Loader", {TEMPLATE: ROW})]},
}]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}


@functools.cache
def _urlpatterns() -> list[Any]:
    from django.urls import path

    from wsviews import websocket

    @websocket
    async def member(socket: Any, group: str) -> None:
        await socket.join(group)
        await socket.accept()
        await socket.send("joined")
        async for _ in socket:
            pass

    return [path("ws/bench/<slug:group>/", member)]


def __getattr__(name: str) -> Any:
    # Built on first use: this module is also the settings, read before Django is set up.
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


# Clients (separate processes)


def client_process(conn: Connection, urls: list[str]) -> None:
    from harness.processes import raise_nofile

    raise_nofile()
    asyncio.run(_client(conn, urls))


async def _client(conn: Connection, urls: list[str]) -> None:
    """Open the sockets; on ("expect", kind, n), report ("done", last arrival) once each got n of kind."""
    from websockets.asyncio.client import connect

    limit = asyncio.Semaphore(50)

    async def open_one(url: str) -> Any:
        async with limit:
            ws = await connect(url, compression=None, ping_interval=None, max_size=None, open_timeout=60)
            assert await ws.recv() == "joined"
            return ws

    sockets = await asyncio.gather(*(open_one(url) for url in urls))
    state: dict[str, Any] = {"kind": None, "expected": 0, "count": 0, "last": 0.0, "wrong": 0}
    done = asyncio.Event()
    stop = asyncio.Event()

    async def read(ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for text in ws:
                if not text.startswith("<turbo-stream" if state["kind"] == "html" else "x"):
                    state["wrong"] += 1
                state["count"] += 1
                state["last"] = time.monotonic()
                if state["count"] == state["expected"]:
                    done.set()

    def command() -> None:
        message = conn.recv()
        if message[0] == "expect":
            state.update(kind=message[1], expected=message[2] * len(sockets), count=0, wrong=0)
            done.clear()
            asyncio.get_running_loop().create_task(_report(conn, done, state))
        else:
            stop.set()

    readers = [asyncio.ensure_future(read(ws)) for ws in sockets]
    loop = asyncio.get_running_loop()
    loop.add_reader(conn.fileno(), command)
    conn.send(("ready",))
    await stop.wait()
    loop.remove_reader(conn.fileno())
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def _report(conn: Connection, done: asyncio.Event, state: dict[str, Any]) -> None:
    try:
        await asyncio.wait_for(done.wait(), 60)
        conn.send(("done", state["last"], state["wrong"]))
    except TimeoutError:
        conn.send(("timeout", state["count"], state["expected"]))


# The benchmark


def start_server(port: int, log_path: Path, env: dict[str, str]) -> Any:
    """Start uvicorn with the harness (the websocket implementation runserver uses); wait for it."""
    from harness.servers import launch, uvicorn_argv

    argv = uvicorn_argv("wsviews.asgi:application", port, "--no-access-log", log_level="warning")
    server = launch(argv, log_path, port, env)
    server.wait_listening(60)
    return server


def run(args: argparse.Namespace) -> str:
    sys.path[:0] = [str(ROOT / "tests")]
    from harness.processes import cpu_seconds, free_port, raise_nofile

    raise_nofile()  # before the server starts: it inherits the limit
    prefix = f"html-bench-{uuid.uuid4().hex[:8]}"
    os.environ.update(HTML_BENCH_REDIS=args.redis, HTML_BENCH_PREFIX=prefix,
                      DJANGO_SETTINGS_MODULE="bench.html_broadcast")
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
           "PYTHONUNBUFFERED": "1"}
    workdir = Path(tempfile.mkdtemp(prefix="html-bench-"))
    port = free_port()
    server = start_server(port, workdir / "server.log", env)
    group = "bench"
    url = f"ws://127.0.0.1:{port}/ws/bench/{group}/"
    context = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    procs = []
    try:
        share = [args.members // args.clients + (i < args.members % args.clients)
                 for i in range(args.clients)]
        for count in share:
            ours, theirs = context.Pipe()
            proc = context.Process(target=client_process, args=(theirs, [url] * count), daemon=True)
            proc.start()
            pipes.append(ours)
            procs.append(proc)
        for pipe in pipes:
            if not pipe.poll(120):
                raise TimeoutError("clients did not connect in 120 s")
            assert pipe.recv() == ("ready",)
        return measure(args, server.pid, pipes, group, cpu_seconds)
    finally:
        for pipe in pipes:
            with contextlib.suppress(Exception):
                pipe.send(("stop",))
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        server.stop()


def measure(args: argparse.Namespace, server_pid: int, pipes: list[Connection], group: str,
            cpu_seconds: Any) -> str:
    import django
    from django.test.signals import template_rendered
    from django.test.utils import setup_test_environment

    django.setup()
    setup_test_environment()  # makes Django send template_rendered for every render
    from wsviews import broadcast
    from wsviews.rendering import broadcast_html, render_html

    renders = [0]
    template_rendered.connect(lambda **kwargs: renders.__setitem__(0, renders[0] + 1), weak=False)
    sample = render_html(TEMPLATE, {"item": _item(0)})
    plain = "x" * len(sample)
    renders[0] = 0

    def send(kind: str, burst: int, start: int) -> None:
        for i in range(start, start + burst):
            if kind == "html":
                broadcast_html(group, TEMPLATE, {"item": _item(i)})
            else:
                broadcast(group, plain)

    def round_(kind: str, burst: int, start: int) -> tuple[float, float]:
        for pipe in pipes:
            pipe.send(("expect", kind, burst))
        cpu = cpu_seconds(server_pid)
        began = time.monotonic()
        send(kind, burst, start)
        last = 0.0
        for pipe in pipes:
            if not pipe.poll(90):
                raise TimeoutError(f"{kind}: no report from a client in 90 s")
            reply = pipe.recv()
            if reply[0] != "done":
                raise RuntimeError(f"{kind}: a client got {reply[1]} of {reply[2]} messages")
            if reply[2]:
                raise RuntimeError(f"{kind}: {reply[2]} messages of the other kind arrived")
            last = max(last, reply[1])
        deliveries = burst * args.members
        return deliveries / (last - began), (cpu_seconds(server_pid) - cpu) / deliveries * 1e6

    round_("plain", 5, 0)  # warm-up, both paths
    round_("html", 5, 0)
    renders[0] = 0
    results: dict[str, list[tuple[float, float]]] = {"html": [], "plain": []}
    html_calls = 0
    for number in range(args.rounds):
        order = ("html", "plain") if number % 2 == 0 else ("plain", "html")
        for kind in order:
            results[kind].append(round_(kind, args.burst, number * args.burst))
            html_calls += args.burst if kind == "html" else 0
    return report(args, results, renders[0], html_calls, len(sample))


def _item(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"Item number {i} & co", "owner": "ada", "done": i % 3 == 0,
            "created": datetime.datetime(2026, 1, 1, 12, 0, i % 60, tzinfo=datetime.UTC)}


def report(args: argparse.Namespace, results: dict[str, list[tuple[float, float]]], renders: int,
           html_calls: int, size: int) -> str:
    import django

    import wsviews

    median = {kind: (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))
              for kind, rows in results.items()}
    ratio = median["html"][0] / median["plain"][0]
    cpu_ratio = median["html"][1] / median["plain"][1]
    rows = [
        f"| `{'broadcast_html()' if kind == 'html' else 'broadcast()'}` | {median[kind][0]:,.0f} | "
        f"{median[kind][1]:.1f} | {', '.join(f'{r[0]:,.0f}' for r in results[kind])} |"
        for kind in ("plain", "html")
    ]
    verdict = "holds" if ratio >= 0.8 and renders == html_calls else "DOES NOT HOLD"
    return "\n".join([
        f"# broadcast_html() vs broadcast(), {datetime.datetime.now().isoformat(timespec='minutes')}",
        "",
        f"`{' '.join(sys.argv)}` on {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; Django {django.get_version()}, wsviews {wsviews.__version__}; "
        f"wsviews.layers.RedisChannelLayer on loopback.",
        "",
        f"{args.members} sockets on one uvicorn process, {args.clients} client processes; "
        f"{args.rounds} rounds per kind of {args.burst} broadcasts sent back to back from sync code "
        f"in another process; messages of {size} characters.",
        "",
        "| sender | deliveries/s (median) | server CPU µs/delivery (median) | rounds |",
        "|---|---:|---:|---|",
        *rows,
        "",
        f"Template renders: {renders} for {html_calls} `broadcast_html()` calls to {args.members} "
        f"sockets (one per call).",
        "",
        f"Ratio of deliveries/s, `broadcast_html()` / `broadcast()`: **{ratio:.2f}x** "
        f"(server CPU per delivery: {cpu_ratio:.2f}x). Target >= 0.8x with one render per call: "
        f"{verdict}.",
        "",
    ])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1000, help="sockets in the group")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per kind (the median counts)")
    parser.add_argument("--burst", type=int, default=20, help="broadcasts per round")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11", help="Redis URL for the layer")
    parser.add_argument("--tag", default="", help="appended to the results file name")
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    text = run(args)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    suffix = f"-{args.tag}" if args.tag else ""
    out = RESULTS / f"html-broadcast-{datetime.date.today().isoformat()}{suffix}.md"
    out.write_text(text)
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
