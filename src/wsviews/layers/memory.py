"""The in-memory channel layer: the Channels API over the local delivery core, in one process."""

from __future__ import annotations

import copy
import secrets
from typing import Any

from channels.exceptions import ChannelFull

from ..types import Deliver
from .base import AttachableChannelLayer, require_dict, require_message
from .local import Capacities, LocalChannels

STATS = ("sent", "group_sent")


class InMemoryChannelLayer(AttachableChannelLayer):
    """A channel layer living in this process, used when no Redis is configured.

    Semantics follow ``channels.layers.InMemoryChannelLayer``: ``send`` raises
    ``ChannelFull`` at capacity, messages expire after ``expiry``, members
    leave groups after ``group_expiry``, and the receiver gets a deep copy, so
    the sender may change its message afterwards. Plus the ``attach``
    extension: attached channels get messages pushed to them, and stay in
    their groups until detached. :attr:`stats` counts what happened.
    """

    #: Seconds between sweeps of expired messages and members (each costs a look at every queue).
    sweep_interval = 0.1

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: dict[Any, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, **kwargs)
        self.group_expiry = group_expiry
        self._capacities = Capacities(capacity, channel_capacity)
        self.channel_capacity = self._capacities.patterns
        #: Counters of what happened to messages: ``sent``, ``group_sent`` and the core's.
        self.stats: dict[str, int] = dict.fromkeys(STATS, 0)
        #: The local delivery core: every channel, queue and group of this layer.
        self.local = LocalChannels(self._capacities, expiry, group_expiry, self.stats)

    def get_capacity(self, channel: str) -> int:
        return self._capacities(channel)

    @property
    def groups(self) -> dict[str, dict[str, float]]:
        """Return ``{group: {channel: when it joined}}``, as Channels' in-memory layer has it."""
        return self.local.groups

    def group_sizes(self) -> dict[str, int]:
        """Return ``{group: number of members}`` for every group that has one."""
        return self.local.group_sizes()

    @property
    def _attached(self) -> dict[str, Deliver]:
        # The name this layer's attachments had before the local core; tests read it.
        return self.local.attached

    # Channel layer API

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send a deep copy of ``message`` to ``channel``; raise ChannelFull at capacity."""
        require_message(message)
        self.require_valid_channel_name(channel)
        self._sweep()
        if not self.local.put(channel, copy.deepcopy(message)):
            raise ChannelFull(channel)
        self.stats["sent"] += 1

    async def receive(self, channel: str) -> dict[str, Any]:
        """Return the next message of ``channel``, waiting for one."""
        self.require_valid_channel_name(channel)
        self._sweep()
        return await self.local.get(channel)

    async def new_channel(self, prefix: str = "specific.") -> str:
        return f"{prefix}.inmemory!{secrets.token_urlsafe(9).replace('-', 'x')}"

    # Attach extension

    def attach(self, channel: str, deliver: Deliver) -> None:
        """Push every message for ``channel`` to ``deliver(message)``, starting with queued ones."""
        self.require_valid_channel_name(channel)
        self.local.attach(channel, deliver)

    def detach(self, channel: str) -> None:
        """Stop pushing to ``channel`` and remove it from every group."""
        self.local.detach(channel)

    # Groups extension

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.local.group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.local.group_discard(group, channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send ``message`` to every member of ``group``; members at capacity miss it."""
        require_dict(message)
        self.require_valid_group_name(group)
        self._sweep()
        self.stats["group_sent"] += 1
        if self.local.groups.get(group):
            # One deep copy isolates the sender; each member gets a shallow copy of it.
            self.local.fan_out(group, copy.deepcopy(message))

    # Flush extension

    async def flush(self) -> None:
        """Forget every queued message and every group (attached channels stay attached)."""
        self.local.clear()

    def _sweep(self) -> None:
        if self.local.sweep_due(self.sweep_interval):
            self.local.sweep()
