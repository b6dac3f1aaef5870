"""PUBLISHes issued in one event-loop iteration to one Redis server go out as one pipeline.

A process sending to many channels at once (a view notifying a list of
users, a worker answering many sockets) would otherwise pay one round trip,
one pooled connection and one Redis command dispatch per message. Batches
form by themselves: sends that start while a batch is in flight make the
next one, so the pipeline depth follows the load and a lone send still goes
out in the iteration it was made. Payloads of a batch for the same topic
(the same receiving process) are joined into one PUBLISH by ``combine``,
so the receiver also reads and parses one pub/sub message, not one each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from ..base import ChannelLayerUnavailable
from .shards import Shards

_STATE = "publish batches"
# Bounds of one combined PUBLISH: a receiver handles it in one go.
MAX_COMBINED = 500
MAX_COMBINED_BYTES = 256 * 1024


class _Batch:
    __slots__ = ("commands", "futures")

    def __init__(self) -> None:
        self.commands: list[tuple[bytes, bytes]] = []
        self.futures: list[asyncio.Future[int]] = []


class PublishBatcher:
    """Collect PUBLISHes per server and event loop; send each collection as one pipeline."""

    def __init__(self, shards: Shards, combine: Callable[[list[bytes]], bytes] | None = None) -> None:
        self._shards = shards
        self._combine = combine
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
        commands, owners = self._publishes(batch)
        try:
            results = await self._shards.run(index, lambda r: _publish_all(r, commands))
        except ChannelLayerUnavailable as exc:
            # run() counted one failed send; every message of the batch failed.
            self._shards.stats["failed"] += len(batch.futures) - 1
            _fail(batch.futures, exc)
            return
        except asyncio.CancelledError:
            for future in batch.futures:
                future.cancel()
            raise
        except Exception as exc:
            _fail(batch.futures, exc)
            return
        for future, publish in zip(batch.futures, owners, strict=True):
            if not future.done():
                future.set_result(results[publish])

    def _publishes(self, batch: _Batch) -> tuple[list[tuple[bytes, bytes]], list[int]]:
        """Return the PUBLISHes for ``batch``, and for each of its messages the one carrying it."""
        if self._combine is None or len(batch.commands) == 1:
            return batch.commands, list(range(len(batch.commands)))
        by_topic: dict[bytes, list[int]] = {}
        for n, (topic, _) in enumerate(batch.commands):
            by_topic.setdefault(topic, []).append(n)
        commands: list[tuple[bytes, bytes]] = []
        owners = [0] * len(batch.commands)
        for topic, members in by_topic.items():
            for chunk in _chunks(members, batch.commands):
                payloads = [batch.commands[n][1] for n in chunk]
                for n in chunk:
                    owners[n] = len(commands)
                commands.append((topic, payloads[0] if len(chunk) == 1 else self._combine(payloads)))
        return commands, owners


def _chunks(members: list[int], commands: list[tuple[bytes, bytes]]) -> list[list[int]]:
    """Split ``members`` (indexes into ``commands``) into runs that fit one combined PUBLISH."""
    chunks: list[list[int]] = [[]]
    size = 0
    for n in members:
        payload = len(commands[n][1])
        if chunks[-1] and (len(chunks[-1]) == MAX_COMBINED or size + payload > MAX_COMBINED_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(n)
        size += payload
    return chunks


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
