"""The in-memory channel layer: one process, no dependencies, push delivery."""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
import time
from typing import Any

from channels.exceptions import ChannelFull

from ..types import Deliver
from .base import AttachableChannelLayer

logger = logging.getLogger("wsviews.layers.memory")


class InMemoryChannelLayer(AttachableChannelLayer):
    """A channel layer living in this process, used when no Redis is configured.

    Semantics follow ``channels.layers.InMemoryChannelLayer`` (capacity,
    expiry, group_expiry), plus the ``attach`` extension: attached channels
    get messages pushed to them without a queue or a waiting task.
    """

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: dict[Any, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, **kwargs)
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        self.group_expiry = group_expiry
        self.channels: dict[str, asyncio.Queue[tuple[float, dict[str, Any]]]] = {}
        self.groups: dict[str, dict[str, float]] = {}
        self._attached: dict[str, Deliver] = {}
        self._next_clean = 0.0

    # Channel layer API

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        self._put(channel, copy.deepcopy(message))

    def _put(self, channel: str, message: dict[str, Any]) -> None:
        deliver = self._attached.get(channel)
        if deliver is not None:
            try:
                deliver(message)
            except Exception:
                # One broken receiver must not cost the sender, or the other members, anything.
                logger.exception("deliver() of channel %s raised; message dropped", channel)
            return
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            queue.put_nowait((time.time() + self.expiry, message))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def receive(self, channel: str) -> dict[str, Any]:
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            _, message = await queue.get()
        finally:
            if queue.empty() and self.channels.get(channel) is queue:
                del self.channels[channel]
        return message

    async def new_channel(self, prefix: str = "specific.") -> str:
        return f"{prefix}.inmemory!{secrets.token_urlsafe(9).replace('-', 'x')}"

    # Attach extension

    def attach(self, channel: str, deliver: Deliver) -> None:
        self.require_valid_channel_name(channel)
        self._attached[channel] = deliver
        queue = self.channels.pop(channel, None)
        while queue is not None and not queue.empty():
            deliver(queue.get_nowait()[1])

    def detach(self, channel: str) -> None:
        if self._attached.pop(channel, None) is not None:
            self._remove_from_groups(channel)

    # Expiry

    def _clean_expired(self) -> None:
        # A sweep touches every member of every group: do it at most ten times a second.
        now = time.time()
        if now < self._next_clean:
            return
        self._next_clean = now + 0.1
        for channel, queue in list(self.channels.items()):
            expired = False
            while not queue.empty() and queue._queue[0][0] < now:  # type: ignore[attr-defined]
                queue.get_nowait()
                expired = True
            if expired:
                self._remove_from_groups(channel)
            if queue.empty():
                self.channels.pop(channel, None)
        oldest = now - self.group_expiry
        for group, members in list(self.groups.items()):
            for channel, joined in list(members.items()):
                # Attached channels are live sockets of this process: they never expire.
                if joined < oldest and channel not in self._attached:
                    del members[channel]
            if not members:
                del self.groups[group]

    def _remove_from_groups(self, channel: str) -> None:
        for group, members in list(self.groups.items()):
            members.pop(channel, None)
            if not members:
                del self.groups[group]

    # Flush extension

    async def flush(self) -> None:
        self.channels = {}
        self.groups = {}

    # Groups extension

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.groups.setdefault(group, {})[channel] = time.time()

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        members = self.groups.get(group)
        if members:
            members.pop(channel, None)
            if not members:
                del self.groups[group]

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        members = self.groups.get(group)
        if not members:
            return
        # One deep copy isolates the sender; each member gets a shallow copy.
        message = copy.deepcopy(message)
        for channel in list(members):
            try:
                self._put(channel, dict(message))
            except ChannelFull:
                pass
