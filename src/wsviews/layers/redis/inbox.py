"""A process's inbox: point-to-point messages and group control between processes.

Every process subscribes one inbox topic, ``P:inbox:{PROC}``. Other
processes publish there the messages for its channels (``new_channel()``
names carry PROC before the ``!``), and ask it to add its channels to groups
or discard them (``group_add`` of a channel owned by another process); it
acknowledges additions once subscribed to the group, so that a
``group_send`` right after ``group_add`` reaches the channel wherever it
lives. A message published while its owner is not subscribed (reconnecting,
or not started yet) is parked in a capped, expiring backlog list, which the
owner drains each time its inbox subscription is confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..base import ChannelLayerUnavailable
from ..local import LocalChannels
from . import schema as lua
from .batcher import PublishBatcher
from .codec import ACK, DISCARD, GROUP_ADD, MESSAGE, Codec, MalformedPayload, split_deadline
from .pubsub import PubSub
from .schema import Schema
from .shards import Script, Shards

logger = logging.getLogger("wsviews.layers.redis")

SEND_TO_PROCESS = Script(lua.SEND_TO_PROCESS)
DRAIN = Script(lua.DRAIN)


def owner_of(channel: str) -> str:
    """Return the id of the process that owns a ``prefix.PROCESS!suffix`` channel."""
    return channel[: channel.index("!")].rsplit(".", 1)[-1]


class Inbox:
    """This process's inbox, and the sending side of every other process's."""

    #: Seconds group_add() for another process's channel waits for its acknowledgement.
    ack_timeout = 5.0

    def __init__(
        self,
        client_prefix: str,
        shards: Shards,
        batcher: PublishBatcher,
        pubsub: PubSub,
        schema: Schema,
        codec: Codec,
        local: LocalChannels,
        expiry: float,
        capacity: int,
        stats: dict[str, int],
        join_group: Callable[[str], Awaitable[None]],
        group_emptied: Callable[[str], None],
        check_names: Callable[[str, str], None],
        malformed: Callable[[str, bytes, object], None],
    ) -> None:
        self.client_prefix = client_prefix
        self.topic = schema.inbox_topic(client_prefix)
        self.shard = shards.index(client_prefix)
        self._shards = shards
        self._batcher = batcher
        self._pubsub = pubsub
        self._schema = schema
        self._codec = codec
        self._local = local
        self._expiry = expiry
        self._capacity = capacity
        self._stats = stats
        self._join_group = join_group
        self._group_emptied = group_emptied
        self._check_names = check_names
        self._malformed = malformed
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # Subscribing

    async def ensure(self, strict: bool) -> None:
        """Subscribe the inbox on this loop, if this loop may own pub/sub, and wait for Redis."""
        if self._pubsub.is_active(self.shard, self.topic):
            return
        if self._pubsub.owns(strict):
            await self._pubsub.subscribed(self.shard, self.topic, None)

    def want(self) -> None:
        """Subscribe the inbox without waiting (pub/sub must run on this loop)."""
        self._pubsub.want(self.shard, self.topic, None)

    def ready(self) -> bool:
        """Return True if Redis confirmed the inbox subscription, on this loop."""
        return self._pubsub.is_active(self.shard, self.topic)

    # Sending to a process

    async def send(self, owner: str, payload: bytes, capacity: int) -> int:
        """Publish ``payload`` to ``owner``'s inbox, or park it; return receivers, 0 if parked, -1 if full."""
        index = self._shards.index(owner)
        topic = self._schema.inbox_topic(owner)
        # A plain PUBLISH first, batched with the other sends of this moment: the
        # owner is almost always listening.
        receivers = await self._batcher.publish(index, topic, payload)
        if receivers > 0:
            return receivers
        # Nobody heard it, so nobody got it: publish again or park it, atomically.
        now_ms = int(time.time() * 1000)
        ttl_ms = int(self._expiry * 1000)
        keys = [self._schema.backlog(owner)]
        args = [topic, payload, now_ms, ttl_ms, capacity, b"%014d" % (now_ms + ttl_ms)]
        receivers = await self._shards.run(index, lambda r: SEND_TO_PROCESS(r, keys, args))
        if receivers == 0:
            self._stats["parked"] += 1
        return int(receivers)

    async def group_op(self, owner: str, kind: int, group: str, channel: str) -> None:
        """Ask ``owner`` to add its ``channel`` to ``group`` (waiting for the ack) or to discard it."""
        request = reply_to = None
        waiter: asyncio.Future[None] | None = None
        if kind == GROUP_ADD and self.ready():
            # Wait for the owner to subscribe, so that a group_send right after
            # this group_add reaches the channel, as it would in one process.
            reply_to, request = self.client_prefix, secrets.token_hex(8)
            waiter = self._acks[request] = asyncio.get_running_loop().create_future()
        target = [group, channel, reply_to, request] if kind == GROUP_ADD else [group, channel]
        try:
            receivers = await self.send(owner, self._codec.pack(kind, target), self._capacity)
            if waiter is not None and receivers > 0:
                try:
                    async with asyncio.timeout(self.ack_timeout):
                        await waiter
                except TimeoutError:
                    logger.debug("No acknowledgement of group_add(%r, %r)", group, channel)
        finally:
            if request is not None:
                self._acks.pop(request, None)

    # What arrives

    def handle(self, kind: int, target: Any, body: Any) -> None:
        """Act on one decoded envelope that arrived on the inbox."""
        if kind == MESSAGE:
            if owner_of(target) != self.client_prefix:
                self._malformed("inbox", repr(target).encode(), f"{target!r} is not ours")
            elif not self._local.put(target, body):
                self._stats["dropped_full"] += 1
                logger.debug("Channel %s is over capacity; message dropped", target)
        elif kind == ACK:
            waiter = self._acks.pop(target, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif kind in (GROUP_ADD, DISCARD):
            self._on_group_control(kind, target)
        else:
            self._malformed("inbox", repr(target).encode(), "not an inbox message")

    def _on_group_control(self, kind: int, target: list[Any]) -> None:
        group, channel = target[0], target[1]
        try:
            self._check_names(group, channel)
        except TypeError as exc:
            self._malformed("inbox", repr(target).encode(), exc)
            return
        if "!" not in channel or owner_of(channel) != self.client_prefix:
            self._malformed("inbox", repr(target).encode(), f"{channel!r} is not ours")
        elif kind == DISCARD:
            if self._local.group_discard(group, channel):
                self._group_emptied(group)
        else:
            self._local.group_add(group, channel)
            self._spawn(self._join_and_ack(group, target[2], target[3]))

    async def _join_and_ack(self, group: str, reply_to: Any, request: Any) -> None:
        await self._join_group(group)
        if isinstance(reply_to, str) and isinstance(request, str):
            payload = self._codec.pack(ACK, request)
            topic = self._schema.inbox_topic(reply_to)
            with contextlib.suppress(ChannelLayerUnavailable):
                await self._shards.run(
                    self._shards.index(reply_to), lambda r: r.publish(topic, payload),
                    doing="acknowledge to",
                )

    def on_subscribed(self, topic: bytes) -> None:
        """Drain the backlog once Redis confirms the inbox: messages sent meanwhile were parked."""
        if topic == self.topic:
            self._spawn(self._drain())

    async def _drain(self) -> None:
        keys = [self._schema.backlog(self.client_prefix)]
        try:
            items = await self._shards.run(
                self.shard, lambda r: DRAIN(r, keys, []), doing="drain parked messages from"
            )
        except ChannelLayerUnavailable:
            return  # drained on the next subscription
        now_ms = time.time() * 1000
        for item in items:
            try:
                deadline, payload = split_deadline(item)
            except MalformedPayload as exc:
                self._malformed("backlog", item, exc)
                continue
            if deadline <= now_ms:
                self._stats["expired"] += 1
                continue
            try:
                kind, target, body = self._codec.unpack(payload)
            except MalformedPayload as exc:
                self._malformed("backlog", payload, exc)
                continue
            self._stats["received"] += 1
            self.handle(kind, target, body)

    # Tasks

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        """Cancel what runs for the inbox and release every waiter for an acknowledgement."""
        for task in list(self._tasks):
            task.cancel()
        for waiter in self._acks.values():
            if not waiter.done():
                waiter.set_result(None)
