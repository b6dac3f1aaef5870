"""The hub's engine contract: channel history with loss-free recovery, and presence.

An engine keeps, per hub channel, a stream of recent publications and who is
present. Two implementations share this contract: :mod:`.engine_memory` (one
process) and :mod:`.engine_redis` (many processes over Redis).

Positions
    With history on, every publication gets the next *offset* of its
    channel's stream (1, 2, 3, ... with no gap), and the stream carries an
    *epoch*: a random string made when the stream is created, and made anew
    when the stream is lost (its metadata expired, Redis restarted without
    persistence). A :class:`StreamPosition` ``(offset, epoch)`` names one
    point of one stream, so a client that remembers it can later ask for
    exactly what it missed.

Delivery
    A publication is handed to live delivery in the same atomic step that
    appends it to the history, so a subscriber that reads the history and
    then follows live delivery never sees a publication twice or misses one.

Recovery
    :meth:`Engine.recover` returns the publications after a position and
    whether they are *all* of them (see :func:`wsviews.hub.recovery.recover`).

Data
    Publication data, and the connection and channel info of a client, are
    already-encoded JSON (``bytes``). The protocol sends them as raw JSON, so
    a payload is encoded once by the publisher and then stored, sent between
    processes, and written to every subscriber's frame as the same bytes: no
    re-encoding per subscriber or per history read, what recovery returns is
    byte-for-byte what live delivery sent, and no subscriber can mutate what
    another one receives.
"""

from __future__ import annotations

import abc
import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any

from .records import ClientInfo, HistoryResult, PresenceStats, Publication, StreamPosition
from .recovery import Recovery, recover

__all__ = [
    "DEFAULT_HISTORY_META_TTL",
    "DEFAULT_IDEMPOTENT_RESULT_TTL",
    "DEFAULT_PRESENCE_TTL",
    "PUBLICATION_MESSAGE_TYPE",
    "ClientInfo",
    "Deliver",
    "Engine",
    "HistoryResult",
    "PresenceStats",
    "Publication",
    "Recovery",
    "StreamPosition",
    "check_publish",
    "group_for_channel",
    "info_from_list",
    "info_to_list",
    "publication_from_message",
    "publication_message",
]

#: Seconds a stream's position (offset and epoch) outlives its last publish
#: or read, as Centrifugo's ``history_meta_ttl`` (30 days).
DEFAULT_HISTORY_META_TTL = 30 * 24 * 3600.0
#: Seconds the result of a publish with an idempotency key is remembered.
DEFAULT_IDEMPOTENT_RESULT_TTL = 300.0
#: Seconds a presence entry lives without being refreshed (Redis engine).
DEFAULT_PRESENCE_TTL = 60.0
#: The ``type`` of the channel-layer message that carries a publication.
PUBLICATION_MESSAGE_TYPE = "hub.publication"

# Stream offsets are uint64 on the wire; Redis stream ids top out there too.
MAX_OFFSET = 2**64 - 1


#: Called by the memory engine with each publication, in the same step that records it.
Deliver = Callable[[str, Publication], None]


def check_publish(data: object, history_size: int, history_ttl: float) -> bool:
    """Validate the arguments of a publish; return whether the channel keeps history.

    History is on when both ``history_size`` and ``history_ttl`` are above
    zero, as in Centrifugo; raise TypeError or ValueError naming the fix.
    """
    if not isinstance(data, bytes):
        raise TypeError(
            f"publication data must be already-encoded JSON bytes, got {type(data).__name__}: "
            "encode it first, e.g. orjson.dumps(value)"
        )
    if not isinstance(history_size, int) or history_size < 0:
        raise ValueError(f"history_size must be an int >= 0 (0: no history), got {history_size!r}")
    if history_ttl < 0:
        raise ValueError(f"history_ttl must be >= 0 seconds (0: no history), got {history_ttl!r}")
    return history_size > 0 and history_ttl > 0


def check_history_limit(limit: int | None) -> int:
    """Return ``limit`` as an int where -1 means all; raise ValueError naming the fix."""
    if limit is None:
        return -1
    if not isinstance(limit, int) or limit < -1:
        raise ValueError(f"limit must be None or -1 (all), 0 (position only) or a count, got {limit!r}")
    return limit


def check_position(since: StreamPosition) -> None:
    """Raise ValueError if ``since`` is not a position a client could hold."""
    if not isinstance(since.offset, int) or not 0 <= since.offset <= MAX_OFFSET:
        raise ValueError(f"a stream offset is an int from 0 to 2**64-1, got {since.offset!r}")
    if not isinstance(since.epoch, str):
        raise ValueError(f"a stream epoch is a str, got {type(since.epoch).__name__}")


_GROUP_SAFE = re.compile(r"[^A-Za-z0-9.\-]")
# Channels' layers accept group names shorter than 100 characters.
_MAX_GROUP = 99


def _escape(match: re.Match[str]) -> str:
    return "".join(f"_{byte:02x}" for byte in match.group().encode())


def group_for_channel(channel: str) -> str:
    """Return the channel-layer group whose members are ``channel``'s subscribers.

    Hub channel names may hold any character (``chat:index``, ``$private``,
    ``user#42``); group names may hold only ``[A-Za-z0-9._-]``. Other
    characters, and ``_`` itself, become ``_`` and two hex digits per UTF-8
    byte, so distinct channels get distinct groups; a name too long for a
    group is replaced by its SHA-256 under a prefix no escaped name has.
    """
    group = "hub." + _GROUP_SAFE.sub(_escape, channel)
    if len(group) <= _MAX_GROUP:
        return group
    return "hub_" + hashlib.sha256(channel.encode()).hexdigest()


def publication_message(
    channel: str, data: bytes, info: ClientInfo | None = None, tags: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return the channel-layer message that carries a publication of ``channel``.

    Its position is not in it: the Redis engine's script stamps it, and the
    layer sets ``offset`` and ``epoch`` on the message each process receives.
    """
    return {
        "type": PUBLICATION_MESSAGE_TYPE,
        "channel": channel,
        "data": data,
        "info": None if info is None else info_to_list(info),
        "tags": None if tags is None else dict(tags),
    }


def publication_from_message(message: Mapping[str, Any]) -> tuple[str, Publication]:
    """Return ``(channel, publication)`` carried by a message from :func:`publication_message`.

    ``offset`` and ``epoch`` come from the layer's stamp; a message without
    them is a publication of a channel without history.
    """
    info = message.get("info")
    return message["channel"], Publication(
        message["data"],
        offset=message.get("offset", 0),
        info=None if info is None else info_from_list(info),
        tags=message.get("tags"),
        epoch=message.get("epoch", ""),
    )


def info_to_list(info: ClientInfo) -> list[Any]:
    """Return ``info`` as a list for a msgpack'd message or entry (see :func:`info_from_list`)."""
    return [info.user, info.client, info.conn_info, info.chan_info]


def info_from_list(values: list[Any]) -> ClientInfo:
    """Return the ClientInfo packed by :func:`info_to_list`."""
    user, client, conn_info, chan_info = values
    return ClientInfo(user, client, conn_info, chan_info)


class Engine(abc.ABC):
    """History, recovery and presence of hub channels."""

    #: Seconds a presence entry lives unless refreshed; None if entries never expire.
    presence_ttl: float | None = None

    @abc.abstractmethod
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
        """Publish ``data`` to ``channel``; return its position, or None without history.

        With history (``history_size`` and ``history_ttl`` both above zero)
        the publication gets the next offset of the channel's stream; the
        stream keeps its last ``history_size`` publications, and is dropped
        ``history_ttl`` seconds after the last publish, while the position
        (offset and epoch) lives on for the engine's ``history_meta_ttl``.
        The publication is handed to live delivery atomically with the
        append. A second publish with the same ``idempotency_key`` within
        ``idempotent_result_ttl`` seconds publishes nothing and returns the
        first one's result.
        """

    @abc.abstractmethod
    async def history(
        self,
        channel: str,
        *,
        since: StreamPosition | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> HistoryResult:
        """Return publications of ``channel`` and its current position.

        Forward: the oldest first, from the start of the stream or after
        ``since.offset``. Reverse: the newest first, from the top or before
        ``since.offset``. ``limit`` 0 returns only the position; None or -1
        returns all. The epoch of ``since`` is not checked here (see
        :meth:`recover`). Reading a channel without a stream creates its
        position ``(0, epoch)``, so publications that follow continue that
        epoch.
        """

    async def recover(
        self, channel: str, since: StreamPosition, *, limit: int | None = None
    ) -> Recovery:
        """Return the publications of ``channel`` after ``since``, and whether that is all of them.

        At most ``limit`` publications are read (None: all); a client that
        missed more is not recovered. See :func:`wsviews.hub.recovery.recover`.
        """
        check_position(since)
        history = await self.history(channel, since=since, limit=limit)
        return recover(since, history.position, history.publications)

    @abc.abstractmethod
    async def remove_history(self, channel: str) -> None:
        """Drop the publications of ``channel``; its position stays, so recovery across it fails."""

    @abc.abstractmethod
    async def add_presence(self, channel: str, client_id: str, info: ClientInfo) -> None:
        """Record that ``client_id`` is present in ``channel`` (or update its info)."""

    @abc.abstractmethod
    async def refresh_presence(self, channel: str, clients: Mapping[str, ClientInfo]) -> None:
        """Record again every client of ``clients`` as present in ``channel``, in one call.

        Where entries expire (``presence_ttl`` is not None), the node calls
        this for its live clients at least every ``presence_ttl / 3``
        seconds, so that the entries of a process that died vanish on their
        own within ``presence_ttl``.
        """

    @abc.abstractmethod
    async def remove_presence(self, channel: str, client_id: str) -> None:
        """Record that ``client_id`` left ``channel``; a client that is not present is ignored."""

    @abc.abstractmethod
    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        """Return the clients present in ``channel``, by client id."""

    @abc.abstractmethod
    async def presence_stats(self, channel: str) -> PresenceStats:
        """Return how many clients are present in ``channel`` and how many distinct users they are.

        A user with several connections counts once; anonymous connections
        (user "") count as one user, as in Centrifugo.
        """

    def sweep(self) -> None:  # noqa: B027 (optional hook: most engines need none)
        """Drop what has expired; the node calls it about once a second.

        Engines whose storage expires data itself (Redis) do nothing here.
        """

    async def close(self) -> None:  # noqa: B027 (optional hook: most engines hold nothing)
        """Release what the engine holds."""
