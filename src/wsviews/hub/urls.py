"""``path("", include("wsviews.hub.urls"))``: the hub at Centrifugo's default paths.

* ``connection/websocket``: the websocket endpoint the SDKs connect to;
* ``api/<method>``: the server HTTP API (``POST``, JSON, ``X-API-Key``).

Mount it under any prefix (``path("realtime/", include(...))``): the SDKs
take the full URL, Centrifugo API clients the API's base URL.
"""

from __future__ import annotations

from django.urls import path

from .api import api
from .views import connection_websocket

app_name = "wsviews_hub"

urlpatterns = [
    path("connection/websocket", connection_websocket, name="websocket"),
    path("api/<str:method>", api, name="api"),
    path("api", api, name="api-batch"),
]
