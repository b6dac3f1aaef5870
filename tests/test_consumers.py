"""Channels consumers on wsviews' lean loop keep Channels' semantics: handlers, order, groups, errors."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.layers import get_channel_layer
from django.test import override_settings

from inprocess import Client
from wsviews.consumers import serve_consumer

# Layers with which a consumer's groups must be left: wsviews' (attach: pushed, detach leaves
# every group) and Channels' own in-memory layer (pulled; declared groups discarded one by one).
RECORDING = "inprocess.RecordingLayer"
PULLED = "channels.layers.InMemoryChannelLayer"


def group() -> str:
    return "g" + uuid.uuid4().hex[:10]


def errors_of(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def closed(client: Client) -> int:
    return (await client.closed()).get("code", 1000)


async def test_sync_consumer_runs_on_channels_own_loop():
    client = await Client("/ws/sync/").accepted()
    await client.send_text("x")
    assert await client.recv() == "sync:x"
    await client.leave()


async def test_exception_in_consumer_closes_1011_and_others_carry_on(caplog):
    bystander = await Client("/ws/myapp/").accepted()
    client = await Client(f"/ws/consumer/{group()}/").accepted()
    assert await client.recv() == "joined"
    await client.send_text("boom")
    assert await closed(client) == 1011
    await bystander.send_text("alive")
    assert await bystander.recv() == "alive"
    await bystander.leave()
    (record,) = errors_of(caplog)
    assert record.getMessage() == "Exception in websocket consumer GroupConsumer for " + client.scope["path"]
    assert "consumer boom requested by the test" in caplog.text


async def test_an_oserror_of_the_handlers_own_is_a_bug_reported_with_its_traceback(caplog):
    """Only an OSError raised by the server's send means the client left; this one closes 1011."""
    client = await Client(f"/ws/consumer/{group()}/").accepted()
    assert await client.recv() == "joined"
    await client.send_text("network")
    assert await closed(client) == 1011
    (record,) = errors_of(caplog)
    assert record.exc_info is not None
    assert "the consumer's own network call failed" in caplog.text


async def test_a_send_racing_the_clients_leaving_ends_the_consumer_quietly(caplog):
    from myapp.consumers import MyConsumer

    inbox = [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "echo me"}]

    async def receive():
        return inbox.pop(0) if inbox else await asyncio.Future()

    async def send(message):
        if message["type"] == "websocket.send":
            raise ConnectionResetError("client gone")  # what a server raises: an OSError

    scope = {"type": "websocket", "path": "/x/"}
    await asyncio.wait_for(serve_consumer(MyConsumer, {}, scope, receive, send), 5)
    assert errors_of(caplog) == []


async def test_stop_consumer_raised_by_a_layer_message_ends_the_socket():
    room = group()
    client = await Client(f"/ws/stoppable/{room}/").accepted()
    assert await client.recv() == "joined"
    layer = get_channel_layer()
    await layer.group_send(room, {"type": "wsviews.broadcast", "group": room, "message": "first"})
    assert await client.recv() == "first"
    await layer.group_send(room, {"type": "wsviews.broadcast", "group": room, "message": "stop"})
    assert await closed(client) == 4001
    await client.wait(5)  # the socket's task ends: StopConsumer from the layer side woke it


async def test_exception_in_a_layer_handler_closes_1011(caplog):
    room = group()
    client = await Client(f"/ws/stoppable/{room}/").accepted()
    assert await client.recv() == "joined"
    event = {"type": "wsviews.broadcast", "group": room, "message": "boom"}
    await get_channel_layer().group_send(room, event)
    assert await closed(client) == 1011
    await client.wait(5)
    assert "layer-side boom requested by the test" in caplog.text


async def test_a_message_without_a_handler_closes_1011_with_its_traceback(caplog):
    room = group()
    client = await Client(f"/ws/stoppable/{room}/").accepted()
    assert await client.recv() == "joined"
    await get_channel_layer().group_send(room, {"type": "no.such.handler"})
    assert await closed(client) == 1011
    await client.wait(5)
    assert "No handler for message type no.such.handler" in caplog.text


async def test_a_layer_message_needing_no_check_skips_handle(monkeypatch):
    """A regression guard without timing: the consumer's handler coroutine is awaited as it is,
    with no ``ConsumerRunner.handle`` coroutine around it, unless a check is due."""
    from wsviews import consumers

    handled: list[str] = []
    handle = consumers.ConsumerRunner.handle

    async def counting(self, message):
        handled.append(message["type"])
        await handle(self, message)

    monkeypatch.setattr(consumers.ConsumerRunner, "handle", counting)
    monkeypatch.setattr(consumers, "close_due", lambda: False)
    room = group()
    client = await Client(f"/ws/stoppable/{room}/").accepted()
    assert await client.recv() == "joined"
    handled.clear()
    layer = get_channel_layer()
    for n in range(3):
        await layer.group_send(room, {"type": "wsviews.broadcast", "group": room, "message": f"m{n}"})
    assert [await client.recv() for _ in range(3)] == ["m0", "m1", "m2"]
    assert handled == []
    monkeypatch.setattr(consumers, "close_due", lambda: True)  # the database check is due: handle runs it
    await layer.group_send(room, {"type": "wsviews.broadcast", "group": room, "message": "checked"})
    assert await client.recv() == "checked"
    assert handled == ["wsviews.broadcast"]
    await client.leave()


async def assert_not_a_member(layer, groups: list[str], channel: str) -> None:
    """A group message reaches ``channel`` neither pushed nor queued."""
    pushed = Counter(getattr(layer, "pushed", {}))
    for room in groups:
        await layer.group_send(room, {"type": "wsviews.broadcast", "group": room, "message": "anyone?"})
    await asyncio.sleep(0.05)
    assert Counter(getattr(layer, "pushed", {})) == pushed, "pushed to a channel that should have left"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.1)


@pytest.mark.parametrize("backend", [RECORDING, PULLED])
@pytest.mark.parametrize("ending", ["client leaves", "handler raises"])
async def test_declared_groups_are_left_however_the_socket_ends(backend, ending):
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": backend}}):
        layer = get_channel_layer()
        client = await Client("/ws/declared/").accepted()
        channel = await client.recv()
        await layer.group_send("declared-a", {"type": "websocket.receive", "text": "via the group"})
        assert await client.recv() == "via the group"  # a member while connected
        if ending == "client leaves":
            await client.leave()
        else:
            await client.send_text("boom")
            assert await closed(client) == 1011
            await client.wait(5)
        await assert_not_a_member(layer, ["declared-a", "declared-b"], channel)


async def test_with_wsviews_layers_groups_joined_by_hand_are_left_too():
    """Channels leaves only declared groups; detach leaves every group of the channel in this process."""
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": RECORDING}}):
        layer = get_channel_layer()
        room = group()
        client = await Client(f"/ws/consumer/{room}/").accepted()  # joins with group_add in connect()
        assert await client.recv() == "joined"
        (channel,) = layer.attached
        await layer.group_send(room, {"type": "wsviews.broadcast", "group": room, "message": "hi"})
        assert await client.recv() == '{"consumer":"hi"}'
        await client.leave()
        await assert_not_a_member(layer, [room], channel)


# Arrival order without starvation


async def lag_of_a_client_frame(client: Client, start_at: int = 50, length: int = 400) -> int:
    """Run a layer stream; send a frame when layer message ``start_at`` is answered.

    Return how many later layer messages were answered before the frame was.
    """
    assert (await client.recv()).startswith("specific.")  # the channel name
    await client.send_text(f"stream {length}")
    last_layer = -1
    sent = False
    while True:
        frame = await client.recv()
        if frame == "client second":
            break
        if frame.startswith("layer "):
            last_layer = int(frame.split()[1])
            if last_layer == start_at and not sent:
                await client.send_text("second")
                sent = True
    await client.leave()
    return last_layer - start_at


async def test_a_client_frame_is_not_starved_by_a_continuous_layer_stream():
    """Each layer handler awaits and brings the next: a client frame still gets its turn at once."""
    lag = await lag_of_a_client_frame(await Client("/ws/stream/").accepted())
    assert lag <= 3, f"the client frame waited behind {lag} layer messages"


async def test_channels_own_loop_has_the_same_bound():
    """The bound above is Channels' behaviour: its loop, on the same consumer, lags as little."""
    from urls_views import StreamConsumer

    client = await Client("/ws/stream/", app=StreamConsumer.as_asgi()).accepted()
    assert await lag_of_a_client_frame(client) <= 3


# The entry point a Channels-suite plugin calls


async def test_serve_consumer_runs_a_consumer_without_handshake_decisions():
    """No session, user or origin check is added: the caller admitted the handshake already."""
    from myapp.consumers import MyConsumer

    async def app(scope, receive, send):
        await serve_consumer(MyConsumer, {}, scope, receive, send)

    scope = {"type": "websocket", "path": "/anything/", "headers": [(b"origin", b"https://evil.example")]}
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "websocket.connect"})
    assert (await communicator.receive_output(5))["type"] == "websocket.accept"
    await communicator.send_input({"type": "websocket.receive", "text": "plain"})
    assert (await communicator.receive_output(5))["text"] == "plain"
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.wait(5)
    assert "session" not in scope and "user" not in scope


# Frames a consumer cannot take are the client's mistake: a close code and one INFO line


async def info_lines(caplog) -> list[str]:
    await asyncio.sleep(0.05)  # the burst log writes its first line on the next loop turn
    return [r.getMessage() for r in caplog.records if r.name == "wsviews" and r.levelno == logging.INFO]


async def test_a_binary_frame_to_the_tutorials_text_consumer_closes_1003_without_a_traceback(caplog):
    caplog.set_level(logging.INFO, logger="wsviews")
    bystander = await Client("/ws/myapp/").accepted()
    client = await Client("/ws/myapp/").accepted()
    await client.send_bytes(b"\x00\x01")
    message = await client.closed()
    assert (message["code"], message["reason"]) == (1003, "expected a text frame, got a binary frame")
    await bystander.send_text("alive")
    assert await bystander.recv() == "alive"
    await bystander.leave()
    assert errors_of(caplog) == []
    assert "Traceback" not in caplog.text
    (line,) = await info_lines(caplog)
    assert "1003 expected a text frame" in line and "/ws/myapp/" in line


async def test_a_consumer_whose_receive_takes_both_kinds_gets_binary_frames():
    client = await Client("/ws/any-frame-consumer/").accepted()
    await client.send_bytes(b"\x00")
    assert await client.recv() == repr(b"\x00")
    await client.send_text("t")
    assert await client.recv() == repr("t")
    await client.leave()


async def test_a_json_consumer_closes_1003_on_binary_and_1007_on_invalid_json(caplog):
    caplog.set_level(logging.INFO, logger="wsviews")
    client = await Client("/ws/json-consumer/").accepted()
    await client.send_text('{"a": 1}')
    assert await client.recv() == '{"got": {"a": 1}}'
    await client.send_text("{not json")
    message = await client.closed()
    assert message["code"] == 1007 and message["reason"].startswith("invalid JSON")
    binary = await Client("/ws/json-consumer/").accepted()
    await binary.send_bytes(b"{}")
    assert (await binary.closed())["code"] == 1003
    assert errors_of(caplog) == []


async def test_a_value_error_of_the_json_consumers_own_is_still_a_bug_with_its_traceback(caplog):
    client = await Client("/ws/json-consumer/").accepted()
    await client.send_text('"bug"')
    assert (await client.closed())["code"] == 1011
    (record,) = errors_of(caplog)
    assert record.exc_info is not None and "a bug of the consumer's own" in caplog.text


def test_the_frames_a_consumer_class_takes_are_worked_out_once(monkeypatch):
    """The signature of ``receive`` is inspected once per class, not per message."""
    import inspect

    from channels.generic.websocket import AsyncWebsocketConsumer

    from wsviews import consumers

    class Fresh(AsyncWebsocketConsumer):
        async def receive(self, text_data):
            pass

    calls = []
    real = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda f: calls.append(f) or real(f))
    assert [consumers.shape_of(Fresh)[:2] for _ in range(3)] == [(True, False)] * 3
    assert len(calls) == 1


def test_only_channels_own_send_and_websocket_receive_are_taken_as_stock():
    from channels.consumer import AsyncConsumer
    from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer

    from wsviews.consumers import shape_of

    class Plain(AsyncWebsocketConsumer):
        pass

    class OwnSend(AsyncWebsocketConsumer):
        async def send(self, text_data=None, bytes_data=None, close=False):
            await super().send(text_data=text_data.upper(), bytes_data=bytes_data, close=close)

    class Logged(AsyncConsumer):
        async def send(self, message):
            await super().send(message)

    class MixedIn(AsyncWebsocketConsumer, Logged):  # AsyncWebsocketConsumer.send's super() is Logged's
        pass

    class OwnReceive(AsyncWebsocketConsumer):
        async def websocket_receive(self, message):
            pass

    shapes = {cls.__name__: shape_of(cls) for cls in (Plain, OwnSend, MixedIn, OwnReceive,
                                                       AsyncJsonWebsocketConsumer, AsyncConsumer)}
    assert {name: (s.stock_send, s.stock_receive) for name, s in shapes.items()} == {
        "Plain": (True, True), "OwnSend": (False, True), "MixedIn": (False, True),
        "OwnReceive": (True, False), "AsyncJsonWebsocketConsumer": (True, True),
        "AsyncConsumer": (False, False),
    }


async def test_the_direct_send_sends_what_channels_send_does():
    from channels.generic.websocket import AsyncWebsocketConsumer

    from wsviews.consumers import direct_send

    sent = []

    async def base_send(message):
        sent.append(message)

    def made() -> AsyncWebsocketConsumer:
        consumer = AsyncWebsocketConsumer()
        consumer.base_send = base_send
        return consumer

    stock, direct = made(), made()
    direct_send(direct)
    assert asyncio.iscoroutinefunction(direct.send)
    results = []
    for consumer in (stock, direct):
        sent.clear()
        await consumer.send(text_data="t")
        await consumer.send(bytes_data=b"b")
        await consumer.send(text_data="bye", close=4000)
        with pytest.raises(ValueError, match="You must pass one of bytes_data or text_data"):
            await consumer.send()
        results.append(list(sent))
    assert results[0] == results[1] == [
        {"type": "websocket.send", "text": "t"}, {"type": "websocket.send", "bytes": b"b"},
        {"type": "websocket.send", "text": "bye"}, {"type": "websocket.close", "code": 4000},
    ]


async def test_the_direct_send_writes_through_the_protocol_until_base_send_is_replaced():
    from channels.generic.websocket import AsyncWebsocketConsumer

    from wsviews.connections import register, unregister
    from wsviews.consumers import direct_send

    written, sent, replaced = [], [], []
    writable = True

    def write(payload):
        if writable:
            written.append(payload)
        return writable

    async def base_send(message):
        sent.append(message)

    async def other_send(message):
        replaced.append(message)

    record = register({"path": "/ws/x/", "user": None, "session": None}, "ws/x/", "consumer", base_send)
    try:
        consumer = AsyncWebsocketConsumer()
        consumer.base_send = base_send
        direct_send(consumer, write, record)
        await consumer.send(text_data="t")
        await consumer.send(bytes_data=b"b")
        assert (written, sent, record.sent) == (["t", b"b"], [], 2)
        writable = False  # paused or closing: the message goes through base_send
        await consumer.send(text_data="later")
        assert sent == [{"type": "websocket.send", "text": "later"}]
        writable = True
        consumer.base_send = other_send
        await consumer.send(text_data="to the new one")
        assert replaced == [{"type": "websocket.send", "text": "to the new one"}]
        assert written == ["t", b"b"]
    finally:
        unregister(record)
