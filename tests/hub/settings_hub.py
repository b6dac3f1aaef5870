"""The example project with the hub mounted at Centrifugo's paths, for tests against real servers.

``WSVIEWS_TEST_HUB`` picks one of :data:`HUBS`; ``WSVIEWS_TEST_HUB_REDIS`` (a
Redis URL) and ``WSVIEWS_TEST_HUB_PREFIX`` put the processes on wsviews'
Redis layer, sharing one hub; without them the layer is in memory.
"""

import os

from settings_views import *  # noqa: F403

SECRET = "hub-test-secret-hub-test-secret-0123456789"
API_KEY = "hub-test-api-key"

_CHAT = {
    "name": "chat", "presence": True, "join_leave": True, "force_recovery": True,
    "history_size": 100, "history_ttl": "300s", "allow_subscribe_for_client": True,
    "allow_subscribe_for_anonymous": True, "allow_publish_for_subscriber": True,
    "allow_publish_for_anonymous": True, "allow_presence_for_subscriber": True,
    "allow_presence_for_anonymous": True, "allow_history_for_subscriber": True,
    "allow_history_for_anonymous": True,
}
_BASE = {
    "client": {
        "token": {"hmac_secret_key": SECRET},
        "allow_anonymous_connect_without_token": True,
        "ping_interval": "1s",
        "pong_timeout": "800ms",
    },
    "channel": {
        "namespaces": [
            _CHAT,
            {"name": "news", "allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True},
            {"name": "small", "force_recovery": True, "history_size": 2, "history_ttl": "300s",
             "allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True},
            {"name": "guarded", "allow_subscribe_for_client": True,
             "allow_subscribe_for_anonymous": True, "allow_publish_for_subscriber": True,
             "allow_publish_for_anonymous": True, "history_size": 10, "history_ttl": "60s"},
        ],
    },
    "http_api": {"key": API_KEY},
    "websocket": {"message_size_limit": 65536},
}
# For bench/hub_fanout.py: default keepalive, a stream namespace without presence.
_BENCH = {
    "client": {"allow_anonymous_connect_without_token": True},
    "channel": {"namespaces": [
        {"name": "news", "allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True},
        {"name": "hist", "history_size": 100, "history_ttl": "300s", "force_recovery": True,
         "allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True},
    ]},
    "http_api": {"key": API_KEY},
}
# Presence refreshed every second: a killed process's entries vanish from Redis within 8 s.
_FAST_PRESENCE = {**_BASE, "client": {**_BASE["client"], "presence_update_interval": "1s"}}
HUBS = {"default": _BASE, "bench": _BENCH, "fast_presence": _FAST_PRESENCE}
WSVIEWS_HUB = HUBS[os.environ.get("WSVIEWS_TEST_HUB", "default")]
ROOT_URLCONF = "hub.urls_hub"

_REDIS = os.environ.get("WSVIEWS_TEST_HUB_REDIS")
if _REDIS:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "wsviews.layers.RedisChannelLayer",
            "CONFIG": {"hosts": [_REDIS], "prefix": os.environ.get("WSVIEWS_TEST_HUB_PREFIX", "hubtest")},
        },
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "wsviews.layers.InMemoryChannelLayer"}}
