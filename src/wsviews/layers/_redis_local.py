"""The channels a process owns: push targets, receive queues, and local group members.

No I/O here. The Redis layer feeds it what arrives from Redis and turns what
it returns (groups left without local members) into UNSUBSCRIBEs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..types import Deliver

logger = logging.getLogger("wsviews.layers.redis")

Message = dict[str, Any]


class LocalQueue:
    """Messages waiting for ``receive()`` on one channel, and the receivers waiting for them."""

    __slots__ = ("items", "waiters")

    def __init__(self) -> None:
        self.items: deque[tuple[float, Message]] = deque()
        self.waiters: deque[asyncio.Future[Message]] = deque()


class LocalChannels:
    """Attached channels, queued channels and group membership of this process."""

    def __init__(
        self,
        capacity_of: Callable[[str], int],
        expiry: float,
        group_expiry: float,
        stats: dict[str, int],
    ) -> None:
        self.capacity_of = capacity_of
        self.expiry = expiry
        self.group_expiry = group_expiry
        self.stats = stats
        self.attached: dict[str, Deliver] = {}
        self.queues: dict[str, LocalQueue] = {}
        # group -> {channel: monotonic time it joined}
        self.groups: dict[str, dict[str, float]] = {}
        # channel -> groups, so that detach() costs O(groups of the channel)
        self.memberships: dict[str, set[str]] = {}
        # channel -> deadlines of messages this process sent it that are still on their way
        self.in_flight: dict[str, deque[float]] = {}
        # Detached channels (closed sockets) -> when to forget them: messages still
        # on their way to them are dropped instead of queued for nobody.
        self.gone: dict[str, float] = {}

    # Delivery

    def put(self, channel: str, message: Message) -> bool:
        """Hand ``message`` to ``channel``'s receiver or queue; return False if the queue is full."""
        if channel in self.in_flight:
            self._arrived(channel)
        deliver = self.attached.get(channel)
        if deliver is not None:
            self._deliver(deliver, channel, message)
            return True
        queue = self.queues.get(channel)
        if queue is None:
            if channel in self.gone:
                self.stats["undeliverable"] += 1
                return True
            queue = self.queues[channel] = LocalQueue()
        while queue.waiters:
            waiter = queue.waiters.popleft()
            if not waiter.done():
                waiter.set_result(message)
                self.stats["delivered"] += 1
                return True
        if len(queue.items) >= self.capacity_of(channel):
            return False
        queue.items.append((time.monotonic() + self.expiry, message))
        self.stats["delivered"] += 1
        return True

    def _deliver(self, deliver: Deliver, channel: str, message: Message) -> None:
        try:
            deliver(message)
        except Exception:
            # One broken receiver must not cost the other members their message.
            self.stats["deliver_errors"] += 1
            logger.exception("deliver() of channel %s raised; message dropped", channel)
        else:
            self.stats["delivered"] += 1

    def fan_out(self, group: str, message: Message) -> tuple[int, int, bool]:
        """Give each local member of ``group`` a shallow copy of ``message``.

        Return ``(members, full, emptied)``: how many members there were, how
        many were over capacity, and whether expired members left the group
        empty.
        """
        members = self.groups.get(group)
        if not members:
            return 0, 0, False
        full = 0
        oldest = time.monotonic() - self.group_expiry
        attached = self.attached
        expired: list[str] = []
        # Copy: a deliver() may detach a channel, which edits the group.
        for channel, joined in tuple(members.items()):
            deliver = attached.get(channel)
            if deliver is not None:
                self._deliver(deliver, channel, dict(message))
            elif joined < oldest:
                expired.append(channel)
            elif not self.put(channel, dict(message)):
                full += 1
        count = len(members)
        emptied = False
        for channel in expired:
            emptied = self.group_discard(group, channel) or emptied
        return count, full, emptied

    # Receiving

    def reserve(self, channel: str) -> bool:
        """Count a message this process is sending ``channel``; return False if it has no room.

        Queued and on-their-way messages both count, so that send() raises
        ChannelFull at capacity although delivery goes through Redis.
        """
        if channel in self.attached:
            return True
        queue = self.queues.get(channel)
        flying = self.in_flight.get(channel)
        used = (len(queue.items) if queue else 0) + (len(flying) if flying else 0)
        if used >= self.capacity_of(channel):
            return False
        if flying is None:
            flying = self.in_flight[channel] = deque()
        flying.append(time.monotonic() + self.expiry)
        return True

    def unreserve(self, channel: str) -> None:
        """Forget a reservation whose message was not sent."""
        if channel in self.in_flight:
            self._arrived(channel)

    def _arrived(self, channel: str) -> None:
        flying = self.in_flight[channel]
        flying.popleft()
        if not flying:
            del self.in_flight[channel]

    async def get(self, channel: str) -> Message:
        """Return the next unexpired message of ``channel``, waiting for one if need be."""
        self.gone.pop(channel, None)
        queue = self.queues.get(channel)
        if queue is None:
            queue = self.queues[channel] = LocalQueue()
        now = time.monotonic()
        while queue.items:
            deadline, message = queue.items.popleft()
            if deadline > now:
                self._forget_if_idle(channel, queue)
                return message
            self.stats["expired"] += 1
        waiter: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        queue.waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed over just as the receiver was cancelled: keep it for the next one.
                queue.items.appendleft((time.monotonic() + self.expiry, waiter.result()))
            else:
                try:
                    queue.waiters.remove(waiter)
                except ValueError:
                    pass
            raise
        finally:
            self._forget_if_idle(channel, queue)

    def _forget_if_idle(self, channel: str, queue: LocalQueue) -> None:
        if not queue.items and not queue.waiters and self.queues.get(channel) is queue:
            del self.queues[channel]

    # Attach extension

    def attach(self, channel: str, deliver: Deliver) -> None:
        """Push ``channel``'s messages to ``deliver``, starting with those already queued."""
        self.gone.pop(channel, None)
        self.attached[channel] = deliver
        queue = self.queues.pop(channel, None)
        if queue is None:
            return
        now = time.monotonic()
        for deadline, message in queue.items:
            if deadline > now:
                self._deliver(deliver, channel, message)
            else:
                self.stats["expired"] += 1

    def detach(self, channel: str) -> list[str]:
        """Stop pushing to ``channel`` and remove it from its groups; return the groups emptied."""
        self.attached.pop(channel, None)
        queue = self.queues.get(channel)
        if queue is not None and not queue.waiters:
            del self.queues[channel]
        if queue is None or not queue.waiters:
            self.gone[channel] = time.monotonic() + self.expiry
        emptied = []
        for group in tuple(self.memberships.get(channel, ())):
            if self.group_discard(group, channel):
                emptied.append(group)
        return emptied

    # Groups

    def group_add(self, group: str, channel: str) -> bool:
        """Add ``channel`` to ``group``; return True if it is the group's first local member."""
        members = self.groups.get(group)
        first = members is None
        if members is None:
            members = self.groups[group] = {}
        members[channel] = time.monotonic()
        self.memberships.setdefault(channel, set()).add(group)
        return first

    def group_discard(self, group: str, channel: str) -> bool:
        """Remove ``channel`` from ``group``; return True if that left the group without local members."""
        members = self.groups.get(group)
        if members is None or members.pop(channel, None) is None:
            return False
        groups = self.memberships.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self.memberships[channel]
        if members:
            return False
        del self.groups[group]
        return True

    # Housekeeping

    def sweep(self) -> list[str]:
        """Drop expired queued messages; a channel whose messages expired unread leaves its groups.

        Return the groups this left without local members.
        """
        now = time.monotonic()
        emptied = []
        for channel, queue in tuple(self.queues.items()):
            expired = 0
            while queue.items and queue.items[0][0] <= now:
                queue.items.popleft()
                expired += 1
            if expired:
                self.stats["expired"] += expired
                # Nobody read it for a whole expiry: the consumer is gone (as in Channels).
                for group in tuple(self.memberships.get(channel, ())):
                    if self.group_discard(group, channel):
                        emptied.append(group)
            self._forget_if_idle(channel, queue)
        for channel in [c for c, until in self.gone.items() if until <= now]:
            del self.gone[channel]
        # A reserved message that never arrived (Redis lost it) stops counting after expiry.
        for channel, flying in tuple(self.in_flight.items()):
            while flying and flying[0] <= now:
                flying.popleft()
            if not flying:
                del self.in_flight[channel]
        return emptied

    def local_channels(self) -> set[str]:
        """Return every channel this process holds: attached, queued, or in a group."""
        return set(self.attached) | set(self.queues) | set(self.memberships)

    def clear(self) -> list[str]:
        """Forget queued messages and group membership (not attachments); return the groups."""
        groups = list(self.groups)
        for queue in self.queues.values():
            queue.items.clear()
        self.queues = {c: q for c, q in self.queues.items() if q.waiters}
        self.groups = {}
        self.memberships = {}
        self.in_flight = {}
        return groups
