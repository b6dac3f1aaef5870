"""The example project on wsviews' Redis layer, for tests that run several server processes.

Every process started with these settings and the same ``WSVIEWS_E2E_PREFIX``
shares one layer. The URLconf is the test routes (``urls_views``) plus
``/ws/channel/``: a consumer that tells the client its channel name and runs
layer commands the client sends it, so a test can address a socket of one
process from another.
"""

import functools
import os

from settings_views import *  # noqa: F403  (the example's settings, with test logging)

_REDIS = os.environ.get("WSVIEWS_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "wsviews.layers.RedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ.get("WSVIEWS_E2E_REDIS", f"{_REDIS}/11")],
            "prefix": os.environ.get("WSVIEWS_E2E_PREFIX", "wsviews-e2e"),
        },
    },
}

ROOT_URLCONF = "settings_wsredis"


@functools.cache
def _urlpatterns() -> list:
    # Built on first use: this module is also the settings, read before Django is set up.
    from channels.generic.websocket import AsyncWebsocketConsumer
    from django.urls import path

    from urls_views import urlpatterns

    class ChannelConsumer(AsyncWebsocketConsumer):
        """Say the channel name; then ``send CHANNEL TEXT`` or ``join GROUP CHANNEL``."""

        async def connect(self):
            await self.accept()
            await self.send(text_data=self.channel_name)

        async def receive(self, text_data=None, bytes_data=None):
            command, first, second = text_data.split(" ", 2)
            if command == "send":
                await self.channel_layer.send(first, {"type": "e2e.direct", "text": second})
            elif command == "join":
                await self.channel_layer.group_add(first, second)
            await self.send(text_data=f"done {command}")

        async def e2e_direct(self, event):
            await self.send(text_data=f"direct {event['text']}")

        async def wsviews_broadcast(self, event):
            await self.send(text_data=f"broadcast {event['message']}")

    return [*urlpatterns, path("ws/channel/", ChannelConsumer.as_asgi())]


def __getattr__(name):
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)
