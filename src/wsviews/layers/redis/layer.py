"""``RedisChannelLayer``: the Channels layer API over Redis, delivering through the local core.

Redis only carries messages between processes; what happens to them in a
process (groups, queues, ``attach``, capacity, expiry) is
:class:`~wsviews.layers.local.LocalChannels`, as in the in-memory layer.
``group_send`` is one PUBLISH, whatever the members; each process with
members decodes it once and fans it out locally. See docs/layers.md.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

from channels.exceptions import ChannelFull, InvalidChannelLayerError

from ...types import Deliver
from ..base import AttachableChannelLayer, require_dict, require_message
from ..local import Capacities, LocalChannels
from . import schema as lua
from .batcher import PublishBatcher
from .codec import (
    DISCARD,
    GROUP,
    GROUP_ADD,
    MESSAGE,
    Codec,
    MalformedPayload,
    is_batch,
    join_batch,
    split_batch,
)
from .config import DEFAULT_MAX_MESSAGE_SIZE, check_config, decode_hosts, unknown_keys
from .inbox import Inbox, owner_of
from .pubsub import PubSub, Route
from .queues import NormalChannels
from .schema import Schema, hash_tag
from .shards import Script, Shards

__all__ = ["ForeignChannel", "RedisChannelLayer", "check_config"]

logger = logging.getLogger("wsviews.layers.redis")

GROUP_SEND = Script(lua.GROUP_SEND)

STATS = (
    "sent",            # send() calls that reached Redis
    "group_sent",      # group_send() calls that reached Redis
    "received",        # well-formed messages that arrived from Redis
    "parked",          # sends parked because the owning process was not subscribed
    "malformed",       # payloads from Redis that could not be decoded
    "failed",          # send()/group_send() calls that raised ChannelLayerUnavailable
    "outages",         # times a Redis server became unreachable
    "reconnects",      # times the pub/sub connection was re-established
)  # plus the local core's: delivered, expired, dropped_full, undeliverable, deliver_errors


class ForeignChannel(ValueError, AssertionError):
    """A process-specific channel of another process given to ``receive()`` or ``attach()``.

    An AssertionError too, which is what channels_redis raises there.
    """


class RedisChannelLayer(AttachableChannelLayer):
    """Channel layer over Redis pub/sub and lists, accepting channels_redis' CONFIG.

    Messages for this process's channels are pushed to attached receivers
    (the ``attach`` extension) or queued for ``receive()``. Statistics are in
    :attr:`stats`; Redis outages raise :class:`ChannelLayerUnavailable` from
    ``send()``/``group_send()`` and are logged once each.

    For extensions that keep their own data in Redis next to the layer's (a
    realtime hub's history and presence): :meth:`key`, :meth:`run_script`
    and :meth:`group_send_scripted`.
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
        self._capacities = Capacities(capacity, channel_capacity)
        self.channel_capacity = self._capacities.patterns
        self.prefix = prefix
        self.on_disconnect = on_disconnect
        self.on_reconnect = on_reconnect
        self.hosts = decode_hosts(hosts)
        #: Counters of what happened to messages; see STATS and the local core's.
        self.stats: dict[str, int] = dict.fromkeys(STATS, 0)
        #: This process's id: every new_channel() name carries it before the ``!``.
        self.client_prefix = secrets.token_hex(8)
        #: The local delivery core: this process's channels, queues and group members.
        self.local = LocalChannels(self._capacities, expiry, group_expiry, self.stats)
        self._shards = Shards(self.hosts, self.stats, self.blocking_timeout, self._loop_closing)
        self._codec = Codec(symmetric_encryption_keys, expiry, max_message_size)
        self._schema = Schema(prefix)
        self._batcher = PublishBatcher(self._shards, join_batch)
        self._pubsub = PubSub(self._shards, self.stats, self._on_pubsub, self._on_subscribed,
                              self._on_pubsub_state, self._on_pubsub_start)
        self._pubsub.subscribe_timeout = self.subscribe_timeout
        self._inbox = Inbox(
            self.client_prefix, self._shards, self._batcher, self._pubsub, self._schema,
            self._codec, self.local, expiry, capacity, self.stats, self._join_group,
            self._unwant_group, self._check_names, self._malformed,
        )
        self._inbox.ack_timeout = self.ack_timeout
        self._queues = NormalChannels(
            self._shards, self._schema, self._codec, self._capacities, expiry, group_expiry,
            self.blocking_timeout, self.client_prefix, self.stats, self._malformed,
        )
        self._sweeper: asyncio.TimerHandle | None = None
        self._next_malformed_log = 0.0

    def __repr__(self) -> str:
        hosts = ", ".join(shard.address for shard in self._shards.shards)
        return f"<RedisChannelLayer prefix={self.prefix!r} hosts=[{hosts}]>"

    def get_capacity(self, channel: str) -> int:
        return self._capacities(channel)

    def serialize(self, message: dict[str, Any]) -> bytes:
        """Return ``message`` as this layer stores it: msgpack, Fernet-encrypted if configured.

        channels_redis' layers have this method too (without their random prefix).
        """
        return self._codec.dumps(message)

    def deserialize(self, data: bytes) -> Any:
        """Return the message ``serialize()`` made ``data`` of; raise ValueError if it is not one."""
        return self._codec.loads(data)

    # Channel layer API

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send ``message`` to ``channel``; raise ChannelFull, MessageTooLarge or ChannelLayerUnavailable."""
        require_message(message)
        self.require_valid_channel_name(channel)
        if "!" not in channel:
            if not await self._queues.enqueue(channel, self._codec.dumps(message)):
                raise ChannelFull(channel)
            self.stats["sent"] += 1
            return
        owner = owner_of(channel)
        payload = self._codec.pack(MESSAGE, channel, message)
        mine = owner == self.client_prefix
        if mine and not self.local.reserve(channel):
            raise ChannelFull(channel)
        try:
            receivers = await self._inbox.send(owner, payload, self._capacities(channel))
        except BaseException:
            if mine:
                self.local.unreserve(channel)
            raise
        if receivers < 0:
            if mine:
                self.local.unreserve(channel)
            raise ChannelFull(channel)
        self.stats["sent"] += 1

    async def receive(self, channel: str) -> dict[str, Any]:
        """Return the next message of ``channel``, waiting for one.

        A process-specific channel must come from this layer's ``new_channel()``;
        a normal channel is shared by every process, each message going to one.
        """
        self.require_valid_channel_name(channel)
        if "!" not in channel:
            return await self._queues.receive(channel)
        self._require_own(channel)
        await self._inbox.ensure(strict=True)
        return await self.local.get(channel)

    async def new_channel(self, prefix: str = "specific") -> str:
        """Return a new channel name owned by this process, ready to be sent to."""
        name = f"{prefix}.{self.client_prefix}!{secrets.token_hex(8)}"
        await self._inbox.ensure(strict=False)
        return name

    # Attach extension

    def attach(self, channel: str, deliver: Deliver) -> None:
        """Push every message for ``channel`` to ``deliver(message)`` on the event loop."""
        self.require_valid_channel_name(channel)
        self._require_own(channel)
        self.local.attach(channel, deliver)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # outside a loop: the inbox is subscribed by the next async call
        if self._pubsub.owns(strict=False):
            self._inbox.want()

    def detach(self, channel: str) -> None:
        """Stop pushing to ``channel`` and remove it from every group of this process."""
        for group in self.local.detach(channel):
            self._unwant_group(group)

    def group_sizes(self) -> dict[str, int]:
        """Return ``{group: number of members in this process}`` for every group with a local member."""
        return self.local.group_sizes()

    # Groups extension

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group``; a channel of another process is added by its owner."""
        self._check_names(group, channel)
        if "!" not in channel:
            await self._queues.group_add(group, channel)
            return
        owner = owner_of(channel)
        if owner != self.client_prefix:
            await self._inbox.group_op(owner, GROUP_ADD, group, channel)
            return
        self._pubsub.owns(strict=True)
        self.local.group_add(group, channel)
        await self._join_group(group)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; no error if it is not in it."""
        self._check_names(group, channel)
        if "!" not in channel:
            await self._queues.group_discard(group, channel)
            return
        owner = owner_of(channel)
        if owner != self.client_prefix:
            await self._inbox.group_op(owner, DISCARD, group, channel)
        elif self.local.group_discard(group, channel):
            self._unwant_group(group)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send ``message`` to every member of ``group``: one PUBLISH, whatever the members.

        Members over capacity miss the message (logged, counted) when it
        reaches their process; Redis being unreachable raises
        ChannelLayerUnavailable.
        """
        require_dict(message)
        self.require_valid_group_name(group)
        payload = self._codec.pack(GROUP, group, message)
        keys = [self._schema.members(group)]
        args = [self._schema.group_topic(group), payload, time.time() - self.group_expiry]
        result = await self._shards.run(
            self._shards.index(group), lambda r: GROUP_SEND(r, keys, args)
        )
        self.stats["group_sent"] += 1
        if len(result) > 1:
            await self._queues.send_to_members(group, [m.decode() for m in result[1:]], message)

    # Extensions' data in Redis

    def key(self, kind: str, name: str) -> str:
        """Return the name of a Redis key for an extension: ``f"{prefix}:{kind}:{{{name}}}"``.

        The key carries ``name`` as its hash tag, so it lives on the server
        (and Redis Cluster slot) of the group or ``hash_name`` ``name``:
        pass it to :meth:`run_script` with ``hash_name=name``, or to
        :meth:`group_send_scripted` of group ``name``. ``kind`` names what the
        key holds (``"history"``, ``"presence"``...); the layer's own kinds
        are refused. ``flush()`` deletes the keys of every kind named here.
        """
        return self._schema.key(kind, name)

    async def run_script(
        self, hash_name: str, script_source: str, keys: Sequence[Any], args: Sequence[Any],
    ) -> Any:
        """Run a Lua script on the server that owns ``hash_name``; return its result.

        ``keys`` must all carry ``{hash_name}`` as their hash tag (name them
        with :meth:`key`). The script is run by SHA, and sent whole the first
        time a server does not know it. Redis being unreachable raises
        ChannelLayerUnavailable (logged once per outage); an error of the
        script itself raises ``redis.exceptions.ResponseError``.
        """
        keys = self._require_hash_tag(hash_name, keys)
        return await self._shards.run_script(
            self._shards.index(hash_name), script_source, keys, list(args),
            doing="run a script on",
        )

    async def group_send_scripted(
        self, group: str, message: dict[str, Any], script_source: str,
        keys: Sequence[Any], args: Sequence[Any],
    ) -> Any:
        """Run a Lua script that publishes ``message`` to ``group``, possibly stamped; return its result.

        The script runs on the group's server with ``KEYS = keys`` (each with
        the hash tag ``{group}``, see :meth:`key`) and ``ARGV = [topic,
        envelope, *args]``. It publishes the message itself, in the same
        atomic step as its own writes: ``redis.call('PUBLISH', ARGV[1],
        ARGV[2])`` as it is, or stamped, ``redis.call('PUBLISH', ARGV[1],
        '\\0' .. offset .. ':' .. epoch .. ':' .. ARGV[2])``, and then every
        member, in every process, gets the message with ``message["offset"]
        = offset`` (an int) and ``message["epoch"] = epoch`` (a str). A script
        may also not publish at all. Members are the channels of processes
        (every ``new_channel()`` name); normal channels in the group (no
        ``!``) do not get scripted messages.
        """
        require_dict(message)
        self.require_valid_group_name(group)
        keys = self._require_hash_tag(group, keys)
        payload = self._codec.pack(GROUP, group, message)
        result = await self._shards.run_script(
            self._shards.index(group), script_source, keys,
            [self._schema.group_topic(group), payload, *args],
        )
        self.stats["group_sent"] += 1
        return result

    def _require_hash_tag(self, name: str, keys: Sequence[Any]) -> list[Any]:
        if not isinstance(name, str) or not name:
            raise TypeError(f"hash name must be a non-empty str, not {name!r}")
        keys = list(keys)
        for key in keys:
            text = key.decode(errors="replace") if isinstance(key, bytes) else key
            if not isinstance(text, str) or hash_tag(text) != name:
                raise ValueError(
                    f"key {key!r} must carry the hash tag {{{name}}}, so that it lives with "
                    f"{name!r}: name it layer.key(kind, {name!r})"
                )
        return keys

    # Housekeeping

    async def ping(self) -> None:
        """Check that every Redis server answers; raise ChannelLayerUnavailable if one does not."""
        for index in range(len(self._shards)):
            await self._shards.run(index, lambda r: r.ping(), doing="ping")

    async def flush(self) -> None:
        """Delete this prefix's keys and forget local queues and groups; close connections."""
        for group in self.local.clear():
            self._unwant_group(group)
        patterns = self._schema.flush_patterns()

        async def delete(r: Any) -> None:
            for pattern in patterns:
                batch = [key async for key in r.scan_iter(match=pattern, count=1000)]
                for i in range(0, len(batch), 1000):
                    await r.unlink(*batch[i:i + 1000])

        for index in range(len(self._shards)):
            await self._shards.run(index, delete, doing="flush")
        await self.close()

    async def close(self) -> None:
        """Close this event loop's connections and pub/sub; the layer may be used again after."""
        loop = asyncio.get_running_loop()
        if self._pubsub.loop is loop:
            await self._stop_pubsub()
        clients = self._shards.forget_loop(loop)
        if clients is not None:
            await clients.aclose()

    async def close_pools(self) -> None:
        """Close this event loop's connections: channels_redis' name for :meth:`close`."""
        await self.close()

    def _loop_closing(self, loop: asyncio.AbstractEventLoop) -> None:
        """Release what belongs to ``loop``, which is about to close."""
        clients = self._shards.forget_loop(loop)
        owns_pubsub = self._pubsub.loop is loop
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

    # Pub/sub

    def _on_pubsub_start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweeper = loop.call_later(self.sweep_interval, self._sweep)
        # Whatever a previous loop had subscribed must be subscribed again here.
        self._inbox.want()
        for group in self.local.groups:
            self._pubsub.want(self._shards.index(group), self._schema.group_topic(group), group)

    async def _stop_pubsub(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        await self._pubsub.stop()
        self._inbox.stop()

    async def _join_group(self, group: str) -> None:
        await self._pubsub.subscribed(self._shards.index(group), self._schema.group_topic(group), group)

    def _unwant_group(self, group: str) -> None:
        self._pubsub.unwant(self._shards.index(group), self._schema.group_topic(group))

    def _sweep(self) -> None:
        loop = self._pubsub.loop
        if loop is None or loop.is_closed():
            return
        for group in self.local.sweep():
            self._unwant_group(group)
        self._sweeper = loop.call_later(self.sweep_interval, self._sweep)

    def _on_pubsub(self, topic: bytes, route: Route, payload: bytes) -> None:
        if route is None:
            self._on_inbox(topic, payload)
            return
        decoded = self._decode(topic, payload)
        if decoded is None:
            return
        kind, target, body = decoded
        if kind == GROUP and target == route:
            members, full, emptied = self.local.fan_out(route, body)
            if full:
                logger.info("%s of %s channels over capacity in group %s", full, members, route)
            if emptied:
                self._unwant_group(route)
        else:
            self._malformed(topic.decode(), payload, "not a message for this group")

    def _on_inbox(self, topic: bytes, payload: bytes) -> None:
        payloads = [payload]
        if is_batch(payload):
            try:
                payloads = split_batch(payload)
            except MalformedPayload as exc:
                self._malformed(topic.decode(errors="replace"), payload, exc)
                return
        for one in payloads:
            decoded = self._decode(topic, one)
            if decoded is not None:
                self._inbox.handle(*decoded)

    def _decode(self, topic: bytes, payload: bytes) -> tuple[int, Any, Any] | None:
        try:
            decoded = self._codec.unpack(payload)
        except MalformedPayload as exc:
            self._malformed(topic.decode(errors="replace"), payload, exc)
            return None
        self.stats["received"] += 1
        return decoded

    def _on_subscribed(self, topic: bytes) -> None:
        self._inbox.on_subscribed(topic)

    def _on_pubsub_state(self, connected: bool) -> None:
        kind = self.on_reconnect if connected else self.on_disconnect
        if kind:
            for channel in self.local.local_channels():
                self.local.put(channel, {"type": kind})

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

    def _check_names(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)

    def _require_own(self, channel: str) -> None:
        if "!" not in channel or owner_of(channel) != self.client_prefix:
            raise ForeignChannel(
                f"{channel!r} is not a channel of this process: receive() and attach() take "
                "names returned by this layer's new_channel()"
            )
