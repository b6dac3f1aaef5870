"""The Redis channel layer: one PUBLISH per group_send, one decode per process, push delivery.

``from wsviews.layers.redis import RedisChannelLayer, check_config``. The
modules, one job each, are listed in docs/layers.md ("Inside the Redis
layer").
"""

from .config import check_config
from .layer import ForeignChannel, RedisChannelLayer

__all__ = ["ForeignChannel", "RedisChannelLayer", "check_config"]
