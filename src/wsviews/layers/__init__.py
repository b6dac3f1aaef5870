"""Channel layers with local delivery: the in-memory default and the Redis scale-out layer."""

from .base import (
    AttachableChannelLayer,
    ChannelLayerUnavailable,
    InvalidMessage,
    MessageTooLarge,
    supports_attach,
)
from .memory import InMemoryChannelLayer

__all__ = [
    "AttachableChannelLayer",
    "ChannelLayerUnavailable",
    "InMemoryChannelLayer",
    "InvalidMessage",
    "MessageTooLarge",
    "RedisChannelLayer",
    "check_config",
    "supports_attach",
]


def __getattr__(name: str) -> object:
    # The Redis layer imports redis-py; load it only when asked for.
    if name in ("RedisChannelLayer", "check_config"):
        from . import redis

        return getattr(redis, name)
    raise AttributeError(f"module 'wsviews.layers' has no attribute {name!r}")
