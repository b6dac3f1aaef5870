"""The local delivery path alone: a group message to N consumers of one process, no network.

Run from the repository root::

    .venv/bin/python bench/fanout_core.py                          # this checkout
    .venv/bin/python bench/fanout_core.py --baseline /path/to/src  # and another src/, same run

Each member is a real Channels ``AsyncWebsocketConsumer`` on wsviews' lean
loop (``ConsumerRunner``) whose ``chat_message`` handler calls
``self.send(text_data=...)``; the ASGI ``send`` under it is a coroutine that
does not suspend (the frame is counted, not written). ``group_send`` of the
in-memory layer delivers to every member. Reported: nanoseconds per delivery
(the minimum over rounds), and tasks created per delivery (a task factory
counts the tasks made through the loop: eager tasks made with
``asyncio.Task(..., eager_start=True)``, as older versions made one per
delivery, bypass it and are not counted). Rounds are timed with
``perf_counter``; each source is measured in two processes, alternately.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def measure(members: int, messages: int, rounds: int) -> dict[str, float]:
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["wsviews", "channels"], DATABASES={}, SECRET_KEY="bench",
        CHANNEL_LAYERS={"default": {"BACKEND": "wsviews.layers.InMemoryChannelLayer",
                                    "CONFIG": {"capacity": 10_000}}},
        WSVIEWS_DISCOVER_ROUTING=False, ROOT_URLCONF=__name__, USE_TZ=True,
    )
    django.setup()
    from channels.generic.websocket import AsyncWebsocketConsumer

    from wsviews import consumers
    from wsviews.consumers import ConsumerRunner

    lean_runner = getattr(consumers, "lean_runner", None)

    sent = 0

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal sent
        sent += 1

    class Member(AsyncWebsocketConsumer):  # type: ignore[misc]
        async def chat_message(self, event: dict[str, Any]) -> None:
            await self.send(text_data=event["text"])

    async def run() -> dict[str, float]:
        runners = []

        async def open_one() -> Any:
            consumer = Member()
            scope = {"type": "websocket", "path": "/ws/"}
            if lean_runner is not None:  # as serve_consumer sets a consumer up
                runner = lean_runner(consumer, scope, send, None)
            else:  # older sources (--baseline)
                consumer.scope, consumer.base_send = scope, send
                runner = ConsumerRunner(consumer, send)
            await runner.join_layer()
            await consumer.channel_layer.group_add("room", consumer.channel_name)
            return runner

        for _ in range(members):
            runners.append(await asyncio.create_task(open_one()))
        layer = runners[0].layer
        created = 0

        def factory(loop: Any, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            nonlocal created
            created += 1
            return asyncio.Task(coro, loop=loop, **kwargs)

        event = {"type": "chat.message", "text": "x" * 64}
        for _ in range(5):
            await layer.group_send("room", event)  # warm up
        asyncio.get_running_loop().set_task_factory(factory)
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(messages):
                await layer.group_send("room", event)
            best = min(best, time.perf_counter() - started)
        asyncio.get_running_loop().set_task_factory(None)
        deliveries = members * messages
        assert sent >= deliveries * rounds, (sent, deliveries)
        return {"ns_per_delivery": best / deliveries * 1e9,
                "tasks_per_delivery": created / (deliveries * rounds)}

    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline", metavar="SRC", help="also measure wsviews imported from SRC")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.members, args.messages, args.rounds)))
        return 0
    sources = {"this checkout": str(ROOT / "src")}
    if args.baseline:
        sources["baseline"] = args.baseline
    results: dict[str, dict[str, float]] = {}
    for _ in range(2):  # alternate, so that a change in the machine's load hits both
        for label, src in sources.items():
            env = {**os.environ, "PYTHONPATH": src}
            out = subprocess.run([sys.executable, __file__, "--child", "--members", str(args.members),
                                  "--messages", str(args.messages), "--rounds", str(args.rounds)],
                                 env=env, capture_output=True, text=True, check=True, cwd=ROOT)
            result = json.loads(out.stdout)
            best = results.get(label)
            if best is None or result["ns_per_delivery"] < best["ns_per_delivery"]:
                results[label] = result
    print(f"{args.members} members, {args.messages} group_send x {args.rounds} rounds, best of 2 processes")
    print("| wsviews | ns per delivery | tasks per delivery |")
    print("|---|---:|---:|")
    for label, result in results.items():
        print(f"| {label} | {result['ns_per_delivery']:,.0f} | {result['tasks_per_delivery']:.3f} |")
    if "baseline" in results:
        ratio = results["this checkout"]["ns_per_delivery"] / results["baseline"]["ns_per_delivery"]
        print(f"this checkout / baseline: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
