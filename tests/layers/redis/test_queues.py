"""Normal channels: Redis lists shared by every process, each message received once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis

from wsviews.layers.redis import RedisChannelLayer
from wsviews.layers.redis.codec import with_deadline

from ..contract import TIMEOUT, receive
from .conftest import REDIS


async def test_normal_channel_messages_go_to_one_receiver(layers: Any) -> None:
    """Workers in several processes share a normal channel; each message is received once."""
    processes = [layers(), layers()]
    received: list[int] = []
    done = asyncio.Event()
    total = 40

    async def worker(layer: RedisChannelLayer) -> None:
        while True:
            received.append((await layer.receive("worker"))["n"])
            if len(received) >= total:
                done.set()

    workers = [asyncio.ensure_future(worker(layer)) for layer in processes for _ in range(2)]
    for n in range(total):
        await processes[n % 2].send("worker", {"type": "job", "n": n})
    async with asyncio.timeout(TIMEOUT):
        await done.wait()
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    assert sorted(received) == list(range(total))


async def test_a_pop_cut_short_puts_its_message_back(layers: Any, raw: Redis) -> None:
    """What a cancelled receive() left in flight is received first by the next receive()."""
    a = layers()
    receiving = asyncio.ensure_future(a.receive("worker"))
    await asyncio.sleep(0.2)  # blocked in BLMOVE on the empty list
    receiving.cancel()
    await asyncio.gather(receiving, return_exceptions=True)
    # As if BLMOVE had moved a message just as the receive was cancelled.
    item = with_deadline(int(time.time() * 1000) + 60_000, a._codec.dumps({"type": "in flight"}))
    await raw.rpush(a._schema.inflight("worker", a.client_prefix), item)
    await a.send("worker", {"type": "queued after"})
    assert (await receive(a, "worker"))["type"] == "in flight"
    assert (await receive(a, "worker"))["type"] == "queued after"


async def test_group_messages_for_normal_channels_are_queued_by_the_sender(layers: Any) -> None:
    a, b = layers(capacity=2), layers()
    await b.group_add("jobs", "worker")
    for n in range(4):
        await a.group_send("jobs", {"type": "t", "n": n})
    assert [(await receive(b, "worker"))["n"] for _ in range(2)] == [0, 1]
    assert a.stats["dropped_full"] == 2  # counted by the sender: it queues them


async def test_malformed_items_in_a_normal_channel_are_skipped(layers: Any, raw: Redis) -> None:
    a = layers()
    await raw.rpush(a._schema.queue("worker"), b"garbage", b"99999999999999\xc1")
    await raw.pexpire(a._schema.queue("worker"), 60_000)
    await a.send("worker", {"type": "job"})
    assert (await receive(a, "worker"))["type"] == "job"
    assert a.stats["malformed"] == 2



async def test_blocking_receive_outlasts_a_short_socket_timeout(layers: Any) -> None:
    """A socket_timeout shorter than the blocking pop does not break an idle receive()."""
    a = layers(hosts=[{"address": REDIS, "socket_timeout": 0.5}])
    waiting = asyncio.ensure_future(a.receive("worker"))
    await asyncio.sleep(1.2)  # idle for longer than socket_timeout: that is the point
    assert not waiting.done()
    await a.send("worker", {"type": "late"})
    async with asyncio.timeout(TIMEOUT):
        assert (await waiting)["type"] == "late"
