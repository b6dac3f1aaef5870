"""Channel-layer settings: the embedded default, and channels_redis made safe for redis-py 8.

Run once when the app is ready, and again whenever a test overrides
``CHANNEL_LAYERS``:

* no ``CHANNEL_LAYERS``: ``wsviews.layers.RedisChannelLayer`` on
  ``WSVIEWS_REDIS_URL`` / the ``REDIS_URL`` environment variable when one is
  set, else ``wsviews.layers.InMemoryChannelLayer``;
* a channels_redis backend: each ``hosts`` entry is turned into the dict form
  with ``socket_timeout`` above the layer's 5 s blocking pop (redis-py 8 made
  it 5 s, which closes idle sockets with 1011) and ``max_connections`` raised
  from redis-py 8's 100 (which fails bursts of connects with
  ``MaxConnectionsError``). Values the project sets itself are kept.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from django.conf import settings

CHANNELS_REDIS_BACKENDS = frozenset({
    "channels_redis.core.RedisChannelLayer",
    "channels_redis.pubsub.RedisPubSubChannelLayer",
})
# channels_redis' core layer blocks up to 5 s in BZPOPMIN; reads must outlast that.
CHANNELS_REDIS_SOCKET_TIMEOUT = 30.0
CHANNELS_REDIS_MAX_CONNECTIONS = 4096


def redis_url() -> str | None:
    """Return the Redis URL for the default layer, if the project names one."""
    return getattr(settings, "WSVIEWS_REDIS_URL", None) or os.environ.get("REDIS_URL") or None


def default_channel_layers() -> dict[str, Any]:
    """Return the CHANNEL_LAYERS used when the project sets none."""
    url = redis_url()
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
    """Apply ``normalise_channel_layers`` to the live settings."""
    current = getattr(settings, "CHANNEL_LAYERS", None)
    normalised = normalise_channel_layers(current)
    if normalised != current:
        settings.CHANNEL_LAYERS = normalised
