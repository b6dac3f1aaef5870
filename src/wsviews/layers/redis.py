"""The Redis channel layer: one PUBLISH per group_send, one decode per process, push delivery.

How it works (see docs/layers.md for the whole story):

* Each process (layer instance) holds one pub/sub connection per Redis
  server, subscribed to its inbox topic and to one topic per group that has
  members in this process. ``group_send`` is one PUBLISH; each subscribed
  process decodes the message once and hands a shallow copy to each local
  member, through ``deliver`` for attached channels or a queue for
  ``receive()``.
* ``send()`` to a process-specific channel (``new_channel()`` names contain
  the owner's id before ``!``) publishes to the owner's inbox; if the owner
  is not subscribed at that instant, the message is parked in a capped,
  expiring list that the owner drains when it subscribes.
* Normal channels (no ``!``, e.g. Channels workers) are Redis lists popped
  with BLMOVE: each message is received once, by one receiver.
* ``group_add`` for a channel of another process is a control message to
  that process's inbox, acknowledged once the owner has subscribed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from channels.exceptions import ChannelFull, InvalidChannelLayerError
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from ..types import Deliver
from . import _redis_schema as lua
from ._redis_codec import (
    ACK,
    DISCARD,
    GROUP,
    GROUP_ADD,
    MESSAGE,
    Codec,
    MalformedPayload,
    split_deadline,
    with_deadline,
)
from ._redis_config import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Role,
    check_config,
    decode_hosts,
    describe_host,
    make_pool,
    operation_timeout,
    unknown_keys,
)
from ._redis_local import LocalChannels
from ._redis_schema import Schema
from ._redis_subscriber import Health, Subscriber
from .base import AttachableChannelLayer, ChannelLayerUnavailable

__all__ = ["RedisChannelLayer", "check_config"]

logger = logging.getLogger("wsviews.layers.redis")

T = TypeVar("T")

# Failures that mean "Redis cannot be reached right now", as opposed to bugs.
_UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    OSError,
    asyncio.TimeoutError,
)

STATS = (
    "sent",            # send() calls that reached Redis
    "group_sent",      # group_send() calls that reached Redis
    "received",        # well-formed messages that arrived from Redis
    "delivered",       # hand-overs to a deliver() or a receive() queue
    "parked",          # sends parked because the owning process was not subscribed
    "expired",         # messages dropped unread after ``expiry``
    "dropped_full",    # messages dropped because a local channel was at capacity
    "undeliverable",   # messages for a channel of this process that was detached (socket gone)
    "malformed",       # payloads from Redis that could not be decoded
    "deliver_errors",  # deliver() calls that raised
    "failed",          # send()/group_send() calls that raised ChannelLayerUnavailable
    "outages",         # times a Redis server became unreachable
    "reconnects",      # times the pub/sub connection was re-established
)


class _Script:
    """A Lua script run by SHA, loaded on first use on each server."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, client: Redis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except redis_errors.NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


ENQUEUE = _Script(lua.ENQUEUE)
SEND_TO_PROCESS = _Script(lua.SEND_TO_PROCESS)
GROUP_SEND = _Script(lua.GROUP_SEND)
DRAIN = _Script(lua.DRAIN)
PREPARE_POP = _Script(lua.PREPARE_POP)


class _Shard:
    """One Redis server of ``hosts``: its options and its reachability."""

    def __init__(self, host: dict[str, Any], stats: dict[str, int], blocking_timeout: float) -> None:
        self.host = host
        self.address = describe_host(host)
        self.health = Health(self.address, stats)
        self.timeouts: dict[Role, float | None] = {
            role: operation_timeout(host, role, blocking_timeout)
            for role in ("commands", "blocking")
        }


class _LoopClients:
    """Connection pools of one event loop (redis-py connections belong to a loop)."""

    def __init__(self) -> None:
        self.clients: dict[tuple[int, Role], Redis] = {}
        self.pop_locks: dict[str, asyncio.Lock] = {}
        # Normal channels whose last pop was interrupted: restore what is in flight.
        self.dirty: set[str] = set()

    async def aclose(self) -> None:
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.aclose(close_connection_pool=True)
        self.clients.clear()


class RedisChannelLayer(AttachableChannelLayer):
    """Channel layer over Redis pub/sub and lists, accepting channels_redis' CONFIG.

    Messages for this process's channels are pushed to attached receivers
    (the ``attach`` extension) or queued for ``receive()``. Statistics are in
    :attr:`stats`; Redis outages raise :class:`ChannelLayerUnavailable` from
    ``send()``/``group_send()`` and are logged once each.
    """

    extensions = ["groups", "flush", "attach"]

    #: Seconds a receive() on a normal channel blocks in Redis per round trip.
    blocking_timeout = 5.0
    #: Seconds group_add()/new_channel() wait for Redis to confirm a subscription.
    subscribe_timeout = 10.0
    #: Seconds group_add() for another process's channel waits for its acknowledgement.
    ack_timeout = 5.0
    #: Seconds between sweeps of expired local messages.
    sweep_interval = 1.0

    def __init__(
        self,
        hosts: Sequence[Any] | None = None,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: dict[Any, int] | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        on_disconnect: str | None = None,
        on_reconnect: str | None = None,
        serializer_format: str = "msgpack",
        random_prefix_length: int = 12,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise TypeError(f"RedisChannelLayer CONFIG: {'; '.join(unknown_keys(unknown))}")
        config = {
            "hosts": hosts, "prefix": prefix, "expiry": expiry, "group_expiry": group_expiry,
            "capacity": capacity, "channel_capacity": channel_capacity,
            "symmetric_encryption_keys": symmetric_encryption_keys,
            "max_message_size": max_message_size, "on_disconnect": on_disconnect,
            "on_reconnect": on_reconnect, "serializer_format": serializer_format,
            "random_prefix_length": random_prefix_length,
        }
        problems = check_config(config)
        if problems:
            raise InvalidChannelLayerError("RedisChannelLayer CONFIG: " + "; ".join(problems))
        super().__init__(expiry=expiry, capacity=capacity)
        self.group_expiry = group_expiry
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        self.prefix = prefix
        self.on_disconnect = on_disconnect
        self.on_reconnect = on_reconnect
        self.hosts = decode_hosts(hosts)
        #: Counters of what happened to messages; see STATS.
        self.stats: dict[str, int] = dict.fromkeys(STATS, 0)
        self._shards = [_Shard(host, self.stats, self.blocking_timeout) for host in self.hosts]
        #: This process's id: every new_channel() name carries it before the ``!``.
        self.client_prefix = secrets.token_hex(8)
        self._codec = Codec(symmetric_encryption_keys, expiry, max_message_size)
        self._schema = Schema(prefix)
        self._local = LocalChannels(self.get_capacity, expiry, group_expiry, self.stats)
        self._inbox_topic = self._schema.inbox_topic(self.client_prefix)
        self._inbox_shard = self._shard_index(self.client_prefix)
        self._loops: dict[asyncio.AbstractEventLoop, _LoopClients] = {}
        # Pub/sub lives on one event loop at a time: the first that needs it.
        self._sub_loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: dict[int, Subscriber] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        # topic -> group name, or None for the inbox
        self._routes: dict[bytes, str | None] = {}
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._next_malformed_log = 0.0

    def __repr__(self) -> str:
        hosts = ", ".join(shard.address for shard in self._shards)
        return f"<RedisChannelLayer prefix={self.prefix!r} hosts=[{hosts}]>"

    # Channel layer API

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send ``message`` to ``channel``; raise ChannelFull, MessageTooLarge or ChannelLayerUnavailable."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        if "!" in channel:
            owner = self._owner(channel)
            payload = self._codec.pack(MESSAGE, channel, message)
            mine = owner == self.client_prefix
            if mine and not self._local.reserve(channel):
                raise ChannelFull(channel)
            try:
                receivers = await self._send_to_process(owner, payload, self.get_capacity(channel))
            except BaseException:
                if mine:
                    self._local.unreserve(channel)
                raise
            if receivers < 0:
                if mine:
                    self._local.unreserve(channel)
                raise ChannelFull(channel)
        else:
            await self._enqueue(channel, self._codec.dumps(message))
        self.stats["sent"] += 1

    async def _send_to_process(self, owner: str, payload: bytes, capacity: int) -> int:
        index = self._shard_index(owner)
        topic = self._schema.inbox_topic(owner)
        # A plain PUBLISH first: the owner is almost always listening.
        receivers: int = await self._command(index, lambda r: r.publish(topic, payload))
        if receivers > 0:
            return receivers
        # Nobody heard it, so nobody got it: publish again or park it, atomically.
        now_ms = int(time.time() * 1000)
        ttl_ms = int(self.expiry * 1000)
        keys = [self._schema.backlog(owner)]
        args = [topic, payload, now_ms, ttl_ms, capacity, b"%014d" % (now_ms + ttl_ms)]
        receivers = await self._command(index, lambda r: SEND_TO_PROCESS(r, keys, args))
        if receivers == 0:
            self.stats["parked"] += 1
        return receivers

    async def _enqueue(self, channel: str, payload: bytes) -> None:
        if not await self._enqueue_quiet(channel, payload):
            raise ChannelFull(channel)

    async def _enqueue_quiet(self, channel: str, payload: bytes) -> bool:
        now_ms = int(time.time() * 1000)
        ttl_ms = int(self.expiry * 1000)
        keys = [self._schema.queue(channel)]
        args = [now_ms, ttl_ms, self.get_capacity(channel), with_deadline(now_ms + ttl_ms, payload)]
        queued: int = await self._command(
            self._shard_index(channel), lambda r: ENQUEUE(r, keys, args)
        )
        return bool(queued)

    async def receive(self, channel: str) -> dict[str, Any]:
        """Return the next message of ``channel``, waiting for one.

        A process-specific channel must come from this layer's ``new_channel()``;
        a normal channel is shared by every process, each message going to one.
        """
        self.require_valid_channel_name(channel)
        if "!" in channel:
            self._require_own(channel)
            await self._ensure_inbox(strict=True)
            return await self._local.get(channel)
        return await self._receive_normal(channel)

    async def _receive_normal(self, channel: str) -> dict[str, Any]:
        clients = self._clients()
        lock = clients.pop_locks.setdefault(channel, asyncio.Lock())
        async with lock:
            while True:
                restore = channel in clients.dirty
                await self._command(
                    self._shard_index(channel), self._prepare_pop(channel, restore),
                    role="blocking", doing="receive from",
                )
                clients.dirty.discard(channel)
                try:
                    item = await self._command(
                        self._shard_index(channel), self._pop(channel),
                        role="blocking", doing="receive from",
                    )
                except BaseException:
                    # Cancelled or cut off: Redis may have moved a message in flight.
                    clients.dirty.add(channel)
                    raise
                if item is not None:
                    message = self._decode_item(item, channel)
                    if message is not None:
                        return message

    def _prepare_pop(self, channel: str, restore: bool) -> Callable[[Redis], Awaitable[Any]]:
        keys = [self._schema.queue(channel), self._schema.inflight(channel, self.client_prefix)]
        # The in-flight list outlives a blocking pop, and a message's expiry.
        ttl_ms = int(max(self.expiry, 3 * self.blocking_timeout) * 1000)
        args = [b"1" if restore else b"0", ttl_ms]
        return lambda r: PREPARE_POP(r, keys, args)

    def _pop(self, channel: str) -> Callable[[Redis], Awaitable[Any]]:
        source = self._schema.queue(channel)
        inflight = self._schema.inflight(channel, self.client_prefix)
        timeout: Any = self.blocking_timeout  # redis-py accepts float seconds
        return lambda r: r.blmove(source, inflight, timeout, "LEFT", "RIGHT")

    def _decode_item(self, item: bytes, where: str) -> dict[str, Any] | None:
        try:
            deadline, payload = split_deadline(item)
            if deadline <= time.time() * 1000:
                self.stats["expired"] += 1
                return None
            message = self._codec.loads(payload)
            if not isinstance(message, dict):
                raise MalformedPayload("not a dict")
        except MalformedPayload as exc:
            self._malformed(where, item, exc)
            return None
        self.stats["received"] += 1
        return message

    async def new_channel(self, prefix: str = "specific") -> str:
        """Return a new channel name owned by this process, ready to be sent to."""
        name = f"{prefix}.{self.client_prefix}!{secrets.token_hex(8)}"
        await self._ensure_inbox(strict=False)
        return name

    # Attach extension

    def attach(self, channel: str, deliver: Deliver) -> None:
        """Push every message for ``channel`` to ``deliver(message)`` on the event loop."""
        self.require_valid_channel_name(channel)
        self._require_own(channel)
        self._local.attach(channel, deliver)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # outside a loop: the inbox is subscribed by the next async call
        if self._owns_pubsub(strict=False):
            self._want(self._inbox_shard, self._inbox_topic, None)

    def detach(self, channel: str) -> None:
        """Stop pushing to ``channel`` and remove it from every group of this process."""
        for group in self._local.detach(channel):
            self._unwant_group(group)

    # Groups extension

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group``; a channel of another process is added by its owner."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        if "!" not in channel:
            key = self._schema.members(group)
            ttl = int(self.group_expiry * 1000)

            async def add(r: Redis) -> None:
                async with r.pipeline(transaction=True) as pipe:
                    pipe.zadd(key, {channel: time.time()})
                    pipe.pexpire(key, ttl)
                    await pipe.execute()

            await self._command(self._shard_index(group), add, doing="add to a group in")
            return
        owner = self._owner(channel)
        if owner != self.client_prefix:
            await self._remote_group_op(owner, GROUP_ADD, group, channel)
            return
        self._owns_pubsub(strict=True)
        self._local.group_add(group, channel)
        await self._subscribed(self._shard_index(group), self._schema.group_topic(group), group)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; no error if it is not in it."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        if "!" not in channel:
            key = self._schema.members(group)
            await self._command(
                self._shard_index(group), lambda r: r.zrem(key, channel),
                doing="discard from a group in",
            )
            return
        owner = self._owner(channel)
        if owner != self.client_prefix:
            await self._remote_group_op(owner, DISCARD, group, channel)
        elif self._local.group_discard(group, channel):
            self._unwant_group(group)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send ``message`` to every member of ``group``: one PUBLISH, whatever the members.

        Members over capacity miss the message (logged, counted); Redis being
        unreachable raises ChannelLayerUnavailable.
        """
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        payload = self._codec.pack(GROUP, group, message)
        keys = [self._schema.members(group)]
        args = [self._schema.group_topic(group), payload, time.time() - self.group_expiry]
        result = await self._command(
            self._shard_index(group), lambda r: GROUP_SEND(r, keys, args)
        )
        self.stats["group_sent"] += 1
        if len(result) > 1:
            await self._send_to_normal_members(group, [m.decode() for m in result[1:]], message)

    async def _send_to_normal_members(
        self, group: str, channels: list[str], message: dict[str, Any]
    ) -> None:
        payload = self._codec.dumps(message)
        results = await asyncio.gather(*(self._enqueue_quiet(c, payload) for c in channels))
        full = results.count(False)
        if full:
            logger.info("%s of %s channels over capacity in group %s", full, len(channels), group)

    async def _remote_group_op(self, owner: str, kind: int, group: str, channel: str) -> None:
        request = reply_to = None
        waiter: asyncio.Future[None] | None = None
        if kind == GROUP_ADD and self._inbox_ready():
            # Wait for the owner to subscribe, so that a group_send right after
            # this group_add reaches the channel, as it would in one process.
            reply_to, request = self.client_prefix, secrets.token_hex(8)
            waiter = self._acks[request] = asyncio.get_running_loop().create_future()
        target = [group, channel, reply_to, request] if kind == GROUP_ADD else [group, channel]
        try:
            receivers = await self._send_to_process(
                owner, self._codec.pack(kind, target), self.capacity
            )
            if waiter is not None and receivers > 0:
                try:
                    async with asyncio.timeout(self.ack_timeout):
                        await waiter
                except TimeoutError:
                    logger.debug("No acknowledgement of group_add(%r, %r)", group, channel)
        finally:
            if request is not None:
                self._acks.pop(request, None)

    async def ping(self) -> None:
        """Check that every Redis server answers; raise ChannelLayerUnavailable if one does not."""
        for index in range(len(self._shards)):
            await self._command(index, lambda r: r.ping(), doing="ping")

    # Flush extension

    async def flush(self) -> None:
        """Delete this prefix's keys and forget local queues and groups; close connections."""
        for group in self._local.clear():
            self._unwant_group(group)
        patterns = self._schema.flush_patterns()

        async def delete(r: Redis) -> None:
            for pattern in patterns:
                batch = [key async for key in r.scan_iter(match=pattern, count=1000)]
                for i in range(0, len(batch), 1000):
                    await r.unlink(*batch[i:i + 1000])

        for index in range(len(self._shards)):
            await self._command(index, delete, doing="flush")
        await self.close()

    async def close(self) -> None:
        """Close this event loop's connections and pub/sub; the layer may be used again after."""
        loop = asyncio.get_running_loop()
        if self._sub_loop is loop:
            await self._stop_pubsub()
        clients = self._loops.pop(loop, None)
        if clients is not None:
            await clients.aclose()

    # Redis commands

    def _shard_index(self, name: str) -> int:
        size = len(self._shards)
        if size == 1:
            return 0
        # Not channels_redis' CRC32 ring: it sends names that differ only at
        # the end ("room1", "room2"...) to the same server.
        digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % size

    def _clients(self) -> _LoopClients:
        loop = asyncio.get_running_loop()
        clients = self._loops.get(loop)
        if clients is None:
            for other in [other for other in self._loops if other.is_closed()]:
                del self._loops[other]
            clients = self._loops[loop] = _LoopClients()
            _on_loop_close(loop, self)
        return clients

    def _client(self, index: int, role: Role) -> Redis:
        clients = self._clients()
        client = clients.clients.get((index, role))
        if client is None:
            pool = make_pool(self._shards[index].host, role)
            client = clients.clients[(index, role)] = Redis(connection_pool=pool)
        return client

    async def _command(
        self,
        index: int,
        operation: Callable[[Redis], Awaitable[T]],
        role: Role = "commands",
        doing: str = "send to",
    ) -> T:
        """Run ``operation`` on shard ``index``; raise ChannelLayerUnavailable if Redis is down."""
        shard = self._shards[index]
        try:
            async with asyncio.timeout(shard.timeouts[role]):
                result = await operation(self._client(index, role))
        except _UNAVAILABLE as exc:
            shard.health.failed(exc)
            if doing == "send to":
                self.stats["failed"] += 1
            raise ChannelLayerUnavailable(
                f"Cannot {doing} Redis at {shard.address}: {type(exc).__name__}: {exc}. "
                "Nothing was sent; the layer reconnects by itself, so retry later."
            ) from exc
        if not shard.health.up or not shard.health.ever_up:
            shard.health.ok()
        return result

    # Pub/sub

    def _owns_pubsub(self, strict: bool) -> bool:
        """Return True if pub/sub may run on this loop, taking it over if its loop is gone."""
        loop = asyncio.get_running_loop()
        if self._sub_loop is loop:
            return True
        if self._sub_loop is not None and not self._sub_loop.is_closed():
            if strict:
                raise RuntimeError(
                    "This RedisChannelLayer receives on another event loop, which is still "
                    "open: receive(), attach() and group_add() of this process's channels must "
                    "run on that loop (from sync code, use async_to_sync inside the server)."
                )
            return False
        self._subscribers = {}
        self._sub_loop = loop
        self._sweeper = loop.call_later(self.sweep_interval, self._sweep)
        # Whatever the previous loop had subscribed must be subscribed again here.
        self._want(self._inbox_shard, self._inbox_topic, None)
        for group in self._local.groups:
            self._want(self._shard_index(group), self._schema.group_topic(group), group)
        return True

    def _subscriber(self, index: int) -> Subscriber:
        subscriber = self._subscribers.get(index)
        if subscriber is None:
            pool = make_pool(self._shards[index].host, "subscriber")
            subscriber = self._subscribers[index] = Subscriber(
                pool, self._shards[index].health, self._on_pubsub, self._on_subscribed,
                self._on_pubsub_state, self.stats,
            )
            subscriber.start()
        return subscriber

    def _want(self, index: int, topic: bytes, route: str | None) -> asyncio.Future[None] | None:
        self._routes[topic] = route
        return self._subscriber(index).subscribe(topic)

    def _unwant_group(self, group: str) -> None:
        topic = self._schema.group_topic(group)
        self._routes.pop(topic, None)
        subscriber = self._subscribers.get(self._shard_index(group))
        loop = self._sub_loop
        if subscriber is None or loop is None or loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            subscriber.unsubscribe(topic)
        else:
            # The subscriber's state belongs to its loop's thread.
            loop.call_soon_threadsafe(subscriber.unsubscribe, topic)

    async def _subscribed(self, index: int, topic: bytes, route: str | None) -> None:
        """Subscribe ``topic``; wait for Redis to confirm unless Redis is known to be down."""
        waiter = self._want(index, topic, route)
        subscriber = self._subscribers[index]
        if waiter is None or not (subscriber.connected or not subscriber.attempted.is_set()):
            return
        # Shielded: one waiter is shared by every caller wanting this topic.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.subscribe_timeout):
                await asyncio.shield(waiter)

    async def _ensure_inbox(self, strict: bool) -> None:
        subscriber = self._subscribers.get(self._inbox_shard)
        if (subscriber is not None and subscriber.is_active(self._inbox_topic)
                and self._sub_loop is asyncio.get_running_loop()):
            return
        if self._owns_pubsub(strict):
            await self._subscribed(self._inbox_shard, self._inbox_topic, None)

    def _inbox_ready(self) -> bool:
        subscriber = self._subscribers.get(self._inbox_shard)
        return (self._sub_loop is asyncio.get_running_loop() and subscriber is not None
                and subscriber.is_active(self._inbox_topic))

    async def _stop_pubsub(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        subscribers, self._subscribers = self._subscribers, {}
        self._sub_loop = None
        for subscriber in subscribers.values():
            await subscriber.close()
        for task in list(self._tasks):
            task.cancel()
        for waiter in self._acks.values():
            if not waiter.done():
                waiter.set_result(None)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _sweep(self) -> None:
        loop = self._sub_loop
        if loop is None or loop.is_closed():
            return
        for group in self._local.sweep():
            self._unwant_group(group)
        self._sweeper = loop.call_later(self.sweep_interval, self._sweep)

    # What arrives from Redis

    def _on_pubsub(self, topic: bytes, payload: bytes) -> None:
        if topic not in self._routes:
            return  # unsubscribed while the message was on its way
        route = self._routes[topic]
        try:
            kind, target, body = self._codec.unpack(payload)
        except MalformedPayload as exc:
            self._malformed(topic.decode(errors="replace"), payload, exc)
            return
        self.stats["received"] += 1
        if route is not None:
            if kind == GROUP and target == route:
                self._fan_out(route, body)
            else:
                self._malformed(topic.decode(), payload, "not a message for this group")
        elif kind == MESSAGE:
            if self._owner(target) != self.client_prefix:
                self._malformed(topic.decode(), payload, f"{target!r} is not ours")
            elif not self._local.put(target, body):
                self.stats["dropped_full"] += 1
                logger.debug("Channel %s is over capacity; message dropped", target)
        elif kind == ACK:
            waiter = self._acks.pop(target, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        else:
            self._on_group_control(kind, target)

    def _on_group_control(self, kind: int, target: list[Any]) -> None:
        group, channel = target[0], target[1]
        try:
            self.require_valid_group_name(group)
            self.require_valid_channel_name(channel)
        except TypeError as exc:
            self._malformed("inbox", repr(target).encode(), exc)
            return
        if "!" not in channel or self._owner(channel) != self.client_prefix:
            self._malformed("inbox", repr(target).encode(), f"{channel!r} is not ours")
        elif kind == DISCARD:
            if self._local.group_discard(group, channel):
                self._unwant_group(group)
        else:
            self._local.group_add(group, channel)
            self._spawn(self._subscribe_and_ack(group, target[2], target[3]))

    async def _subscribe_and_ack(self, group: str, reply_to: Any, request: Any) -> None:
        await self._subscribed(self._shard_index(group), self._schema.group_topic(group), group)
        if isinstance(reply_to, str) and isinstance(request, str):
            payload = self._codec.pack(ACK, request)
            topic = self._schema.inbox_topic(reply_to)
            with contextlib.suppress(ChannelLayerUnavailable):
                await self._command(
                    self._shard_index(reply_to), lambda r: r.publish(topic, payload),
                    doing="acknowledge to",
                )

    def _fan_out(self, group: str, message: dict[str, Any]) -> None:
        members, full, emptied = self._local.fan_out(group, message)
        if full:
            self.stats["dropped_full"] += full
            logger.info("%s of %s channels over capacity in group %s", full, members, group)
        if emptied:
            self._unwant_group(group)

    def _on_subscribed(self, topic: bytes) -> None:
        if topic == self._inbox_topic:
            # Messages sent while this process was not subscribed were parked.
            self._spawn(self._drain_backlog())

    async def _drain_backlog(self) -> None:
        keys = [self._schema.backlog(self.client_prefix)]
        try:
            items = await self._command(
                self._inbox_shard, lambda r: DRAIN(r, keys, []), doing="drain parked messages from"
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
                self.stats["expired"] += 1
            else:
                self._on_pubsub(self._inbox_topic, payload)

    def _on_pubsub_state(self, connected: bool) -> None:
        kind = self.on_reconnect if connected else self.on_disconnect
        if kind:
            for channel in self._local.local_channels():
                self._local.put(channel, {"type": kind})

    def _malformed(self, where: str, payload: bytes, reason: object) -> None:
        self.stats["malformed"] += 1
        now = time.monotonic()
        if now >= self._next_malformed_log:
            # A foreign publisher can send thousands a second: one line per 10 s is enough.
            self._next_malformed_log = now + 10
            logger.warning(
                "Dropped a malformed message on %s (%s): %r. It comes from another publisher, "
                "another wsviews version, or a layer with other symmetric_encryption_keys. "
                "%d dropped so far.", where, reason, payload[:80], self.stats["malformed"],
            )

    # Channel names

    def _owner(self, channel: str) -> str:
        """Return the id of the process that owns a ``prefix.PROCESS!suffix`` channel."""
        return channel[: channel.index("!")].rsplit(".", 1)[-1]

    def _require_own(self, channel: str) -> None:
        if "!" not in channel or self._owner(channel) != self.client_prefix:
            raise ValueError(
                f"{channel!r} is not a channel of this process: receive() and attach() take "
                "names returned by this layer's new_channel()"
            )

    # Event loops

    def _loop_closing(self, loop: asyncio.AbstractEventLoop) -> None:
        """Release what belongs to ``loop``, which is about to close."""
        clients = self._loops.pop(loop, None)
        owns_pubsub = self._sub_loop is loop
        if clients is None and not owns_pubsub:
            return

        async def release() -> None:
            if owns_pubsub:
                await self._stop_pubsub()
            if clients is not None:
                await clients.aclose()

        try:
            loop.run_until_complete(release())
        except Exception:
            logger.debug("Closing Redis connections of a closing event loop failed", exc_info=True)


def _on_loop_close(loop: asyncio.AbstractEventLoop, layer: RedisChannelLayer) -> None:
    """Make ``loop.close()`` release the layer's connections of that loop first.

    async_to_sync() runs each call in a new loop and closes it; connections
    left behind would be closed by the garbage collector on a dead loop.
    """
    original = loop.close
    ref = weakref.ref(layer)

    def close() -> None:
        target = ref()
        if target is not None and not loop.is_running() and not loop.is_closed():
            target._loop_closing(loop)
        original()

    # uvloop's loop does not take attributes: its connections are then left to the GC.
    with contextlib.suppress(AttributeError, TypeError):
        loop.close = close  # type: ignore[method-assign]
