"""The one pub/sub connection a process holds per Redis server.

The subscriber keeps a set of wanted topics subscribed across reconnects:
a supervisor task connects with jittered exponential backoff, a reader task
dispatches messages, and a writer task sends (UN)SUBSCRIBE batches and PINGs
an idle connection, so a silently dead link (no RST) is noticed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool

from .config import close_pool
from .shards import Health

logger = logging.getLogger("wsviews.layers.redis")

# Redis accepts any number of channels per SUBSCRIBE; batches keep each write small.
SUBSCRIBE_BATCH = 1000


class StaleConnection(ConnectionError):
    """The server did not answer a PING in time."""


class Subscriber:
    """Keep one connection subscribed to the wanted topics, whatever happens to Redis."""

    ping_interval = 5.0
    # Connecting includes a handshake; a server that accepts but never answers
    # (frozen, half-open link) must not hold the subscriber forever.
    connect_timeout = 10.0
    backoff_min = 0.05
    # Small enough that a process hears broadcasts again within ~1 s of Redis returning.
    backoff_max = 1.0

    def __init__(
        self,
        pool: ConnectionPool,
        health: Health,
        on_message: Callable[[bytes, bytes], None],
        on_subscribed: Callable[[bytes], None],
        on_state: Callable[[bool], None],
        stats: dict[str, int],
    ) -> None:
        self.pool = pool
        self.health = health
        self.on_message = on_message
        self.on_subscribed = on_subscribed
        self.on_state = on_state
        self.stats = stats
        self.wanted: set[bytes] = set()
        # Topics whose last command on this connection was SUBSCRIBE / confirmed by Redis.
        self._sent: set[bytes] = set()
        self._active: set[bytes] = set()
        self._unconfirmed: dict[bytes, int] = {}
        self._to_subscribe: set[bytes] = set()
        self._to_unsubscribe: set[bytes] = set()
        self._waiters: dict[bytes, asyncio.Future[None]] = {}
        self._conn: AbstractConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._last_rx = 0.0
        self._was_connected = False
        #: Set once the first connection attempt has succeeded or failed.
        self.attempted = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def is_active(self, topic: bytes) -> bool:
        """Return True if Redis confirmed ``topic`` on the current connection."""
        return topic in self._active

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"wsviews redis subscriber {self.health.address}"
            )

    # Subscriptions

    def subscribe(self, topic: bytes) -> asyncio.Future[None] | None:
        """Want ``topic``; return a future resolved once it is subscribed, or None if it is.

        The future is also resolved (without error) when the connection is
        lost: the topic stays wanted and is subscribed again on reconnect.
        """
        self.wanted.add(topic)
        self._to_unsubscribe.discard(topic)
        if topic in self._active:
            return None
        if self._conn is not None and topic not in self._sent:
            self._to_subscribe.add(topic)
            self._kick.set()
        waiter = self._waiters.get(topic)
        if waiter is None:
            waiter = self._waiters[topic] = asyncio.get_running_loop().create_future()
        return waiter

    def unsubscribe(self, topic: bytes) -> None:
        """Stop wanting ``topic``."""
        self.wanted.discard(topic)
        self._to_subscribe.discard(topic)
        self._release(topic)
        self._active.discard(topic)
        if topic in self._sent:
            self._sent.discard(topic)
            self._to_unsubscribe.add(topic)
            self._kick.set()

    def _release(self, topic: bytes) -> None:
        waiter = self._waiters.pop(topic, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _confirmed(self, topic: bytes) -> None:
        pending = self._unconfirmed.get(topic, 0) - 1
        if pending > 0:
            # A later SUBSCRIBE for it is still in flight (it was unsubscribed meanwhile).
            self._unconfirmed[topic] = pending
            return
        self._unconfirmed.pop(topic, None)
        if topic not in self._sent:
            return
        self._active.add(topic)
        self._release(topic)
        self.on_subscribed(topic)

    # Connection lifecycle

    async def _supervise(self) -> None:
        delay = self.backoff_min
        while True:
            conn = None
            try:
                conn = self.pool.make_connection()  # type: ignore[no-untyped-call]  # untyped in redis-py
                async with asyncio.timeout(self.connect_timeout):
                    await conn.connect()
                self._connected(conn)
                delay = self.backoff_min
                await self._serve(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._disconnected(exc)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.disconnect(nowait=True)
            # Full jitter keeps a fleet of processes from reconnecting in lockstep.
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self.backoff_max)

    def _connected(self, conn: AbstractConnection) -> None:
        self._conn = conn
        self._sent = set()
        self._active = set()
        self._unconfirmed = {}
        self._to_subscribe = set(self.wanted)
        self._to_unsubscribe = set()
        self._last_rx = asyncio.get_running_loop().time()
        self.attempted.set()
        self.health.ok()
        if self._was_connected:
            self.stats["reconnects"] += 1
            self.on_state(True)
        self._was_connected = True
        self._kick.set()

    def _disconnected(self, exc: BaseException) -> None:
        was_connected = self._conn is not None
        self._conn = None
        self._sent = set()
        self._active = set()
        self._unconfirmed = {}
        for topic in list(self._waiters):
            self._release(topic)
        self.attempted.set()
        self.health.failed(exc)
        if was_connected:
            self.on_state(False)

    async def _serve(self, conn: AbstractConnection) -> None:
        """Read and write on ``conn`` until either side fails; raise what failed."""
        reader = asyncio.ensure_future(self._read(conn))
        writer = asyncio.ensure_future(self._write(conn))
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            writer.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc is not None:
                raise exc
        raise ConnectionError("subscriber stopped")

    async def _read(self, conn: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            response: Any = await conn.read_response(timeout=math.inf, disconnect_on_error=False)
            self._last_rx = loop.time()
            # Anything else (pong, unsubscribe confirmations) only proves liveness.
            if type(response) is list and response:
                kind = response[0]
                if kind == b"message":
                    try:
                        self.on_message(response[1], response[2])
                    except Exception:
                        logger.exception("Dispatching a message from Redis failed")
                elif kind == b"subscribe":
                    self._confirmed(response[1])

    async def _write(self, conn: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        ping_sent: float | None = None
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ping_interval):
                    await self._kick.wait()
            self._kick.clear()
            await self._flush(conn)
            now = loop.time()
            if ping_sent is not None:
                if self._last_rx >= ping_sent:
                    ping_sent = None
                elif now - ping_sent > self.ping_interval:
                    raise StaleConnection(
                        f"no answer to PING within {self.ping_interval:.0f} s"
                    )
            if ping_sent is None and now - self._last_rx >= self.ping_interval:
                ping_sent = now
                await conn.send_command("PING", check_health=False)

    async def _flush(self, conn: AbstractConnection) -> None:
        if self._to_unsubscribe:
            topics = list(self._to_unsubscribe)
            self._to_unsubscribe.clear()
            await conn.send_command("UNSUBSCRIBE", *topics, check_health=False)
        if self._to_subscribe:
            topics = list(self._to_subscribe)
            self._to_subscribe.clear()
            # Mark before awaiting the write: an unsubscribe() meanwhile must follow it.
            for topic in topics:
                self._sent.add(topic)
                self._unconfirmed[topic] = self._unconfirmed.get(topic, 0) + 1
            for i in range(0, len(topics), SUBSCRIBE_BATCH):
                await conn.send_command(
                    "SUBSCRIBE", *topics[i:i + SUBSCRIBE_BATCH], check_health=False
                )

    async def close(self) -> None:
        """Stop the tasks and close the connection; wanted topics are forgotten."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)
        for topic in list(self._waiters):
            self._release(topic)
        self.wanted.clear()
        self._active.clear()
        self._sent.clear()
        with contextlib.suppress(Exception):
            await close_pool(self.pool)
