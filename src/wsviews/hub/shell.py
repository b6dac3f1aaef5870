"""The asyncio shell of one hub connection: the socket, the core, the node, in between.

:class:`HubConnection` feeds each text frame to its
:class:`~wsviews.hub.protocol.HubProtocol`, performs the requests the core
hands out against the node's engine and layer (each request in a task of its
own, answered with the core's ``reply_*``), and writes what the core has to
send from one writer task, so pushes from the layer never wait on the socket.
Deadlines (pings, expiries, presence refreshes) run on one timer handle,
moved whenever the core's next deadline changes.

Layer messages reach the connection synchronously through the layer's
``attach`` extension: publications, joins and leaves of its subscribed
channels' groups, and server-side commands in its user's group.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

from .. import drain
from ..connection import WebSocket, WebSocketDisconnect
from ..handshake import origin_refusal
from . import codes
from .codes import ClientError, Disconnect
from .commands import encode_publication_push
from .engine import PUBLICATION_MESSAGE_TYPE, group_for_channel, info_from_list, publication_from_message
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
    Request,
    RPCRequest,
    SubscribeRequest,
    SubscribeResult,
    Unsubscribed,
)
from .hooks import HubError, call, hooks
from .node import CONTROL_MESSAGE_TYPE, JOIN_MESSAGE_TYPE, LEAVE_MESSAGE_TYPE, Node, get_node, user_group
from .protocol import HubProtocol, wants_protobuf

__all__ = ["HubConnection", "serve_hub"]

logger = logging.getLogger("wsviews.hub")

#: Seconds the end of a connection waits for its requests in flight to be answered and undone.
FINISH_TIMEOUT = 10.0


def _session_user(scope: Any) -> str | None:
    user = scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        return str(user.pk)
    return None


class HubConnection:
    """One client of the hub (see the module docstring)."""

    def __init__(self, node: Node, socket: WebSocket) -> None:
        self.node = node
        self.socket = socket
        self.client_id = str(uuid.uuid4())
        self.core = HubProtocol(node.config, client_id=self.client_id, now=time.time(),
                                session_user=_session_user(socket.scope),
                                verifiers=node.verifiers, server_version="wsviews")
        self.channel_name = ""
        self._dirty = asyncio.Event()
        self._closing: Disconnect | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        # hub channel -> subscriptions holding its group (set up, not yet undone)
        self._held: dict[str, int] = {}
        self._user_group = ""
        # hub channel -> the lock that runs its set-ups and tear-downs one at a time, in the
        # order the core asked for them (asyncio.Lock wakes its waiters first come, first served)
        self._order: dict[str, asyncio.Lock] = {}
        # A client's publishes are recorded in the order it sent them, however long their hooks take.
        self._publishing = asyncio.Lock()
        self._loop = asyncio.get_running_loop()
        self._ended = asyncio.Event()

    # Life

    async def run(self) -> None:
        """Serve the connection until it ends, then undo everything it set up."""
        layer = self.node.layer
        self.channel_name = await layer.new_channel("hub")
        layer.attach(self.channel_name, self._on_message)
        self.node.added(self)
        self._register()
        writer = self._loop.create_task(self._write())
        try:
            self._schedule()
            async for frame in self.socket:
                self._handle(self.core.receive(frame, time.time()))
                if self.core.closed:
                    break
        except WebSocketDisconnect:
            pass
        finally:
            if not self.core.closed:
                self._handle(self.core.connection_lost())
            await self._finish(writer)

    async def _finish(self, writer: asyncio.Task[None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        try:
            async with asyncio.timeout(FINISH_TIMEOUT):
                while pending := [task for task in self._tasks if not task.done()]:
                    await asyncio.gather(*pending, return_exceptions=True)
        except TimeoutError:
            logger.warning("hub client %s: requests still running %ss after it closed",
                           self.client_id, FINISH_TIMEOUT)
        self._dirty.set()
        try:
            async with asyncio.timeout(FINISH_TIMEOUT):
                await writer
        except TimeoutError:
            writer.cancel()
        self.node.layer.detach(self.channel_name)
        self.node.removed(self)
        self._ended.set()

    def _register(self) -> None:
        """Be revoked and drained the hub's way: a disconnect push with Centrifugo's code, then the close.

        Revocation (``wsviews.revocation``) closes a hub client with 3503
        ("force disconnect": the SDKs do not reconnect); the graceful drain on
        SIGTERM with 3001 ("shutdown": they reconnect, to another process,
        and recover what they missed).
        """
        record = self.socket.record
        if record is not None:
            record.kind = "hub"
            record.revoke_code = codes.DISCONNECT_FORCE_NO_RECONNECT.code
            record.on_revoke = self._revoke
        drain.on_shutdown(self.socket.scope, self._shut_down)

    async def _revoke(self, code: int, reason: str) -> None:
        """Disconnect the client (the writer sends the push and the close); do not wait for it."""
        if not self.core.closed:
            self._handle(self.core.disconnect(Disconnect(code, reason or "force disconnect")))

    async def _shut_down(self) -> None:
        """Disconnect the client with 3001; return once the connection has ended (the drain bounds it)."""
        if not self.core.closed:
            self._handle(self.core.disconnect(codes.DISCONNECT_SHUTDOWN))
        await self._ended.wait()

    # Writing

    async def _write(self) -> None:
        """Send what the core has to send; close the socket once the core is closed."""
        socket = self.socket
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                for frame in self.core.data_to_send():
                    await socket.send(frame)
            except WebSocketDisconnect:
                if not self.core.closed:
                    self._handle(self.core.connection_lost())
                return
            if self.core.closed:
                closing = self._closing
                if closing is not None and closing.code != codes.DISCONNECT_CONNECTION_CLOSED.code:
                    await socket.close(closing.code, closing.reason)
                return

    def _wake(self) -> None:
        self._dirty.set()

    # Deadlines

    def _schedule(self) -> None:
        deadline = self.core.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            delay = max(0.0, deadline - time.time())
            self._timer = self._loop.call_at(self._loop.time() + delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._timer_at = None
        self._handle(self.core.tick(time.time()))

    # Events

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Closed):
                self._closing = event.disconnect  # the core has logged why
            elif isinstance(event, (SubscribeRequest, ConnectRequest)):
                if isinstance(event, SubscribeRequest):
                    self._hold(event.channel)
                else:
                    for request in event.subscriptions:
                        self._hold(request.channel)
                self._spawn(self._answer(event))
            elif isinstance(event, Unsubscribed):
                self._spawn(self._undo(event))
            elif isinstance(event, (PublishRequest, PresenceRequest, PresenceStatsRequest,
                                    HistoryRequest, RPCRequest, PositionCheckRequest)):
                self._spawn(self._answer(event))
            elif isinstance(event, PresenceDue):
                self._spawn(self._refresh_presence(event))
            elif isinstance(event, MessageReceived):
                logger.debug("hub client %s sent a message; no handler", self.client_id)
            # Refreshed, SubscriptionRefreshed: the core keeps the new expiry itself.
        self._wake()
        if not self.core.closed:
            self._schedule()

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        if not task.done():  # an eager task may have finished already
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _hold(self, channel: str) -> None:
        self._held[channel] = self._held.get(channel, 0) + 1

    # Requests

    async def _answer(self, request: Request) -> None:
        core, now = self.core, time.time
        try:
            if isinstance(request, ConnectRequest):
                events = core.reply_connect(request, await self._connect(request), now())
            elif isinstance(request, SubscribeRequest):
                try:
                    result = await self._subscribe(request)
                except BaseException:
                    self._abandon(request)
                    raise
                if isinstance(result, SubscribeResult):
                    events = core.reply_subscribe(request, result, now())
                else:
                    self._abandon(request)
                    events = core.reply_error(request, result)
            elif isinstance(request, PublishRequest):
                refused = await self._publish(request)
                events = core.reply_publish(request) if refused is None else core.reply_error(
                    request, refused)
            elif isinstance(request, PresenceRequest):
                events = core.reply_presence(request, await self.node.engine.presence(request.channel))
            elif isinstance(request, PresenceStatsRequest):
                events = core.reply_presence_stats(
                    request, await self.node.engine.presence_stats(request.channel))
            elif isinstance(request, HistoryRequest):
                events = core.reply_history(request, await self.node.engine.history(
                    request.channel, since=request.since, limit=request.limit,
                    reverse=request.reverse))
            elif isinstance(request, RPCRequest):
                data = await self._rpc(request)
                events = (core.reply_rpc(request, data) if not isinstance(data, ClientError)
                          else core.reply_error(request, data))
            else:
                top = (await self.node.engine.history(request.channel, limit=0)).position
                events = core.reply_position(request, top)
        except HubError as exc:
            events = core.reply_error(request, exc.error)
        except Exception as exc:
            if isinstance(exc, ConnectionError):
                logger.warning("hub client %s: %s failed: %s", self.client_id,
                               type(request).__name__, exc)
            else:
                logger.exception("hub client %s: %s failed", self.client_id, type(request).__name__)
            error: ClientError | Disconnect = (codes.DISCONNECT_SERVER_ERROR if isinstance(
                request, ConnectRequest) else codes.ERROR_INTERNAL)
            events = core.reply_error(request, error)
        self._handle(events)

    async def _connect(self, request: ConnectRequest) -> ConnectResult:
        if request.user:
            record = self.socket.record
            if record is not None and record.user_id is None:
                record.user_id = request.user  # a token's sub: disconnect_user() reaches it too
            self._user_group = user_group(request.user)
            await self.node.layer.group_add(self._user_group, self.channel_name)
        results = {}
        for sub in request.subscriptions:
            results[sub.channel] = await self._setup(sub)
        return ConnectResult(subscriptions=results)

    async def _subscribe(self, request: SubscribeRequest) -> SubscribeResult | ClientError:
        if not request.server_side:
            options = self.node.config.channel.options(request.channel)
            namespace = options.namespace if options is not None else ""
            checks = hooks.subscribe.get(namespace, ())
            if checks:
                data = _decoded(request.data)
                for check in checks:
                    if not await call(check, self.core.user, request.channel, data):
                        logger.debug("hub client %s (user %r): subscribe to %r denied by %s",
                                    self.client_id, self.core.user, request.channel,
                                    getattr(check, "__qualname__", check))
                        return codes.ERROR_PERMISSION_DENIED
        return await self._setup(request)

    def _abandon(self, request: SubscribeRequest) -> None:
        """Undo a subscription refused with an error reply (the core then sends no Unsubscribed)."""
        self._spawn(self._undo(Unsubscribed(request.channel, request.info, request.options.presence,
                                            False, request.server_side)))

    def _in_order(self, channel: str) -> asyncio.Lock:
        lock = self._order.get(channel)
        if lock is None:
            lock = self._order[channel] = asyncio.Lock()
        return lock

    def _release_order(self, channel: str, lock: asyncio.Lock) -> None:
        if not lock.locked() and self._order.get(channel) is lock and channel not in self._held:
            del self._order[channel]

    async def _setup(self, request: SubscribeRequest) -> SubscribeResult:
        """Start delivery, presence and join, then read the stream (see SubscribeRequest).

        Set-ups and tear-downs of one channel run in the order they were asked for, so
        that a quick subscribe, unsubscribe, subscribe leaves presence and group right.
        """
        lock = self._in_order(request.channel)
        async with lock:
            return await self._set_up(request)

    async def _set_up(self, request: SubscribeRequest) -> SubscribeResult:
        node, channel, options = self.node, request.channel, request.options
        await node.layer.group_add(group_for_channel(channel), self.channel_name)
        if options.presence:
            await node.engine.add_presence(channel, self.client_id, request.info)
        if options.join_leave:
            await node.join_leave("join", channel, request.info)
        if request.since is not None:
            recovery = await node.engine.recover(channel, request.since, limit=request.limit or None)
            return SubscribeResult(position=recovery.position, publications=recovery.publications)
        if options.positioned or options.recoverable:
            top = (await node.engine.history(channel, limit=0)).position
            return SubscribeResult(position=top)
        return SubscribeResult()

    async def _undo(self, event: Unsubscribed) -> None:
        lock = self._in_order(event.channel)
        async with lock:
            await self._tear_down(event)
        self._release_order(event.channel, lock)

    async def _tear_down(self, event: Unsubscribed) -> None:
        node, channel = self.node, event.channel
        left = self._held.get(channel, 0) - 1
        if left > 0:
            # A newer subscription to the channel holds the group and the presence entry.
            self._held[channel] = left
            return
        self._held.pop(channel, None)
        try:
            await node.layer.group_discard(group_for_channel(channel), self.channel_name)
            if event.presence:
                await node.engine.remove_presence(channel, self.client_id)
            if event.join_leave:
                await node.join_leave("leave", channel, event.info)
        except Exception as exc:
            logger.warning("hub client %s: undoing the subscription to %r failed: %r",
                           self.client_id, channel, exc)

    async def _publish(self, request: PublishRequest) -> ClientError | None:
        async with self._publishing:  # tasks reach it in arrival order; the lock is first come, first served
            return await self._publish_in_turn(request)

    async def _publish_in_turn(self, request: PublishRequest) -> ClientError | None:
        options = self.node.config.channel.options(request.channel)
        namespace = options.namespace if options is not None else ""
        data = request.data
        checks = hooks.publish.get(namespace, ())
        if checks:
            value = _decoded(data)
            changed = False
            for check in checks:
                verdict = await call(check, self.core.user, request.channel, value)
                if verdict is False:
                    logger.debug("hub client %s (user %r): publish to %r denied by %s",
                                self.client_id, self.core.user, request.channel,
                                getattr(check, "__qualname__", check))
                    return codes.ERROR_PERMISSION_DENIED
                if verdict is not True and verdict is not None:
                    value, changed = verdict, True
            if changed:
                data = json.dumps(value, separators=(",", ":")).encode()
        await self.node.engine.publish(
            request.channel, data, history_size=request.history_size,
            history_ttl=request.history_ttl, info=request.info)
        return None

    async def _rpc(self, request: RPCRequest) -> bytes | None | ClientError:
        if not hooks.rpc:
            return codes.ERROR_NOT_AVAILABLE
        handler = hooks.rpc.get(request.method)
        if handler is None:
            return codes.ERROR_METHOD_NOT_FOUND
        result = await call(handler, self.core.user, _decoded(request.data))
        return None if result is None else json.dumps(result, separators=(",", ":")).encode()

    async def _refresh_presence(self, event: PresenceDue) -> None:
        for channel, info in event.channels:
            try:
                await self.node.engine.refresh_presence(channel, {self.client_id: info})
            except Exception as exc:
                logger.warning("hub client %s: presence refresh of %r failed: %r",
                               self.client_id, channel, exc)

    # Layer messages

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        core = self.core
        if kind == PUBLICATION_MESSAGE_TYPE:
            channel, pub = publication_from_message(message)
            events = core.push_publication(channel, pub, epoch=pub.epoch,
                                           line=_line(message, channel, pub))
        elif kind == JOIN_MESSAGE_TYPE:
            events = core.push_join(message["channel"], info_from_list(message["info"]))
        elif kind == LEAVE_MESSAGE_TYPE:
            events = core.push_leave(message["channel"], info_from_list(message["info"]))
        elif kind == CONTROL_MESSAGE_TYPE:
            events = self._control(message)
        else:
            return
        self._handle(events)

    def _control(self, message: dict[str, Any]) -> list[Event]:
        client = message.get("client")
        if client and client != self.client_id:
            return []
        op = message.get("op")
        if op == "disconnect":
            return self.core.disconnect(Disconnect(int(message["code"]), str(message["reason"])))
        if op == "subscribe":
            return self.core.subscribe(message["channel"], time.time())
        if op == "unsubscribe":
            return self.core.unsubscribe(message["channel"])
        if op == "refresh":
            return self.core.refresh(int(message.get("expire_at") or 0), time.time())
        return []


def _line(message: dict[str, Any], channel: str, pub: Any) -> str:
    """Return the push line of a publication, encoded once per fan-out when the fan-out shares a cache."""
    cache = message.get("line_cache")
    if isinstance(cache, list):
        if not cache:
            cache.append(encode_publication_push(channel, pub))
        line: str = cache[0]
        return line
    return encode_publication_push(channel, pub)


def _decoded(data: bytes | None) -> Any:
    return None if not data else json.loads(data)


async def serve_hub(socket: WebSocket, node: Node | None = None) -> None:
    """Serve one hub connection on an accepted-or-not ``socket`` (the ``connection/websocket`` view)."""
    node = node or get_node()
    scope = socket.scope
    allowed = node.config.client.allowed_origins
    refused = origin_refusal(scope, allowed or None)
    if refused is not None:
        logger.warning("hub handshake refused: %s", refused)
        await socket.close(1008, "origin not allowed")
        return
    subprotocols = scope.get("subprotocols") or ()
    query = scope.get("query_string", b"").decode("latin-1")
    if wants_protobuf(query, subprotocols):
        await socket.accept("centrifuge-protobuf" if "centrifuge-protobuf" in subprotocols else None)
        closing = codes.DISCONNECT_INAPPROPRIATE_PROTOCOL
        logger.info("hub client asked for Protobuf, which this hub does not speak; closed with %s",
                    closing)
        await socket.close(closing.code, closing.reason)
        return
    await socket.accept()
    await HubConnection(node, socket).run()
