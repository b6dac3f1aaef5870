"""A stand-in for the Redis channel layer's two script methods, on a real Redis.

``ScriptRunner`` runs the engine's scripts with EVALSHA exactly as the layer
does (``ARGV = [topic, envelope, *args]`` for group sends, the envelope
encoded by the layer's own codec). ``Receiver`` plays the receiving
processes: a raw pub/sub subscription to the group topics that decodes the
stamp ``"\\0<offset>:<epoch>:"`` and hands each publication on, so tests see
exactly what the script PUBLISHed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from wsviews.hub.engine import Publication, publication_from_message
from wsviews.layers import ChannelLayerUnavailable
from wsviews.layers.redis.codec import GROUP, Codec
from wsviews.layers.redis.schema import Schema


class ScriptRunner:
    """Run scripts on one Redis; count the calls (each is one round trip)."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.schema = Schema(prefix)
        self.codec = Codec()
        self.calls = 0
        self._shas: dict[str, str] = {}

    async def group_send_scripted(
        self,
        group: str,
        message: dict[str, Any],
        script_source: str,
        keys: Sequence[str],
        args: Sequence[Any],
    ) -> Any:
        envelope = self.codec.pack(GROUP, group, message)
        return await self._eval(script_source, keys, [self.schema.group_topic(group), envelope, *args])

    async def run_script(
        self, hash_name: str, script_source: str, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        return await self._eval(script_source, keys, args)

    async def _eval(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        self.calls += 1
        sha = self._shas.get(source)
        if sha is None:
            sha = self._shas[source] = hashlib.sha1(source.encode()).hexdigest()
        try:
            try:
                return await self.client.evalsha(sha, len(keys), *keys, *args)
            except redis_errors.NoScriptError:
                return await self.client.eval(source, len(keys), *keys, *args)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            raise ChannelLayerUnavailable(f"Redis unreachable: {exc}") from exc


def parse_payload(codec: Codec, payload: bytes) -> dict[str, Any]:
    """Return the message of a group PUBLISH, with ``offset`` and ``epoch`` if it was stamped."""
    stamp: tuple[int, str] | None = None
    if payload.startswith(b"\0"):
        offset, epoch, payload = payload[1:].split(b":", 2)
        stamp = int(offset), epoch.decode()
    _, _, message = codec.unpack(payload)
    if stamp is not None:
        message["offset"], message["epoch"] = stamp
    assert isinstance(message, dict)
    return message


class Receiver:
    """Everything PUBLISHed to the group topics of a prefix, decoded as a receiving process would."""

    def __init__(self, client: Redis, prefix: str, deliver: Callable[[str, Publication], None]) -> None:
        self.client = client
        self.pattern = Schema(prefix).group_topic("*")
        self.deliver = deliver
        self.codec = Codec()
        self.payloads: list[bytes] = []
        self.lost = False
        self._pubsub = client.pubsub()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._pubsub.psubscribe(self.pattern)
        async with asyncio.timeout(5):
            while True:
                reply = await self._pubsub.get_message(timeout=1)
                if reply and reply["type"] == "psubscribe":
                    break
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            await self._receive()
        except redis_errors.ConnectionError:
            self.lost = True  # Redis went away (a test stopped it): nothing more arrives

    async def _receive(self) -> None:
        while True:
            reply = await self._pubsub.get_message(timeout=None)
            if reply is None or reply["type"] != "pmessage":
                continue
            self.payloads.append(reply["data"])
            self.deliver(*publication_from_message(parse_payload(self.codec, reply["data"])))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._pubsub.aclose()
