"""The pub/sub side of one process: its subscriptions, on the one event loop that owns them.

A process holds one pub/sub connection per Redis server (a
:class:`~.subscriber.Subscriber`), all on one event loop: the first that
needs them, normally the server's. If that loop closes (a loop of
``async_to_sync``, a test's), the next loop that needs pub/sub takes over
and subscribes everything again. Messages of wanted topics are handed to
``on_message(topic, route, payload)``, where ``route`` is what the topic was
wanted for (a group name, or None for the process's inbox).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from .config import make_pool
from .shards import Shards
from .subscriber import Subscriber

Route = str | None


class PubSub:
    """Subscriptions of this process, kept across reconnects, owned by one event loop."""

    #: Seconds a subscription waits for Redis to confirm it.
    subscribe_timeout = 10.0

    def __init__(
        self,
        shards: Shards,
        stats: dict[str, int],
        on_message: Callable[[bytes, Route, bytes], None],
        on_subscribed: Callable[[bytes], None],
        on_state: Callable[[bool], None],
        on_start: Callable[[asyncio.AbstractEventLoop], None],
    ) -> None:
        self._shards = shards
        self._stats = stats
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._on_state = on_state
        self._on_start = on_start
        #: The event loop pub/sub runs on, if any.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.subscribers: dict[int, Subscriber] = {}
        self.routes: dict[bytes, Route] = {}

    def owns(self, strict: bool) -> bool:
        """Return True if pub/sub may run on this loop, taking it over if its loop is gone.

        With ``strict``, raise RuntimeError instead of returning False.
        """
        loop = asyncio.get_running_loop()
        if self.loop is loop:
            return True
        if self.loop is not None and not self.loop.is_closed():
            if strict:
                raise RuntimeError(
                    "This RedisChannelLayer receives on another event loop, which is still "
                    "open: receive(), attach() and group_add() of this process's channels must "
                    "run on that loop (from sync code, use async_to_sync inside the server)."
                )
            return False
        self.subscribers = {}
        self.routes = {}
        self.loop = loop
        self._on_start(loop)
        return True

    def on_this_loop(self) -> bool:
        """Return True if pub/sub runs on the running event loop."""
        try:
            return self.loop is asyncio.get_running_loop()
        except RuntimeError:
            return False

    def _subscriber(self, index: int) -> Subscriber:
        subscriber = self.subscribers.get(index)
        if subscriber is None:
            pool = make_pool(self._shards[index].host, "subscriber")
            subscriber = self.subscribers[index] = Subscriber(
                pool, self._shards[index].health, self._dispatch, self._on_subscribed,
                self._on_state, self._stats,
            )
            subscriber.start()
        return subscriber

    def _dispatch(self, topic: bytes, payload: bytes) -> None:
        routes = self.routes
        if topic in routes:  # else unsubscribed while the message was on its way
            self._on_message(topic, routes[topic], payload)

    def want(self, index: int, topic: bytes, route: Route) -> asyncio.Future[None] | None:
        """Subscribe ``topic`` on server ``index`` (on this loop, which must own pub/sub).

        Return a future resolved once Redis confirms, or None if it has.
        """
        self.routes[topic] = route
        return self._subscriber(index).subscribe(topic)

    def unwant(self, index: int, topic: bytes) -> None:
        """Unsubscribe ``topic``, from any thread or loop."""
        self.routes.pop(topic, None)
        subscriber = self.subscribers.get(index)
        loop = self.loop
        if subscriber is None or loop is None or loop.is_closed():
            return
        if self.on_this_loop():
            subscriber.unsubscribe(topic)
        else:
            # The subscriber's state belongs to its loop's thread.
            loop.call_soon_threadsafe(subscriber.unsubscribe, topic)

    async def subscribed(self, index: int, topic: bytes, route: Route) -> None:
        """Subscribe ``topic``; wait for Redis to confirm unless Redis is known to be down."""
        waiter = self.want(index, topic, route)
        subscriber = self.subscribers[index]
        if waiter is None or not (subscriber.connected or not subscriber.attempted.is_set()):
            return
        # Shielded: one waiter is shared by every caller wanting this topic.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.subscribe_timeout):
                await asyncio.shield(waiter)

    def is_active(self, index: int, topic: bytes) -> bool:
        """Return True if Redis confirmed ``topic`` on the current connection, on this loop."""
        subscriber = self.subscribers.get(index)
        return subscriber is not None and subscriber.is_active(topic) and self.on_this_loop()

    async def stop(self) -> None:
        """Close every pub/sub connection; the next owner subscribes again."""
        subscribers, self.subscribers = self.subscribers, {}
        self.loop = None
        self.routes = {}
        for subscriber in subscribers.values():
            await subscriber.close()
