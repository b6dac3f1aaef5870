"""The local delivery core under every wsviews layer: channels, groups and delivery in one process.

Both layers hand what they carry to one :class:`LocalChannels`: the in-memory
layer directly, the Redis layer once a message has crossed Redis and been
decoded. Local fan-out, capacity, expiry, receive queues and the ``attach``
extension therefore exist once. No I/O here and no task of its own: the
layers call :meth:`LocalChannels.sweep` when they see fit, and turn what the
core returns (groups that gained their first or lost their last local
member) into subscriptions.

A group is a set of channel names; a channel is either *attached* (its
messages go to a ``deliver(message)`` callable, synchronously, on the
caller's stack) or *queued* (its messages wait for ``await get(channel)``).
Whatever else wants to receive group messages in this process (a realtime
hub's connections, say) is an attached channel in a group: the core does
not care what the names mean, as long as they are valid Channels names.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from typing import Any, NamedTuple

from ..types import Deliver

logger = logging.getLogger("wsviews.layers")

Message = dict[str, Any]

#: Counters the core keeps in its ``stats`` dict.
STATS = (
    "delivered",       # hand-overs to a deliver() or a receive() queue
    "expired",         # messages dropped unread after ``expiry``
    "dropped_full",    # group messages a member at capacity did not get
    "undeliverable",   # messages for a channel that was detached (its socket is gone)
    "deliver_errors",  # deliver() calls that raised
)


class Capacities:
    """The capacity of each channel: ``default``, or the first ``patterns`` entry it matches.

    ``patterns`` maps globs (``"http.*"``) or compiled regexes to capacities,
    as Channels' ``channel_capacity`` does.
    """

    __slots__ = ("default", "patterns")

    def __init__(self, default: int, patterns: Mapping[Any, int] | None = None) -> None:
        self.default = default
        self.patterns: list[tuple[re.Pattern[str], int]] = [
            (p if hasattr(p, "match") else re.compile(fnmatch.translate(p)), capacity)
            for p, capacity in (patterns or {}).items()
        ]

    def __call__(self, channel: str) -> int:
        """Return the capacity of ``channel``."""
        for pattern, capacity in self.patterns:
            if pattern.match(channel):
                return capacity
        return self.default


class FanOut(NamedTuple):
    """What one group message did in this process."""

    members: int   # local members the group has after it
    full: int      # of those, queued members at capacity, which missed it
    emptied: bool  # True if stale members left and the group has no local member now


_NOBODY = FanOut(0, 0, False)


class _Queue:
    """Messages waiting for ``get()`` on one channel, and the receivers waiting for them."""

    __slots__ = ("items", "waiters")

    def __init__(self) -> None:
        self.items: deque[tuple[float, Message]] = deque()
        self.waiters: deque[asyncio.Future[Message]] = deque()


def _record_latency(sent_at: Any) -> None:
    from .. import counters  # imported late: counters depends on Django-side modules

    if isinstance(sent_at, (int, float)):
        counters.broadcast_latency(max(0.0, time.time() - sent_at))


class LocalChannels:
    """Attached channels, queued channels and group membership of this process.

    ``expiry`` bounds how long a queued message waits; a queued channel whose
    messages all expire unread leaves its groups (its consumer is gone, as in
    Channels' in-memory layer). ``group_expiry`` bounds the membership of
    channels that are not attached; attached channels are live receivers of
    this process and stay until detached. ``clock`` is a monotonic clock in
    seconds (tests pass their own).
    """

    def __init__(
        self,
        capacity_of: Callable[[str], int],
        expiry: float,
        group_expiry: float,
        stats: dict[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity_of = capacity_of
        self.expiry = expiry
        self.group_expiry = group_expiry
        self.clock = clock
        self.stats = stats if stats is not None else {}
        for name in STATS:
            self.stats.setdefault(name, 0)
        self.attached: dict[str, Deliver] = {}
        # channel -> its receiver's post_shared(), for receivers that copy a group message
        # themselves (a Mailbox: only when it has to wait), so fan-out hands over one message.
        self._shares: dict[str, Deliver] = {}
        self.queues: dict[str, _Queue] = {}
        # group -> {channel: clock() when it joined}
        self.groups: dict[str, dict[str, float]] = {}
        # channel -> its groups, so that detach() costs O(groups of the channel)
        self.memberships: dict[str, set[str]] = {}
        # Members that are not attached: only they can outlive group_expiry,
        # and a sweep looks at them only.
        self._loose: set[str] = set()
        # channel -> deadlines of messages reserved for it that are still on their way
        self.in_flight: dict[str, deque[float]] = {}
        # Detached channels (closed sockets) -> when to forget them: messages still
        # on their way to them are dropped instead of queued for nobody.
        self.gone: dict[str, float] = {}
        self._next_sweep = 0.0

    # Delivery

    def put(self, channel: str, message: Message) -> bool:
        """Hand ``message`` to ``channel``'s receiver or queue; return False if the queue is full.

        The message is handed over as it is: copying is the caller's choice.
        """
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
            queue = self.queues[channel] = _Queue()
        while queue.waiters:
            waiter = queue.waiters.popleft()
            if not waiter.done():
                waiter.set_result(message)
                self.stats["delivered"] += 1
                return True
        if len(queue.items) >= self.capacity_of(channel):
            return False
        queue.items.append((self.clock() + self.expiry, message))
        self.stats["delivered"] += 1
        return True

    def _deliver(self, deliver: Deliver, channel: str, message: Message) -> None:
        try:
            deliver(message)
        except Exception:
            self._deliver_failed(channel)
        else:
            self.stats["delivered"] += 1

    def _deliver_failed(self, channel: str) -> None:
        # One broken receiver must not cost the sender, or the other members, anything.
        self.stats["deliver_errors"] += 1
        logger.exception("deliver() of channel %s raised; message dropped", channel)

    def fan_out(self, group: str, message: Message) -> FanOut:
        """Give each local member of ``group`` its own shallow copy of ``message``.

        A receiver with a ``post_shared`` method (a :class:`~wsviews.mailbox.Mailbox`)
        is given ``message`` itself through it, and makes its copy when it
        handles it: no copy for a member that falls behind, one decode and one
        message object per group message in this process.

        Members at capacity miss it (counted in ``dropped_full``); members not
        attached that joined more than ``group_expiry`` ago leave the group.
        """
        members = self.groups.get(group)
        if not members:
            return _NOBODY
        sent_at = message.get("wsviews_sent_at")
        if sent_at is not None:  # a wsviews broadcast: its latency up to this process's fan-out
            _record_latency(sent_at)
        # A snapshot: a deliver() may detach a channel, which edits the group.
        snapshot = tuple(members)
        get = self.attached.get
        shares = self._shares.get
        failed = 0
        queued: list[str] | None = None
        for channel in snapshot:
            deliver = shares(channel)
            if deliver is not None:
                try:
                    deliver(message)
                except Exception:
                    failed += 1
                    self._deliver_failed(channel)
                continue
            deliver = get(channel)
            if deliver is None:
                if queued is None:
                    queued = []
                queued.append(channel)
                continue
            try:
                deliver(dict(message))
            except Exception:
                failed += 1
                self._deliver_failed(channel)
        self.stats["delivered"] += len(snapshot) - len(queued or ()) - failed
        full = 0
        emptied = False
        if queued:
            oldest = self.clock() - self.group_expiry
            for channel in queued:
                joined = members.get(channel)
                if joined is None:  # left the group during this fan-out
                    if channel in self.gone:
                        self.stats["undeliverable"] += 1
                    continue
                if joined < oldest:
                    emptied = self.group_discard(group, channel) or emptied
                elif not self.put(channel, dict(message)):
                    full += 1
            self.stats["dropped_full"] += full
        return FanOut(len(members), full, emptied)

    # Reservations: capacity for messages that reach the queue later

    def reserve(self, channel: str) -> bool:
        """Count a message on its way to ``channel``; return False if the channel has no room.

        Queued and reserved messages both count, so that a layer whose own
        sends come back through a server can refuse at capacity when sending.
        The reservation ends when a message for the channel arrives
        (:meth:`put`), on :meth:`unreserve`, or after ``expiry``.
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
        flying.append(self.clock() + self.expiry)
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

    # Receiving

    async def get(self, channel: str) -> Message:
        """Return the next unexpired message of ``channel``, waiting for one if need be.

        Cancelling the wait loses nothing: a message handed over at that
        instant goes back to the head of the queue.
        """
        self.gone.pop(channel, None)
        queue = self.queues.get(channel)
        if queue is None:
            queue = self.queues[channel] = _Queue()
        now = self.clock()
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
                queue.items.appendleft((self.clock() + self.expiry, waiter.result()))
            else:
                try:
                    queue.waiters.remove(waiter)
                except ValueError:
                    pass
            raise
        finally:
            self._forget_if_idle(channel, queue)

    def _forget_if_idle(self, channel: str, queue: _Queue) -> None:
        if not queue.items and not queue.waiters and self.queues.get(channel) is queue:
            del self.queues[channel]

    # Attach extension

    def attach(self, channel: str, deliver: Deliver) -> None:
        """Push ``channel``'s messages to ``deliver``, starting with those already queued."""
        self.gone.pop(channel, None)
        self.attached[channel] = deliver
        shared = getattr(deliver, "post_shared", None)
        if shared is not None:
            self._shares[channel] = shared
        else:
            self._shares.pop(channel, None)
        self._loose.discard(channel)
        queue = self.queues.pop(channel, None)
        if queue is None:
            return
        now = self.clock()
        for deadline, message in queue.items:
            if deadline > now:
                self._deliver(deliver, channel, message)
            else:
                self.stats["expired"] += 1

    def detach(self, channel: str) -> list[str]:
        """Stop pushing to ``channel`` and remove it from its groups; return the groups it emptied.

        Messages that arrive for it during the next ``expiry`` are dropped
        (counted as ``undeliverable``) rather than queued for nobody.
        """
        self.attached.pop(channel, None)
        self._shares.pop(channel, None)
        queue = self.queues.get(channel)
        if queue is not None and not queue.waiters:
            del self.queues[channel]
        if queue is None or not queue.waiters:
            self.gone[channel] = self.clock() + self.expiry
        return self._leave_all(channel)

    # Groups

    def group_add(self, group: str, channel: str) -> bool:
        """Add ``channel`` to ``group`` (again: it rejoins now); return True if it is the first member."""
        members = self.groups.get(group)
        first = members is None
        if members is None:
            members = self.groups[group] = {}
        members[channel] = self.clock()
        self.memberships.setdefault(channel, set()).add(group)
        if channel not in self.attached:
            self._loose.add(channel)
        return first

    def group_discard(self, group: str, channel: str) -> bool:
        """Remove ``channel`` from ``group``; return True if that left the group without members."""
        members = self.groups.get(group)
        if members is None or members.pop(channel, None) is None:
            return False
        groups = self.memberships.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self.memberships[channel]
                self._loose.discard(channel)
        if members:
            return False
        del self.groups[group]
        return True

    def members(self, group: str) -> Collection[str]:
        """Return the local members of ``group`` (a live view: copy it to keep it)."""
        return self.groups.get(group, {}).keys()

    def group_sizes(self) -> dict[str, int]:
        """Return ``{group: number of local members}`` for every group with a member in this process."""
        return {group: len(members) for group, members in self.groups.items()}

    def groups_of(self, channel: str) -> Collection[str]:
        """Return the groups ``channel`` is a member of (a live view: copy it to keep it)."""
        return self.memberships.get(channel, set())

    # Housekeeping

    def sweep(self) -> list[str]:
        """Drop what has expired; return the groups this left without members.

        Expired queued messages are dropped; a channel left with nothing
        queued by that leaves its groups (everything sent to it expired
        unread: its reader is gone). One with fresh messages behind the
        expired ones keeps its groups. Members that are not
        attached leave groups they joined over ``group_expiry`` ago.
        Reservations and detached channels are forgotten after ``expiry``.
        """
        now = self.clock()
        emptied = []
        for channel, queue in tuple(self.queues.items()):
            expired = 0
            while queue.items and queue.items[0][0] <= now:
                queue.items.popleft()
                expired += 1
            if expired:
                self.stats["expired"] += expired
                if not queue.items:  # everything sent to it expired unread: its reader is gone
                    emptied += self._leave_all(channel)
            self._forget_if_idle(channel, queue)
        oldest = now - self.group_expiry
        for channel in tuple(self._loose):
            for group in tuple(self.memberships.get(channel, ())):
                if self.groups[group][channel] < oldest and self.group_discard(group, channel):
                    emptied.append(group)
        for channel in [c for c, until in self.gone.items() if until <= now]:
            del self.gone[channel]
        for channel, flying in tuple(self.in_flight.items()):
            while flying and flying[0] <= now:
                flying.popleft()
            if not flying:
                del self.in_flight[channel]
        return emptied

    def sweep_due(self, interval: float) -> bool:
        """Return True, at most once per ``interval`` seconds, when a sweep should run."""
        now = self.clock()
        if now < self._next_sweep:
            return False
        self._next_sweep = now + interval
        return True

    def _leave_all(self, channel: str) -> list[str]:
        return [g for g in tuple(self.memberships.get(channel, ())) if self.group_discard(g, channel)]

    def local_channels(self) -> set[str]:
        """Return every channel this process holds: attached, queued, or in a group."""
        return set(self.attached) | set(self.queues) | set(self.memberships)

    def clear(self) -> list[str]:
        """Forget queued messages and groups (not attachments, nor waiting receivers); return the groups."""
        groups = list(self.groups)
        for queue in self.queues.values():
            queue.items.clear()
        self.queues = {c: q for c, q in self.queues.items() if q.waiters}
        self.groups = {}
        self.memberships = {}
        self._loose = set()
        self.in_flight = {}
        return groups
