"""Normal channels (names without ``!``): Redis lists that every process may receive from.

Channels workers (``runworker``) receive from normal channels: each message
goes to one receiver, in whatever process. ``receive()`` moves the head of
the list into this process's in-flight list with BLMOVE (blocking at most
``blocking_timeout`` per round trip); a receive cancelled or cut off mid-pop
puts what is in flight back on its next call, so nothing is lost and nothing
is received twice. Normal channels may also join groups: they are kept in a
sorted set per group, and group messages are queued for them by the sender.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from . import schema as lua
from .codec import Codec, MalformedPayload, split_deadline, with_deadline
from .schema import Schema
from .shards import Script, Shards

logger = logging.getLogger("wsviews.layers.redis")

ENQUEUE = Script(lua.ENQUEUE)
PREPARE_POP = Script(lua.PREPARE_POP)

_LOCKS = "pop locks"
_DIRTY = "interrupted pops"


class NormalChannels:
    """Send to, receive from, and group the normal channels of one layer prefix."""

    def __init__(
        self,
        shards: Shards,
        schema: Schema,
        codec: Codec,
        capacity_of: Callable[[str], int],
        expiry: float,
        group_expiry: float,
        blocking_timeout: float,
        client_prefix: str,
        stats: dict[str, int],
        malformed: Callable[[str, bytes, object], None],
    ) -> None:
        self._shards = shards
        self._schema = schema
        self._codec = codec
        self._capacity_of = capacity_of
        self._expiry = expiry
        self._group_expiry = group_expiry
        self._blocking_timeout = blocking_timeout
        self._client_prefix = client_prefix
        self._stats = stats
        self._malformed = malformed

    # Sending

    async def enqueue(self, channel: str, payload: bytes) -> bool:
        """Append a serialised message to ``channel``; return False if it is at capacity."""
        now_ms = int(time.time() * 1000)
        ttl_ms = int(self._expiry * 1000)
        keys = [self._schema.queue(channel)]
        args = [now_ms, ttl_ms, self._capacity_of(channel), with_deadline(now_ms + ttl_ms, payload)]
        queued: int = await self._shards.run(
            self._shards.index(channel), lambda r: ENQUEUE(r, keys, args)
        )
        return bool(queued)

    async def send_to_members(self, group: str, channels: list[str], message: dict[str, Any]) -> None:
        """Queue a group message for the normal channels of ``group``; skip (and log) full ones."""
        payload = self._codec.dumps(message)
        results = await asyncio.gather(*(self.enqueue(c, payload) for c in channels))
        full = results.count(False)
        if full:
            self._stats["dropped_full"] += full
            logger.info("%s of %s channels over capacity in group %s", full, len(channels), group)

    # Receiving

    async def receive(self, channel: str) -> dict[str, Any]:
        """Return the next message of ``channel``, waiting for one."""
        state = self._shards.loop_clients().state
        locks: dict[str, asyncio.Lock] = state.setdefault(_LOCKS, {})
        dirty: set[str] = state.setdefault(_DIRTY, set())
        index = self._shards.index(channel)
        async with locks.setdefault(channel, asyncio.Lock()):
            while True:
                await self._shards.run(
                    index, self._prepare_pop(channel, channel in dirty),
                    role="blocking", doing="receive from",
                )
                dirty.discard(channel)
                try:
                    item = await self._shards.run(
                        index, self._pop(channel), role="blocking", doing="receive from",
                    )
                except BaseException:
                    # Cancelled or cut off: Redis may have moved a message in flight.
                    dirty.add(channel)
                    raise
                if item is not None:
                    message = self._decode(item, channel)
                    if message is not None:
                        return message

    def _prepare_pop(self, channel: str, restore: bool) -> Callable[[Redis], Awaitable[Any]]:
        keys = [self._schema.queue(channel), self._schema.inflight(channel, self._client_prefix)]
        # The in-flight list outlives a blocking pop, and a message's expiry.
        ttl_ms = int(max(self._expiry, 3 * self._blocking_timeout) * 1000)
        args = [b"1" if restore else b"0", ttl_ms]
        return lambda r: PREPARE_POP(r, keys, args)

    def _pop(self, channel: str) -> Callable[[Redis], Awaitable[Any]]:
        source = self._schema.queue(channel)
        inflight = self._schema.inflight(channel, self._client_prefix)
        timeout: Any = self._blocking_timeout  # redis-py accepts float seconds
        return lambda r: r.blmove(source, inflight, timeout, "LEFT", "RIGHT")

    def _decode(self, item: bytes, where: str) -> dict[str, Any] | None:
        try:
            deadline, payload = split_deadline(item)
            if deadline <= time.time() * 1000:
                self._stats["expired"] += 1
                return None
            message = self._codec.loads(payload)
            if not isinstance(message, dict):
                raise MalformedPayload("not a dict")
        except MalformedPayload as exc:
            self._malformed(where, item, exc)
            return None
        self._stats["received"] += 1
        return message

    # Groups

    async def group_add(self, group: str, channel: str) -> None:
        key = self._schema.members(group)
        ttl = int(self._group_expiry * 1000)

        async def add(r: Redis) -> None:
            async with r.pipeline(transaction=True) as pipe:
                pipe.zadd(key, {channel: time.time()})
                pipe.pexpire(key, ttl)
                await pipe.execute()

        await self._shards.run(self._shards.index(group), add, doing="add to a group in")

    async def group_discard(self, group: str, channel: str) -> None:
        key = self._schema.members(group)
        await self._shards.run(
            self._shards.index(group), lambda r: r.zrem(key, channel),
            doing="discard from a group in",
        )
