"""The hub at Centrifugo's paths, test hooks, and views that publish from Django."""

import json

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from urls_views import urlpatterns as view_urlpatterns
from wsviews import hub
from wsviews.hub import server_api


@hub.rpc("echo")
async def echo(user, data):
    return data


@hub.rpc("whoami")
def whoami(user, data):
    return {"user": user}


@hub.rpc("kick")
async def kick(user, data):
    await server_api.adisconnect(user)
    return {}


@hub.rpc("fail")
async def fail(user, data):
    raise hub.HubError(4001, "refused by the handler")


@hub.allow_publish("guarded")
def no_forbidden(user, channel, data):
    if isinstance(data, dict) and data.get("forbidden"):
        return False
    if isinstance(data, dict) and "text" in data:
        return {**data, "text": data["text"].upper()}
    return None


@hub.allow_subscribe("guarded")
async def not_closed(user, channel, data):
    return channel != "guarded:closed"


@csrf_exempt
def publish_view(request):
    """POST {"channel", "data", "rollback"}: publish on commit inside a transaction."""
    body = json.loads(request.body)
    try:
        with transaction.atomic():
            get_user_model().objects.get_or_create(username="hub-publisher")
            server_api.publish(body["channel"], body["data"])
            if body.get("rollback"):
                raise RuntimeError("roll back")
    except RuntimeError:
        return HttpResponse("rolled back")
    return HttpResponse("committed")


@csrf_exempt
def token_view(request):
    """GET ?user=ID&expires=S: a connection token minted by the Django-side API."""
    return JsonResponse({"token": hub.connection_token(
        request.GET["user"], expires_in=float(request.GET.get("expires", 3600)))})


urlpatterns = [
    *view_urlpatterns,  # the test routes (plain group members and broadcasts) beside the hub
    path("", include("wsviews.hub.urls")),
    path("test/publish", publish_view),
    path("test/token", token_view),
]
