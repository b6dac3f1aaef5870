"""The servers of bench/fanout.py: Django settings, the group consumer, and ASGI apps.

One module so that every server of the benchmark is ``uvicorn bench.fanout_apps:<app>``
with ``DJANGO_SETTINGS_MODULE=bench.fanout_apps``:

* ``channels_app``: plain Channels (``ProtocolTypeRouter`` + ``URLRouter``), the
  channel layer chosen by ``FANOUT_LAYER`` (``channels_redis`` or
  ``channels_redis_pubsub``);
* ``wsviews_app``: ``wsviews.asgi.application`` with ``FANOUT_LAYER=wsviews``
  (``wsviews.layers.RedisChannelLayer``);
* ``raw_app``: no Django; a set of ``send`` callables, and a ``/control``
  socket whose every message is sent to all of them.

The consumer is the tutorial's shape: ``group_add`` in ``connect``, and a
``chat_message`` handler that sends the event's text to the client.
"""

from __future__ import annotations

import functools
import os
from typing import Any

# Django settings (read by django.setup() when this is DJANGO_SETTINGS_MODULE)

SECRET_KEY = "fanout-benchmark"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "bench.fanout_apps"
DATABASES: dict[str, Any] = {}
REDIS_URL = os.environ.get("FANOUT_REDIS", "redis://127.0.0.1:6379/11")
PREFIX = os.environ.get("FANOUT_PREFIX", "fanout")
LAYER = os.environ.get("FANOUT_LAYER", "wsviews")

# channels_redis needs these with redis-py 8: the default 5 s socket timeout is
# as short as its blocking pop (idle sockets close with 1011), and 100
# connections are too few for 1,000 sockets connecting at once.
_CHANNELS_REDIS_HOST = {"address": REDIS_URL, "socket_timeout": 30, "max_connections": 4096}
_BACKENDS: dict[str, tuple[str, dict[str, Any]]] = {
    "channels_redis": ("channels_redis.core.RedisChannelLayer",
                       {"hosts": [_CHANNELS_REDIS_HOST], "prefix": PREFIX, "capacity": 1000}),
    "channels_redis_pubsub": ("channels_redis.pubsub.RedisPubSubChannelLayer",
                              {"hosts": [_CHANNELS_REDIS_HOST], "prefix": PREFIX}),
    "wsviews": ("wsviews.layers.RedisChannelLayer",
                {"hosts": [REDIS_URL], "prefix": PREFIX, "capacity": 1000}),
}
_backend, _config = _BACKENDS[LAYER]
CHANNEL_LAYERS = {"default": {"BACKEND": _backend, "CONFIG": _config}}
INSTALLED_APPS = (["wsviews"] if LAYER == "wsviews" else []) + [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "channels",
]
WSVIEWS_DISCOVER_ROUTING = False
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}


@functools.cache
def _urlpatterns() -> list[Any]:
    from channels.generic.websocket import AsyncWebsocketConsumer
    from django.urls import path

    class FanoutConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels is untyped
        async def connect(self) -> None:
            self.group = self.scope["url_route"]["kwargs"]["group"]
            await self.channel_layer.group_add(self.group, self.channel_name)
            await self.accept()
            await self.send(text_data=f"joined {self.channel_name}")

        async def disconnect(self, code: int) -> None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

        async def chat_message(self, event: dict[str, Any]) -> None:
            await self.send(text_data=event["text"])

    return [path("ws/fanout/<slug:group>/", FanoutConsumer.as_asgi())]


@functools.cache
def _channels_app() -> Any:
    import django
    from channels.routing import ProtocolTypeRouter, URLRouter

    django.setup()
    return ProtocolTypeRouter({"websocket": URLRouter(_urlpatterns())})


@functools.cache
def _wsviews_app() -> Any:
    from wsviews.asgi import application

    return application


# The raw baseline: local fan-out over a set of send callables.

_members: list[Any] = []  # a socket's index is its "channel name"; None once it left


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Members get what the ``/control`` socket sends: all of them, or ``@INDEX TEXT`` one."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    if scope["path"] == "/control":
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message["text"]
            if text.startswith("@"):
                index, _, text = text[1:].partition(" ")
                member = _members[int(index)]
                if member is not None:
                    await member({"type": "websocket.send", "text": text})
                continue
            event = {"type": "websocket.send", "text": text}
            for member in [m for m in _members if m is not None]:
                await member(event)
    index = len(_members)
    _members.append(send)
    await send({"type": "websocket.send", "text": f"joined {index}"})
    try:
        while (await receive())["type"] != "websocket.disconnect":
            pass
    finally:
        _members[index] = None


def __getattr__(name: str) -> Any:
    # Built on first use: this module is also the settings, read before Django is set up.
    if name == "urlpatterns":
        return _urlpatterns()
    if name == "channels_app":
        return _channels_app()
    if name == "wsviews_app":
        return _wsviews_app()
    raise AttributeError(name)
