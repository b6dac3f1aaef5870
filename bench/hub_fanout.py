"""Deliveries per second to N subscribers: the hub's publish vs a plain group broadcast.

Run from the repository root::

    .venv/bin/python bench/hub_fanout.py                      # memory layer, 1,000 subscribers
    .venv/bin/python bench/hub_fanout.py --redis redis://127.0.0.1:6379/12
    .venv/bin/python bench/hub_fanout.py --subscribers 200 --messages 10

One uvicorn process serves the example project with the hub (the test
settings ``hub.settings_hub``, configuration ``bench``). The same N client
sockets of this process receive, in turn:

* ``group``: wsviews' plain group broadcast (``broadcast(group, message)``
  from a view) to N ``@websocket`` members of the group;
* ``hub, history off``: ``POST api/publish`` into a channel without history,
  N centrifugal-protocol subscribers;
* ``hub, history on``: the same into a channel with history (offsets,
  ring buffer in memory or Redis Streams).

Before that, the server's RSS growth per idle connection is measured as the
sockets open: N plain group members, then N hub connections with one
subscription each.

Each case publishes MESSAGES messages, one at a time over HTTP, and the clock
stops when every socket has received all of them; deliveries/s is
N * MESSAGES / elapsed. The cases alternate for ROUNDS rounds; the median is
reported, with the ratio to the plain group broadcast of the same run. The
clients share the machine with the server, so absolute numbers are low;
the ratios are the point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "example")]

from harness import Server, open_sockets, raise_nofile, start_uvicorn  # noqa: E402

API_KEY = "hub-test-api-key"


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> None:
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json", **(headers or {})}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


SENT_AT = re.compile(r'"t":([0-9.]+)')


async def count(ws: Any, want: int, marker: str, latencies: list[float]) -> None:
    """Read ``want`` deliveries from ``ws``; add each one's publish-to-delivery time to ``latencies``."""
    got = 0
    while got < want:
        frame = await ws.recv()
        now = time.time()
        got += frame.count(marker)
        latencies.extend(now - float(sent) for sent in SENT_AT.findall(frame))


async def run_case(sockets: list[Any], marker: str, publish: Any, messages: int
                   ) -> tuple[float, list[float]]:
    """Return deliveries per second and every delivery's latency in seconds."""
    latencies: list[float] = []
    waiters = [asyncio.ensure_future(count(ws, messages, marker, latencies)) for ws in sockets]
    await asyncio.sleep(0)
    start = time.perf_counter()
    for n in range(messages):
        await asyncio.to_thread(publish, n)
    await asyncio.wait_for(asyncio.gather(*waiters), 120)
    return len(sockets) * messages / (time.perf_counter() - start), latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def hub_sockets(server: Server, channel: str, n: int) -> list[Any]:
    sockets = await open_sockets(server.ws + "/connection/websocket", n)
    for ws in sockets:
        await ws.send('{"id":1,"connect":{}}\n' + json.dumps({"id": 2, "subscribe": {"channel": channel}}))
    for ws in sockets:
        seen = ""
        while '"id":2' not in seen:
            seen += str(await ws.recv())
    return sockets


async def main(args: argparse.Namespace) -> None:
    raise_nofile()
    env = {"WSVIEWS_TEST_HUB": "bench"}
    if args.redis:
        env.update(WSVIEWS_TEST_HUB_REDIS=args.redis,
                   WSVIEWS_TEST_HUB_PREFIX=f"hubbench-{uuid.uuid4().hex[:8]}")
    log = Path("/tmp") / f"hub_fanout-{uuid.uuid4().hex[:6]}.log"
    with start_uvicorn("hub.settings_hub", log, env=env, args=["--log-level", "warning"]) as server:
        n = args.subscribers
        await asyncio.sleep(1)
        rss0 = server.rss_kib()
        group = await open_sockets(server.ws + "/ws/member/benchgroup/", n)
        for ws in group:
            assert await ws.recv() == "joined"
        await asyncio.sleep(1)
        rss1 = server.rss_kib()
        plain = await hub_sockets(server, "news:bench", n)
        await asyncio.sleep(1)
        rss2 = server.rss_kib()
        hist = await hub_sockets(server, "hist:bench", n)
        api = {"X-API-Key": API_KEY}
        cases = {
            "group": (group, '"n"', lambda i: post(f"{server.http}/announce/benchgroup/",
                                                   {"n": i, "t": time.time()})),
            "hub, history off": (plain, '"pub"', lambda i: post(
                f"{server.http}/api/publish", {"channel": "news:bench", "data": {"n": i, "t": time.time()}},
                api)),
            "hub, history on": (hist, '"pub"', lambda i: post(
                f"{server.http}/api/publish", {"channel": "hist:bench", "data": {"n": i, "t": time.time()}},
                api)),
        }
        results: dict[str, list[float]] = {name: [] for name in cases}
        latency: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, (sockets, marker, publish) in cases.items():
                rate, seen = await run_case(sockets, marker, publish, args.messages)
                results[name].append(rate)
                latency[name].extend(seen)
        for sockets in (group, plain, hist):
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    if args.redis:
        import redis

        client = redis.Redis.from_url(args.redis)
        for key in client.scan_iter(env["WSVIEWS_TEST_HUB_PREFIX"] + "*"):
            client.delete(key)
        client.close()
    base = statistics.median(results["group"])
    layer = "redis" if args.redis else "memory"
    print(f"{n} subscribers, {args.messages} messages x {args.rounds} rounds, {layer} layer")
    per_plain, per_hub = (rss1 - rss0) / n, (rss2 - rss1) / n
    print(f"server memory per idle connection: plain group member {per_plain:.1f} KiB, "
          f"hub connection with one subscription {per_hub:.1f} KiB ({per_hub / per_plain:.2f}x)")
    print(f"{'case':<20} {'deliveries/s':>14} {'vs group':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, values in results.items():
        value = statistics.median(values)
        p50, p99 = (percentile(latency[name], q) * 1000 for q in (0.5, 0.99))
        print(f"{name:<20} {value:>14,.0f} {value / base:>8.2f}x {p50:>8.1f} {p99:>8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", help="a Redis URL: serve on wsviews' Redis layer")
    asyncio.run(main(parser.parse_args()))
