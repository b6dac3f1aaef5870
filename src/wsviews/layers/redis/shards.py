"""The Redis servers of a layer: which one owns a name, their clients per event loop, and running commands.

Every command of the layer goes through :meth:`Shards.run`, which bounds it
in time and maps "Redis cannot be reached" to :class:`ChannelLayerUnavailable`,
logging one warning per outage (:class:`Health`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from ..base import ChannelLayerUnavailable
from .config import Role, close_pool, describe_host, make_pool, operation_timeout
from .loops import LoopCallback, call_before_close

logger = logging.getLogger("wsviews.layers.redis")

T = TypeVar("T")

#: Failures that mean "Redis cannot be reached right now", as opposed to bugs.
UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    OSError,
    asyncio.TimeoutError,
)


class Health:
    """Whether one Redis server is reachable; log each change once, not each failure."""

    def __init__(self, address: str, stats: dict[str, int]) -> None:
        self.address = address
        self.stats = stats
        self.up = True
        self.ever_up = False
        self.down_since = 0.0

    def failed(self, exc: BaseException) -> None:
        """Record a failure; the first one of an outage logs a warning."""
        if not self.up:
            return
        self.up = False
        self.down_since = time.monotonic()
        self.stats["outages"] += 1
        reason = f"{type(exc).__name__}: {exc}"
        if self.ever_up:
            logger.warning(
                "Lost Redis at %s (%s); reconnecting with backoff. Until it is back, send() "
                "and group_send() raise ChannelLayerUnavailable and this process misses "
                "group messages.", self.address, reason,
            )
        else:
            logger.warning(
                "Cannot reach Redis at %s (%s); retrying with backoff. Check that Redis runs "
                "and that the layer's 'hosts' CONFIG points at it.", self.address, reason,
            )

    def ok(self) -> None:
        """Record a success; the first one after an outage logs the recovery."""
        first = not self.ever_up
        self.ever_up = True
        if self.up:
            return
        self.up = True
        if first:
            logger.info("Reached Redis at %s", self.address)
        else:
            logger.info("Redis at %s is back after %.1f s", self.address,
                        time.monotonic() - self.down_since)


class Shard:
    """One Redis server of ``hosts``: its options and its reachability."""

    def __init__(self, host: dict[str, Any], stats: dict[str, int], blocking_timeout: float) -> None:
        self.host = host
        self.address = describe_host(host)
        self.health = Health(self.address, stats)
        self.timeouts: dict[Role, float | None] = {
            role: operation_timeout(host, role, blocking_timeout)
            for role in ("commands", "blocking")
        }


class Script:
    """A Lua script run by SHA, sent whole the first time a server does not know it."""

    __slots__ = ("source", "sha")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, client: Redis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except redis_errors.NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


class LoopClients:
    """What the layer holds on one event loop (redis-py connections belong to a loop)."""

    def __init__(self) -> None:
        self.clients: dict[tuple[int, Role], Redis] = {}
        #: Per-loop state of other parts of the layer, by name (pop locks, write batches).
        self.state: dict[str, Any] = {}

    async def aclose(self) -> None:
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
                await close_pool(client.connection_pool)
        self.clients.clear()
        self.state.clear()


class Shards:
    """The servers of ``hosts``, and the clients of each event loop that uses them."""

    def __init__(
        self,
        hosts: list[dict[str, Any]],
        stats: dict[str, int],
        blocking_timeout: float,
        on_loop_close: LoopCallback,
    ) -> None:
        self.stats = stats
        self.shards = [Shard(host, stats, blocking_timeout) for host in hosts]
        self._loops: dict[asyncio.AbstractEventLoop, LoopClients] = {}
        self._on_loop_close = on_loop_close
        self._scripts: dict[str, Script] = {}

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, index: int) -> Shard:
        return self.shards[index]

    def index(self, name: str) -> int:
        """Return the index of the server that owns ``name`` (a group, channel or process id)."""
        size = len(self.shards)
        if size == 1:
            return 0
        # Not channels_redis' CRC32 ring: it sends names that differ only at
        # the end ("room1", "room2"...) to the same server.
        digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % size

    def script(self, source: str) -> Script:
        """Return the Script of ``source``, hashed once per source."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = Script(source)
        return script

    # Clients per event loop

    def loop_clients(self) -> LoopClients:
        """Return the clients of the running event loop, watching the loop for its closing."""
        loop = asyncio.get_running_loop()
        clients = self._loops.get(loop)
        if clients is None:
            for other in [other for other in self._loops if other.is_closed()]:
                del self._loops[other]
            clients = self._loops[loop] = LoopClients()
            call_before_close(loop, self._on_loop_close)
        return clients

    def has_loop(self, loop: asyncio.AbstractEventLoop) -> bool:
        return loop in self._loops

    def loops(self) -> list[asyncio.AbstractEventLoop]:
        return list(self._loops)

    def client(self, index: int, role: Role) -> Redis:
        clients = self.loop_clients()
        client = clients.clients.get((index, role))
        if client is None:
            pool = make_pool(self.shards[index].host, role)
            client = clients.clients[(index, role)] = Redis(connection_pool=pool)
        return client

    def forget_loop(self, loop: asyncio.AbstractEventLoop) -> LoopClients | None:
        """Stop tracking ``loop``; return its clients for the caller to close."""
        return self._loops.pop(loop, None)

    # Commands

    async def run(
        self,
        index: int,
        operation: Callable[[Redis], Awaitable[T]],
        role: Role = "commands",
        doing: str = "send to",
    ) -> T:
        """Run ``operation`` on server ``index``; raise ChannelLayerUnavailable if it cannot be reached."""
        shard = self.shards[index]
        try:
            async with asyncio.timeout(shard.timeouts[role]):
                result = await operation(self.client(index, role))
        except UNAVAILABLE as exc:
            raise self.unavailable(index, exc, doing) from exc
        if not shard.health.up or not shard.health.ever_up:
            shard.health.ok()
        return result

    def unavailable(self, index: int, exc: BaseException, doing: str) -> ChannelLayerUnavailable:
        """Record that server ``index`` failed with ``exc``; return the error to raise."""
        shard = self.shards[index]
        shard.health.failed(exc)
        if doing == "send to":
            self.stats["failed"] += 1
        return ChannelLayerUnavailable(
            f"Cannot {doing} Redis at {shard.address}: {type(exc).__name__}: {exc}. "
            "Nothing was sent; the layer reconnects by itself, so retry later."
        )

    async def run_script(
        self, index: int, source: str, keys: Sequence[Any], args: Sequence[Any],
        doing: str = "send to",
    ) -> Any:
        """Run the Lua script ``source`` on server ``index`` (EVALSHA, then EVAL if it is unknown)."""
        script = self.script(source)
        return await self.run(index, lambda r: script(r, keys, args), doing=doing)
