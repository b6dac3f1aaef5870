"""Names in Redis: keys, topics, hash tags, extension keys, and what flush() deletes."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from wsviews.layers.redis.schema import Schema, hash_tag


def test_every_name_is_under_the_prefix_with_a_hash_tag() -> None:
    schema = Schema("app")
    assert schema.queue("worker") == "app:queue:{worker}"
    assert schema.inflight("worker", "p1") == "app:queue:{worker}:inflight:p1"
    assert schema.members("room") == "app:members:{room}"
    assert schema.backlog("p1") == "app:backlog:{p1}"
    assert schema.group_topic("room") == b"app:group:{room}"
    assert schema.inbox_topic("p1") == b"app:inbox:{p1}"
    for name in (schema.queue("w"), schema.inflight("w", "p"), schema.members("w")):
        assert hash_tag(name) == "w"


def test_hash_tag_is_what_redis_cluster_hashes() -> None:
    assert hash_tag("a:{room}:b") == "room"
    assert hash_tag("a:{room}:{other}") == "room"
    assert hash_tag("a:{}:{room}") is None  # an empty first tag: the whole key is hashed
    assert hash_tag("no tag") is None
    assert hash_tag("a:{open") is None


def test_extension_keys_and_their_flush_patterns() -> None:
    schema = Schema("a*b")
    assert schema.flush_patterns() == ["a\\*b:queue:*", "a\\*b:members:*", "a\\*b:backlog:*"]
    assert schema.key("history", "room") == "a*b:history:{room}"
    assert schema.flush_patterns()[-1] == "a\\*b:history:*"


@pytest.mark.parametrize(("kind", "name"), [("queue", "x"), ("inbox", "x"), ("a b", "x"),
                                            ("", "x"), ("history", ""), ("history", "{x}")])
def test_bad_extension_keys_are_refused(kind: str, name: str) -> None:
    with pytest.raises(ValueError):
        Schema("app").key(kind, name)


async def test_every_key_has_a_ttl_and_a_hash_tag(layers: Any, raw: Redis) -> None:
    a, b = layers(), layers()
    channel = await b.new_channel()
    await b.close()
    await a.send(channel, {"type": "parked"})
    await a.send("worker", {"type": "queued"})
    await a.send("worker", {"type": "queued"})
    await a.receive("worker")
    await a.group_add("room", "worker")
    keys = [key async for key in raw.scan_iter(match=f"{a.prefix}:*")]
    kinds = {key.decode().split(":")[1] for key in keys}
    assert kinds == {"queue", "members", "backlog"}
    for key in keys:
        assert await raw.pttl(key) > 0, key
        assert b"{" in key and b"}" in key, key
