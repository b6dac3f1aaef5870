"""Routes used by the tests: the example's, plus websocket views and broadcast triggers."""

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer, WebsocketConsumer
from django.db import connections, transaction
from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from mysite.urls import urlpatterns as example_urlpatterns
from wsviews import broadcast, websocket
from wsviews.encoding import dumps, loads

logger = logging.getLogger("tests")


@websocket
async def room(socket, room):
    await socket.accept()
    async for text in socket:
        await socket.send(f"{room}:{text}")


@websocket
async def json_echo(socket):
    await socket.accept()
    while True:
        data = await socket.receive_json()
        await socket.send_json({"got": data, "path": socket.path, "query": socket.query.get("q")})


@websocket
async def iterate(socket, name):
    await socket.accept()
    count = 0
    async for _ in socket:
        count += 1
    logger.info("iteration over %s ended after %d messages", name, count)


@websocket(login_required=True)
async def private(socket):
    await socket.accept()
    await socket.send(socket.user.username)


@websocket(permission="auth.view_user")
async def permitted(socket):
    await socket.accept()
    await socket.send("permitted")


@websocket(max_message_size=16)
async def small(socket):
    await socket.accept()
    async for text in socket:
        await socket.send(text)


@websocket
async def boom(socket):
    await socket.accept()
    async for text in socket:
        if text == "boom":
            raise RuntimeError("boom requested by the test")
        await socket.send(text)


@websocket(subprotocols=["v2.chat", "v1.chat"])
async def negotiated(socket):
    await socket.accept()
    await socket.send(str(socket.subprotocol))


@websocket
async def member(socket, group):
    await socket.accept()
    await socket.join(group)
    await socket.send("joined")
    async for text in socket:
        if text == "leave":
            await socket.leave(group)
            await socket.send("left")


@websocket
async def relay(socket, group):
    """Relay broadcasts through an async on_broadcast callback; a "boom" broadcast makes it raise."""

    async def on_broadcast(message):
        if message == "boom":
            raise RuntimeError("on_broadcast boom requested by the test")
        await socket.send(f"relayed {message}")

    await socket.accept()
    await socket.join(group, on_broadcast=on_broadcast)
    await socket.send("joined")
    async for _ in socket:
        pass


class GroupConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.group = self.scope["url_route"]["kwargs"]["group"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send(text_data="joined")

    async def wsviews_broadcast(self, event):
        await self.send(text_data=dumps({"consumer": event["message"]}))

    async def receive(self, text_data=None, bytes_data=None):
        if text_data == "boom":
            raise RuntimeError("consumer boom requested by the test")
        if text_data == "network":
            raise ConnectionRefusedError("the consumer's own network call failed")
        await self.send(text_data=text_data)


class AnyFrameConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=repr(text_data if bytes_data is None else bytes_data))


class JsonEchoConsumer(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content, **kwargs):
        if content == "bug":
            raise ValueError("a bug of the consumer's own")
        await self.send_json({"got": content})


class SyncEchoConsumer(WebsocketConsumer):
    """A sync consumer: served by Channels' own loop, in a thread."""

    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data=f"sync:{text_data}")


class StoppableConsumer(AsyncWebsocketConsumer):
    """Stops itself when a broadcast says so, from the layer side."""

    async def connect(self):
        await self.channel_layer.group_add(self.scope["url_route"]["kwargs"]["group"], self.channel_name)
        await self.accept()
        await self.send(text_data="joined")

    async def wsviews_broadcast(self, event):
        if event["message"] == "stop":
            await self.close(code=4001)
            raise StopConsumer()
        if event["message"] == "boom":
            raise RuntimeError("layer-side boom requested by the test")
        await self.send(text_data=event["message"])


class DeclaredGroupsConsumer(AsyncWebsocketConsumer):
    """Declares its groups, as Channels lets a consumer do; "boom" raises."""

    groups = ["declared-a", "declared-b"]

    async def connect(self):
        await self.accept()
        await self.send(text_data=self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        if text_data == "boom":
            raise RuntimeError("declared-groups boom requested by the test")
        await self.send(text_data=text_data)


class KwargsConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()
        route = self.scope["url_route"]
        await self.send(text_data=dumps({"args": list(route["args"]), "kwargs": route["kwargs"],
                                          "user": str(self.scope["user"])}))


@database_sync_to_async
def _select(value):
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT %s", [value])
        return cursor.fetchone()[0]


class DatabaseConsumer(AsyncWebsocketConsumer):
    """Query the database on connect and for every message, as Channels' own database test does."""

    async def connect(self):
        await _select(1)
        await self.accept("db")

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=str(await _select(int(text_data))))


class StreamConsumer(AsyncWebsocketConsumer):
    """Say its channel name; "stream N" starts a layer stream in which each message brings the next.

    Each layer handler awaits before it answers "layer K", so the consumer is
    never idle while the stream runs; a client frame is answered "client TEXT".
    """

    async def connect(self):
        await self.accept()
        await self.send(text_data=self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        if text_data.startswith("stream "):
            await self.channel_layer.send(self.channel_name, {"type": "stream.item", "n": 0,
                                                              "last": int(text_data.split()[1])})
        await self.send(text_data=f"client {text_data}")

    async def stream_item(self, event):
        if event["n"] < event["last"]:
            await self.channel_layer.send(self.channel_name, {**event, "n": event["n"] + 1})
        await asyncio.sleep(0)
        await self.send(text_data=f"layer {event['n']}")


@csrf_exempt
def announce(request, group):
    """Broadcast the POSTed JSON body to ``group`` from a sync view."""
    message = loads(request.body)
    mode = request.GET.get("mode", "now")
    if mode == "now":
        broadcast(group, message)
    elif mode in ("commit", "rollback"):
        with transaction.atomic():
            broadcast(group, message, on_commit=True)
            if mode == "rollback":
                transaction.set_rollback(True)
    elif mode == "unserialisable":
        try:
            broadcast(group, {"bad": object()})
        except TypeError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
    return HttpResponse(status=204)


urlpatterns = [
    *example_urlpatterns,
    path("ws/room/<slug:room>/", room, name="room"),
    path("ws/json/", json_echo, name="json"),
    path("ws/iterate/<slug:name>/", iterate),
    path("ws/private/", private),
    path("ws/permitted/", permitted),
    path("ws/small/", small),
    path("ws/boom/", boom),
    path("ws/negotiated/", negotiated),
    path("ws/member/<slug:group>/", member),
    path("ws/relay/<slug:group>/", relay),
    path("ws/consumer/<slug:group>/", GroupConsumer.as_asgi(), name="group-consumer"),
    path("ws/sync/", SyncEchoConsumer.as_asgi()),
    path("ws/any-frame-consumer/", AnyFrameConsumer.as_asgi()),
    path("ws/json-consumer/", JsonEchoConsumer.as_asgi()),
    path("ws/stoppable/<slug:group>/", StoppableConsumer.as_asgi()),
    path("ws/kwargs/<int:year>/<slug:slug>/", KwargsConsumer.as_asgi(), name="kwargs"),
    path("ws/db/", DatabaseConsumer.as_asgi()),
    path("ws/declared/", DeclaredGroupsConsumer.as_asgi()),
    path("ws/stream/", StreamConsumer.as_asgi()),
    path("announce/<slug:group>/", announce),
]
