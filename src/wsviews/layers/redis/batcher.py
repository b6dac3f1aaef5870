"""PUBLISHes issued in one event-loop iteration to one Redis server go out as one pipeline.

A process sending to many channels at once (a view notifying a list of
users, a worker answering many sockets) would otherwise pay one round trip,
one pooled connection and one Redis command dispatch per message. Batches
form by themselves: sends that start while a batch is in flight make the
next one, so the pipeline depth follows the load and a lone send still goes
out in the iteration it was made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from redis.asyncio import Redis

from ..base import ChannelLayerUnavailable
from .shards import Shards

_STATE = "publish batches"


class _Batch:
    __slots__ = ("commands", "futures")

    def __init__(self) -> None:
        self.commands: list[tuple[bytes, bytes]] = []
        self.futures: list[asyncio.Future[int]] = []


class PublishBatcher:
    """Collect PUBLISHes per server and event loop; send each collection as one pipeline."""

    def __init__(self, shards: Shards) -> None:
        self._shards = shards
        self._tasks: set[asyncio.Task[None]] = set()

    def publish(self, index: int, topic: bytes, payload: bytes) -> Awaitable[int]:
        """PUBLISH ``payload`` on ``topic`` of server ``index``; the result is the number of receivers.

        The awaitable raises ChannelLayerUnavailable if the server cannot be
        reached (for every message of the batch: none was sent).
        """
        state = self._shards.loop_clients().state
        batches: dict[int, _Batch] | None = state.get(_STATE)
        if batches is None:
            batches = state[_STATE] = {}
        loop = asyncio.get_running_loop()
        batch = batches.get(index)
        if batch is None:
            batch = batches[index] = _Batch()
            loop.call_soon(self._flush, batches, index, batch)
        future: asyncio.Future[int] = loop.create_future()
        batch.commands.append((topic, payload))
        batch.futures.append(future)
        return future

    def _flush(self, batches: dict[int, _Batch], index: int, batch: _Batch) -> None:
        if batches.get(index) is batch:
            del batches[index]
        task = asyncio.get_running_loop().create_task(self._send(index, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, index: int, batch: _Batch) -> None:
        commands = batch.commands
        try:
            results = await self._shards.run(index, lambda r: _publish_all(r, commands))
        except ChannelLayerUnavailable as exc:
            # run() counted one failed send; every message of the batch failed.
            self._shards.stats["failed"] += len(commands) - 1
            _fail(batch.futures, exc)
            return
        except asyncio.CancelledError:
            for future in batch.futures:
                future.cancel()
            raise
        except Exception as exc:
            _fail(batch.futures, exc)
            return
        for future, receivers in zip(batch.futures, results, strict=True):
            if not future.done():
                future.set_result(receivers)


def _fail(futures: list[asyncio.Future[int]], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)


async def _publish_all(client: Redis, commands: list[tuple[bytes, bytes]]) -> list[Any]:
    if len(commands) == 1:
        topic, payload = commands[0]
        return [await client.publish(topic, payload)]
    async with client.pipeline(transaction=False) as pipe:
        for topic, payload in commands:
            pipe.publish(topic, payload)
        return await pipe.execute()
