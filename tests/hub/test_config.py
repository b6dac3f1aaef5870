"""WSVIEWS_HUB takes Centrifugo's sections as written, and says exactly what is wrong with it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from wsviews.hub.config import (
    ChannelConfig,
    ChannelOptions,
    HubConfig,
    HubConfigError,
    parse,
    parse_duration,
    problems,
)

# The client, channel and http_api sections of a Centrifugo v6 config.json, as a
# project running Centrifugo would have them.
CENTRIFUGO_SECTIONS: dict[str, Any] = {
    "client": {
        "allowed_origins": ["https://example.com"],
        "token": {"hmac_secret_key": "k" * 40, "audience": "site", "issuer": "auth"},
        "subscription_token": {"enabled": True, "hmac_secret_key": "s" * 40},
        "ping_interval": "20s",
        "pong_timeout": "5s",
        "expired_close_delay": "10s",
        "channel_limit": 64,
        "history_max_publication_limit": 100,
        "subscribe_to_user_personal_channel": {"enabled": True,
                                               "personal_channel_namespace": "personal"},
        "concurrency": 8,
    },
    "channel": {
        "without_namespace": {"presence": True, "allowed_delta_types": ["fossil"],
                              "delta_publish": True},
        "namespaces": [
            {"name": "chat", "history_size": 100, "history_ttl": "300s", "force_recovery": True,
             "allow_subscribe_for_client": True, "allow_publish_for_subscriber": True,
             "join_leave": True, "force_push_join_leave": True},
            {"name": "personal", "presence": True},
            {"name": "board", "subscription_type": "map", "allow_subscribe_for_client": True,
             "map": {"mode": "ephemeral", "key_ttl": "60s"}},
        ],
    },
    "http_api": {"key": "api-key"},
}


def test_centrifugo_sections_paste_in() -> None:
    """The sections parse into typed values; what wsviews does not implement is warned about."""
    config = parse(CENTRIFUGO_SECTIONS)
    assert config.client.ping_interval == 20.0 and config.client.pong_timeout == 5.0
    assert config.client.allowed_origins == ("https://example.com",)
    assert config.client.token.audience == "site"
    assert config.client.subscription_token_config.hmac_secret_key == "s" * 40
    assert config.client.subscribe_to_user_personal_channel.personal_channel_namespace == "personal"
    chat = config.channel.options("chat:room")
    assert chat is not None and (chat.history_size, chat.history_ttl, chat.force_recovery) == (
        100, 300.0, True)
    assert chat.history_meta_ttl == 720 * 3600
    assert config.http_api.key == "api-key" and config.http_api.error_mode == "transport"
    assert problems(CENTRIFUGO_SECTIONS) == [
        ("warning", "client.concurrency", "ignored, not implemented by wsviews: concurrent "
         "commands; a connection's commands are answered in order"),
        ("warning", "channel.without_namespace.allowed_delta_types",
         "ignored, not implemented by wsviews: delta compression; publications are sent in full"),
        ("warning", "channel.without_namespace.delta_publish",
         "ignored, not implemented by wsviews: delta compression; publications are sent in full"),
        ("warning", "channel.namespaces['board'].map",
         "ignored, not implemented by wsviews: map subscriptions; channels here are stream channels"),
        ("warning", "channel.namespaces['board'].subscription_type",
         "ignored, not implemented by wsviews: map subscriptions; channels here are stream channels"),
    ]


def test_defaults_are_centrifugos() -> None:
    """No setting at all gives Centrifugo's defaults."""
    config = parse(None)
    assert config == HubConfig() == parse({})
    client = config.client
    assert (client.ping_interval, client.pong_timeout, client.expired_close_delay,
            client.expired_sub_close_delay, client.stale_close_delay, client.channel_limit,
            client.queue_max_size, client.presence_update_interval,
            client.history_max_publication_limit, client.recovery_max_publication_limit) == (
        25.0, 8.0, 25.0, 25.0, 10.0, 128, 1048576, 27.0, 300, 300)
    channel = config.channel
    assert (channel.max_length, channel.private_prefix, channel.namespace_boundary,
            channel.user_boundary, channel.user_separator, channel.history_meta_ttl) == (
        255, "$", ":", "#", ",", 720 * 3600.0)
    assert config.websocket.message_size_limit == 65536


@pytest.mark.parametrize(("setting", "expected"), [
    ({"clients": {}}, ("error", "clients", "unknown option 'clients': did you mean 'client'?")),
    ({"client": {"ping_intreval": "1s"}},
     ("error", "client.ping_intreval", "unknown option 'ping_intreval': did you mean 'ping_interval'?")),
    ({"client": {"token": {"hmac_secret": "x" * 40}}},
     ("error", "client.token.hmac_secret", "unknown option 'hmac_secret': did you mean "
      "'hmac_secret_key'?")),
    ({"channel": {"namespaces": [{"name": "chat", "allow_subscribe_for_clients": True}]}},
     ("error", "channel.namespaces['chat'].allow_subscribe_for_clients",
      "unknown option 'allow_subscribe_for_clients': did you mean 'allow_subscribe_for_client'?")),
    ({"channel": {"without_namespace": {"zzz": 1}}},
     ("error", "channel.without_namespace.zzz", "unknown option 'zzz': remove it")),
    ({"client": {"insecure": "yes"}},
     ("error", "client.insecure", "must be true or false, not str 'yes'")),
    ({"client": {"channel_limit": -1}}, ("error", "client.channel_limit", "must be 0 or more, not -1")),
    ({"client": {"channel_limit": True}},
     ("error", "client.channel_limit", "must be an integer, not bool True")),
    ({"client": {"allowed_origins": "https://a"}},
     ("error", "client.allowed_origins", "must be a list of strings, not str 'https://a'")),
    ({"client": {"ping_interval": "25"}},
     ("error", "client.ping_interval", "'25' is not a duration; write a number with a unit "
      "(ns, us, ms, s, m, h), e.g. \"300ms\", \"25s\", \"1m30s\"")),
    ({"client": {"ping_interval": 25}},
     ("error", "client.ping_interval", "25 is 25 nanoseconds (Centrifugo reads numbers as "
      "nanoseconds); write a string with a unit, e.g. \"25s\"")),
    ({"client": {"stale_close_delay": "-1s"}},
     ("error", "client.stale_close_delay", "must not be negative, not '-1s'")),
    ({"channel": []}, ("error", "channel", "must be a dict, not list []")),
    ({"channel": {"namespaces": {"chat": {}}}},
     ("error", "channel.namespaces", "must be a list of namespace dicts, not dict {'chat': {}}")),
    ({"channel": {"namespaces": [{"name": "x"}]}},
     ("error", "channel.namespaces[0].name", "'x' must be 2 or more of letters, digits, '-', '_' "
      "and '.'")),
    ({"channel": {"namespaces": [{"name": "ab"}, {"name": "ab"}]}},
     ("error", "channel.namespaces[1].name", "namespace 'ab' is declared twice")),
    ({"channel": {"namespaces": [{"name": "ab", "history_size": 10}]}},
     ("error", "channel.namespaces['ab'].history_ttl",
      "history needs both history_size and history_ttl; set history_ttl")),
    ({"channel": {"namespaces": [{"name": "ab", "force_recovery": True}]}},
     ("error", "channel.namespaces['ab'].force_recovery",
      "recovery needs history; set history_size and history_ttl")),
    ({"channel": {"namespaces": [{"name": "ab", "history_size": 1, "history_ttl": "1500ms"}]}},
     ("error", "channel.namespaces['ab'].history_ttl", "must be whole seconds (Centrifugo does not "
      "support sub-second precision here)")),
    ({"channel": {"namespaces": [{"name": "ab", "channel_regex": "("}]}},
     ("error", "channel.namespaces['ab'].channel_regex",
      "'(' is not a valid regular expression: missing ), unterminated subpattern at position 0")),
    ({"channel": {"namespaces": [{"name": "ab", "subscription_type": "maps"}]}},
     ("error", "channel.namespaces['ab'].subscription_type", "'maps' is not one of '', 'stream', "
      "'map', 'map_clients', 'map_users', 'shared_poll'; did you mean 'map'?")),
    ({"client": {"token": {"audience": "a", "audience_regex": "a.*"}}},
     ("error", "client.token.audience_regex", "set either audience or audience_regex, not both")),
    ({"client": {"token": {"user_id_claim": "user.id"}}},
     ("error", "client.token.user_id_claim",
      "'user.id' must be a top-level claim name of letters and underscores")),
    ({"client": {"subscribe_to_user_personal_channel": {"enabled": True,
                                                        "personal_channel_namespace": "me"}}},
     ("error", "client.subscribe_to_user_personal_channel.personal_channel_namespace",
      "namespace 'me' is not declared in channel.namespaces")),
])
def test_errors_name_the_key_and_the_fix(setting: dict[str, Any], expected: tuple[str, str, str]
                                         ) -> None:
    """Each mistake is one error naming its key path, with "did you mean" for misspellings."""
    assert expected in problems(setting)
    with pytest.raises(HubConfigError) as raised:
        parse(setting)
    assert f"{expected[1]}: {expected[2]}" in str(raised.value)


@pytest.mark.parametrize(("setting", "path"), [
    ({"proxies": []}, "proxies"),
    ({"map_broker": {}}, "map_broker"),
    ({"engine": {"type": "redis"}}, "engine"),
    ({"client": {"proxy": {"connect": {"enabled": True}}}}, "client.proxy"),
    ({"client": {"token": {"jwks_public_endpoint": "https://x/jwks"}}},
     "client.token.jwks_public_endpoint"),
    ({"channel": {"namespaces": [{"name": "ab", "subscribe_proxy_enabled": True}]}},
     "channel.namespaces['ab'].subscribe_proxy_enabled"),
    ({"channel": {"namespaces": [{"name": "ab", "subscription_type": "shared_poll"}]}},
     "channel.namespaces['ab'].subscription_type"),
    ({"channel": {"namespaces": [{"name": "ab", "history_size": 1, "history_ttl": "1s",
                                  "force_recovery": True, "force_recovery_mode": "cache"}]}},
     "channel.namespaces['ab'].force_recovery_mode"),
    ({"channel": {"publication_data_format": "binary"}}, "channel.without_namespace."
     "publication_data_format"),
    ({"websocket": {"compression": True}}, "websocket.compression"),
    ({"http_api": {"handler_prefix": "/api"}}, "http_api.handler_prefix"),
    ({"client": {"token": {"hmac_secret_key": "secret"}}}, "client.token.hmac_secret_key"),
    ({"client": {"ping_interval": "5s", "pong_timeout": "5s"}}, "client.pong_timeout"),
])
def test_known_but_unimplemented_options_are_warnings(setting: dict[str, Any], path: str) -> None:
    """Centrifugo options wsviews does not implement warn (the setting still parses)."""
    found = problems(setting)
    assert [p for p in found if p[0] == "error"] == []
    assert path in [p[1] for p in found if p[0] == "warning"], found
    parse(setting)


def test_switched_off_unsupported_options_do_not_warn() -> None:
    """An unimplemented option left at its "off" value is harmless and not reported."""
    assert problems({"channel": {"without_namespace": {
        "delta_publish": False, "allowed_delta_types": [], "subscription_type": "stream",
        "subscribe_proxy_enabled": False}}}) == []


def test_ping_and_pong_follow_centrifugos_sentinels() -> None:
    """-1 disables pings / pong checks; 0 means the default; timedeltas and nanoseconds work."""
    config = parse({"client": {"ping_interval": -1, "pong_timeout": 0}})
    assert (config.client.ping_interval, config.client.pong_timeout) == (0.0, 8.0)
    config = parse({"client": {"ping_interval": timedelta(seconds=30),
                               "pong_timeout": 4_000_000_000}})
    assert (config.client.ping_interval, config.client.pong_timeout) == (30.0, 4.0)


@pytest.mark.parametrize(("text", "seconds"), [
    ("300ms", 0.3), ("25s", 25.0), ("1m30s", 90.0), ("1.5h", 5400.0), ("720h", 2592000.0),
    (".5s", 0.5), ("2h45m", 9900.0), ("-1s", -1.0), ("+2s", 2.0), ("0", 0.0), ("100us", 1e-4),
    ("100µs", 1e-4), ("5ns", 5e-9), (3_000_000_000, 3.0), (timedelta(minutes=2), 120.0),
])
def test_durations_parse_as_go_does(text: Any, seconds: float) -> None:
    """Go duration strings, nanosecond integers and timedeltas become seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "s", "5x", "1 s", "1.2.3s", "--1s", True, 2.5, None])
def test_bad_durations_raise(text: Any) -> None:
    """Anything else is refused with a message showing the accepted form."""
    with pytest.raises(ValueError, match='e.g. "'):
        parse_duration(text)


def test_channel_names_resolve_to_namespaces_as_in_centrifugo() -> None:
    """The namespace is before the boundary (after a private prefix); unknown ones resolve to None."""
    channels = ChannelConfig(namespaces=(ChannelOptions(namespace="chat"),))
    assert channels.split("chat:room:1") == ("chat", "room:1")
    assert channels.split("$chat:room") == ("chat", "room")
    assert channels.split("lobby") == ("", "lobby")
    assert channels.options("chat:x") is channels.namespaces[0]
    assert channels.options("lobby") is channels.without_namespace
    assert channels.options("other:x") is None
    assert channels.is_private("$chat:x") and not channels.is_private("chat:$x")
    assert channels.user_allowed("chat:dm#1,2", "2") and not channels.user_allowed("chat:dm#1,2", "3")
    assert channels.user_allowed("chat:open", "3")
    assert channels.personal_channel("42") == "#42"
    assert channels.personal_channel("42", "personal") == "personal:#42"
    custom = ChannelConfig(private_prefix="", namespace_boundary="/", user_boundary="@",
                           user_separator="")
    assert custom.split("chat/room") == ("chat", "room")
    assert not custom.is_private("$x")
    assert custom.user_allowed("dm@7", "7") and not custom.user_allowed("dm@7,8", "7")


def test_a_history_ttl_cannot_outlive_its_meta_ttl() -> None:
    """history_ttl longer than the (namespace or global) history_meta_ttl is an error."""
    setting = {"channel": {"history_meta_ttl": "60s", "namespaces": [
        {"name": "ab", "history_size": 1, "history_ttl": "120s"}]}}
    assert ("error", "channel.namespaces['ab'].history_ttl",
            "must not be longer than history_meta_ttl") in problems(setting)


def test_public_keys_must_be_pem_keys_of_the_right_kind() -> None:
    """A key that is not PEM, or an EC key given as the RSA key, is an error on that key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    [(level, path, message)] = problems({"client": {"token": {"rsa_public_key": "not a key"}}})
    assert (level, path) == ("error", "client.token.rsa_public_key")
    assert message.startswith("is not a PEM public key (")
    assert message.endswith("paste the '-----BEGIN PUBLIC KEY-----' block")
    ec_pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert problems({"client": {"token": {"rsa_public_key": ec_pem}}}) == [
        ("error", "client.token.rsa_public_key", "is not an RSA public key")]
    assert problems({"client": {"token": {"ecdsa_public_key": ec_pem}}}) == []
