"""The test routes, with the metrics URL, the live admin page and a logout URL in front."""

from django.contrib.auth import logout
from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from urls_views import urlpatterns as view_urlpatterns
from wsviews import websocket


@csrf_exempt
def log_out(request):
    logout(request)
    return HttpResponse("logged out")


urlpatterns = [
    path("admin/wsviews/live/", include("wsviews.admin")),
    path("metrics/", include("wsviews.metrics")),
    path("observe/logout/", log_out),
    *view_urlpatterns,
]


@websocket
async def record(socket, name):
    """Send this socket's wsviews.connections record, then echo; "record" sends it again."""
    from wsviews.connections import connection_of

    await socket.accept()

    def describe():
        found = connection_of(socket.scope)
        return {"route": found.route, "path": found.path, "kind": found.kind, "user": found.username,
                "user_id": found.user_id, "session": found.session_key, "received": found.received,
                "sent": found.sent}

    await socket.send_json(describe())
    async for text in socket:
        await socket.send_json(describe() if text == "record" else {"echo": text})


urlpatterns.insert(0, path("ws/record/<slug:name>/", record))
