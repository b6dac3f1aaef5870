"""Sans-I/O core of one Centrifugal protocol v2 (JSON) connection.

:class:`HubProtocol` is the per-connection state machine: text frames in,
:mod:`events <wsviews.hub.events>` and frames to send out. It never awaits,
never touches a socket, Django or an engine, and reads no clock: every call
that can make a time-based decision takes ``now`` (Unix seconds, float).
Everything it can decide alone it decides (command validation, state,
namespaces and permissions, tokens, expiry, ping/pong, recovery arithmetic);
the rest it hands out as requests that the shell answers.

How an asyncio shell drives it (the websocket endpoint)::

    core = HubProtocol(config, client_id=uuid4().hex, now=time.time(),
                       session_user=user_id_or_None, verifiers=verifiers)
    events = []
    while core.state is not State.CLOSED:
        deadline = core.next_deadline()                 # None: nothing scheduled
        timeout = None if deadline is None else max(0.0, deadline - time.time())
        try:
            frame = await asyncio.wait_for(receive_text(), timeout)
        except TimeoutError:
            events = core.tick(time.time())
        except Disconnected:
            events = core.connection_lost()
        else:
            events = core.receive(frame, time.time())
        for event in events:
            handle(event)          # start a task per request; it ends with core.reply_*()
        for frame in core.data_to_send():
            await send_text(frame)
    # on Closed(disconnect): send what is left, then close(disconnect.code, disconnect.reason)

A request task answers with, e.g., ``core.reply_subscribe(request,
SubscribeResult(position=top), time.time())``; the events that returns are
handled the same way, and ``data_to_send()`` is flushed after it. Pushes from
the channel layer go in through ``push_publication`` / ``push_join`` /
``push_leave`` / ``push_message``; the core drops what the client is not
subscribed to and holds what arrives while a subscription is being set up.

No method raises for anything a client sends; a misbehaving client gets the
documented error reply or disconnect (:mod:`wsviews.hub.codes`). Methods do
raise ``ValueError`` when the shell answers a request twice or with the wrong
reply, which is a bug in the shell.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Literal
from urllib.parse import parse_qs

from . import access, codes
from . import commands as wire
from .codes import ClientError, Disconnect, Unsubscribe
from .commands import (
    decode_frame,
    encode_error,
    encode_publication_push,
    encode_push,
    encode_reply,
    info_json,
    publication_json,
    raw_json,
)
from .config import ChannelOptions, HubConfig
from .events import (
    Closed,
    ConnectRequest,
    ConnectResult,
    Event,
    HistoryRequest,
    MessageReceived,
    PositionCheckRequest,
    PresenceDue,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    Refreshed,
    Request,
    RPCRequest,
    SubscribeRequest,
    SubscribeResult,
    SubscriptionOptions,
    SubscriptionRefreshed,
    Unsubscribed,
)
from .records import ClientInfo, HistoryResult, PresenceStats, Publication, StreamPosition
from .recovery import Next, next_publication, recover, unrecoverable_history
from .tokens import InvalidToken, TokenExpired, TokenSubscription, TokenVerifier

__all__ = ["HubProtocol", "State", "Verifiers", "wants_protobuf"]

logger = logging.getLogger("wsviews.hub")

# The client's "reject unrecovered" subscribe flag: answer 112 instead of recovered: false.
_FLAG_REJECT_UNRECOVERED = 2
# Commands held while the connect request is with the shell, and pushes held while a
# subscription is being set up; beyond these the client or the shell is misbehaving.
_MAX_HELD_COMMANDS = 128
_MAX_HELD_PUSHES = 1024
_ZERO = StreamPosition(0, "")
_TOKEN: Literal["token"] = "token"
_SESSION: Literal["session"] = "session"
_ANONYMOUS: Literal["anonymous"] = "anonymous"


def wants_protobuf(query_string: str, subprotocols: Sequence[str] = ()) -> bool:
    """Return whether a handshake asks for the Protobuf codec, which this hub does not speak.

    Centrifugo switches to Protobuf on ``?format=protobuf``,
    ``?cf_protocol=protobuf`` or the ``centrifuge-protobuf`` subprotocol; the
    shell should accept such a socket and close it at once with
    :data:`~wsviews.hub.codes.DISCONNECT_INAPPROPRIATE_PROTOCOL` (3506, the
    SDK does not reconnect), rather than let binary frames fail as bad requests.
    """
    query = parse_qs(query_string)
    return ("protobuf" in query.get("format", ()) or "protobuf" in query.get("cf_protocol", ())
            or "centrifuge-protobuf" in subprotocols)


class State(Enum):
    """Where the connection is in its life."""

    CONNECTING = "connecting"          # waiting for the connect command
    AUTHENTICATING = "authenticating"  # the connect request is with the shell
    CONNECTED = "connected"
    UNUSABLE = "unusable"              # connect was refused; any command now closes it
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Verifiers:
    """The token verifiers of one configuration; build once per process, share between connections."""

    connection: TokenVerifier
    subscription: TokenVerifier

    @classmethod
    def from_config(cls, config: HubConfig) -> Verifiers:
        """Return the verifiers for ``client.token`` and the subscription-token settings."""
        skip = config.client.insecure_skip_token_signature_verify
        connection = TokenVerifier(config.client.token, skip_signature=skip)
        subscription = (TokenVerifier(config.client.subscription_token, skip_signature=skip)
                        if config.client.subscription_token_enabled else connection)
        return cls(connection, subscription)


@dataclass(slots=True)
class _Sub:
    """One subscription, from request to its end."""

    request: SubscribeRequest
    cmd_id: int = 0                       # the client command to answer; 0: server-side
    pending: bool = True
    recover: bool = False                 # the client asked to recover
    reject_unrecovered: bool = False
    from_token: bool = False              # a server-side sub from the connection token
    position: StreamPosition = _ZERO
    held: list[tuple[str, Any, str]] = field(default_factory=list)
    overflowed: bool = False
    expire_at: int = 0
    channel_info: bytes | None = None
    check_due: float = 0.0
    pub_seen: bool = False
    check_out: PositionCheckRequest | None = None

    @property
    def channel(self) -> str:
        return self.request.channel

    @property
    def options(self) -> SubscriptionOptions:
        return self.request.options


class HubProtocol:
    """The protocol state of one client connection (see the module docstring)."""

    def __init__(self, config: HubConfig, *, client_id: str, now: float,
                 session_user: str | None = None, verifiers: Verifiers | None = None,
                 server_version: str = "", max_frame_size: int | None = None,
                 log: logging.Logger | None = None) -> None:
        self.config = config
        self.client_id = client_id
        self._session_user = session_user or ""
        self._verifiers = verifiers or Verifiers.from_config(config)
        self._server_version = server_version
        self._max_frame = (config.websocket.message_size_limit if max_frame_size is None
                           else max_frame_size)
        self._log = log or logger
        self.state = State.CONNECTING
        self.user = ""
        self.close_reason: Disconnect | None = None
        self._info: bytes | None = None
        self._expire_at = 0
        self._subs: dict[str, _Sub] = {}
        self._pending: dict[Request, int] = {}      # request -> command id (0: none to answer)
        self._held: list[wire.Command] = []
        self._out: list[str] = []
        self._out_size = 0
        self._stale_at = now + config.client.stale_close_delay
        self._next_ping = 0.0
        self._pong_due = 0.0
        self._ping_out = False
        self._presence_due = 0.0

    @property
    def channels(self) -> frozenset[str]:
        """Return the channels the client is subscribed to now (not those being set up)."""
        return frozenset(c for c, sub in self._subs.items() if not sub.pending)

    @property
    def closed(self) -> bool:
        """Return whether the connection is over (see :attr:`close_reason`)."""
        return self.state is State.CLOSED

    # Input -------------------------------------------------------------------

    def receive(self, data: str | bytes, now: float) -> list[Event]:
        """Take one frame from the client and return what the shell must do."""
        if self.state is State.CLOSED:
            return []
        size = len(data) if isinstance(data, bytes) or data.isascii() else len(data.encode())
        if self._max_frame and size > self._max_frame:
            return self._refuse(codes.DISCONNECT_MESSAGE_TOO_BIG,
                                f"frame of {size} bytes over the {self._max_frame} byte limit")
        if isinstance(data, bytes):
            try:
                data = data.decode()
            except UnicodeDecodeError:
                return self._refuse(codes.DISCONNECT_BAD_REQUEST, "frame is not UTF-8 text")
        events: list[Event] = []
        for command in decode_frame(data):
            if self.closed:
                break
            if isinstance(command, wire.BadCommand):
                events += self._refuse(codes.DISCONNECT_BAD_REQUEST, str(command))
                break
            events += self._dispatch(command, now)
        return self._finish(events)

    def tick(self, now: float) -> list[Event]:
        """Act on every deadline that has passed (pings, pong and expiry checks, presence)."""
        if self.state is State.CLOSED:
            return []
        client = self.config.client
        if self.state is not State.CONNECTED:
            if now >= self._stale_at:
                return self._refuse(codes.DISCONNECT_STALE, "did not connect in time")
            return []
        if self._pong_due and now >= self._pong_due:
            return self._refuse(codes.DISCONNECT_NO_PONG, "no pong to the last ping")
        if self._expire_at and now >= self._expire_at + client.expired_close_delay:
            return self._refuse(codes.DISCONNECT_EXPIRED, "connection token was not refreshed")
        events: list[Event] = []
        if self._next_ping and now >= self._next_ping:
            self._send("{}")
            self._ping_out = True
            self._next_ping = now + client.ping_interval
            if client.pong_timeout:
                self._pong_due = now + client.pong_timeout
        for sub in list(self._subs.values()):
            if self.closed:
                break
            if sub.pending:
                continue
            if sub.expire_at and now >= sub.expire_at + client.expired_sub_close_delay:
                events += self._lose(sub, codes.UNSUBSCRIBE_EXPIRED, codes.DISCONNECT_SUB_EXPIRED)
                continue
            if sub.options.positioned and sub.check_due and now >= sub.check_due:
                sub.check_due = now + client.channel_position_check_delay
                if sub.pub_seen:
                    sub.pub_seen = False
                elif sub.check_out is None:
                    sub.check_out = PositionCheckRequest(sub.channel, sub.position)
                    self._pending[sub.check_out] = 0
                    events.append(sub.check_out)
        if self._presence_due and now >= self._presence_due and not self.closed:
            self._presence_due = now + client.presence_update_interval
            present = tuple((s.channel, s.request.info) for s in self._subs.values()
                            if not s.pending and s.options.presence)
            if present:
                events.append(PresenceDue(present))
        return self._finish(events)

    def next_deadline(self) -> float | None:
        """Return when :meth:`tick` must next be called (Unix seconds), None if never."""
        if self.state is State.CLOSED:
            return None
        if self.state is not State.CONNECTED:
            return self._stale_at
        client = self.config.client
        times = [self._next_ping, self._pong_due, self._presence_due]
        if self._expire_at:
            times.append(self._expire_at + client.expired_close_delay)
        for sub in self._subs.values():
            if sub.pending:
                continue
            if sub.expire_at:
                times.append(sub.expire_at + client.expired_sub_close_delay)
            if sub.options.positioned:
                times.append(sub.check_due)
        due = [t for t in times if t]
        return min(due) if due else None

    def connection_lost(self) -> list[Event]:
        """Record that the client went away; return the subscriptions to undo."""
        if self.state is State.CLOSED:
            return []
        self._out.clear()
        self._out_size = 0
        return self._close(codes.DISCONNECT_CONNECTION_CLOSED)

    def data_to_send(self) -> list[str]:
        """Return the frames to send now (replies and pushes batched, newline-separated)."""
        if not self._out:
            return []
        frame = "\n".join(self._out)
        self._out.clear()
        self._out_size = 0
        return [frame]

    # Server-side actions -----------------------------------------------------

    def push_publication(self, channel: str, pub: Publication, *, epoch: str = "",
                         line: str | None = None) -> list[Event]:
        """Deliver a publication of ``channel`` if the client is subscribed to it.

        ``epoch`` is the stream's epoch when the publication carries an offset;
        ``line`` is :func:`~wsviews.hub.commands.encode_publication_push` of it,
        encoded once for all subscribers.
        """
        sub = self._subs.get(channel)
        if sub is None or self.state is State.CLOSED:
            return []
        if sub.pending:
            return self._finish(self._hold(sub, ("pub", pub, epoch)))
        return self._finish(self._deliver_pub(sub, pub, epoch, line))

    def push_join(self, channel: str, info: ClientInfo) -> list[Event]:
        """Deliver a join of ``channel`` if the client is subscribed and asked for joins."""
        return self._push_presence_change(channel, "join", info)

    def push_leave(self, channel: str, info: ClientInfo) -> list[Event]:
        """Deliver a leave of ``channel`` if the client is subscribed and asked for leaves."""
        return self._push_presence_change(channel, "leave", info)

    def push_message(self, data: bytes) -> list[Event]:
        """Send the client an asynchronous message (the ``message`` push)."""
        if self.state is State.CONNECTED:
            self._send(encode_push("", "message", {"data": raw_json(data)}))
        return self._finish([])

    def subscribe(self, channel: str, now: float, *, options: SubscriptionOptions | None = None
                  ) -> list[Event]:
        """Subscribe the client server-side; return the SubscribeRequest to resolve.

        ``options`` default to the namespace's (its ``force_*`` options). The
        client learns of it from the ``subscribe`` push once the request is
        answered. Returns no request when the client is not connected, already
        subscribed, or the channel is not declared.
        """
        if self.state is not State.CONNECTED or channel in self._subs:
            return []
        namespace = self.config.channel.options(channel)
        if namespace is None:
            return []
        request = self._server_request(channel, options or _forced(namespace), None)
        self._subs[channel] = _Sub(request)
        self._pending[request] = 0
        return [request]

    def unsubscribe(self, channel: str, reason: Unsubscribe = codes.UNSUBSCRIBE_SERVER
                    ) -> list[Event]:
        """End a subscription server-side, telling the client (the ``unsubscribe`` push)."""
        sub = self._subs.get(channel)
        if sub is None or self.state is State.CLOSED:
            return []
        if sub.pending:
            self._cancel(sub)
            return []
        self._send(encode_push(channel, "unsubscribe", {"code": reason.code,
                                                         "reason": reason.reason}))
        return self._finish([self._drop(sub, reason)])

    def refresh(self, expire_at: int, now: float, *, info: bytes | None = None) -> list[Event]:
        """Extend (or end, with a past ``expire_at``) the connection's life server-side."""
        if self.state is not State.CONNECTED:
            return []
        if expire_at and expire_at <= now:
            return self._refuse(codes.DISCONNECT_EXPIRED, "refreshed with a past expiry")
        self._expire_at = expire_at
        if info is not None:
            self._info = info
        body: dict[str, Any] = {}
        if expire_at:
            body = {"expires": True, "ttl": int(expire_at - now)}
        self._send(encode_push("", "refresh", body))
        return self._finish([])

    def disconnect(self, disconnect: Disconnect) -> list[Event]:
        """Close the connection server-side (shutdown, force reconnect, ...)."""
        if self.state is State.CLOSED:
            return []
        return self._close(disconnect)

    # Answers -----------------------------------------------------------------

    def reply_connect(self, request: ConnectRequest, result: ConnectResult, now: float
                      ) -> list[Event]:
        """Accept the connection (see :class:`~wsviews.hub.events.ConnectRequest`)."""
        cmd_id = self._take(request)
        if self.state is State.CLOSED:
            return [_unsubscribed(self._sub_for(r), codes.DISCONNECT_CONNECTION_CLOSED)
                    for r in request.subscriptions]
        subs_body: dict[str, Any] = {}
        events: list[Event] = []
        live: list[_Sub] = []
        for sub_request in request.subscriptions:
            sub = self._subs.get(sub_request.channel)
            if sub is None or sub.request is not sub_request:
                # Unsubscribed server-side while the connect was with the shell.
                events.append(_unsubscribed(_Sub(sub_request), None))
                continue
            outcome = self._complete(sub, result.subscriptions.get(sub.channel, SubscribeResult()),
                                     now)
            if isinstance(outcome, ClientError):
                return self._finish(self._refuse_connect(cmd_id, request, outcome))
            subs_body[sub.channel] = outcome
            live.append(sub)
        body: dict[str, Any] = {"client": self.client_id}
        if self._server_version:
            body["version"] = self._server_version
        if self._expire_at:
            ttl = int(self._expire_at - now)
            if ttl <= 0:
                return self._finish(self._refuse_connect(cmd_id, request, codes.ERROR_EXPIRED))
            body.update(expires=True, ttl=ttl)
        if result.data:
            body["data"] = raw_json(result.data)
        if subs_body:
            body["subs"] = subs_body
        client = self.config.client
        if client.ping_interval:
            body["ping"] = max(int(client.ping_interval), 1)
            if client.pong_timeout:
                body["pong"] = True
        if client.connect_include_server_time:
            body["time"] = int(now * 1000)
        self._send(encode_reply(cmd_id, "connect", body))
        self.state = State.CONNECTED
        if client.ping_interval:
            self._next_ping = now + client.ping_interval
        if client.presence_update_interval:
            self._presence_due = now + client.presence_update_interval
        for sub in live:
            events += self._go_live(sub, now)
        held, self._held = self._held, []
        for command in held:
            if self.closed:
                break
            events += self._dispatch(command, now)
        return self._finish(events)

    def reply_subscribe(self, request: SubscribeRequest, result: SubscribeResult, now: float
                        ) -> list[Event]:
        """Complete a subscription (see :class:`~wsviews.hub.events.SubscribeRequest`)."""
        cmd_id = self._take(request)
        sub = self._subs.get(request.channel)
        if sub is None or sub.request is not request or self.state is State.CLOSED:
            # Cancelled meanwhile (client unsubscribed, connection closed): undo it.
            return [_unsubscribed(_Sub(request), self.close_reason)]
        outcome = self._complete(sub, result, now)
        if isinstance(outcome, ClientError):
            del self._subs[sub.channel]
            if cmd_id:
                self._reply_error(cmd_id, outcome, f"subscribe {sub.channel!r}")
            return self._finish([_unsubscribed(sub, None)])
        if cmd_id:
            self._send(encode_reply(cmd_id, "subscribe", outcome))
        else:
            push: dict[str, Any] = {k: outcome[k] for k in (
                "recoverable", "epoch", "offset", "positioned", "data") if k in outcome}
            self._send(encode_push(sub.channel, "subscribe", push))
        return self._finish(self._go_live(sub, now))

    def reply_publish(self, request: PublishRequest) -> list[Event]:
        """Confirm a publication was accepted."""
        return self._answer(request, "publish", {})

    def reply_presence(self, request: PresenceRequest, presence: Mapping[str, ClientInfo]
                       ) -> list[Event]:
        """Answer a presence request with ``{client id: info}``."""
        return self._answer(request, "presence", {
            "presence": {client: info_json(info) for client, info in presence.items()}})

    def reply_presence_stats(self, request: PresenceStatsRequest, stats: PresenceStats
                             ) -> list[Event]:
        """Answer a presence stats request."""
        # Both counts always, zeros included: centrifuge-js reads a missing one as undefined.
        return self._answer(request, "presence_stats", {"num_clients": stats.num_clients,
                                                        "num_users": stats.num_users})

    def reply_history(self, request: HistoryRequest, result: HistoryResult) -> list[Event]:
        """Answer a history request, or error 112 when its ``since`` cannot be served."""
        if request.since is not None and unrecoverable_history(
                request.since, result.position, request.reverse):
            return self.reply_error(request, codes.ERROR_UNRECOVERABLE_POSITION)
        body: dict[str, Any] = {}
        if result.publications:
            body["publications"] = [publication_json(p) for p in result.publications]
        if result.position.epoch:
            body["epoch"] = result.position.epoch
        if result.position.offset:
            body["offset"] = result.position.offset
        return self._answer(request, "history", body)

    def reply_rpc(self, request: RPCRequest, data: bytes | None = None) -> list[Event]:
        """Answer an RPC call with the method's JSON result."""
        return self._answer(request, "rpc", {"data": raw_json(data)} if data else {})

    def reply_position(self, request: PositionCheckRequest, top: StreamPosition) -> list[Event]:
        """Take the stream top for a position check; publications lost in transit end the subscription."""
        self._take(request)
        sub = self._subs.get(request.channel)
        if sub is None or sub.check_out is not request or self.state is State.CLOSED:
            return []
        sub.check_out = None
        current = sub.position
        if top.epoch != current.epoch or top.offset > current.offset:
            return self._finish(self._lose(sub, codes.UNSUBSCRIBE_INSUFFICIENT_STATE,
                                           codes.DISCONNECT_INSUFFICIENT_STATE))
        return []

    def reply_error(self, request: Request, error: ClientError | Disconnect) -> list[Event]:
        """Refuse a request: an error reply to the client, or a disconnect."""
        cmd_id = self._take(request)
        if self.state is State.CLOSED:
            return []
        if isinstance(request, PositionCheckRequest):
            sub = self._subs.get(request.channel)
            if sub is not None and sub.check_out is request:
                sub.check_out = None
            return self._close(error) if isinstance(error, Disconnect) else []
        if isinstance(request, SubscribeRequest):
            sub = self._subs.get(request.channel)
            if sub is not None and sub.request is request:
                del self._subs[request.channel]
        if isinstance(error, Disconnect):
            return self._close(error)
        if isinstance(request, ConnectRequest):
            return self._finish(self._refuse_connect(cmd_id, request, error, undo=False))
        if cmd_id:
            self._reply_error(cmd_id, error, type(request).__name__)
        return self._finish([])

    # Dispatch ----------------------------------------------------------------

    def _dispatch(self, command: wire.Command, now: float) -> list[Event]:
        if isinstance(command, wire.Connect):
            return self._on_connect(command, now)
        if self.state is State.AUTHENTICATING:
            if len(self._held) >= _MAX_HELD_COMMANDS:
                return self._refuse(codes.DISCONNECT_BAD_REQUEST, "too many commands before "
                                    "the connect reply")
            self._held.append(command)
            return []
        if self.state is not State.CONNECTED:
            return self._refuse(codes.DISCONNECT_BAD_REQUEST,
                                "command before a successful connect")
        if isinstance(command, wire.Pong):
            return self._on_pong()
        if isinstance(command, wire.Subscribe):
            return self._on_subscribe(command, now)
        if isinstance(command, wire.Unsubscribe):
            return self._on_unsubscribe(command)
        if isinstance(command, wire.Publish):
            return self._on_publish(command)
        if isinstance(command, (wire.Presence, wire.PresenceStats)):
            return self._on_presence(command)
        if isinstance(command, wire.History):
            return self._on_history(command)
        if isinstance(command, wire.RPC):
            return self._ask(RPCRequest(command.method, command.data), command.id)
        if isinstance(command, wire.Send):
            return [MessageReceived(command.data)]
        if isinstance(command, wire.Refresh):
            return self._on_refresh(command, now)
        if isinstance(command, wire.SubRefresh):
            return self._on_sub_refresh(command, now)
        assert isinstance(command, wire.Ping)
        return self._refuse(codes.DISCONNECT_BAD_REQUEST, "ping command is not part of protocol v2")

    def _on_pong(self) -> list[Event]:
        if not self._ping_out:
            return self._refuse(codes.DISCONNECT_BAD_REQUEST, "pong without a ping")
        self._ping_out = False
        self._pong_due = 0.0
        return []

    # Connect -----------------------------------------------------------------

    def _on_connect(self, command: wire.Connect, now: float) -> list[Event]:
        if self.state is not State.CONNECTING:
            return self._refuse(codes.DISCONNECT_BAD_REQUEST, "connect sent twice")
        client = self.config.client
        subs: dict[str, TokenSubscription] = {}
        from_token: set[str] = set()
        meta: bytes | None = None
        use_requested = False
        source: Literal["token", "session", "anonymous"]
        if command.token:
            try:
                token = self._verifiers.connection.verify_connection(command.token, now)
            except TokenExpired:
                return self._connect_error(command.id, codes.ERROR_TOKEN_EXPIRED, "token expired")
            except InvalidToken as exc:
                return self._refuse(codes.DISCONNECT_INVALID_TOKEN, f"connection token: {exc}")
            if not token.user and client.disallow_anonymous_connection_tokens:
                return self._refuse(codes.DISCONNECT_PERMISSION_DENIED,
                                    "anonymous connection tokens are disallowed")
            if not _is_json(token.info):
                return self._refuse(codes.DISCONNECT_INAPPROPRIATE_PROTOCOL,
                                    "token info is not JSON")
            user, source = token.user, _TOKEN
            expire_at = 0 if client.insecure else token.expire_at
            self._info = token.info
            subs, from_token, meta = dict(token.subs), set(token.subs), token.meta
            use_requested = True
        elif self._session_user:
            user, source, expire_at = self._session_user, _SESSION, 0
        elif client.allow_anonymous_connect_without_token or client.insecure:
            user, source, expire_at = "", _ANONYMOUS, 0
            use_requested = True
        else:
            return self._refuse(codes.DISCONNECT_BAD_REQUEST, "no token, no session user, and "
                                "anonymous connections are not allowed")
        self.user = user
        personal = client.subscribe_to_user_personal_channel
        if personal.enabled and user:
            subs.setdefault(self.config.channel.personal_channel(
                user, personal.personal_channel_namespace), TokenSubscription())
        for channel in subs:
            if self.config.channel.options(channel) is None:
                return self._connect_error(command.id, codes.ERROR_UNKNOWN_CHANNEL,
                                           f"server-side channel {channel!r} is not declared")
        if use_requested:
            for channel in command.subs:
                allowed = self._allowed_server_channel(channel)
                if allowed is None:
                    return self._refuse(codes.DISCONNECT_BAD_REQUEST,
                                        f"connect.subs channel {channel!r} is not declared")
                if allowed:
                    subs.setdefault(channel, TokenSubscription())
        if client.channel_limit and len(subs) > client.channel_limit:
            return self._refuse(codes.DISCONNECT_CHANNEL_LIMIT,
                                f"{len(subs)} server-side channels over the limit")
        if expire_at and expire_at < now:
            return self._connect_error(command.id, codes.ERROR_EXPIRED, "connection already expired")
        self._expire_at = expire_at
        requests = []
        for channel, token_sub in subs.items():
            namespace = self.config.channel.options(channel)
            assert namespace is not None
            hint = command.subs.get(channel)
            options = _forced(namespace, token_sub)
            since = (StreamPosition(hint.offset, hint.epoch)
                     if hint is not None and hint.recover and options.recoverable else None)
            sub_request = self._server_request(channel, options, since)
            self._subs[channel] = _Sub(sub_request, recover=bool(hint and hint.recover),
                                       from_token=channel in from_token)
            requests.append(sub_request)
        request = ConnectRequest(
            user=user, source=source, expire_at=expire_at, info=self._info,
            meta=meta, data=command.data, name=command.name, version=command.version,
            headers=command.headers, subscriptions=tuple(requests))
        self.state = State.AUTHENTICATING
        self._pending[request] = command.id
        return [request]

    def _allowed_server_channel(self, channel: str) -> bool | None:
        """Return whether a client may ask for ``channel`` server-side; None: undeclared."""
        channels = self.config.channel
        namespace = channels.options(channel)
        if namespace is None:
            return None
        _, rest = channels.split(channel)
        if channels.is_private(channel) or not access.valid_channel_name(namespace, channel, rest):
            return False
        return access.may_subscribe(self.config, namespace, channel, self.user)

    def _server_request(self, channel: str, options: SubscriptionOptions,
                        since: StreamPosition | None) -> SubscribeRequest:
        return SubscribeRequest(
            channel=channel, options=options, info=self._client_info(options.channel_info),
            since=since, limit=self.config.client.recovery_max_publication_limit,
            server_side=True)

    def _connect_error(self, cmd_id: int, error: ClientError, why: str) -> list[Event]:
        self._log.info("connect refused for client %s: %s (%s)", self.client_id, error, why)
        self._send(encode_error(cmd_id, error))
        self.state = State.UNUSABLE
        self._subs.clear()
        return []

    def _refuse_connect(self, cmd_id: int, request: ConnectRequest, error: ClientError,
                        undo: bool = True) -> list[Event]:
        events: list[Event] = []
        if undo:
            events = [_unsubscribed(self._sub_for(r), None) for r in request.subscriptions]
        self._held.clear()
        return events + self._connect_error(cmd_id, error, "refused by the server")

    # Subscriptions -----------------------------------------------------------

    def _on_subscribe(self, command: wire.Subscribe, now: float) -> list[Event]:
        channel = command.channel
        if not channel:
            return self._refuse(codes.DISCONNECT_BAD_REQUEST, "subscribe without a channel")
        if command.type == 4:
            return self._error(command.id, codes.ERROR_NOT_AVAILABLE,
                               f"shared poll subscription to {channel!r}")
        if command.type:
            return self._error(command.id, codes.ERROR_PERMISSION_DENIED,
                               f"map subscription (type {command.type}) to {channel!r}")
        if command.delta not in ("", "fossil"):
            return self._refuse(codes.DISCONNECT_BAD_REQUEST,
                                f"unknown delta type {command.delta!r}")
        channels, client = self.config.channel, self.config.client
        if channels.max_length and len(channel) > channels.max_length:
            return self._error(command.id, codes.ERROR_BAD_REQUEST, "channel name too long")
        if channel in self._subs:
            return self._error(command.id, codes.ERROR_ALREADY_SUBSCRIBED,
                               f"already subscribed to {channel!r}")
        if client.channel_limit and len(self._subs) >= client.channel_limit:
            return self._error(command.id, codes.ERROR_LIMIT_EXCEEDED, "channel limit reached")
        namespace = channels.options(channel)
        if namespace is None:
            return self._error(command.id, codes.ERROR_UNKNOWN_CHANNEL,
                               f"namespace of {channel!r} is not declared")
        _, rest = channels.split(channel)
        if not access.valid_channel_name(namespace, channel, rest):
            return self._error(command.id, codes.ERROR_BAD_REQUEST,
                               f"invalid channel name {channel!r}")
        if channels.is_private(channel) and not command.token:
            return self._error(command.id, codes.ERROR_PERMISSION_DENIED,
                               f"private channel {channel!r} needs a subscription token")
        options = _forced(namespace)
        if command.token:
            try:
                token = self._verifiers.subscription.verify_subscription(command.token, now)
            except TokenExpired:
                return self._error(command.id, codes.ERROR_TOKEN_EXPIRED,
                                   "subscription token expired")
            except InvalidToken as exc:
                return self._error(command.id, codes.ERROR_PERMISSION_DENIED,
                                   f"subscription token: {exc}")
            if token.channel != channel or token.user != self.user or (
                    token.client and token.client != self.client_id):
                return self._refuse(codes.DISCONNECT_INVALID_TOKEN, "subscription token is for "
                                    "another channel, user or client")
            if not _is_json(token.info) or not _is_json(token.data):
                return self._refuse(codes.DISCONNECT_INAPPROPRIATE_PROTOCOL,
                                    "subscription token info/data is not JSON")
            options = _forced(namespace, TokenSubscription(token.info, token.data, token.override))
            options = replace(options, expire_at=token.expire_at)
        elif not access.may_subscribe(self.config, namespace, channel, self.user):
            return self._error(command.id, codes.ERROR_PERMISSION_DENIED,
                               f"may not subscribe to {channel!r}")
        history = access.may_history(self.config, namespace, self.user, True)
        positioned = options.positioned or (
            command.positioned and (namespace.allow_positioning or history))
        recoverable = options.recoverable or (
            command.recoverable and (namespace.allow_recovery or history))
        push_join_leave = options.push_join_leave or (
            command.join_leave and namespace.join_leave
            and access.may_presence(self.config, namespace, self.user, True))
        options = replace(options, positioned=positioned or recoverable, recoverable=recoverable,
                          push_join_leave=push_join_leave)
        if options.expire_at and options.expire_at <= now:
            return self._error(command.id, codes.ERROR_EXPIRED, "subscription already expired")
        if command.tags_filter:
            return self._error(command.id, codes.ERROR_BAD_REQUEST, "tags filters are not allowed")
        since = StreamPosition(command.offset, command.epoch) if (
            command.recover and recoverable) else None
        request = SubscribeRequest(
            channel=channel, options=options, info=self._client_info(options.channel_info),
            since=since, limit=client.recovery_max_publication_limit, data=command.data)
        self._subs[channel] = _Sub(request, cmd_id=command.id, recover=command.recover,
                                   reject_unrecovered=bool(command.flag & _FLAG_REJECT_UNRECOVERED))
        self._pending[request] = command.id
        return [request]

    def _on_unsubscribe(self, command: wire.Unsubscribe) -> list[Event]:
        if not command.channel:
            return self._refuse(codes.DISCONNECT_BAD_REQUEST, "unsubscribe without a channel")
        events: list[Event] = []
        sub = self._subs.get(command.channel)
        if sub is not None:
            if sub.pending:
                self._cancel(sub)
            else:
                events.append(self._drop(sub, None))
        self._send(encode_reply(command.id, "unsubscribe", {}))
        return events

    def _on_sub_refresh(self, command: wire.SubRefresh, now: float) -> list[Event]:
        channel = command.channel
        if not channel:
            return self._refuse(codes.DISCONNECT_BAD_REQUEST, "sub_refresh without a channel")
        sub = self._subs.get(channel)
        if sub is None or sub.pending:
            return self._error(command.id, codes.ERROR_PERMISSION_DENIED,
                               f"sub_refresh of {channel!r} without a subscription")
        if not command.token:
            return self._error(command.id, codes.ERROR_BAD_REQUEST, "sub_refresh without a token")
        try:
            token = self._verifiers.subscription.verify_subscription(command.token, now)
        except TokenExpired:
            return self._error(command.id, codes.ERROR_TOKEN_EXPIRED, "subscription token expired")
        except InvalidToken as exc:
            return self._refuse(codes.DISCONNECT_INVALID_TOKEN, f"subscription token: {exc}")
        if token.channel != channel or token.user != self.user or (
                token.client and token.client != self.client_id):
            return self._refuse(codes.DISCONNECT_INVALID_TOKEN,
                                "subscription token is for another channel, user or client")
        if token.expire_at and token.expire_at <= now:
            return self._error(command.id, codes.ERROR_EXPIRED, "subscription token already expired")
        if not _is_json(token.info):
            return self._refuse(codes.DISCONNECT_INAPPROPRIATE_PROTOCOL,
                                "subscription token info is not JSON")
        sub.expire_at = token.expire_at
        if token.info is not None:
            sub.channel_info = token.info
        body: dict[str, Any] = {}
        if token.expire_at:
            body = {"expires": True, "ttl": int(token.expire_at - now)}
        self._send(encode_reply(command.id, "sub_refresh", body))
        return [SubscriptionRefreshed(channel, token.expire_at, token.info)]

    def _on_refresh(self, command: wire.Refresh, now: float) -> list[Event]:
        if not command.token:
            return self._refuse(codes.DISCONNECT_BAD_REQUEST, "refresh without a token")
        try:
            token = self._verifiers.connection.verify_connection(command.token, now)
        except TokenExpired:
            return self._refuse(codes.DISCONNECT_EXPIRED, "refresh token expired")
        except InvalidToken as exc:
            return self._refuse(codes.DISCONNECT_INVALID_TOKEN, f"refresh token: {exc}")
        if token.user != self.user:
            return self._refuse(codes.DISCONNECT_INVALID_TOKEN, "refresh token for another user")
        if not _is_json(token.info):
            return self._refuse(codes.DISCONNECT_INAPPROPRIATE_PROTOCOL, "token info is not JSON")
        current = {s.channel for s in self._subs.values() if s.from_token}
        if set(token.subs) != current:
            # Centrifugo reconnects the client so token-based subscriptions match the new token.
            return self._refuse(codes.DISCONNECT_INSUFFICIENT_STATE,
                                "refresh token changes server-side subscriptions")
        if token.expire_at and token.expire_at <= now:
            return self._error(command.id, codes.ERROR_EXPIRED, "refresh token already expired")
        self._expire_at = token.expire_at
        if token.info is not None:
            self._info = token.info
        body: dict[str, Any] = {}
        if token.expire_at:
            body = {"expires": True, "ttl": int(token.expire_at - now)}
        self._send(encode_reply(command.id, "refresh", body))
        return [Refreshed(token.expire_at, self._info)]

    # Publish, presence, history ---------------------------------------------

    def _channel_for(self, cmd_id: int, channel: str, what: str
                     ) -> tuple[ChannelOptions | None, list[Event]]:
        """Resolve a channel for a command; on failure return the events refusing it."""
        if not channel:
            return None, self._refuse(codes.DISCONNECT_BAD_REQUEST, f"{what} without a channel")
        channels = self.config.channel
        namespace = channels.options(channel)
        if namespace is None:
            return None, self._error(cmd_id, codes.ERROR_UNKNOWN_CHANNEL,
                                     f"{what}: namespace of {channel!r} is not declared")
        _, rest = channels.split(channel)
        if not access.valid_channel_name(namespace, channel, rest):
            return None, self._error(cmd_id, codes.ERROR_BAD_REQUEST,
                                     f"{what}: invalid channel name {channel!r}")
        return namespace, []

    def _subscribed(self, channel: str) -> bool:
        sub = self._subs.get(channel)
        return sub is not None and not sub.pending

    def _on_publish(self, command: wire.Publish) -> list[Event]:
        if command.channel and command.type == 1:
            return self._error(command.id, codes.ERROR_NOT_AVAILABLE, "map publish")
        namespace, refused = self._channel_for(command.id, command.channel, "publish")
        if namespace is None:
            return refused
        data = command.data
        if not data or (namespace.publication_data_format == "json_object"
                        and not data.startswith(b"{")):
            return self._error(command.id, codes.ERROR_BAD_REQUEST, "publication data is empty "
                               "or not in the namespace's publication_data_format")
        subscribed = self._subscribed(command.channel)
        if not access.may_publish(self.config, namespace, self.user, subscribed):
            return self._error(command.id, codes.ERROR_PERMISSION_DENIED,
                               f"may not publish to {command.channel!r}")
        sub = self._subs.get(command.channel)
        chan_info = sub.channel_info if sub is not None and subscribed else None
        return self._ask(PublishRequest(
            command.channel, data, self._client_info(chan_info), namespace.history_size,
            namespace.history_ttl, namespace.history_meta_ttl), command.id)

    def _on_presence(self, command: wire.Presence | wire.PresenceStats) -> list[Event]:
        what = "presence" if isinstance(command, wire.Presence) else "presence_stats"
        namespace, refused = self._channel_for(command.id, command.channel, what)
        if namespace is None:
            return refused
        if not namespace.presence:
            return self._error(command.id, codes.ERROR_NOT_AVAILABLE,
                               f"{what}: presence is off for {command.channel!r}")
        if not access.may_presence(self.config, namespace, self.user,
                                   self._subscribed(command.channel)):
            return self._error(command.id, codes.ERROR_PERMISSION_DENIED,
                               f"{what}: not allowed on {command.channel!r}")
        if isinstance(command, wire.Presence):
            return self._ask(PresenceRequest(command.channel), command.id)
        return self._ask(PresenceStatsRequest(command.channel), command.id)

    def _on_history(self, command: wire.History) -> list[Event]:
        namespace, refused = self._channel_for(command.id, command.channel, "history")
        if namespace is None:
            return refused
        if not namespace.history_enabled:
            return self._error(command.id, codes.ERROR_NOT_AVAILABLE,
                               f"history is off for {command.channel!r}")
        if not access.may_history(self.config, namespace, self.user,
                                  self._subscribed(command.channel)):
            return self._error(command.id, codes.ERROR_PERMISSION_DENIED,
                               f"history: not allowed on {command.channel!r}")
        if command.reverse and command.since is not None and command.since.offset == 0:
            return self._error(command.id, codes.ERROR_BAD_REQUEST,
                               "reverse history since offset 0")
        limit = command.limit
        cap = self.config.client.history_max_publication_limit
        if cap and (limit < 0 or limit > cap):
            limit = cap
        return self._ask(HistoryRequest(command.channel, limit, command.since, command.reverse,
                                        namespace.history_meta_ttl), command.id)

    # Subscription lifecycle --------------------------------------------------

    def _complete(self, sub: _Sub, result: SubscribeResult, now: float
                  ) -> dict[str, Any] | ClientError:
        """Return the subscribe result body for ``sub``, setting its position; or the error."""
        options = sub.options
        body: dict[str, Any] = {}
        sub.expire_at = options.expire_at
        sub.channel_info = options.channel_info
        if options.expire_at:
            ttl = int(options.expire_at - now)
            if ttl <= 0:
                return codes.ERROR_EXPIRED
            body.update(expires=True, ttl=ttl)
        publications: tuple[Publication, ...] = ()
        recovered = False
        if options.positioned:
            top = result.position or _ZERO
            sub.position = top
            offset = top.offset
            since = sub.request.since
            if since is not None:
                outcome = recover(since, top, result.publications)
                if not outcome.recovered and sub.reject_unrecovered:
                    return codes.ERROR_UNRECOVERABLE_POSITION
                recovered, publications = outcome.recovered, outcome.publications
                if recovered:
                    offset = since.offset
            if options.recoverable:
                body["recoverable"] = True
            if top.epoch:
                body["epoch"] = top.epoch
            if publications:
                body["publications"] = [publication_json(p) for p in publications]
            if recovered:
                body["recovered"] = True
            if offset:
                body["offset"] = offset
            body["positioned"] = True
        data = result.data or options.data
        if data:
            body["data"] = raw_json(data)
        if sub.recover:
            body["was_recovering"] = True
        return body

    def _go_live(self, sub: _Sub, now: float) -> list[Event]:
        """Make a completed subscription live and deliver what was held for it."""
        sub.pending = False
        delay = self.config.client.channel_position_check_delay
        sub.check_due = now + delay if delay and sub.options.positioned else 0.0
        held, sub.held = sub.held, []
        events: list[Event] = []
        if sub.overflowed:
            return self._lose(sub, codes.UNSUBSCRIBE_INSUFFICIENT_STATE,
                              codes.DISCONNECT_INSUFFICIENT_STATE)
        for kind, item, epoch in held:
            if self.closed or self._subs.get(sub.channel) is not sub:
                break
            if kind == "pub":
                events += self._deliver_pub(sub, item, epoch, None)
            else:
                self._deliver_presence_change(sub, kind, item)
        return events

    def _hold(self, sub: _Sub, item: tuple[str, Any, str]) -> list[Event]:
        if len(sub.held) >= _MAX_HELD_PUSHES:
            sub.overflowed = True
            sub.held.clear()
        elif not sub.overflowed:
            sub.held.append(item)
        return []

    def _deliver_pub(self, sub: _Sub, pub: Publication, epoch: str, line: str | None
                     ) -> list[Event]:
        if sub.options.positioned:
            position = sub.position
            if epoch and not position.epoch:
                position = sub.position = StreamPosition(position.offset, epoch)
            verdict = next_publication(position, pub.offset, epoch)
            if verdict is Next.DUPLICATE:
                return []
            if verdict is Next.GAP:
                return self._lose(sub, codes.UNSUBSCRIBE_INSUFFICIENT_STATE,
                                  codes.DISCONNECT_INSUFFICIENT_STATE)
            sub.position = StreamPosition(pub.offset, position.epoch)
            sub.pub_seen = True
        self._send(line if line is not None else encode_publication_push(sub.channel, pub))
        return []

    def _push_presence_change(self, channel: str, kind: str, info: ClientInfo) -> list[Event]:
        sub = self._subs.get(channel)
        if sub is None or self.state is State.CLOSED:
            return []
        if sub.pending:
            return self._finish(self._hold(sub, (kind, info, "")))
        self._deliver_presence_change(sub, kind, info)
        return self._finish([])

    def _deliver_presence_change(self, sub: _Sub, kind: str, info: ClientInfo) -> None:
        if sub.options.push_join_leave:
            self._send(encode_push(sub.channel, kind, {"info": info_json(info)}))

    def _lose(self, sub: _Sub, unsubscribe: Unsubscribe, disconnect: Disconnect) -> list[Event]:
        """End a live subscription that went wrong: resubscribe it, or reconnect if server-side."""
        if sub.request.server_side:
            return self._refuse(disconnect, f"{disconnect.reason} in {sub.channel!r}")
        self._log.info("client %s unsubscribed from %r: %s", self.client_id, sub.channel,
                       unsubscribe.reason)
        self._send(encode_push(sub.channel, "unsubscribe", {"code": unsubscribe.code,
                                                             "reason": unsubscribe.reason}))
        return [self._drop(sub, unsubscribe)]

    def _drop(self, sub: _Sub, reason: Unsubscribe | Disconnect | None) -> Unsubscribed:
        del self._subs[sub.channel]
        if sub.check_out is not None:
            self._pending.pop(sub.check_out, None)
        return _unsubscribed(sub, reason)

    def _cancel(self, sub: _Sub) -> None:
        """Forget a subscription still being set up; its answer will get an Unsubscribed back."""
        del self._subs[sub.channel]

    def _sub_for(self, request: SubscribeRequest) -> _Sub:
        sub = self._subs.get(request.channel)
        return sub if sub is not None and sub.request is request else _Sub(request)

    # Plumbing ----------------------------------------------------------------

    def _client_info(self, chan_info: bytes | None) -> ClientInfo:
        return ClientInfo(self.user, self.client_id, self._info, chan_info)

    def _ask(self, request: Request, cmd_id: int) -> list[Event]:
        self._pending[request] = cmd_id
        return [request]

    def _take(self, request: Request) -> int:
        try:
            return self._pending.pop(request)
        except KeyError:
            raise ValueError(f"{type(request).__name__} was already answered, or is not from "
                             "this connection") from None

    def _answer(self, request: Request, method: str, body: Mapping[str, Any]) -> list[Event]:
        cmd_id = self._take(request)
        if self.state is State.CONNECTED and cmd_id:
            self._send(encode_reply(cmd_id, method, body))
        return self._finish([])

    def _error(self, cmd_id: int, error: ClientError, why: str) -> list[Event]:
        self._reply_error(cmd_id, error, why)
        return []

    def _reply_error(self, cmd_id: int, error: ClientError, why: str) -> None:
        self._log.info("client %s command %d: %s (%s)", self.client_id, cmd_id, error, why)
        self._send(encode_error(cmd_id, error))

    def _send(self, line: str) -> None:
        self._out.append(line)
        self._out_size += len(line) + 1

    def _finish(self, events: list[Event]) -> list[Event]:
        limit = self.config.client.queue_max_size
        if limit and self._out_size > limit and not self.closed:
            self._out.clear()
            self._out_size = 0
            events += self._refuse(codes.DISCONNECT_SLOW, "outgoing queue over queue_max_size")
        return events

    def _refuse(self, disconnect: Disconnect, why: str) -> list[Event]:
        self._log.info("closing client %s: %s (%s)", self.client_id, disconnect, why)
        return self._close(disconnect)

    def _close(self, disconnect: Disconnect) -> list[Event]:
        self.state = State.CLOSED
        self.close_reason = disconnect
        events: list[Event] = [
            self._drop(sub, disconnect) for sub in list(self._subs.values()) if not sub.pending]
        self._subs.clear()
        self._held.clear()
        events.append(Closed(disconnect))
        return events


def _forced(namespace: ChannelOptions, token: TokenSubscription | None = None
            ) -> SubscriptionOptions:
    """Return a subscription's options from its namespace, with a token's overrides."""
    override = token.override if token is not None else None

    def pick(name: str, default: bool) -> bool:
        value = getattr(override, name, None) if override is not None else None
        return default if value is None else bool(value)

    recoverable = pick("force_recovery", namespace.force_recovery)
    return SubscriptionOptions(
        presence=pick("presence", namespace.presence),
        join_leave=pick("join_leave", namespace.join_leave),
        push_join_leave=pick("force_push_join_leave", namespace.force_push_join_leave),
        positioned=pick("force_positioning", namespace.force_positioning) or recoverable,
        recoverable=recoverable,
        channel_info=token.info if token is not None else None,
        data=token.data if token is not None else None,
        history_size=namespace.history_size, history_ttl=namespace.history_ttl,
        history_meta_ttl=namespace.history_meta_ttl)


def _unsubscribed(sub: _Sub, reason: Unsubscribe | Disconnect | None) -> Unsubscribed:
    options = sub.options
    return Unsubscribed(sub.channel, sub.request.info, options.presence, options.join_leave,
                        sub.request.server_side, reason)


def _is_json(data: bytes | None) -> bool:
    if data is None:
        return True
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True
