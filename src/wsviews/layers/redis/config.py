"""Configuration of the Redis layer: CONFIG validation, ``hosts`` decoding, connection pools.

The accepted keys are channels_redis' (core and pubsub layers), so moving
from channels_redis is a one-line BACKEND change, plus ``max_message_size``.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio.connection import (
    BlockingConnectionPool,
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

DEFAULT_HOST = "redis://localhost:6379"
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
# Redis refuses bulk strings over 512 MiB whatever its configuration.
REDIS_MAX_BULK = 512 * 1024 * 1024
# Commands are short; a connection per concurrent send is plenty, and callers
# beyond it wait in the BlockingConnectionPool instead of failing.
DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_POOL_TIMEOUT = 30.0
# Non-blocking commands (PUBLISH, scripts) get redis-py's usual 5 s; blocking
# pops get their own pool, and a limit that outlasts the pop.
COMMAND_SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
BLOCKING_MARGIN = 5.0
POOL_WAIT_ALLOWANCE = 5.0

LAYER_KEYS = {
    "hosts": "list of Redis servers: URLs, (host, port) tuples or dicts",
    "prefix": "prefix of every Redis key and pub/sub channel",
    "expiry": "seconds an undelivered message is kept",
    "group_expiry": "seconds a channel stays in a group",
    "capacity": "messages a channel holds before send() raises ChannelFull",
    "channel_capacity": "per-channel capacities, {glob or regex: int}",
    "symmetric_encryption_keys": "list of Fernet keys (the first encrypts)",
    "max_message_size": "largest serialised message in bytes",
    "on_disconnect": "message type delivered to local channels when Redis is lost",
    "on_reconnect": "message type delivered to local channels when Redis is back",
    "serializer_format": "channels_redis compatibility; only 'msgpack'",
    "random_prefix_length": "channels_redis compatibility; ignored",
}

_SENTINEL_KEYS = {"sentinels", "master_name", "sentinel_kwargs"}
_POOL_KEYS = {"max_connections", "timeout", "connection_class", "is_master", "check_connection"}
_URL_SCHEMES = {"redis", "rediss", "unix"}
_NOT_IN_PREFIX = re.compile(r"[{}\s]")


def _connection_options() -> frozenset[str]:
    names: set[str] = set()
    for cls in (Connection, SSLConnection, UnixDomainSocketConnection):
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = inspect.signature(init).parameters.values()
            names.update(p.name for p in params if p.kind is p.KEYWORD_ONLY
                         or p.kind is p.POSITIONAL_OR_KEYWORD)
    names.discard("self")
    return frozenset(names)


CONNECTION_OPTIONS = _connection_options()


def layer_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the layer keyword arguments of ``config``, a CONFIG dict or a whole CHANNEL_LAYERS entry."""
    if "BACKEND" in config or "CONFIG" in config:
        inner = config.get("CONFIG") or {}
        return inner if isinstance(inner, Mapping) else {}
    return config


def unknown_keys(config: Mapping[str, Any]) -> list[str]:
    """Return one problem per key that the layer does not accept."""
    problems = []
    for key in config:
        if key in LAYER_KEYS:
            continue
        close = difflib.get_close_matches(str(key), LAYER_KEYS, n=1)
        fix = f"did you mean {close[0]!r}?" if close else "remove it"
        problems.append(
            f"unknown key {key!r}: {fix} (accepted: {', '.join(sorted(LAYER_KEYS))})"
        )
    return problems


def check_config(config: Mapping[str, Any]) -> list[str]:
    """Return the problems of a RedisChannelLayer CONFIG, each naming the key and the fix.

    ``config`` is the ``CONFIG`` dict (a whole ``CHANNEL_LAYERS`` entry with
    ``BACKEND``/``CONFIG`` is accepted too). Nothing is connected to; an empty
    list means the layer can be built from it.
    """
    if not isinstance(config, Mapping):
        return [f"CONFIG must be a dict, not {type(config).__name__}: use {{'hosts': [...]}}"]
    config = layer_config(config)
    problems = unknown_keys(config)
    problems += _check_hosts(config.get("hosts"))
    problems += _check_prefix(config.get("prefix", "asgi"))
    for key in ("expiry", "group_expiry"):
        if key in config and not _positive_number(config[key]):
            problems.append(f"{key!r} must be a positive number of seconds, not {config[key]!r}")
    if "capacity" in config and not _positive_int(config["capacity"]):
        problems.append(f"'capacity' must be a positive int, not {config['capacity']!r}")
    problems += _check_channel_capacity(config.get("channel_capacity"))
    problems += _check_keys(config.get("symmetric_encryption_keys"))
    size = config.get("max_message_size", DEFAULT_MAX_MESSAGE_SIZE)
    if not _positive_int(size) or size > REDIS_MAX_BULK:
        problems.append(
            f"'max_message_size' must be an int of bytes between 1 and {REDIS_MAX_BULK} "
            f"(Redis' limit), not {size!r}"
        )
    for key in ("on_disconnect", "on_reconnect"):
        value = config.get(key)
        if value is not None and not (isinstance(value, str) and value):
            problems.append(
                f"{key!r} must be a message type string such as 'redis.disconnect', not {value!r}"
            )
    fmt = config.get("serializer_format", "msgpack")
    if fmt != "msgpack":
        problems.append(
            f"'serializer_format' {fmt!r} is not supported: remove it (messages are msgpack, "
            "which keeps bytes and str apart)"
        )
    length = config.get("random_prefix_length", 0)
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        problems.append(f"'random_prefix_length' must be an int >= 0 (it is ignored), not {length!r}")
    return problems


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_prefix(prefix: Any) -> list[str]:
    if not isinstance(prefix, str) or not prefix:
        return [f"'prefix' must be a non-empty str, not {prefix!r}"]
    if _NOT_IN_PREFIX.search(prefix):
        return [f"'prefix' {prefix!r} must not contain braces or spaces (braces are Redis "
                "Cluster hash tags): use letters, digits, '-', '_', '.' or ':'"]
    return []


def _check_channel_capacity(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [f"'channel_capacity' must be a dict of {{pattern: capacity}}, not {value!r}"]
    problems = []
    for pattern, capacity in value.items():
        if not (isinstance(pattern, str) or hasattr(pattern, "match")):
            problems.append(f"'channel_capacity' pattern {pattern!r} must be a glob str or a regex")
        if not _positive_int(capacity):
            problems.append(f"'channel_capacity'[{pattern!r}] must be a positive int, not {capacity!r}")
    return problems


def _check_keys(keys: Any) -> list[str]:
    if keys is None:
        return []
    if isinstance(keys, (str, bytes)) or not isinstance(keys, (list, tuple)):
        return ["'symmetric_encryption_keys' must be a list of keys, even for one key: "
                "write [SECRET_KEY]"]
    if not keys or not all(isinstance(k, (str, bytes)) and k for k in keys):
        return ["'symmetric_encryption_keys' must hold non-empty str or bytes keys"]
    try:
        import cryptography.fernet  # noqa: F401
    except ImportError:
        return ["'symmetric_encryption_keys' needs the 'cryptography' package: "
                "pip install django-wsviews[crypto]"]
    return []


def _check_hosts(hosts: Any) -> list[str]:
    if hosts is None:
        return []
    if isinstance(hosts, (str, bytes)):
        return [f"'hosts' must be a list, even for one host: write 'hosts': [{hosts!r}]"]
    if not isinstance(hosts, (list, tuple)):
        return [f"'hosts' must be a list of URLs, (host, port) tuples or dicts, not {hosts!r}"]
    problems = []
    for i, entry in enumerate(hosts):
        where = f"'hosts'[{i}]"
        if isinstance(entry, str):
            problems += _check_url(where, entry)
        elif isinstance(entry, (tuple, list)):
            if len(entry) != 2 or not isinstance(entry[0], str) or not _positive_int(entry[1]):
                problems.append(f"{where} {entry!r} must be a (host, port) pair such as "
                                "('localhost', 6379)")
        elif isinstance(entry, Mapping):
            problems += _check_host_dict(where, entry)
        else:
            problems.append(f"{where} {entry!r} must be a URL, a (host, port) tuple or a dict")
    return problems


def _check_url(where: str, url: str) -> list[str]:
    scheme = urlsplit(url).scheme
    if scheme not in _URL_SCHEMES:
        return [f"{where} {url!r} must be a redis://, rediss:// or unix:// URL"]
    return []


def _check_host_dict(where: str, entry: Mapping[str, Any]) -> list[str]:
    problems = []
    if "sentinels" in entry or "master_name" in entry:
        if "master_name" not in entry:
            problems.append(f"{where} has 'sentinels' but no 'master_name': add the name of "
                            "the master set the sentinels monitor")
        sentinels = entry.get("sentinels")
        if not isinstance(sentinels, (list, tuple)) or not sentinels or not all(
            isinstance(s, (list, tuple)) and len(s) == 2 for s in sentinels
        ):
            problems.append(f"{where}['sentinels'] must be a list of (host, port) pairs")
        if "address" in entry:
            problems.append(f"{where} has both 'sentinels' and 'address': keep one")
    elif "address" in entry:
        if isinstance(entry["address"], str):
            problems += _check_url(f"{where}['address']", entry["address"])
        else:
            problems.append(f"{where}['address'] must be a redis:// URL string")
    if entry.get("decode_responses"):
        problems.append(f"{where} sets decode_responses: remove it (messages are binary)")
    allowed = CONNECTION_OPTIONS | _POOL_KEYS | _SENTINEL_KEYS | {"address"}
    for key in entry:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            fix = f"did you mean {close[0]!r}?" if close else "remove it"
            problems.append(f"{where} has unknown Redis option {key!r}: {fix}")
    return problems


def decode_hosts(hosts: Any) -> list[dict[str, Any]]:
    """Return each ``hosts`` entry as a dict of connection options, as channels_redis does."""
    if not hosts:
        return [{"address": DEFAULT_HOST}]
    result = []
    for entry in hosts:
        if isinstance(entry, Mapping):
            result.append(dict(entry))
        elif isinstance(entry, (tuple, list)):
            result.append({"host": entry[0], "port": entry[1]})
        else:
            result.append({"address": entry})
    return result


def describe_host(host: Mapping[str, Any]) -> str:
    """Return a human-readable address for ``host``, without its password."""
    if "sentinels" in host:
        sentinels = ",".join(f"{h}:{p}" for h, p in host["sentinels"])
        return f"sentinel master {host.get('master_name')!r} via {sentinels}"
    if "address" in host:
        parts = urlsplit(str(host["address"]))
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "***@" + netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=netloc, query=""))
    if "path" in host:
        return f"unix://{host['path']}"
    return f"redis://{host.get('host', 'localhost')}:{host.get('port', 6379)}/{host.get('db', 0)}"


Role = Literal["commands", "blocking", "subscriber"]


class _BlockingSentinelPool(BlockingConnectionPool, SentinelConnectionPool):
    """A Sentinel pool that waits for a free connection instead of raising MaxConnectionsError."""


def connection_options(host: Mapping[str, Any], role: Role) -> dict[str, Any]:
    """Return the redis-py options for one pool of ``host``, with the layer's safety rules."""
    options = {k: v for k, v in host.items() if k not in _SENTINEL_KEYS and k != "address"}
    if "address" in host:
        # URL query options would override keyword options in from_url(): merge first.
        options.update(parse_url(str(host["address"])))
    options["decode_responses"] = False
    options.setdefault("socket_connect_timeout", CONNECT_TIMEOUT)
    options.setdefault("socket_keepalive", True)
    options.setdefault("protocol", 2)
    if role == "subscriber":
        options["protocol"] = 2
    # No socket timeout in redis-py: the layer bounds each whole operation with
    # asyncio.timeout() instead (see operation_timeout). redis-py implements
    # socket_timeout with asyncio.wait_for(), which on Python 3.11 can swallow
    # a task's cancellation; and a read timeout shorter than a blocking pop is
    # the redis-py 8 bug that closes idle Channels sockets with 1011.
    options["socket_timeout"] = None
    return options


def operation_timeout(host: Mapping[str, Any], role: Role, blocking_timeout: float) -> float | None:
    """Return the seconds one operation of ``role`` on ``host`` may take, or None for no limit.

    The subscriber has none: it reads forever and checks liveness with PINGs.
    A blocking pop always gets longer than it blocks, whatever ``socket_timeout`` says.
    """
    if role == "subscriber":
        return None
    if role == "blocking":
        return blocking_timeout + BLOCKING_MARGIN
    options = dict(host)
    if "address" in host:
        options.update(parse_url(str(host["address"])))
    timeout = options.get("socket_timeout", COMMAND_SOCKET_TIMEOUT)
    # A command may also wait for a free connection of the pool.
    return None if timeout is None else float(timeout) + POOL_WAIT_ALLOWANCE


async def close_pool(pool: ConnectionPool) -> None:
    """Disconnect every connection of ``pool``, and for Sentinel its clients of the sentinels.

    A Sentinel pool asks the sentinels for the master through clients of its
    own, which closing the pool leaves open.
    """
    await pool.aclose()
    manager = getattr(pool, "sentinel_manager", None)
    for client in getattr(manager, "sentinels", ()):
        await client.aclose()


def make_pool(host: Mapping[str, Any], role: Role) -> ConnectionPool:
    """Return a new connection pool for ``host``; nothing is connected yet."""
    options = connection_options(host, role)
    max_connections = 1 if role == "subscriber" else options.pop("max_connections",
                                                                  DEFAULT_MAX_CONNECTIONS)
    options.pop("max_connections", None)
    pool_timeout = options.pop("timeout", DEFAULT_POOL_TIMEOUT)
    if "sentinels" in host:
        # redis-py's sentinel module is untyped.
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            host["sentinels"], sentinel_kwargs=host.get("sentinel_kwargs")
        )
        if role == "subscriber":
            return SentinelConnectionPool(  # type: ignore[no-untyped-call]
                host["master_name"], sentinel, **options
            )
        options.setdefault("connection_class", SentinelManagedConnection)
        return _BlockingSentinelPool(
            service_name=host["master_name"], sentinel_manager=sentinel,
            max_connections=max_connections, timeout=pool_timeout, **options,
        )
    if role == "subscriber":
        return ConnectionPool(max_connections=1, **options)
    return BlockingConnectionPool(max_connections=max_connections, timeout=pool_timeout, **options)

