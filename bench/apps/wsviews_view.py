"""URLconf for the ``@websocket`` view echo: the example's routes plus ``/bench/echo/``.

Served by ``wsviews.asgi:application`` with
``DJANGO_SETTINGS_MODULE=bench.apps.view_settings``.
"""

from django.urls import include, path

from wsviews import WebSocket, websocket


@websocket
async def echo(socket: WebSocket) -> None:
    await socket.accept()
    async for message in socket:
        await socket.send(message)


urlpatterns = [
    path("bench/echo/", echo),
    path("", include("mysite.urls")),
]
