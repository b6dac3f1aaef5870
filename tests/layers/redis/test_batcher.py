"""PUBLISHes of one event-loop iteration go to Redis as one pipeline per server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from wsviews.layers import ChannelLayerUnavailable
from wsviews.layers.redis.batcher import MAX_COMBINED, PublishBatcher
from wsviews.layers.redis.codec import join_batch, split_batch
from wsviews.layers.redis.config import decode_hosts
from wsviews.layers.redis.shards import Shards

from ..redis_server import free_port
from .conftest import REDIS, unique_prefix

STATS = ("failed", "outages")


class CountingShards(Shards):
    """Shards that count the operations run on each server."""

    def __init__(self, hosts: list[str]) -> None:
        super().__init__(decode_hosts(hosts), dict.fromkeys(STATS, 0), 5.0, self._closing)
        self.runs: list[int] = []

    def _closing(self, loop: asyncio.AbstractEventLoop) -> None:
        pass

    async def run(self, index: int, operation: Any, role: Any = "commands",
                  doing: str = "send to") -> Any:
        self.runs.append(index)
        return await super().run(index, operation, role, doing)


@pytest.fixture
async def shards() -> AsyncIterator[CountingShards]:
    shards = CountingShards([REDIS])
    yield shards
    clients = shards.forget_loop(asyncio.get_running_loop())
    if clients is not None:
        await clients.aclose()


async def listening(raw: Redis, topic: bytes) -> Any:
    pubsub = raw.pubsub()
    await pubsub.subscribe(topic)
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
    return pubsub


async def test_publishes_of_one_iteration_are_one_round_trip(
    shards: CountingShards, raw: Redis
) -> None:
    topic = f"{unique_prefix()}:t".encode()
    pubsub = await listening(raw, topic)
    batcher = PublishBatcher(shards)
    receivers = await asyncio.gather(
        *(batcher.publish(0, topic, b"%d" % n) for n in range(50)),
        batcher.publish(0, b"nobody-listens-here", b"x"),
    )
    assert receivers == [1] * 50 + [0]
    assert shards.runs == [0]
    got = []
    while len(got) < 50:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        got.append(message["data"])
    assert got == [b"%d" % n for n in range(50)]  # in the order they were issued
    await pubsub.aclose()


async def test_a_lone_publish_goes_out_at_once(shards: CountingShards) -> None:
    batcher = PublishBatcher(shards)
    for _ in range(3):
        assert await batcher.publish(0, b"nobody-listens-here", b"x") == 0
    assert shards.runs == [0, 0, 0]


async def test_each_server_gets_its_own_pipeline() -> None:
    shards = CountingShards([REDIS, REDIS.replace("/11", "/12")])
    batcher = PublishBatcher(shards)
    await asyncio.gather(*(batcher.publish(n % 2, b"nobody-listens-here", b"x") for n in range(10)))
    assert sorted(shards.runs) == [0, 1]
    for loop in shards.loops():
        clients = shards.forget_loop(loop)
        assert clients is not None
        await clients.aclose()


async def test_an_unreachable_server_fails_every_publish_of_the_batch() -> None:
    shards = CountingShards([f"redis://127.0.0.1:{free_port()}/0"])
    batcher = PublishBatcher(shards)
    results = await asyncio.gather(*(batcher.publish(0, b"t", b"x") for _ in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(r, ChannelLayerUnavailable) for r in results)
    assert shards.stats["failed"] == 5
    assert shards.stats["outages"] == 1


async def test_a_cancelled_publisher_does_not_disturb_the_others(shards: CountingShards) -> None:
    batcher = PublishBatcher(shards)

    async def publish() -> int:
        return await batcher.publish(0, b"nobody-listens-here", b"x")

    tasks = [asyncio.ensure_future(publish()) for _ in range(5)]
    await asyncio.sleep(0)  # every task has issued its publish
    tasks[2].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[2], asyncio.CancelledError)
    assert [r for n, r in enumerate(results) if n != 2] == [0, 0, 0, 0]


async def test_payloads_for_one_topic_are_joined_into_one_publish(
    shards: CountingShards, raw: Redis
) -> None:
    topic, other = f"{unique_prefix()}:t".encode(), f"{unique_prefix()}:u".encode()
    pubsub = await listening(raw, topic)
    await pubsub.subscribe(other)
    await pubsub.get_message(timeout=5)
    batcher = PublishBatcher(shards, join_batch)
    count = MAX_COMBINED + 10  # more than one PUBLISH carries
    receivers = await asyncio.gather(
        *(batcher.publish(0, topic, b"%d" % n) for n in range(count)),
        batcher.publish(0, other, b"alone"),
    )
    assert receivers == [1] * (count + 1)
    published = []
    while len(published) < 3:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        published.append((message["channel"], message["data"]))
    assert [split_batch(data) for channel, data in published if channel == topic] == [
        [b"%d" % n for n in range(MAX_COMBINED)], [b"%d" % n for n in range(MAX_COMBINED, count)],
    ]
    assert (other, b"alone") in published  # a lone payload is published as it is
    await pubsub.aclose()
