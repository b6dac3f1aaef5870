"""Settings for plain Channels: the example's settings without the wsviews app.

``BENCH_LAYER=memory`` (default) uses ``channels.layers.InMemoryChannelLayer``;
``BENCH_LAYER=redis`` uses channels_redis on ``BENCH_REDIS_URL`` (default
``redis://localhost:6379``; ``bench/echo.py`` passes the harness's Redis). The Redis host is
given in dict form with ``socket_timeout`` 30 and ``max_connections`` 4096:
with redis-py 8 the tutorial's ``[("localhost", 6379)]`` gets a 5 s socket
timeout, shorter than channels_redis' 5 s blocking pop, so every socket that
is open for more than 5 s is closed with 1011 and the run cannot finish.
(``BENCH_LAYER=redis-tutorial`` keeps the tutorial's hosts, to see that.)
"""

import os
from typing import Any

from mysite.settings import *  # noqa: F403
from mysite.settings import INSTALLED_APPS

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "wsviews"]

_layer = os.environ.get("BENCH_LAYER", "memory")
CHANNEL_LAYERS: dict[str, Any]
if _layer == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
elif _layer == "redis-tutorial":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [("localhost", 6379)]},
        }
    }
elif _layer == "redis":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": os.environ.get("BENCH_REDIS_URL", "redis://localhost:6379"),
                        "socket_timeout": 30,
                        "max_connections": 4096,
                    }
                ]
            },
        }
    }
else:
    raise ValueError(f"BENCH_LAYER must be memory, redis or redis-tutorial, not {_layer!r}")
