"""Fixtures of the Redis layer's tests: layers standing for processes, and a look into Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from servers import REDIS_SERVER
from wsviews.layers.redis import RedisChannelLayer

from ..redis_server import RedisServer

#: The Redis of the tests (WSVIEWS_TEST_REDIS), on a database of its own.
REDIS = f"{REDIS_SERVER}/11"


def unique_prefix() -> str:
    return f"wsvtest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def layers() -> AsyncIterator[Callable[..., RedisChannelLayer]]:
    """Build layers sharing one prefix: each one stands for a process."""
    prefix = unique_prefix()
    made: list[RedisChannelLayer] = []

    def make(**config: Any) -> RedisChannelLayer:
        config.setdefault("hosts", [REDIS])
        config.setdefault("prefix", prefix)
        made.append(RedisChannelLayer(**config))
        return made[-1]

    yield make
    for layer in made:
        await layer.flush()
        await layer.close()


@pytest.fixture
async def raw() -> AsyncIterator[Redis]:
    """A plain redis-py client, to look at what the layer stores and publishes."""
    client = Redis.from_url(REDIS)
    yield client
    await client.aclose()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (its command statistics concern it alone)."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()
