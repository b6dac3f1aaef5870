"""What the protocol core hands to its shell, and what the shell hands back.

The core (:class:`wsviews.hub.protocol.HubProtocol`) decides everything it
can decide alone. What needs I/O or Django reaches the shell as an event:

* a *request* (``...Request``) needs exactly one answer, the matching
  ``core.reply_...(request, result)`` or ``core.reply_error(request, error)``;
* a *notice* needs none, but says what the shell must now do (drop a
  subscription, close the socket, refresh presence).

Every successful ``reply_subscribe`` (and every subscription in a successful
``reply_connect``) is eventually matched by exactly one :class:`Unsubscribed`
notice, returned by whichever core call ends that subscription, so the shell
can undo what it set up (layer subscription, presence entry, join).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .codes import Disconnect, Unsubscribe
from .records import ClientInfo, Publication, StreamPosition

__all__ = [
    "Closed", "ConnectRequest", "ConnectResult", "Event", "HistoryRequest", "MessageReceived",
    "PositionCheckRequest", "PresenceDue", "PresenceRequest", "PresenceStatsRequest",
    "PublishRequest", "RPCRequest", "Refreshed", "Request", "SubscribeRequest",
    "SubscribeResult", "SubscriptionOptions", "SubscriptionRefreshed", "Unsubscribed",
]


@dataclass(frozen=True, slots=True)
class SubscriptionOptions:
    """How one subscription behaves, resolved from its namespace, token and request.

    ``presence``: the shell adds the client to the channel's presence (and
    keeps it there, see :class:`PresenceDue`). ``join_leave``: the shell
    publishes join now and leave on :class:`Unsubscribed`. ``push_join_leave``:
    the client receives joins and leaves (the core filters them).
    ``positioned`` / ``recoverable``: the shell must report the stream top in
    :class:`SubscribeResult`. ``expire_at``: Unix seconds the subscription
    must be refreshed by (0: never). History settings are the namespace's, for
    publishing and history reads.
    """

    presence: bool = False
    join_leave: bool = False
    push_join_leave: bool = False
    positioned: bool = False
    recoverable: bool = False
    expire_at: int = 0
    channel_info: bytes | None = None
    data: bytes | None = None
    history_size: int = 0
    history_ttl: float = 0.0
    history_meta_ttl: float = 0.0


@dataclass(frozen=True, slots=True, eq=False)
class SubscribeRequest:
    """Subscribe the connection to ``channel``: answer with ``reply_subscribe``.

    Before answering, the shell starts delivering the channel's pushes to the
    core (``push_publication`` and friends: the core holds them until the
    subscription is live, so nothing published meanwhile is lost), adds
    presence and publishes join as ``options`` say, and, when
    ``options.positioned``, reads the stream: since ``since`` (up to
    ``limit`` publications) when it is set, else just its top.
    ``server_side``: the server subscribed the client (connection token,
    personal channel, API), not the client itself. ``data``: what the client
    sent with the subscribe command.
    """

    channel: str
    options: SubscriptionOptions
    info: ClientInfo
    since: StreamPosition | None = None
    limit: int = 0
    server_side: bool = False
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """The shell's answer to a :class:`SubscribeRequest`.

    ``position``: the stream top (required when the request is positioned).
    ``publications``: the stream after ``request.since``, oldest first, as the
    engine returned it (the core decides whether that recovers the client).
    ``data``: extra JSON for the subscribe reply (overrides the token's).
    """

    position: StreamPosition | None = None
    publications: Sequence[Publication] = ()
    data: bytes | None = None


@dataclass(frozen=True, slots=True, eq=False)
class ConnectRequest:
    """Accept the connection: answer with ``reply_connect`` or ``reply_error``.

    The core has already checked the token (or taken the session user, or
    admitted an anonymous client, as configured). The shell may refuse (e.g.
    ``user_connection_limit``, a Django hook), and must set up
    ``subscriptions`` (server-side) exactly like :class:`SubscribeRequest`.
    """

    user: str
    source: Literal["token", "session", "anonymous"]
    expire_at: int = 0
    info: bytes | None = None
    meta: bytes | None = None
    data: bytes | None = None
    name: str = ""
    version: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    subscriptions: tuple[SubscribeRequest, ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """The shell's answer to a :class:`ConnectRequest`: a result per server-side subscription."""

    subscriptions: Mapping[str, SubscribeResult] = field(default_factory=dict)
    data: bytes | None = None


@dataclass(frozen=True, slots=True, eq=False)
class PublishRequest:
    """Publish ``data`` into ``channel`` with the namespace's history settings; answer ``reply_publish``."""

    channel: str
    data: bytes
    info: ClientInfo
    history_size: int = 0
    history_ttl: float = 0.0
    history_meta_ttl: float = 0.0


@dataclass(frozen=True, slots=True, eq=False)
class PresenceRequest:
    """Read who is present in ``channel``; answer ``reply_presence``."""

    channel: str


@dataclass(frozen=True, slots=True, eq=False)
class PresenceStatsRequest:
    """Count who is present in ``channel``; answer ``reply_presence_stats``."""

    channel: str


@dataclass(frozen=True, slots=True, eq=False)
class HistoryRequest:
    """Read ``channel``'s history; answer ``reply_history``.

    ``limit`` publications (0: none, only the stream top), after ``since``
    when set (before it when ``reverse``), newest first when ``reverse``.
    """

    channel: str
    limit: int
    since: StreamPosition | None = None
    reverse: bool = False
    history_meta_ttl: float = 0.0


@dataclass(frozen=True, slots=True, eq=False)
class RPCRequest:
    """Call the RPC ``method`` with ``data``; answer ``reply_rpc`` (or error 104 / 108)."""

    method: str
    data: bytes | None


@dataclass(frozen=True, slots=True, eq=False)
class PositionCheckRequest:
    """Report ``channel``'s stream top (``reply_position``), to catch publications lost in transit."""

    channel: str
    position: StreamPosition


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """The client sent ``data`` with the ``send`` command (no answer expected)."""

    data: bytes | None


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """A subscription ended: undo presence (``presence``), publish leave (``join_leave``).

    ``reason`` is the unsubscribe sent to the client, or the disconnect that
    ended the connection; None when the client unsubscribed itself.
    """

    channel: str
    info: ClientInfo
    presence: bool
    join_leave: bool
    server_side: bool
    reason: Unsubscribe | Disconnect | None = None


@dataclass(frozen=True, slots=True)
class Refreshed:
    """The client refreshed its connection token; ``info`` may have changed."""

    expire_at: int
    info: bytes | None


@dataclass(frozen=True, slots=True)
class SubscriptionRefreshed:
    """The client refreshed a subscription token."""

    channel: str
    expire_at: int
    info: bytes | None


@dataclass(frozen=True, slots=True)
class PresenceDue:
    """Refresh the presence entries of these subscriptions (they expire otherwise)."""

    channels: tuple[tuple[str, ClientInfo], ...]


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection is over: send ``data_to_send()``, then close with this code and reason.

    Code 3000 means the client went away on its own; there is nothing to send.
    """

    disconnect: Disconnect


Request = (ConnectRequest | SubscribeRequest | PublishRequest | PresenceRequest
           | PresenceStatsRequest | HistoryRequest | RPCRequest | PositionCheckRequest)
Event = (Request | MessageReceived | Unsubscribed | Refreshed | SubscriptionRefreshed
         | PresenceDue | Closed)
