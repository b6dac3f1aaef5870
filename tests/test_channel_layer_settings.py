"""CHANNEL_LAYERS: the embedded default, channels_redis made safe for redis-py 8, its CONFIG keys checked."""

from __future__ import annotations

from django.conf import settings
from django.test import override_settings

from wsviews.channel_layer_settings import (
    CHANNELS_REDIS_MAX_CONNECTIONS,
    CHANNELS_REDIS_SOCKET_TIMEOUT,
    channels_redis_config_problems,
    normalise_channel_layers,
)

SEED = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [("localhost", 6379)]},
    },
}


def test_seed_hosts_get_a_socket_timeout_above_the_blocking_pop_and_a_large_pool():
    hosts = normalise_channel_layers(SEED)["default"]["CONFIG"]["hosts"]
    assert hosts == [{
        "address": "redis://localhost:6379",
        "socket_timeout": CHANNELS_REDIS_SOCKET_TIMEOUT,
        "max_connections": CHANNELS_REDIS_MAX_CONNECTIONS,
    }]
    assert CHANNELS_REDIS_SOCKET_TIMEOUT > 5  # channels_redis blocks 5 s in BZPOPMIN
    assert SEED["default"]["CONFIG"]["hosts"] == [("localhost", 6379)]  # input untouched


def test_values_the_project_sets_are_kept():
    layers = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                          "CONFIG": {"hosts": ["redis://h:1/2", {"address": "redis://x",
                                                                  "socket_timeout": 60}]}}}
    hosts = normalise_channel_layers(layers)["default"]["CONFIG"]["hosts"]
    assert hosts[0]["address"] == "redis://h:1/2"
    assert hosts[1]["socket_timeout"] == 60


def test_no_channel_layers_means_in_memory(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert normalise_channel_layers(None) == {
        "default": {"BACKEND": "wsviews.layers.InMemoryChannelLayer"}}


def test_redis_url_makes_the_wsviews_redis_layer_the_default(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    assert normalise_channel_layers({}) == {"default": {
        "BACKEND": "wsviews.layers.RedisChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:6379/3"]}}}


def test_wsviews_redis_url_setting_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    with override_settings(WSVIEWS_REDIS_URL="redis://cache:6380/1"):
        layers = normalise_channel_layers(None)
    assert layers["default"]["CONFIG"]["hosts"] == ["redis://cache:6380/1"]


def test_channels_redis_config_keys_are_read_from_the_installed_package():
    core = "channels_redis.core.RedisChannelLayer"
    assert channels_redis_config_problems(core, {"hosts": [], "capacity": 10, "expiry": 5}) == []
    (problem,) = channels_redis_config_problems(core, {"host": []})
    assert problem.startswith("unknown key 'host'. Did you mean 'hosts'?")
    assert "group_expiry" in problem  # lists what the backend takes


def test_pubsub_keys_include_the_loop_layers_and_not_its_internal_ones():
    pubsub = "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert channels_redis_config_problems(pubsub, {"hosts": [], "prefix": "p", "on_disconnect": None,
                                                   "symmetric_encryption_keys": ["k"]}) == []
    (problem,) = channels_redis_config_problems(pubsub, {"channel_layer": object()})
    assert "unknown key 'channel_layer'" in problem
    (problem,) = channels_redis_config_problems(pubsub, {"capacity": 100})  # core only: ignored by pub/sub
    assert "unknown key 'capacity'" in problem


def test_override_settings_is_normalised_too():
    with override_settings(CHANNEL_LAYERS=SEED):
        assert settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["socket_timeout"] == \
            CHANNELS_REDIS_SOCKET_TIMEOUT
