"""The example project's routes, plus one the browser tests need and the example does not."""

from django.urls import path

from mysite.urls import urlpatterns as example_urlpatterns
from wsviews import websocket


@websocket(origins=["https://elsewhere.example"])
async def elsewhere_only(socket):
    """Refuse every handshake from the test pages' origin (HTTP 403), as a real view would."""
    await socket.accept()
    await socket.send("this origin should have been refused")


urlpatterns = [
    *example_urlpatterns,
    path("ws/test/elsewhere-only/", elsewhere_only),
]
