"""pytest plugin: channels_redis' own tests, unchanged, against wsviews.layers.RedisChannelLayer.

Loaded by scripts/peer-suite-channels-redis with ``-p channels_redis_plugin``.
Before their test modules are imported, ``channels_redis.core.RedisChannelLayer``
and ``channels_redis.pubsub.RedisPubSubChannelLayer`` become a subclass of
ours whose hosts point at the private servers the script started
(``WSVIEWS_PEER_REDIS``, ``WSVIEWS_PEER_SENTINEL``): every host the tests
name (localhost:6379, a sentinel on localhost:26379) is rewritten to them.

Tests that fail on purpose are listed in DOCUMENTED with the reason, which
docs/layers.md states too; they run as strict xfails, so one that starts to
pass shows up (and the list must shrink); TIMING ones are not strict.
channels_redis' own xfail marks (bugs of channels_redis) are dropped: here
those tests must simply pass.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from wsviews.layers.redis import RedisChannelLayer

REDIS = urlsplit(os.environ["WSVIEWS_PEER_REDIS"])
SENTINEL = os.environ.get("WSVIEWS_PEER_SENTINEL", "")

_PRIVATE = "reads channels_redis' private attributes"
_PER_MESSAGE_EXPIRY = ("each message expires `expiry` seconds after it was sent, as in Channels' "
                   "in-memory layer: channel_2's First! is 3 s old when read; channels_redis "
                   "refreshes the whole channel's TTL on every send, so it survives there")
_ON_ARRIVAL = ("group_send capacity is applied when the message reaches the receiving "
               "process, not at group_send: the receiver read message 1 before message 4 "
               "arrived, so message 4 fit")
DOCUMENTED = {
    "test_core.py::test_default_group_key_format":
        f"{_PRIVATE} (_group_key); our group topic is PREFIX:group:{{name}}, with a hash tag",
    "test_core.py::test_custom_group_key_format":
        f"{_PRIVATE} (_group_key); our group topic is PREFIX:group:{{name}}, with a hash tag",
    "test_core.py::test_receive_buffer_respects_capacity":
        f"{_PRIVATE} (receive_buffer); we drop what arrives over capacity, they drop the oldest",
    "test_core.py::test_message_expiry__group_send__one_channel_expires_message":
        _PER_MESSAGE_EXPIRY,
    "test_sentinel.py::test_message_expiry__group_send__one_channel_expires_message":
        _PER_MESSAGE_EXPIRY,
    "test_sentinel.py::test_receive_buffer_respects_capacity":
        f"{_PRIVATE} (receive_buffer); we drop what arrives over capacity, they drop the oldest",
    "test_sentinel.py::test_default_group_key_format":
        f"{_PRIVATE} (_group_key); our group topic is PREFIX:group:{{name}}, with a hash tag",
    "test_sentinel.py::test_custom_group_key_format":
        f"{_PRIVATE} (_group_key); our group topic is PREFIX:group:{{name}}, with a hash tag",
    "test_pubsub.py::test_loop_instance_channel_layer_reference":
        f"{_PRIVATE} (_get_layer: one layer object per event loop); ours has one layer, "
        "with connections per loop",
    "test_pubsub.py::test_multi_event_loop_garbage_collection":
        f"{_PRIVATE} (_layers)",
    "test_pubsub.py::test_auto_reconnect":
        f"{_PRIVATE} (_shards[0]._redis, closed under the layer); our reconnect test has "
        "Redis kill the connection instead (tests/layers/redis/test_pubsub.py)",
    "test_pubsub_sentinel.py::test_loop_instance_channel_layer_reference":
        f"{_PRIVATE} (_get_layer)",
    "test_pubsub_sentinel.py::test_multi_event_loop_garbage_collection":
        f"{_PRIVATE} (_layers)",
    "test_pubsub_sentinel.py::test_auto_reconnect":
        f"{_PRIVATE} (_shards[0]._redis)",
    "test_sentinel.py::test_serialize":
        "expects channels_redis' random prefix (random_prefix_length) in front of serialized "
        "messages; we accept random_prefix_length and ignore it",
    "test_sentinel.py::test_deserialize":
        "expects channels_redis' random prefix (random_prefix_length) in front of serialized "
        "messages; we accept random_prefix_length and ignore it",
    "test_core.py::test_group_send_capacity":
        _ON_ARRIVAL,
    "test_sentinel.py::test_group_send_capacity":
        _ON_ARRIVAL,
    "test_pubsub.py::test_receive_on_non_owned_general_channel":
        "sends a str, not a dict: messages must be dicts here (InvalidMessage, a TypeError "
        "and an AssertionError), as in Channels' own layers; channels_redis' pubsub layer "
        "sends any msgpack value",
}


# Differences that show or not depending on which of two sockets the event loop reads first:
# not strict, so that their passing now and then is not a failure.
TIMING = {"test_core.py::test_group_send_capacity", "test_sentinel.py::test_group_send_capacity"}


def _url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=REDIS.netloc))


def _sentinels(sentinels: Any) -> list[tuple[str, int]]:
    host, _, port = SENTINEL.rpartition(":")
    return [(host, int(port)) for _ in sentinels[:1]]


def _host(host: Any) -> Any:
    if isinstance(host, str):
        return _url(host)
    if isinstance(host, (tuple, list)):
        return (REDIS.hostname, REDIS.port)
    if isinstance(host, Mapping):
        host = dict(host)
        if "sentinels" in host:
            host["sentinels"] = _sentinels(host["sentinels"])
        elif "address" in host:
            host["address"] = _url(host["address"])
        else:
            host["host"], host["port"] = REDIS.hostname, REDIS.port
        return host
    return host


_RESULTS: pytest.StashKey[dict[str, list[str]]] = pytest.StashKey()


class PeerRedisChannelLayer(RedisChannelLayer):
    """Our layer, on the private servers whatever hosts a test names."""

    def __init__(self, hosts: Any = None, **config: Any) -> None:
        hosts = [_host(h) for h in hosts] if hosts else [REDIS.geturl()]
        super().__init__(hosts=hosts, **config)


def pytest_configure(config: pytest.Config) -> None:
    import channels_redis.core
    import channels_redis.pubsub

    channels_redis.core.RedisChannelLayer = PeerRedisChannelLayer
    channels_redis.pubsub.RedisPubSubChannelLayer = PeerRedisChannelLayer
    results: dict[str, list[str]] = {name: [] for name in ("passed", "failed", "documented", "skipped")}
    config.stash[_RESULTS] = results


def _key(item: pytest.Item) -> str:
    return f"{item.path.name}::{item.originalname if isinstance(item, pytest.Function) else item.name}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.own_markers = [m for m in item.own_markers if m.name != "xfail"]
        reason = DOCUMENTED.get(_key(item))
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=_key(item) not in TIMING))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" or (report.when != "call" and report.failed):
        results = item.config.stash[_RESULTS]
        if hasattr(report, "wasxfail") and report.skipped:
            results["documented"].append(f"{item.nodeid}: {report.wasxfail}")
        elif report.skipped:
            results["skipped"].append(item.nodeid)
        elif report.passed and _key(item) in TIMING:
            results["documented"].append(f"{item.nodeid}: passed this time; {DOCUMENTED[_key(item)]}")
        elif report.passed:
            results["passed"].append(item.nodeid)
        else:
            why = "documented difference no longer holds: remove it" if _key(item) in DOCUMENTED else ""
            results["failed"].append(f"{item.nodeid} {why}".rstrip())
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    results = config.stash[_RESULTS]
    write = terminalreporter.write_line
    write("")
    write("channels_redis' tests against wsviews.layers.RedisChannelLayer:")
    for name in ("documented", "failed", "skipped"):
        for line in results[name]:
            write(f"  {name}: {line}")
    write(f"passed {len(results['passed'])} / failed {len(results['failed'])} / "
          f"documented {len(results['documented'])} / skipped {len(results['skipped'])}")
