"""Routes for the serving tests: the test project's, plus a publisher, a slow page and a drain closer."""

import asyncio

from django.http import HttpResponse
from django.urls import path

from urls_views import urlpatterns as views_urlpatterns
from wsviews import abroadcast, websocket
from wsviews.drain import on_shutdown


@websocket
async def publish(socket, group):
    """Broadcast every message this socket sends to ``group`` (a steady stream for slow-reader tests)."""
    await socket.accept()
    async for text in socket:
        await abroadcast(group, text)


async def slow(request):
    """Answer after ``?seconds=`` (a request still in flight when the server drains)."""
    await asyncio.sleep(float(request.GET.get("seconds", "1")))
    return HttpResponse("slow done")


@websocket
async def own_close(socket):
    """Close with 4001 "own shutdown" when the server drains, through the drain hook."""
    await socket.accept()
    on_shutdown(socket.scope, lambda: socket.close(4001, "own shutdown"))
    await socket.send("ready")
    async for text in socket:
        await socket.send(text)


@websocket
async def echo_frames(socket):
    """Echo each message in its own kind: text as text, binary as binary."""
    await socket.accept()
    async for data in socket:
        await socket.send(data)


urlpatterns = [
    *views_urlpatterns,
    path("ws/echo-frames/", echo_frames),
    path("ws/publish/<slug:group>/", publish),
    path("ws/own-close/", own_close),
    path("slow/", slow),
]
