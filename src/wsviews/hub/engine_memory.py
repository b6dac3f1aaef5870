"""The in-memory engine: history, recovery and presence of one process.

Each channel with history has a ring buffer of its last ``history_size``
publications, a top offset and an epoch. A publish appends, stamps and hands
the publication to ``deliver`` in one synchronous step (nothing else runs on
the event loop in between), in O(1) and with no allocation beyond the
publication and its returned position.

Expiry uses the monotonic clock: the publications of a stream go
``history_ttl`` seconds after its last publish, its position
``history_meta_ttl`` seconds after its last publish or read. Both are
checked lazily on every access, and :meth:`MemoryEngine.sweep` drops what
nobody touches any more, so memory stays bounded by the channels used
recently. Everything is lost when the process exits; a new engine makes new
epochs, so no client recovers across a restart by mistake.
"""

from __future__ import annotations

import heapq
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from itertools import islice

from .engine import (
    DEFAULT_HISTORY_META_TTL,
    DEFAULT_IDEMPOTENT_RESULT_TTL,
    ClientInfo,
    Deliver,
    Engine,
    HistoryResult,
    PresenceStats,
    Publication,
    StreamPosition,
    check_history_limit,
    check_position,
    check_publish,
)

__all__ = ["MemoryEngine"]

logger = logging.getLogger("wsviews.hub.engine")


def new_epoch() -> str:
    """Return a fresh random epoch."""
    return secrets.token_hex(6)


class _Stream:
    __slots__ = ("epoch", "expires_at", "publications", "queued_at", "removes_at", "top")

    def __init__(self, removes_at: float) -> None:
        self.publications: deque[Publication] = deque(maxlen=0)
        self.top = 0
        self.epoch = new_epoch()
        # When the publications go (history_ttl), and when the position goes (meta ttl).
        self.expires_at = math.inf
        self.removes_at = removes_at
        # The deadline this stream has in the sweep heap (inf: none).
        self.queued_at = math.inf

    def position(self) -> StreamPosition:
        return StreamPosition(self.top, self.epoch)


class MemoryEngine(Engine):
    """History, recovery and presence kept in this process.

    ``deliver(channel, publication)`` is called with every publication,
    synchronously, after it is in the history and before ``publish``
    returns. ``clock`` is a monotonic clock in seconds (tests pass their own).
    Presence entries never expire: they live in the process whose clients
    they describe, and go with it.
    """

    presence_ttl = None

    def __init__(
        self,
        deliver: Deliver,
        *,
        history_meta_ttl: float = DEFAULT_HISTORY_META_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if history_meta_ttl <= 0:
            raise ValueError(f"history_meta_ttl must be > 0 seconds, got {history_meta_ttl!r}")
        self._deliver = deliver
        self.history_meta_ttl = history_meta_ttl
        self._clock = clock
        self._streams: dict[str, _Stream] = {}
        # (deadline, channel): when a stream may have something to drop.
        self._deadlines: list[tuple[float, str]] = []
        self._results: dict[tuple[str, str], tuple[StreamPosition | None, float]] = {}
        self._result_deadlines: list[tuple[float, str, str]] = []
        self._presence: dict[str, dict[str, ClientInfo]] = {}
        # channel -> user -> number of that user's clients present
        self._users: dict[str, dict[str, int]] = {}

    def __repr__(self) -> str:
        return f"<MemoryEngine streams={len(self._streams)} presence={len(self._presence)}>"

    # History

    async def publish(
        self,
        channel: str,
        data: bytes,
        *,
        history_size: int,
        history_ttl: float,
        info: ClientInfo | None = None,
        tags: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        idempotent_result_ttl: float = DEFAULT_IDEMPOTENT_RESULT_TTL,
    ) -> StreamPosition | None:
        with_history = check_publish(data, history_size, history_ttl)
        now = self._clock()
        if idempotency_key is not None:
            done = self._results.get((channel, idempotency_key))
            if done is not None and done[1] > now:
                return done[0]
        if tags is not None:
            tags = dict(tags)  # the history keeps it: the caller may reuse theirs
        position: StreamPosition | None
        if with_history:
            stream = self._stream(channel, now)
            publications = stream.publications
            if publications.maxlen != history_size:
                stream.publications = publications = deque(publications, maxlen=history_size)
            stream.top += 1
            publication = Publication(data, stream.top, info, tags, epoch=stream.epoch)
            publications.append(publication)
            stream.expires_at = now + history_ttl
            stream.removes_at = now + max(self.history_meta_ttl, history_ttl)
            if stream.expires_at < stream.queued_at:
                self._queue(channel, stream, stream.expires_at)
            position = StreamPosition(stream.top, stream.epoch)
        else:
            publication = Publication(data, 0, info, tags)
            position = None
        if idempotency_key is not None:
            self._remember(channel, idempotency_key, position, now + idempotent_result_ttl)
        try:
            self._deliver(channel, publication)
        except Exception:
            # The publication is in the history and has its offset: subscribers
            # that missed it see the gap and recover. The publisher did no wrong.
            logger.exception("deliver() failed for a publication to %r", channel)
        return position

    async def history(
        self,
        channel: str,
        *,
        since: StreamPosition | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> HistoryResult:
        count = check_history_limit(limit)
        if since is not None:
            check_position(since)
        stream = self._stream(channel, self._clock(), read=True)
        position = stream.position()
        if count == 0:
            return HistoryResult((), position)
        publications = stream.publications
        size = len(publications)
        first = stream.top - size + 1  # offset of publications[0]
        stop = None if count < 0 else count
        if not reverse:
            start = 0 if since is None else min(max(since.offset + 1 - first, 0), size)
            found = tuple(islice(publications, start, None if stop is None else start + stop))
        else:
            end = size if since is None else min(max(since.offset - first, 0), size)
            skip = size - end
            found = tuple(islice(reversed(publications), skip, None if stop is None else skip + stop))
        return HistoryResult(found, position)

    async def remove_history(self, channel: str) -> None:
        stream = self._streams.get(channel)
        if stream is not None:
            stream.publications.clear()
            stream.expires_at = math.inf

    def _stream(self, channel: str, now: float, read: bool = False) -> _Stream:
        """Return the live stream of ``channel``, made anew if it is missing or its position expired."""
        stream = self._streams.get(channel)
        if stream is not None:
            if stream.removes_at <= now:
                stream = None
            elif stream.expires_at <= now:
                stream.publications.clear()
                stream.expires_at = math.inf
        if stream is None:
            stream = self._streams[channel] = _Stream(now + self.history_meta_ttl)
            self._queue(channel, stream, stream.removes_at)
        elif read:
            stream.removes_at = max(stream.removes_at, now + self.history_meta_ttl)
        return stream

    def _queue(self, channel: str, stream: _Stream, deadline: float) -> None:
        stream.queued_at = deadline
        heapq.heappush(self._deadlines, (deadline, channel))

    def _remember(self, channel: str, key: str, result: StreamPosition | None, deadline: float) -> None:
        self._results[channel, key] = (result, deadline)
        heapq.heappush(self._result_deadlines, (deadline, channel, key))

    def sweep(self) -> None:
        """Drop expired publications, positions and idempotent results."""
        now = self._clock()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, channel = heapq.heappop(deadlines)
            stream = self._streams.get(channel)
            if stream is None or stream.queued_at != deadline:
                continue  # superseded by an earlier deadline pushed since
            stream.queued_at = math.inf
            if stream.removes_at <= now:
                del self._streams[channel]
                continue
            if stream.expires_at <= now:
                stream.publications.clear()
                stream.expires_at = math.inf
            self._queue(channel, stream, min(stream.expires_at, stream.removes_at))
        results = self._result_deadlines
        while results and results[0][0] <= now:
            _, channel, key = heapq.heappop(results)
            done = self._results.get((channel, key))
            if done is not None and done[1] <= now:
                del self._results[channel, key]

    # Presence

    async def add_presence(self, channel: str, client_id: str, info: ClientInfo) -> None:
        clients = self._presence.get(channel)
        if clients is None:
            clients = self._presence[channel] = {}
            self._users[channel] = {}
        users = self._users[channel]
        old = clients.get(client_id)
        if old is None or old.user != info.user:
            if old is not None:
                self._forget_user(users, old.user)
            users[info.user] = users.get(info.user, 0) + 1
        clients[client_id] = info

    async def refresh_presence(self, channel: str, clients: Mapping[str, ClientInfo]) -> None:
        for client_id, info in clients.items():
            await self.add_presence(channel, client_id, info)

    async def remove_presence(self, channel: str, client_id: str) -> None:
        clients = self._presence.get(channel)
        if clients is None:
            return
        old = clients.pop(client_id, None)
        if old is None:
            return
        if clients:
            self._forget_user(self._users[channel], old.user)
        else:
            del self._presence[channel], self._users[channel]

    @staticmethod
    def _forget_user(users: dict[str, int], user: str) -> None:
        left = users[user] - 1
        if left:
            users[user] = left
        else:
            del users[user]

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        return dict(self._presence.get(channel, {}))

    async def presence_stats(self, channel: str) -> PresenceStats:
        return PresenceStats(len(self._presence.get(channel, ())), len(self._users.get(channel, ())))
