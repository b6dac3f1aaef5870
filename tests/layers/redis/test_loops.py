"""The loop.close() hook: what a layer holds on a loop is released before the loop closes."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from asgiref.sync import async_to_sync

from wsviews.layers.redis import RedisChannelLayer
from wsviews.layers.redis.loops import call_before_close

from .conftest import REDIS, unique_prefix


class Owner:
    def __init__(self) -> None:
        self.seen: list[tuple[bool, bool]] = []

    def closing(self, loop: asyncio.AbstractEventLoop) -> None:
        self.seen.append((loop.is_closed(), loop.is_running()))
        loop.run_until_complete(asyncio.sleep(0))  # the loop can still run work


def test_the_callback_runs_before_the_loop_closes() -> None:
    loop = asyncio.new_event_loop()
    owner = Owner()
    call_before_close(loop, owner.closing)
    loop.close()
    assert owner.seen == [(False, False)]
    assert loop.is_closed()


def test_the_hook_does_not_keep_its_owner_alive() -> None:
    loop = asyncio.new_event_loop()
    owner = Owner()
    seen = owner.seen
    call_before_close(loop, owner.closing)
    del owner
    gc.collect()
    loop.close()
    assert seen == [] and loop.is_closed()


def test_async_to_sync_leaves_no_connection_behind(caplog: pytest.LogCaptureFixture) -> None:
    """Each async_to_sync call opens connections on a new loop; they close with it."""
    layer = RedisChannelLayer(hosts=[REDIS], prefix=unique_prefix())

    async def use() -> None:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "test.message"})
        await layer.group_send("room", {"type": "t"})

    with caplog.at_level(logging.DEBUG, "asyncio"):
        for _ in range(3):
            async_to_sync(use)()
        gc.collect()
    assert layer._shards.loops() == [] and layer._pubsub.subscribers == {}
    assert not [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.WARNING]
    async_to_sync(layer.flush)()
