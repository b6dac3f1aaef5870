"""The hub's server API for Django code, the same methods as Centrifugo's server API.

Every method has an async form (``apublish``, ``apresence``...) for async
views and consumers, and a sync one for sync views, management commands
and signal handlers. ``data`` is any JSON-serialisable value, or
already-encoded JSON as ``bytes``.

``publish(channel, data)`` inside a transaction publishes only once it
commits (``on_commit=True``, the default): a rolled-back write never
reaches a client, and a committed one reaches it once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from asgiref.sync import async_to_sync
from django.db import transaction

from . import tokens
from .codes import DISCONNECT_FORCE_NO_RECONNECT, DISCONNECT_FORCE_RECONNECT
from .commands import info_json, publication_json
from .node import get_node
from .records import ClientInfo, StreamPosition

__all__ = [
    "abroadcast", "achannels", "adisconnect", "ahistory", "ahistory_remove", "ainfo", "apresence",
    "apresence_stats", "apublish", "asubscribe", "aunsubscribe", "broadcast", "channels",
    "connection_token", "disconnect", "history", "history_remove", "info", "presence",
    "presence_stats", "publish", "subscribe", "subscription_token", "unsubscribe",
]


def encode(data: Any) -> bytes:
    """Return ``data`` as JSON bytes (``bytes`` are taken as already-encoded JSON)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        json.loads(raw)  # refuse what a client could not decode
        return raw
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _position(position: StreamPosition | None) -> dict[str, Any]:
    return {} if position is None else {"offset": position.offset, "epoch": position.epoch}


def _user_id(user: Any) -> str:
    if isinstance(user, str):
        return user
    if isinstance(user, int):
        return str(user)
    pk = getattr(user, "pk", None)
    if pk is None:
        raise TypeError(f"expected a user id (str/int) or a saved Django user, got {user!r}")
    return str(pk)


# Publishing

async def apublish(channel: str, data: Any, *, tags: Mapping[str, str] | None = None,
                   idempotency_key: str | None = None) -> dict[str, Any]:
    """Publish ``data`` into ``channel`` now; return ``{"offset", "epoch"}`` with history, else {}."""
    return _position(await get_node().publish(channel, encode(data), tags=tags,
                                              idempotency_key=idempotency_key))


def publish(channel: str, data: Any, *, on_commit: bool = True, tags: Mapping[str, str] | None = None,
            idempotency_key: str | None = None, using: str | None = None) -> dict[str, Any] | None:
    """Publish from sync code; within a transaction, once it commits (returns None then)."""
    payload = encode(data)
    get_node().channel_options(channel)  # an undeclared namespace fails here, not after commit

    def send() -> dict[str, Any]:
        result: dict[str, Any] = async_to_sync(apublish)(channel, payload, tags=tags,
                                                         idempotency_key=idempotency_key)
        return result

    if on_commit and transaction.get_connection(using).in_atomic_block:
        transaction.on_commit(send, using=using)
        return None
    return send()


async def abroadcast(channels: Iterable[str], data: Any) -> list[dict[str, Any]]:
    """Publish the same ``data`` into each of ``channels``; return one result per channel."""
    payload = encode(data)
    node = get_node()
    return [_position(await node.publish(channel, payload)) for channel in channels]


def broadcast(channels: Iterable[str], data: Any) -> list[dict[str, Any]]:
    """Sync :func:`abroadcast`."""
    result: list[dict[str, Any]] = async_to_sync(abroadcast)(list(channels), data)
    return result


# Reading

def _plain(wire: dict[str, Any]) -> dict[str, Any]:
    """Return a wire dict (raw JSON fragments in it) as plain Python values."""
    plain: dict[str, Any] = orjson.loads(orjson.dumps(wire))
    return plain


def _info(info: ClientInfo) -> dict[str, Any]:
    return _plain(info_json(info))


async def apresence(channel: str) -> dict[str, dict[str, Any]]:
    """Return ``{client id: {"user", "client", "conn_info"?, "chan_info"?}}`` present in ``channel``."""
    get_node().channel_options(channel)
    found = await get_node().engine.presence(channel)
    return {client: _info(info) for client, info in found.items()}


def presence(channel: str) -> dict[str, dict[str, Any]]:
    """Sync :func:`apresence`."""
    result: dict[str, dict[str, Any]] = async_to_sync(apresence)(channel)
    return result


async def apresence_stats(channel: str) -> dict[str, int]:
    """Return ``{"num_clients", "num_users"}`` of ``channel``."""
    get_node().channel_options(channel)
    stats = await get_node().engine.presence_stats(channel)
    return {"num_clients": stats.num_clients, "num_users": stats.num_users}


def presence_stats(channel: str) -> dict[str, int]:
    """Sync :func:`apresence_stats`."""
    result: dict[str, int] = async_to_sync(apresence_stats)(channel)
    return result


async def ahistory(channel: str, *, limit: int | None = None, since: Mapping[str, Any] | None = None,
                   reverse: bool = False) -> dict[str, Any]:
    """Return ``{"publications": [...], "offset", "epoch"}`` of ``channel``'s history."""
    get_node().channel_options(channel)
    position = None if since is None else StreamPosition(int(since.get("offset", 0)),
                                                           str(since.get("epoch", "")))
    result = await get_node().engine.history(channel, since=position, limit=limit, reverse=reverse)
    pubs = [_plain(publication_json(p)) for p in result.publications]
    return {"publications": pubs, "offset": result.position.offset, "epoch": result.position.epoch}


def history(channel: str, *, limit: int | None = None, since: Mapping[str, Any] | None = None,
            reverse: bool = False) -> dict[str, Any]:
    """Sync :func:`ahistory`."""
    result: dict[str, Any] = async_to_sync(ahistory)(channel, limit=limit, since=since,
                                                     reverse=reverse)
    return result


async def ahistory_remove(channel: str) -> None:
    """Drop ``channel``'s publications (its position stays, so nobody recovers across it)."""
    get_node().channel_options(channel)
    await get_node().engine.remove_history(channel)


def history_remove(channel: str) -> None:
    """Sync :func:`ahistory_remove`."""
    async_to_sync(ahistory_remove)(channel)


# Connections

async def asubscribe(user: Any, channel: str, *, client: str | None = None) -> None:
    """Subscribe every connection of ``user`` (or only ``client``) to ``channel``, server-side."""
    get_node().channel_options(channel)
    await get_node().control(_user_id(user), "subscribe", channel=channel, client=client)


def subscribe(user: Any, channel: str, *, client: str | None = None) -> None:
    """Sync :func:`asubscribe`."""
    async_to_sync(asubscribe)(user, channel, client=client)


async def aunsubscribe(user: Any, channel: str, *, client: str | None = None) -> None:
    """Unsubscribe every connection of ``user`` (or only ``client``) from ``channel``."""
    await get_node().control(_user_id(user), "unsubscribe", channel=channel, client=client)


def unsubscribe(user: Any, channel: str, *, client: str | None = None) -> None:
    """Sync :func:`aunsubscribe`."""
    async_to_sync(aunsubscribe)(user, channel, client=client)


async def adisconnect(user: Any, *, client: str | None = None, reconnect: bool = False,
                      code: int | None = None, reason: str = "") -> None:
    """Close every connection of ``user`` (or only ``client``); by default the SDKs do not reconnect."""
    default = DISCONNECT_FORCE_RECONNECT if reconnect else DISCONNECT_FORCE_NO_RECONNECT
    await get_node().control(_user_id(user), "disconnect", client=client,
                             code=code or default.code, reason=reason or default.reason)


def disconnect(user: Any, *, client: str | None = None, reconnect: bool = False,
               code: int | None = None, reason: str = "") -> None:
    """Sync :func:`adisconnect`."""
    async_to_sync(adisconnect)(user, client=client, reconnect=reconnect, code=code, reason=reason)


async def achannels() -> dict[str, dict[str, int]]:
    """Return the channels with subscribers in this process and their local subscriber counts."""
    counts: dict[str, int] = {}
    for connection in list(get_node().connections.values()):
        for channel in connection.core.channels:
            counts[channel] = counts.get(channel, 0) + 1
    return {channel: {"num_clients": n} for channel, n in sorted(counts.items())}


def channels() -> dict[str, dict[str, int]]:
    """Sync :func:`achannels`."""
    result: dict[str, dict[str, int]] = async_to_sync(achannels)()
    return result


async def ainfo() -> dict[str, Any]:
    """Return this node's numbers, in the shape of Centrifugo's ``info`` result."""
    node = get_node()
    users = {c.core.user for c in node.connections.values()}
    return {"nodes": [{
        "uid": str(id(node)), "name": "wsviews", "version": "wsviews",
        "num_clients": len(node.connections), "num_users": len(users),
        "num_channels": len(set(node.local_channels())),
        "engine": "redis" if node.distributed else "memory",
    }]}


def info() -> dict[str, Any]:
    """Sync :func:`ainfo`."""
    result: dict[str, Any] = async_to_sync(ainfo)()
    return result


# Tokens

def connection_token(user: Any, *, expires_in: float | None = 3600, info: Any = None,
                     channels: Sequence[str] | None = None, **claims: Any) -> str:
    """Return a connection JWT for ``user``, signed with ``WSVIEWS_HUB['client']['token']``."""
    return tokens.connection_token(user, config=get_node().config, expires_in=expires_in,
                                   info=info, channels=channels, **claims)


def subscription_token(user: Any, channel: str, *, expires_in: float | None = 3600,
                       info: Any = None, **claims: Any) -> str:
    """Return a subscription JWT letting ``user`` subscribe to ``channel``."""
    return tokens.subscription_token(user, channel, config=get_node().config,
                                     expires_in=expires_in, info=info, **claims)
