"""Publish cost of the hub engines: memory vs Redis, history off vs on.

Run from the repository root (a Redis you may write to must be up; the
script only touches keys under a random prefix and deletes them after)::

    .venv/bin/python bench/hub_engine.py --redis redis://127.0.0.1:6379
    .venv/bin/python bench/hub_engine.py --quick
    .venv/bin/python bench/hub_engine.py --instructions   # memory engine, callgrind (~1 minute)

Each case publishes a 100-byte JSON payload to one channel, PUBLISHES
times per round, ROUNDS rounds with the cases interleaved so that they share
the machine's noise; the median round is reported. Cases:

* ``memory``: :class:`MemoryEngine` with a no-op deliver, history off and on;
* ``redis``: :class:`RedisEngine` over a runner shaped like the channel
  layer's (EVALSHA, the layer's own codec for the envelope), with one
  pub/sub subscriber on the group (a receiving process) draining every
  message; history off (the plain group send the layer does anyway), on,
  and on with an idempotency key; one publisher at a time (latency-bound)
  and CONCURRENCY at once (throughput-bound);
* ``redis recover``: one recover of 50 missed publications.

Columns: publishes per second; this process's CPU per publish (the
publisher and, for Redis, the subscriber draining, both in this process);
Redis' CPU per publish (``used_cpu_user + used_cpu_sys`` from ``INFO cpu``);
the ratio to the history-off case of the same engine and concurrency.

``--instructions`` gives repeatable numbers for the memory engine: callgrind
instructions of 11,000 publishes minus those of 1,000, divided by 10,000.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src")]

from redis import exceptions as redis_errors  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from wsviews.hub.engine import StreamPosition  # noqa: E402
from wsviews.hub.engine_memory import MemoryEngine  # noqa: E402
from wsviews.hub.engine_redis import RedisEngine  # noqa: E402
from wsviews.layers.redis.codec import GROUP, Codec  # noqa: E402
from wsviews.layers.redis.schema import Schema  # noqa: E402

PAYLOAD = b'{"text":"' + b"x" * 80 + b'","n":1234567}'
HISTORY: dict[str, Any] = {"history_size": 100, "history_ttl": 60.0}
NO_HISTORY: dict[str, Any] = {"history_size": 0, "history_ttl": 0.0}


class Runner:
    """The channel layer's two script methods, as the layer runs them (EVALSHA, its codec)."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.schema = Schema(prefix)
        self.codec = Codec()
        self._shas: dict[str, str] = {}

    async def group_send_scripted(
        self, group: str, message: dict[str, Any], script_source: str, keys: Sequence[str],
        args: Sequence[Any],
    ) -> Any:
        envelope = self.codec.pack(GROUP, group, message)
        return await self._eval(script_source, keys, [self.schema.group_topic(group), envelope, *args])

    async def run_script(self, hash_name: str, script_source: str, keys: Sequence[str],
                         args: Sequence[Any]) -> Any:
        return await self._eval(script_source, keys, args)

    async def _eval(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        sha = self._shas.get(source)
        if sha is None:
            sha = self._shas[source] = hashlib.sha1(source.encode()).hexdigest()
        try:
            return await self.client.evalsha(sha, len(keys), *keys, *args)
        except redis_errors.NoScriptError:
            return await self.client.eval(source, len(keys), *keys, *args)


async def redis_cpu(client: Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measure(
    publish: Callable[[int], Awaitable[Any]], count: int, concurrency: int, admin: Redis | None
) -> tuple[float, float, float]:
    """Run ``count`` publishes, ``concurrency`` at a time; return (per second, our µs, Redis µs) each."""
    redis_before = await redis_cpu(admin) if admin is not None else 0.0
    cpu_before, wall_before = time.process_time(), time.perf_counter()

    async def worker(start: int) -> None:
        for n in range(start, count, concurrency):
            await publish(n)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    wall = time.perf_counter() - wall_before
    cpu = time.process_time() - cpu_before
    redis_used = (await redis_cpu(admin) - redis_before) if admin is not None else 0.0
    return count / wall, cpu / count * 1e6, redis_used / count * 1e6


async def drain(client: Redis, pattern: bytes, counter: list[int]) -> None:
    pubsub = client.pubsub()
    await pubsub.psubscribe(pattern)
    try:
        while True:
            reply = await pubsub.get_message(timeout=None)
            if reply and reply["type"] == "pmessage":
                counter[0] += 1
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def run(args: argparse.Namespace) -> list[tuple[str, tuple[float, float, float]]]:
    prefix = f"wsvbench-{uuid.uuid4().hex[:10]}"
    clients = [Redis.from_url(args.redis, max_connections=64) for _ in range(3)]
    admin, publisher, subscriber = clients
    received = [0]
    drainer = asyncio.create_task(drain(subscriber, Schema(prefix).group_topic("*"), received))
    await asyncio.sleep(0.2)
    redis_engine = RedisEngine(Runner(publisher, prefix), prefix=prefix)
    memory_engine = MemoryEngine(lambda channel, publication: None)

    def publisher_of(engine: Any, channel: str, idempotent: bool = False, **options: Any) -> Any:
        async def publish(n: int) -> Any:
            key = f"{channel}-{n}-{uuid.uuid4().hex}" if idempotent else None
            return await engine.publish(channel, PAYLOAD, idempotency_key=key, **options)
        return publish

    async def recover_50(n: int) -> Any:
        return await redis_engine.recover("recover", since)

    for _ in range(60):
        await redis_engine.publish("recover", PAYLOAD, **HISTORY)
    top = (await redis_engine.history("recover", limit=0)).position
    since = StreamPosition(top.offset - 50, top.epoch)
    while received[0] < 60:
        await asyncio.sleep(0.01)
    received[0] = 0

    m, r = args.memory_publishes, args.redis_publishes
    cases: list[tuple[str, Any, int, int, bool]] = [
        ("memory, history off", publisher_of(memory_engine, "m0", **NO_HISTORY), m, 1, False),
        ("memory, history on", publisher_of(memory_engine, "m1", **HISTORY), m, 1, False),
        ("redis x1, history off", publisher_of(redis_engine, "r0", **NO_HISTORY), r, 1, True),
        ("redis x1, history on", publisher_of(redis_engine, "r1", **HISTORY), r, 1, True),
        ("redis x1, history on, idempotency key",
         publisher_of(redis_engine, "r2", idempotent=True, **HISTORY), r, 1, True),
        (f"redis x{args.concurrency}, history off", publisher_of(redis_engine, "r3", **NO_HISTORY),
         r, args.concurrency, True),
        (f"redis x{args.concurrency}, history on", publisher_of(redis_engine, "r4", **HISTORY),
         r, args.concurrency, True),
        ("redis x1, recover 50", recover_50, max(r // 10, 100), 1, True),
    ]
    rounds: dict[str, list[tuple[float, float, float]]] = {name: [] for name, *_ in cases}
    try:
        for _ in range(args.rounds):
            for name, publish, count, concurrency, uses_redis in cases:
                rounds[name].append(await measure(publish, count, concurrency, admin if uses_redis else None))
        # Every PUBLISH of the publish cases reached the subscriber.
        expected = sum(c[2] for c in cases if c[0].startswith("redis") and "recover" not in c[0])
        deadline = time.monotonic() + 10
        while received[0] < expected * args.rounds and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if received[0] != expected * args.rounds:
            raise SystemExit(f"subscriber got {received[0]} of {expected * args.rounds} messages")
    finally:
        drainer.cancel()
        keys = [key async for key in admin.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await admin.delete(*keys)
        for client in clients:
            await client.aclose()
    return [(name, median_round(rounds[name])) for name, *_ in cases]


def median_round(results: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    return tuple(statistics.median(column) for column in zip(*results, strict=True))


def report(results: list[tuple[str, tuple[float, float, float]]], args: argparse.Namespace) -> str:
    by_name = dict(results)

    def baseline(name: str) -> tuple[float, float, float] | None:
        if "history on" not in name:
            return None
        return by_name.get(name.split(", history on")[0] + ", history off")

    lines = [
        f"# Hub engine publish cost ({time.strftime('%Y-%m-%d')})",
        "",
        f"Python {platform.python_version()}, {os.cpu_count()} cores; {args.rounds} rounds, median; "
        f"{args.memory_publishes} memory / {args.redis_publishes} Redis publishes per round; "
        f"payload {len(PAYLOAD)} bytes; history_size {HISTORY['history_size']}.",
        "",
        "| case | per second | our CPU µs each (publisher + subscriber) | Redis CPU µs each "
        "| vs history off (per second) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, (rate, ours, theirs) in results:
        base = baseline(name)
        ratio = f"{rate / base[0]:.2f}×" if base else ""
        redis_cpu_text = f"{theirs:.1f}" if name.startswith("redis") else ""
        lines.append(f"| {name} | {rate:,.0f} | {ours:.1f} | {redis_cpu_text} | {ratio} |")
    return "\n".join(lines) + "\n"


async def memory_loop(count: int, mode: str) -> None:
    """Publish ``count`` times to a memory engine (``mode`` on/off), or await an empty coroutine (empty)."""
    engine = MemoryEngine(lambda channel, publication: None)
    options = HISTORY if mode == "on" else NO_HISTORY

    async def empty(channel: str, data: bytes, **options: Any) -> None:
        return None

    publish = empty if mode == "empty" else engine.publish
    for _ in range(count):
        await publish("c", PAYLOAD, **options)


def instructions() -> str:
    """Return callgrind instructions per memory publish: (11,000 run - 1,000 run) / 10,000."""
    lines = ["| memory engine, one publish | instructions |", "| --- | ---: |"]
    names = {"empty": "await of an empty coroutine (reference)", "off": "history off", "on": "history on"}
    for mode, name in names.items():
        counts = []
        for count in (1000, 11000):
            out = subprocess.run(
                ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                 __file__, "--memory-loop", str(count), mode],
                capture_output=True, text=True, check=True, timeout=300,
            ).stderr
            counts.append(int(re.search(r"Collected : (\d+)", out).group(1)))  # type: ignore[union-attr]
        lines.append(f"| {name} | {(counts[1] - counts[0]) / 10000:,.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", default=os.environ.get("WSVIEWS_TEST_REDIS", "redis://127.0.0.1:6379"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory-publishes", type=int, default=20000)
    parser.add_argument("--redis-publishes", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="1 round, fewer publishes (a smoke run)")
    parser.add_argument("--write", action="store_true", help="also write bench/results/hub-engine-<date>.md")
    parser.add_argument("--instructions", action="store_true",
                        help="count callgrind instructions per memory publish instead")
    parser.add_argument("--memory-loop", nargs=2, metavar=("COUNT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_loop:
        asyncio.run(memory_loop(int(args.memory_loop[0]), args.memory_loop[1]))
        return
    if args.instructions:
        print(instructions())
        return
    if args.quick:
        args.rounds, args.memory_publishes, args.redis_publishes = 1, 2000, 400
    text = report(asyncio.run(run(args)), args)
    print(text)
    if args.write:
        path = ROOT / "bench" / "results" / f"hub-engine-{time.strftime('%Y-%m-%d')}.md"
        path.write_text(text)
        print(f"written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
