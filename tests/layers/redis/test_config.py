"""CONFIG validation, ``hosts`` decoding and the connection pools built from them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from channels.exceptions import InvalidChannelLayerError
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.sentinel import SentinelConnectionPool

from wsviews.layers.redis import RedisChannelLayer, check_config
from wsviews.layers.redis.config import make_pool

from ..contract import receive
from .conftest import REDIS

_URL = urlsplit(REDIS)
HOST, PORT = _URL.hostname or "127.0.0.1", _URL.port or 6379


async def test_hosts_in_every_channels_redis_form(layers: Any) -> None:
    forms: list[Any] = [
        [REDIS],
        [(HOST, PORT)],
        [{"address": REDIS, "socket_timeout": 2, "max_connections": 5}],
        [{"host": HOST, "port": PORT, "db": 11}],
    ]
    for hosts in forms:
        a, b = layers(hosts=hosts), layers(hosts=hosts)
        channel = await b.new_channel()
        await b.group_add("room", channel)
        await a.group_send("room", {"type": "t"})
        assert (await receive(b, channel))["type"] == "t"


def test_no_timeout_is_shorter_than_a_blocking_call() -> None:
    blocking = RedisChannelLayer.blocking_timeout
    for timeout in (None, 0.5, 5, 30):
        host = {"address": REDIS} if timeout is None else {"address": REDIS,
                                                           "socket_timeout": timeout}
        layer = RedisChannelLayer(hosts=[host])
        assert layer._shards[0].timeouts["blocking"] > blocking
        for role in ("commands", "blocking", "subscriber"):
            pool = make_pool(host, role)
            # Timeouts are the layer's, around whole operations; never redis-py's.
            assert pool.connection_kwargs["socket_timeout"] is None
            if role != "subscriber":
                assert isinstance(pool, BlockingConnectionPool)


def test_sentinel_hosts_build_a_sentinel_pool() -> None:
    host = {"sentinels": [("127.0.0.1", 26379)], "master_name": "mymaster",
            "sentinel_kwargs": {"socket_timeout": 1}, "db": 3}
    layer = RedisChannelLayer(hosts=[host])
    assert "mymaster" in repr(layer)
    pool = make_pool(layer.hosts[0], "commands")
    assert isinstance(pool, SentinelConnectionPool)
    assert isinstance(pool, BlockingConnectionPool)
    assert pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 3


def test_unknown_config_key_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="'capcity': did you mean 'capacity'"):
        RedisChannelLayer(hosts=[REDIS], capcity=10)


def test_bad_config_values_are_refused_with_the_fix() -> None:
    with pytest.raises(InvalidChannelLayerError, match=r"write 'hosts': \['redis://x'\]"):
        RedisChannelLayer(hosts="redis://x")
    with pytest.raises(InvalidChannelLayerError, match="expiry"):
        RedisChannelLayer(expiry=-1)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, []),
        ({"hosts": [("localhost", 6379)], "prefix": "app", "capacity": 10, "expiry": 5,
          "group_expiry": 60, "channel_capacity": {"http.*": 5}, "max_message_size": 1000,
          "symmetric_encryption_keys": ["k"], "on_disconnect": "redis.disconnect",
          "serializer_format": "msgpack", "random_prefix_length": 12}, []),
        ({"BACKEND": "wsviews.layers.RedisChannelLayer", "CONFIG": {"hots": []}}, ["'hots'"]),
        ({"hosts": "redis://x"}, ["must be a list"]),
        ({"hosts": [("localhost",)]}, ["(host, port) pair"]),
        ({"hosts": ["http://x"]}, ["redis://, rediss:// or unix://"]),
        ({"hosts": [{"sentinels": [("h", 1)]}]}, ["no 'master_name'"]),
        ({"hosts": [{"address": REDIS, "sockettimeout": 1}]}, ["did you mean 'socket_timeout'"]),
        ({"hosts": [{"address": REDIS, "decode_responses": True}]}, ["decode_responses"]),
        ({"prefix": "a{b}"}, ["braces"]),
        ({"capacity": 0}, ["'capacity' must be a positive int"]),
        ({"channel_capacity": {"x": "big"}}, ["'channel_capacity'['x']"]),
        ({"symmetric_encryption_keys": "secret"}, ["[SECRET_KEY]"]),
        ({"max_message_size": 2**40}, ["max_message_size"]),
        ({"serializer_format": "json"}, ["'serializer_format' 'json'"]),
        ({"on_reconnect": 3}, ["'on_reconnect'"]),
    ],
)
def test_check_config(config: dict[str, Any], expected: list[str]) -> None:
    problems = check_config(config)
    assert len(problems) == len(expected), problems
    for problem, fragment in zip(problems, expected, strict=True):
        assert fragment in problem

