"""A staff-only page in the Django admin's look that shows this process's sockets, live.

Mount it ahead of the admin's own URLs (the admin answers 404 for any path
under its prefix that it does not know)::

    urlpatterns.insert(0, path("admin/wsviews/live/", include("wsviews.admin")))

The page renders a first :func:`wsviews.stats.snapshot`, then opens a
websocket to :func:`live_socket`, which sends a fresh snapshot every
:data:`INTERVAL` seconds; the page updates counts and computes rates from
successive snapshots. Both need a logged-in staff user.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from . import stats
from .connection import WebSocket, WebSocketDisconnect
from .decorators import websocket

INTERVAL = 1.0


@staff_member_required  # type: ignore[untyped-decorator, unused-ignore]
def live_page(request: HttpRequest) -> HttpResponse:
    """Render the live page with a first snapshot."""
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Live websockets",
        "snapshot": stats.snapshot(),
        "interval": INTERVAL,
    }
    return TemplateResponse(request, "wsviews/admin/live.html", context)


@websocket(login_required=True)
async def live_socket(socket: WebSocket) -> None:
    """Send a snapshot every :data:`INTERVAL` seconds to a staff user's page."""
    if not (socket.user.is_active and socket.user.is_staff):
        await socket.close()  # before accept(): the handshake is refused with 403
        return
    await socket.accept()
    while True:
        await socket.send_json(stats.snapshot())  # cheap, and read on the loop that changes it
        try:
            await asyncio.wait_for(socket.receive(), INTERVAL)
        except TimeoutError:
            pass
        except WebSocketDisconnect:
            return


urlpatterns = [
    path("", live_page, name="wsviews-admin-live"),
    path("socket/", live_socket, name="wsviews-admin-live-socket"),
]
