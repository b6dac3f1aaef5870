"""Routes of the live-template tests: the test routes (and the example's), plus views that
render for a socket, echo what htmx sent, and change the example's models in a transaction."""

import asyncio
import os
import time

from asgiref.sync import sync_to_async
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from myapp import live
from myapp.models import Item
from urls_views import urlpatterns as test_urlpatterns
from wsviews import websocket
from wsviews.htmx import receive_htmx
from wsviews.rendering import broadcast_html, send_html
from wsviews.turbo import broadcast_turbo_stream


@websocket
async def render_for_me(socket):
    """Answer each text message with html/whoami.html rendered for this socket."""
    await socket.accept()
    async for text in socket:
        await send_html(socket, "html/whoami.html", {"extra": text})


@websocket
async def htmx_echo(socket):
    """Answer each htmx form with what receive_htmx() made of it, as JSON."""
    await socket.accept()
    while True:
        message = await receive_htmx(socket)
        await socket.send_json({
            "data": {name: message.data.getlist(name) for name in message.data},
            "request": message.request, "trigger": message.trigger,
            "trigger_name": message.trigger_name, "target": message.target,
            "current_url": message.current_url, "prompt": message.prompt,
            "boosted": message.boosted,
        })


@csrf_exempt
def send_fragment(request, group):
    """Broadcast html/note.html (or a turbo-stream of it) to ``group``: now, on commit, or rolled back."""
    mode = request.GET.get("mode", "now")
    context = {"n": request.GET.get("n", "1"), "text": request.POST.get("text", "")}

    def send():
        if request.GET.get("kind") == "turbo":
            broadcast_turbo_stream(group, "append", "notes", template="html/note.html",
                                   context=context, on_commit=mode != "now")
        else:
            broadcast_html(group, "html/note.html", context, on_commit=mode != "now")

    if mode == "now":
        send()
    else:
        with transaction.atomic():
            send()
            if mode == "rollback":
                transaction.set_rollback(True)
    return HttpResponse(status=204)


def csrf_check(request):
    """Answer 200 to a POST that passed Django's CSRF check (the middleware refuses others)."""
    return HttpResponse("csrf ok")


@csrf_exempt
def create_item(request):
    """Create an Item named by the POST: committed, rolled back, or committed after ``hold`` s."""
    mode = request.GET.get("mode", "commit")
    with transaction.atomic():
        item = Item.objects.create(name=request.POST["name"])
        if mode == "rollback":
            transaction.set_rollback(True)
        elif mode == "hold":
            time.sleep(float(request.GET.get("seconds", "1")))
    return JsonResponse({"id": item.pk})


async def slow_items(request):
    """The live list; a frame reload reads the rows, then waits ``?delay=`` s before answering.

    A test changes rows meanwhile: the response is then older than the
    broadcasts the page receives while waiting for it.
    """
    response = await sync_to_async(live.item_list)(request)
    if request.headers.get("Turbo-Frame"):
        await asyncio.sleep(float(request.GET.get("delay", "0")))
    return response


urlpatterns = [
    *test_urlpatterns,
    path("ws/html/render/", render_for_me),
    path("ws/html/htmx/", htmx_echo),
    path("html/send/<slug:group>/", send_fragment),
    path("html/csrf-check/", csrf_check),
    path("html/items/create/", create_item),
    path("html/slow-items/", slow_items),
]


@websocket
async def listen(socket, group):
    """Join ``group`` before accepting (a page seeing the socket open is in the group); stay open."""
    await socket.join(group)
    await socket.accept()
    async for _ in socket:
        pass


def fragments_page(request, kind, group):
    """A page with elements to swap, listening to ``group`` with htmx (kind "htmx") or Turbo."""
    import uuid

    from django.shortcuts import render

    return render(request, f"html/fragments_{kind}.html", {"group": group, "render_id": uuid.uuid4().hex})


def ready(request):
    return HttpResponse('<span id="ready">ready</span>')


async def slow_chat_messages(request, room):
    """The chat's message list, read at once and answered after WSVIEWS_TEST_SLOW_REGION s."""
    response = await sync_to_async(live.htmx_chat_messages)(request, room)
    await asyncio.sleep(float(os.environ.get("WSVIEWS_TEST_SLOW_REGION", "0")))
    return response


urlpatterns += [
    path("ws/html/listen/<slug:group>/", listen, name="html_listen"),
    path("html/fragments/<slug:kind>/<slug:group>/", fragments_page),
    path("html/ready/", ready),
]
if os.environ.get("WSVIEWS_TEST_SLOW_REGION"):
    # Last, so that {% url 'htmx_chat_messages' %} reverses to it.
    urlpatterns.append(path("html/slow-messages/<slug:room>/", slow_chat_messages, name="htmx_chat_messages"))
