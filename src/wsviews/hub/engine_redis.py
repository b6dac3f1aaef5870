"""The Redis engine: history in Redis Streams, presence in hashes, for many processes.

Live delivery between processes is the channel layer's: a hub channel's
subscribers are members of the layer group ``group_for_channel(channel)``,
and a publication is a group message. To keep history and live delivery in
one atomic step, a publish runs one Lua script through the layer's
``group_send_scripted``: it takes the next offset, appends to the stream and
PUBLISHes the group message stamped with its position, which every
receiving process delivers with ``message["offset"]`` and
``message["epoch"]`` set. History reads and presence run one script each
through ``run_script``. Each call is one round trip; failures raise the
runner's error (the layer's ``ChannelLayerUnavailable``).

Keys and scripts are in :mod:`.engine_redis_scripts`. The runner must hand
back Redis replies as bytes (``decode_responses=False``, as the layer's
clients are).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgpack

from . import engine_redis_scripts as lua
from .engine import (
    DEFAULT_HISTORY_META_TTL,
    DEFAULT_IDEMPOTENT_RESULT_TTL,
    DEFAULT_PRESENCE_TTL,
    MAX_OFFSET,
    ClientInfo,
    Engine,
    HistoryResult,
    PresenceStats,
    Publication,
    StreamPosition,
    check_history_limit,
    check_position,
    check_publish,
    group_for_channel,
    info_from_list,
    publication_message,
)
from .engine_redis_scripts import HubSchema
from .recovery import Recovery, recover

__all__ = ["RedisEngine", "ScriptRunner"]


class ScriptRunner(Protocol):
    """What the Redis engine needs from the channel layer: two ways to run a Lua script."""

    async def group_send_scripted(
        self,
        group: str,
        message: dict[str, Any],
        script_source: str,
        keys: Sequence[str],
        args: Sequence[Any],
    ) -> Any:
        """Run ``script_source`` on the shard of ``group`` with ``ARGV = [topic, envelope, *args]``.

        ``topic`` is the group's pub/sub topic and ``envelope`` the encoded
        ``message``. The script PUBLISHes the envelope as is, or prefixed
        with ``"\\0<offset>:<epoch>:"``, and then every receiving process
        delivers the message with ``offset`` (int) and ``epoch`` (str) set.
        Return what the script returns.
        """
        ...

    async def run_script(
        self, hash_name: str, script_source: str, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """Run ``script_source`` on the shard owning ``hash_name``; return what it returns."""
        ...


def _ms(seconds: float) -> int:
    """Return ``seconds`` in whole milliseconds, rounded up so that nothing expires early."""
    return max(1, math.ceil(seconds * 1000))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _stream_entry(data: bytes, info: ClientInfo | None, tags: Mapping[str, str] | None) -> bytes:
    """Return a stream entry: ``<n>:``, n bytes of packed info and tags (0 if neither), the data."""
    if info is None and tags is None:
        return b"0:" + data
    packed = msgpack.packb(
        [None if info is None else [info.user, info.client, info.conn_info, info.chan_info],
         None if tags is None else dict(tags)], use_bin_type=True
    )
    return b"%d:%s%s" % (len(packed), packed, data)


def _entry_publication(entry_id: bytes, entry: bytes, epoch: str) -> Publication:
    """Return the publication stored as ``entry`` under the stream id ``<offset>-0``."""
    length, _, rest = entry.partition(b":")
    info: ClientInfo | None = None
    tags: dict[str, str] | None = None
    n = int(length)
    if n:
        packed_info, tags = msgpack.unpackb(rest[:n], raw=False)
        info = None if packed_info is None else info_from_list(packed_info)
        rest = rest[n:]
    return Publication(rest, int(entry_id.partition(b"-")[0]), info, tags, epoch=epoch)


def _presence_entry(info: ClientInfo) -> bytes:
    """Return a presence hash value: the user, length-prefixed for Lua, then the packed info."""
    user = info.user.encode()
    rest = b""
    if info.conn_info is not None or info.chan_info is not None:
        rest = msgpack.packb([info.conn_info, info.chan_info], use_bin_type=True)
    return b"%d:%s%s" % (len(user), user, rest)


def _presence_info(client: bytes, entry: bytes) -> ClientInfo:
    length, _, rest = entry.partition(b":")
    n = int(length)
    user, packed = rest[:n], rest[n:]
    conn_info = chan_info = None
    if packed:
        conn_info, chan_info = msgpack.unpackb(packed, raw=False)
    return ClientInfo(user.decode(), client.decode(), conn_info, chan_info)


def new_epoch() -> str:
    """Return a fresh random epoch; the scripts use it only when a stream has none."""
    return secrets.token_hex(6)


class RedisEngine(Engine):
    """History, recovery and presence in Redis, shared by every process on the same prefix.

    ``runner`` is the channel layer (or anything with its two script
    methods); ``prefix`` is the layer's prefix. Presence entries not
    refreshed for ``presence_ttl`` seconds vanish.
    """

    def __init__(
        self,
        runner: ScriptRunner,
        *,
        prefix: str = "asgi",
        history_meta_ttl: float = DEFAULT_HISTORY_META_TTL,
        presence_ttl: float = DEFAULT_PRESENCE_TTL,
    ) -> None:
        if history_meta_ttl <= 0:
            raise ValueError(f"history_meta_ttl must be > 0 seconds, got {history_meta_ttl!r}")
        if presence_ttl <= 0:
            raise ValueError(f"presence_ttl must be > 0 seconds, got {presence_ttl!r}")
        self.runner = runner
        self.schema = HubSchema(prefix)
        self.history_meta_ttl = history_meta_ttl
        self.presence_ttl = presence_ttl
        self._meta_ttl_ms = _ms(history_meta_ttl)
        self._presence_ttl_ms = _ms(presence_ttl)

    def __repr__(self) -> str:
        return f"<RedisEngine prefix={self.schema.prefix!r}>"

    # History

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
        with_history = check_publish(data, history_size, history_ttl)
        group = group_for_channel(channel)
        message = publication_message(channel, data, info, tags)
        if not with_history:
            if idempotency_key is None:
                await self.runner.group_send_scripted(group, message, lua.PUBLISH, [], [])
            else:
                await self.runner.group_send_scripted(
                    group, message, lua.PUBLISH_ONCE,
                    [self.schema.result(group, idempotency_key)], [_ms(idempotent_result_ttl)],
                )
            return None
        keys = [self.schema.stream(group), self.schema.meta(group)]
        args: list[Any] = [
            _stream_entry(data, info, tags), history_size, _ms(history_ttl),
            max(self._meta_ttl_ms, _ms(history_ttl)), new_epoch(),
        ]
        if idempotency_key is not None:
            keys.append(self.schema.result(group, idempotency_key))
            args.append(_ms(idempotent_result_ttl))
        reply = await self.runner.group_send_scripted(group, message, lua.PUBLISH_WITH_HISTORY, keys, args)
        # A key first used without history has "" as its result.
        offset, _, epoch = _text(reply).partition(":")
        return StreamPosition(int(offset), epoch) if offset else None

    async def history(
        self,
        channel: str,
        *,
        since: StreamPosition | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> HistoryResult:
        count = check_history_limit(limit)
        if since is not None:
            check_position(since)
        direction, bound = "p", ""
        if count != 0:
            if not reverse:
                if since is None:
                    direction, bound = "f", "-"
                elif since.offset < MAX_OFFSET:
                    direction, bound = "f", str(since.offset + 1)
            elif since is None:
                direction, bound = "r", "+"
            elif since.offset > 1:
                direction, bound = "r", str(since.offset - 1)
        group = group_for_channel(channel)
        keys = [self.schema.stream(group), self.schema.meta(group)]
        args = [direction, bound, count, self._meta_ttl_ms, new_epoch()]
        reply = await self.runner.run_script(group, lua.HISTORY, keys, args)
        return self._history_result(reply)

    async def recover(
        self, channel: str, since: StreamPosition, *, limit: int | None = None
    ) -> Recovery:
        """Return the publications after ``since`` and whether that is all of them, in one round trip.

        The script sends publications only when they can recover the
        client, so a crowd of clients that cannot recover (after Redis lost
        the stream, say) costs no transfer of history.
        """
        check_position(since)
        count = check_history_limit(limit)
        group = group_for_channel(channel)
        keys = [self.schema.stream(group), self.schema.meta(group)]
        args = [
            since.offset, since.epoch, count, self._meta_ttl_ms, new_epoch(),
            min(since.offset + 1, MAX_OFFSET),
        ]
        reply = await self.runner.run_script(group, lua.RECOVER, keys, args)
        history = self._history_result(reply)
        return recover(since, history.position, history.publications)

    @staticmethod
    def _history_result(reply: Sequence[Any]) -> HistoryResult:
        """Return the result of a flat script reply ``[top, epoch, id, entry, id, entry, ...]``."""
        epoch = _text(reply[1])
        publications = tuple(
            _entry_publication(entry_id, entry, epoch)
            for entry_id, entry in zip(reply[2::2], reply[3::2], strict=True)
        )
        return HistoryResult(publications, StreamPosition(int(reply[0]), epoch))

    async def remove_history(self, channel: str) -> None:
        group = group_for_channel(channel)
        await self.runner.run_script(group, lua.REMOVE_HISTORY, [self.schema.stream(group)], [])

    # Presence

    async def add_presence(self, channel: str, client_id: str, info: ClientInfo) -> None:
        await self.refresh_presence(channel, {client_id: info})

    async def refresh_presence(self, channel: str, clients: Mapping[str, ClientInfo]) -> None:
        if not clients:
            return
        group = group_for_channel(channel)
        args: list[Any] = [self._presence_ttl_ms]
        for client_id, info in clients.items():
            args += (client_id, _presence_entry(info))
        await self.runner.run_script(group, lua.UPSERT_PRESENCE, self.schema.presence(group), args)

    async def remove_presence(self, channel: str, client_id: str) -> None:
        group = group_for_channel(channel)
        await self.runner.run_script(group, lua.REMOVE_PRESENCE, self.schema.presence(group), [client_id])

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        group = group_for_channel(channel)
        flat = await self.runner.run_script(group, lua.GET_PRESENCE, self.schema.presence(group), [])
        return {
            client.decode(): _presence_info(client, entry)
            for client, entry in zip(flat[::2], flat[1::2], strict=True)
        }

    async def presence_stats(self, channel: str) -> PresenceStats:
        group = group_for_channel(channel)
        clients, users = await self.runner.run_script(
            group, lua.PRESENCE_STATS, self.schema.presence(group), []
        )
        return PresenceStats(int(clients), int(users))
