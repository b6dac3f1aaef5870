"""``CHANNEL_LAYERS`` as wsviews serves it: the embedded default, channels_redis made safe for redis-py 8.

Applied when the app is ready, and again whenever a test overrides
``CHANNEL_LAYERS``:

* no ``CHANNEL_LAYERS``: ``wsviews.layers.RedisChannelLayer`` on
  ``WSVIEWS_REDIS_URL`` (default: the ``REDIS_URL`` environment variable) when
  one is set, else ``wsviews.layers.InMemoryChannelLayer``;
* a channels_redis backend: each ``hosts`` entry is turned into the dict form
  with ``socket_timeout`` above the layer's 5 s blocking pop (redis-py 8 made
  it 5 s, which closes idle sockets with 1011) and ``max_connections`` raised
  from redis-py 8's 100 (which fails bursts of connects with
  ``MaxConnectionsError``). Values the project sets itself are kept.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from .conf import WSViewsSettings

CHANNELS_REDIS_CORE = "channels_redis.core.RedisChannelLayer"
CHANNELS_REDIS_PUBSUB = "channels_redis.pubsub.RedisPubSubChannelLayer"
CHANNELS_REDIS_BACKENDS = frozenset({CHANNELS_REDIS_CORE, CHANNELS_REDIS_PUBSUB})
# channels_redis' core layer blocks up to 5 s in BZPOPMIN; reads must outlast that.
CHANNELS_REDIS_SOCKET_TIMEOUT = 30.0
CHANNELS_REDIS_MAX_CONNECTIONS = 4096


def default_channel_layers() -> dict[str, Any]:
    """Return the CHANNEL_LAYERS used when the project sets none."""
    # Read afresh, not cached: the environment may have changed since the last read.
    url = WSViewsSettings.REDIS_URL.value()
    if url:
        return {"default": {"BACKEND": "wsviews.layers.RedisChannelLayer",
                            "CONFIG": {"hosts": [url]}}}
    return {"default": {"BACKEND": "wsviews.layers.InMemoryChannelLayer"}}


def channels_redis_hosts(hosts: Any) -> list[dict[str, Any]]:
    """Return channels_redis ``hosts`` in dict form, with safe timeouts and pool size."""
    if not hosts:
        hosts = [("localhost", 6379)]
    if isinstance(hosts, (str, bytes)):
        raise ValueError("CHANNEL_LAYERS hosts must be a list, even for one host.")
    result = []
    for entry in hosts:
        if isinstance(entry, dict):
            host = dict(entry)
        elif isinstance(entry, (tuple, list)):
            host = {"address": f"redis://{entry[0]}:{entry[1]}"}
        else:
            host = {"address": entry}
        host.setdefault("socket_timeout", CHANNELS_REDIS_SOCKET_TIMEOUT)
        host.setdefault("max_connections", CHANNELS_REDIS_MAX_CONNECTIONS)
        result.append(host)
    return result


def normalise_channel_layers(layers: dict[str, Any] | None) -> dict[str, Any]:
    """Return ``layers`` with the default filled in and channels_redis hosts made safe."""
    if not layers:
        return default_channel_layers()
    layers = copy.deepcopy(layers)
    for entry in layers.values():
        if isinstance(entry, dict) and entry.get("BACKEND") in CHANNELS_REDIS_BACKENDS:
            config = entry.setdefault("CONFIG", {})
            if isinstance(config, dict):
                try:
                    config["hosts"] = channels_redis_hosts(config.get("hosts"))
                except (ValueError, TypeError, IndexError):
                    pass  # left as written: the system check reports it
    return layers


def configure_channel_layers() -> None:
    """Apply :func:`normalise_channel_layers` to the live settings."""
    current = getattr(settings, "CHANNEL_LAYERS", None)
    normalised = normalise_channel_layers(current)
    if normalised != current:
        settings.CHANNEL_LAYERS = normalised


def channels_redis_config_problems(backend: str, config: dict[str, Any]) -> list[str]:
    """Return a problem for each ``CONFIG`` key that channels_redis' ``backend`` does not take.

    The core layer fails on an unknown key only when first used (a
    ``TypeError`` on every socket); the pub/sub layer ignores it silently.
    The accepted keys are read from the installed channels_redis.
    """
    accepted = _channels_redis_keys(backend)
    problems = []
    for key in config:
        if key not in accepted:
            close = difflib.get_close_matches(str(key), sorted(accepted), n=1)
            guess = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(f"unknown key {key!r}.{guess} {backend} takes: {', '.join(sorted(accepted))}.")
    return problems


def _channels_redis_keys(backend: str) -> set[str]:
    classes = [import_string(backend)]
    if backend == CHANNELS_REDIS_PUBSUB:
        # The pub/sub layer passes its other keyword arguments to one loop layer per event loop.
        classes.append(import_string("channels_redis.pubsub.RedisPubSubLoopLayer"))
    keys: set[str] = set()
    for cls in classes:
        for name, parameter in inspect.signature(cls.__init__).parameters.items():
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                keys.add(name)
    # Set by the pub/sub wrapper itself, never from CONFIG.
    return keys - {"self", "channel_layer"}
