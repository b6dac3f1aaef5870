"""Plain Channels: the standard ``asgi.py`` from the Channels tutorial, around the seed's routing.

Served with ``DJANGO_SETTINGS_MODULE=bench.apps.channels_settings`` (the example's
settings without wsviews; ``BENCH_LAYER`` picks the channel layer).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.apps.channels_settings")

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from mysite.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
