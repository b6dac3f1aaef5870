"""JSON for sockets and broadcasts: whatever ``loads`` accepts, ``dumps`` encodes."""

from __future__ import annotations

import json

import pytest

from inprocess import Client
from wsviews import encoding


@pytest.mark.parametrize("depth", [1, 254, 255, 1023])
def test_what_loads_accepts_dumps_encodes_the_same_way(depth):
    text = "[" * depth + '{"é":1}' + "]" * depth
    value = encoding.loads(text)
    assert encoding.dumps(value) == text
    assert json.loads(encoding.dumps(value)) == value


def test_a_value_json_cannot_encode_is_still_a_type_error():
    with pytest.raises(TypeError):
        encoding.dumps({"a": object()})
    deep_with_object: list = [object()]
    for _ in range(300):
        deep_with_object = [deep_with_object]
    with pytest.raises(TypeError):
        encoding.dumps(deep_with_object)


async def test_a_view_echoes_json_nested_deeper_than_orjson_encodes():
    text = "[" * 600 + "]" * 600
    client = await Client("/ws/json/").accepted()
    await client.send_text(text)
    reply = json.loads(await client.recv())
    assert reply["got"] == json.loads(text)
    await client.leave()
