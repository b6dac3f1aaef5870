"""A minimal asyncio shell around HubProtocol, for tests against the real SDKs.

It serves the core over a ``websockets`` server with a trivial in-memory
engine (history streams, presence, fan-out) and answers every request inline.
It exists to prove the core against centrifuge-js / centrifuge-python before
the real shell is built; it is not that shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wsviews.hub import codes
from wsviews.hub.commands import encode_publication_push
from wsviews.hub.config import HubConfig
from wsviews.hub.events import (
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
    RPCRequest,
    SubscribeRequest,
    SubscribeResult,
    SubscriptionRefreshed,
    Unsubscribed,
)
from wsviews.hub.protocol import HubProtocol, Verifiers
from wsviews.hub.records import (
    ClientInfo,
    HistoryResult,
    PresenceStats,
    Publication,
    StreamPosition,
)


@dataclass
class _Stream:
    epoch: str
    offset: int = 0
    publications: list[Publication] = field(default_factory=list)


class MemoryEngine:
    """History streams and presence in dicts; publications fan out to local connections."""

    def __init__(self) -> None:
        self.streams: dict[str, _Stream] = {}
        self.presence: dict[str, dict[str, ClientInfo]] = defaultdict(dict)
        self.members: dict[str, set[Served]] = defaultdict(set)
        self.messages: list[bytes | None] = []

    def stream(self, channel: str) -> _Stream:
        if channel not in self.streams:
            self.streams[channel] = _Stream(uuid.uuid4().hex[:8])
        return self.streams[channel]

    def top(self, channel: str) -> StreamPosition:
        stream = self.stream(channel)
        return StreamPosition(stream.offset, stream.epoch)

    def history(self, channel: str, since: StreamPosition | None, limit: int,
                reverse: bool = False) -> HistoryResult:
        stream = self.stream(channel)
        pubs = list(stream.publications)
        if since is not None:
            pubs = [p for p in pubs if (p.offset < since.offset if reverse else p.offset > since.offset)]
        if reverse:
            pubs.reverse()
        if limit >= 0:
            pubs = pubs[:limit]
        return HistoryResult(tuple(pubs), StreamPosition(stream.offset, stream.epoch))

    def publish(self, channel: str, data: bytes, info: ClientInfo | None = None,
                history_size: int = 0) -> Publication:
        epoch = ""
        offset = 0
        if history_size:
            stream = self.stream(channel)
            stream.offset += 1
            offset, epoch = stream.offset, stream.epoch
        pub = Publication(data, offset=offset, info=info, time=int(time.time() * 1000))
        if history_size:
            stream.publications.append(pub)
            del stream.publications[:-history_size]
        line = encode_publication_push(channel, pub)
        for member in list(self.members[channel]):
            member.deliver(member.core.push_publication(channel, pub, epoch=epoch, line=line))
        return pub

    def broadcast_presence(self, channel: str, kind: str, info: ClientInfo) -> None:
        for member in list(self.members[channel]):
            if kind == "join":
                member.deliver(member.core.push_join(channel, info))
            else:
                member.deliver(member.core.push_leave(channel, info))


class Served:
    """One websocket connection driven through HubProtocol."""

    def __init__(self, hub: DriverServer, ws: ServerConnection) -> None:
        self.hub = hub
        self.ws = ws
        self.core = HubProtocol(hub.config, client_id=uuid.uuid4().hex, now=time.time(),
                                verifiers=hub.verifiers, server_version="test")
        self._write_lock = asyncio.Lock()
        self._closing: codes.Disconnect | None = None

    async def run(self) -> None:
        self.hub.connections.add(self)
        try:
            while not self.core.closed:
                deadline = self.core.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - time.time())
                try:
                    frame = await asyncio.wait_for(self.ws.recv(), timeout)
                except TimeoutError:
                    self.deliver(self.core.tick(time.time()))
                except ConnectionClosed:
                    self.deliver(self.core.connection_lost())
                else:
                    self.deliver(self.core.receive(frame, time.time()))
                await self.flush()
        finally:
            self.hub.connections.discard(self)
            await self.flush()
            if self._closing is not None and self._closing.code != 3000:
                await self.ws.close(self._closing.code, self._closing.reason)

    def deliver(self, events: list[Event]) -> None:
        queue = list(events)
        while queue:
            queue += self.resolve(queue.pop(0))
        asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        async with self._write_lock:
            for frame in self.core.data_to_send():
                with contextlib.suppress(ConnectionClosed):
                    await self.ws.send(frame)

    def _setup(self, request: SubscribeRequest) -> SubscribeResult:
        engine = self.hub.engine
        engine.members[request.channel].add(self)
        if request.options.presence:
            engine.presence[request.channel][self.core.client_id] = request.info
        if request.options.join_leave:
            engine.broadcast_presence(request.channel, "join", request.info)
        if request.since is not None:
            history = engine.history(request.channel, request.since, request.limit)
            return SubscribeResult(position=history.position, publications=history.publications)
        if request.options.positioned:
            return SubscribeResult(position=engine.top(request.channel))
        return SubscribeResult()

    def resolve(self, event: Event) -> list[Event]:
        core, engine, now = self.core, self.hub.engine, time.time()
        self.hub.log.append(event)
        if isinstance(event, ConnectRequest):
            return core.reply_connect(event, ConnectResult(
                subscriptions={r.channel: self._setup(r) for r in event.subscriptions}), now)
        if isinstance(event, SubscribeRequest):
            return core.reply_subscribe(event, self._setup(event), now)
        if isinstance(event, PublishRequest):
            engine.publish(event.channel, event.data, event.info, event.history_size)
            return core.reply_publish(event)
        if isinstance(event, PresenceRequest):
            return core.reply_presence(event, engine.presence[event.channel])
        if isinstance(event, PresenceStatsRequest):
            present = engine.presence[event.channel]
            return core.reply_presence_stats(event, PresenceStats(
                len(present), len({info.user for info in present.values()})))
        if isinstance(event, HistoryRequest):
            return core.reply_history(event, engine.history(
                event.channel, event.since, event.limit, event.reverse))
        if isinstance(event, RPCRequest):
            if event.method == "echo":
                return core.reply_rpc(event, event.data)
            if event.method == "kick":
                return core.reply_rpc(event) + core.disconnect(codes.DISCONNECT_FORCE_NO_RECONNECT)
            return core.reply_error(event, codes.ERROR_METHOD_NOT_FOUND)
        if isinstance(event, PositionCheckRequest):
            return core.reply_position(event, engine.top(event.channel))
        if isinstance(event, MessageReceived):
            engine.messages.append(event.data)
        elif isinstance(event, Unsubscribed):
            engine.members[event.channel].discard(self)
            if event.presence:
                engine.presence[event.channel].pop(self.core.client_id, None)
            if event.join_leave:
                engine.broadcast_presence(event.channel, "leave", event.info)
        elif isinstance(event, Closed):
            self._closing = event.disconnect
        elif isinstance(event, (PresenceDue, Refreshed, SubscriptionRefreshed)):
            pass
        return []


class DriverServer:
    """The websocket server: ``async with DriverServer(config) as hub: hub.url``."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.verifiers = Verifiers.from_config(config)
        self.engine = MemoryEngine()
        self.connections: set[Served] = set()
        self.log: list[Event] = []
        self.url = ""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[DriverServer]:
        async def handler(ws: ServerConnection) -> None:
            await Served(self, ws).run()

        async with serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}/connection/websocket"
            yield self

    def disconnect_all(self, disconnect: codes.Disconnect) -> None:
        for served in list(self.connections):
            served.deliver(served.core.disconnect(disconnect))
