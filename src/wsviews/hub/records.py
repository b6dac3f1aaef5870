"""Values the hub passes between its parts: publications, client info, stream positions.

Engines (history, presence), the channel-layer node and the protocol core all
speak in these. JSON payloads (``data``, ``conn_info``, ``chan_info``) are kept
as the UTF-8 bytes of one JSON value, never decoded, so a publication is
encoded once and spliced into every subscriber's frame as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["ClientInfo", "HistoryResult", "PresenceStats", "Publication", "StreamPosition"]


# ClientInfo, StreamPosition and Publication are built on every publish and
# every delivery, so they are named tuples: as immutable as a frozen dataclass,
# and built in under half its time (a frozen dataclass sets each field through
# object.__setattr__). The values read less often are frozen dataclasses.


class ClientInfo(NamedTuple):
    """Who a connection is: in join/leave pushes, presence, and client publications."""

    user: str
    client: str
    conn_info: bytes | None = None
    chan_info: bytes | None = None


class StreamPosition(NamedTuple):
    """A place in a channel's history stream: the offset of its last publication, and its epoch.

    The epoch names one incarnation of the stream; when the stream is lost
    (expired, cleared, engine restarted) the new one gets a new epoch, and
    offsets of the old one mean nothing in it.
    """

    offset: int
    epoch: str


class Publication(NamedTuple):
    """One message published into a channel.

    ``offset`` is 1-based in the channel's stream when the namespace keeps
    history, 0 otherwise; ``epoch`` names that stream ("" without history).
    ``time`` is Unix milliseconds, 0 when unknown.
    """

    data: bytes
    offset: int = 0
    info: ClientInfo | None = None
    tags: Mapping[str, str] | None = None
    time: int = 0
    epoch: str = ""


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """What an engine returns for a history query: publications and the stream's current top.

    ``publications`` are in the order asked for (oldest first unless reversed);
    ``position`` is the top of the stream when they were read.
    """

    publications: tuple[Publication, ...]
    position: StreamPosition


@dataclass(frozen=True, slots=True)
class PresenceStats:
    """How many connections, and how many distinct users, are present in a channel."""

    num_clients: int
    num_users: int
