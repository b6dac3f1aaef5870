"""One hub node per process: its configuration, engine, channel layer and local connections.

The node follows the default channel layer. On wsviews' Redis layer the
engine is the Redis engine over that layer (history in Redis Streams,
presence in hashes, publication and history append in one script), and a
publication reaches the subscribers of every process through the layer's
group delivery. Otherwise the engine is the in-memory one, and a publication
is handed, in the same synchronous step that records it, to the local
delivery core of the layer (``layer.local``), the same core that carries
the groups of ``@websocket`` views and consumers.

A hub channel's subscribers, in every process, are the members of the layer
group :func:`~wsviews.hub.engine.group_for_channel` of it; each connection
is one attached layer channel that joins the groups of its subscriptions,
and the group :func:`user_group` of its user, which carries server-side
commands (disconnect, subscribe, unsubscribe) to that user's connections
wherever they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings

from . import config as hub_config
from .engine import (
    PUBLICATION_MESSAGE_TYPE,
    Engine,
    group_for_channel,
    info_to_list,
    publication_message,
)
from .engine_memory import MemoryEngine
from .protocol import Verifiers
from .records import ClientInfo, Publication, StreamPosition

if TYPE_CHECKING:
    from .shell import HubConnection

__all__ = [
    "CONTROL_MESSAGE_TYPE", "JOIN_MESSAGE_TYPE", "LEAVE_MESSAGE_TYPE", "Node", "get_node",
    "reset_node", "user_group",
]

logger = logging.getLogger("wsviews.hub")

#: Layer message types the node's connections receive besides publications.
JOIN_MESSAGE_TYPE = "hub.join"
LEAVE_MESSAGE_TYPE = "hub.leave"
CONTROL_MESSAGE_TYPE = "hub.control"
#: Seconds between sweeps of the in-memory engine.
SWEEP_INTERVAL = 1.0


def user_group(user: str) -> str:
    """Return the layer group of ``user``'s connections (server-side commands go there)."""
    return "hubu" + group_for_channel(user)[3:]


def _default_layer() -> Any:
    from channels.layers import get_channel_layer

    from ..layers.base import supports_attach
    from ..layers.memory import InMemoryChannelLayer

    try:
        layer = get_channel_layer()
    except Exception:  # a broken CHANNEL_LAYERS is reported by wsviews' checks
        logger.exception("the default channel layer cannot be built; the hub runs in memory")
        layer = None
    if layer is None or not supports_attach(layer):
        if layer is not None:
            logger.warning("the default channel layer %r has no attach extension: the hub "
                           "delivers within this process only", layer)
        layer = InMemoryChannelLayer()
    return layer


def presence_ttl(config: hub_config.HubConfig) -> float:
    """Seconds a presence entry lives in Redis unless refreshed: two refresh intervals and 6 s.

    Connections refresh their entries every ``client.presence_update_interval``
    (27 s by default, so 60 s, Centrifugo's default presence TTL); the entries
    of a process that died without leaving vanish within this time.
    """
    return 2 * config.client.presence_update_interval + 6


class Node:
    """The hub of this process (see the module docstring); :func:`get_node` returns it."""

    def __init__(self, config: hub_config.HubConfig, layer: Any = None,
                 engine: Engine | None = None) -> None:
        self.config = config
        self.verifiers = Verifiers.from_config(config)
        self.layer = layer if layer is not None else _default_layer()
        if engine is None:
            if hasattr(self.layer, "group_send_scripted") and hasattr(self.layer, "run_script"):
                from .engine_redis import RedisEngine

                engine = RedisEngine(self.layer, prefix=self.layer.prefix,
                                     history_meta_ttl=config.channel.history_meta_ttl,
                                     presence_ttl=presence_ttl(config))
            else:
                engine = MemoryEngine(self._deliver_local,
                                      history_meta_ttl=config.channel.history_meta_ttl)
        self.engine = engine
        #: Connections served by this process, by client id.
        self.connections: dict[str, HubConnection] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Node engine={self.engine!r} connections={len(self.connections)}>"

    @property
    def distributed(self) -> bool:
        """Return whether publications cross processes (the Redis engine)."""
        return not isinstance(self.engine, MemoryEngine)

    # Local delivery (memory engine)

    def _deliver_local(self, channel: str, publication: Publication) -> None:
        message = publication_message(channel, publication.data, publication.info, publication.tags)
        if publication.offset:
            message["offset"] = publication.offset
            message["epoch"] = publication.epoch
        # Shared by the members' shallow copies: the push line is encoded once per fan-out.
        message["line_cache"] = []
        self.layer.local.fan_out(group_for_channel(channel), message)

    # Connections

    def added(self, connection: HubConnection) -> None:
        """Record a live connection; start the engine's sweeps with the first one."""
        if not self.connections:
            from .. import stats  # the admin's live page lists the hub channels of this process

            stats.register_source("hub_channels", self.channel_counts)
        self.connections[connection.client_id] = connection
        if isinstance(self.engine, MemoryEngine) and (self._sweeper is None or self._sweeper.done()):
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def removed(self, connection: HubConnection) -> None:
        """Forget a connection that ended."""
        if self.connections.get(connection.client_id) is connection:
            del self.connections[connection.client_id]

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                self.engine.sweep()
            except Exception:
                logger.exception("the hub engine's sweep failed")

    # Server API

    def channel_options(self, channel: str) -> hub_config.ChannelOptions:
        """Return the options of ``channel``'s namespace; raise ValueError naming the fix if undeclared."""
        if not isinstance(channel, str) or not channel:
            raise ValueError(f"a hub channel is a non-empty str, got {channel!r}")
        options = self.config.channel.options(channel)
        if options is None:
            namespace, _ = self.config.channel.split(channel)
            raise ValueError(f"channel {channel!r} is in namespace {namespace!r}, which is not "
                             "declared in WSVIEWS_HUB['channel']['namespaces']")
        return options

    async def publish(self, channel: str, data: bytes, *, info: ClientInfo | None = None,
                      tags: Mapping[str, str] | None = None,
                      idempotency_key: str | None = None) -> StreamPosition | None:
        """Publish already-encoded JSON ``data`` into ``channel`` with its namespace's history."""
        options = self.channel_options(channel)
        return await self.engine.publish(
            channel, data, history_size=options.history_size, history_ttl=options.history_ttl,
            info=info, tags=tags, idempotency_key=idempotency_key)

    async def join_leave(self, kind: str, channel: str, info: ClientInfo) -> None:
        """Tell the subscribers of ``channel`` that ``info`` joined (``"join"``) or left it."""
        message_type = JOIN_MESSAGE_TYPE if kind == "join" else LEAVE_MESSAGE_TYPE
        await self.layer.group_send(group_for_channel(channel), {
            "type": message_type, "channel": channel, "info": info_to_list(info)})

    async def control(self, user: str, op: str, **fields: Any) -> None:
        """Send a server-side command to every connection of ``user`` in every process."""
        await self.layer.group_send(user_group(user), {"type": CONTROL_MESSAGE_TYPE, "op": op,
                                                       **fields})

    def channel_counts(self) -> dict[str, int]:
        """Return the hub channels with subscribers in this process, and how many each."""
        counts: dict[str, int] = {}
        for connection in list(self.connections.values()):
            for channel in connection.core.channels:
                counts[channel] = counts.get(channel, 0) + 1
        return counts

    def local_channels(self) -> Iterator[str]:
        """Yield the hub channels that have subscribers in this process."""
        yield from self.channel_counts()

    async def close(self) -> None:
        """Stop the sweeps and release the engine."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.engine.close()


_node: Node | None = None


def get_node() -> Node:
    """Return this process's node, built on first use from ``WSVIEWS_HUB`` and the default layer."""
    global _node
    if _node is None:
        _node = Node(hub_config.parse(getattr(settings, "WSVIEWS_HUB", None)))
    return _node


def reset_node(setting: str = "WSVIEWS_HUB", **kwargs: Any) -> None:
    """Drop the node so the next use rebuilds it (a ``setting_changed`` receiver, and tests)."""
    global _node
    if setting in {"WSVIEWS_HUB", "CHANNEL_LAYERS"}:
        _node = None


# Checked here so that a typo in a message type fails at import, not at the first publication.
assert PUBLICATION_MESSAGE_TYPE == "hub.publication"
