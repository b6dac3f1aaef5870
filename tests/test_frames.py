"""Prepared frames: one serialization per message, shared by every socket it goes to.

Unit tests of :func:`wsviews.frames.data_frame` against websockets' own
serialization, then real ``manage.py serve`` servers: the prepared path (no
extension negotiated) and uvicorn's own path (permessage-deflate with
``WSVIEWS_COMPRESSION = True``) deliver the same messages, byte for byte.
:func:`wsviews.frames.data_writer` hands out the protocol's writer only for
its own, unwrapped ``send``.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from websockets.frames import Frame, Opcode

from servers import Server
from serving_support import start_serve
from wsclient import connect, recv
from wsviews import frames
from wsviews.frames import data_frame

# Lengths on each side of the 7-bit, 16-bit and 64-bit length encodings, and past the cache.
SIZES = [0, 1, 125, 126, 65535, 65536, frames.CACHE_MAX + 1]


def _expected(payload: str | bytes) -> bytes:
    if isinstance(payload, str):
        return Frame(Opcode.TEXT, payload.encode()).serialize(mask=False, extensions=[])
    return Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=[])


@pytest.mark.parametrize("size", SIZES)
def test_a_frame_is_websockets_own_serialization(size: int):
    text = "é" * (size // 2) + "x" * (size % 2)
    assert data_frame(text) == _expected(text)
    assert data_frame(b"\x00" * size) == _expected(b"\x00" * size)


def test_the_same_payload_object_gets_the_same_frame_object():
    text = uuid.uuid4().hex * 4
    first = data_frame(text)
    assert data_frame(text) is first
    equal = "".join(text)  # another object, same value: a correct frame, built anew
    assert data_frame(equal) == first


def test_a_mutable_buffer_is_never_served_from_the_cache():
    buffer = bytearray(b"before")
    assert data_frame(buffer) == _expected(b"before")
    buffer[:] = b"after!"
    assert data_frame(buffer) == _expected(b"after!")


def test_a_payload_over_the_cache_limit_is_not_kept():
    big = "y" * (frames.CACHE_MAX + 1)
    assert data_frame(big) is not data_frame(big)
    assert frames._last[0] is not big


class _Protocol:
    def write_data(self, payload: str | bytes) -> bool:
        return True

    async def send(self, message: dict) -> None:
        pass


def test_a_writer_is_found_only_behind_the_protocols_own_send():
    protocol = _Protocol()
    scope = {"extensions": {frames.WRITER_EXTENSION: protocol.write_data}}
    assert frames.data_writer(scope, protocol.send) == protocol.write_data

    async def wrapped(message: dict) -> None:  # a middleware's send: it must see every frame
        await protocol.send(message)

    assert frames.data_writer(scope, wrapped) is None
    assert frames.data_writer(scope, _Protocol().send) is None  # another socket's protocol
    assert frames.data_writer({"extensions": None}, protocol.send) is None
    assert frames.data_writer({}, protocol.send) is None


@pytest.fixture(scope="module", params=["plain", "deflate"])
def frames_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  _database: None) -> Server:
    log = tmp_path_factory.mktemp(f"frames-{request.param}") / "server.log"
    settings = {"ROOT_URLCONF": "urls_backpressure", "WSVIEWS_COMPRESSION": request.param == "deflate"}
    with start_serve(log, settings) as server:
        server.compression = request.param  # type: ignore[attr-defined]
        yield server


def _extensions(ws) -> list[str]:
    return [extension.name for extension in ws.protocol.extensions]


async def test_a_broadcast_reaches_views_and_consumers_byte_for_byte(frames_server: Server):
    group = f"frames-{uuid.uuid4().hex[:8]}"
    routes = ["ws/member/{}/"] * 3 + ["ws/consumer/{}/"] * 2
    members = [await connect(f"{frames_server.ws}/{route.format(group)}") for route in routes]
    try:
        for ws in members:
            assert await recv(ws) == "joined"
            # Every client offers permessage-deflate; the server takes it only when configured to.
            expected = ["permessage-deflate"] if frames_server.compression == "deflate" else []
            assert _extensions(ws) == expected
        texts = ["é" * (size // 2) + "x" * (size % 2) for size in SIZES] + ["last"]
        async with connect(f"{frames_server.ws}/ws/publish/{group}/") as publisher:
            for text in texts:
                await publisher.send(text)
            for ws, route in zip(members, routes, strict=True):
                got = [await recv(ws, timeout=10) for _ in texts]
                if "consumer" in route:
                    got = [json.loads(g)["consumer"] for g in got]
                assert got == texts, route
    finally:
        await asyncio.gather(*(ws.close() for ws in members))
    assert "Traceback" not in frames_server.log()


async def test_text_and_binary_echoes_keep_their_kind_and_bytes(frames_server: Server):
    async with connect(f"{frames_server.ws}/ws/echo-frames/") as ws:
        for size in SIZES:
            await ws.send(b"\xff" * size)
            assert await recv(ws, timeout=10) == b"\xff" * size
            text = "ü" * size
            await ws.send(text)
            assert await recv(ws, timeout=10) == text
