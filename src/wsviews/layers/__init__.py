"""Channel layers with local delivery: the in-memory default and the Redis scale-out layer."""

from .base import AttachableChannelLayer, supports_attach
from .memory import InMemoryChannelLayer

__all__ = [
    "AttachableChannelLayer",
    "InMemoryChannelLayer",
    "RedisChannelLayer",
    "supports_attach",
]


def __getattr__(name: str) -> object:
    # The Redis layer imports redis-py; load it only when asked for.
    if name == "RedisChannelLayer":
        from .redis import RedisChannelLayer

        return RedisChannelLayer
    raise AttributeError(f"module 'wsviews.layers' has no attribute {name!r}")
