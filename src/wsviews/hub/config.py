"""The hub's configuration, in Centrifugo's own option names and value formats.

``WSVIEWS_HUB`` takes the ``client``, ``channel``, ``http_api`` and
``websocket`` sections of a Centrifugo v6 ``config.json`` as they are::

    WSVIEWS_HUB = {
        "client": {"token": {"hmac_secret_key": "..."}, "allowed_origins": ["https://example.com"]},
        "channel": {
            "without_namespace": {"presence": True},
            "namespaces": [{"name": "chat", "history_size": 100, "history_ttl": "300s",
                            "force_recovery": True, "allow_subscribe_for_client": True}],
        },
        "http_api": {"key": "..."},
    }

Durations are written as Centrifugo writes them: Go duration strings
(``"300ms"``, ``"25s"``, ``"1m30s"``, ``"720h"``) or integers, which Centrifugo
reads as nanoseconds (``-1`` disables pings and pong checks, as in
Centrifugo). A ``datetime.timedelta`` is accepted too.

:func:`problems` lists everything wrong with a setting as ``(level, key_path,
message)``: unknown keys and wrong types are errors that name the key and the
likely intended one; Centrifugo options this hub does not implement are
warnings, so nothing is silently ignored. :func:`parse` returns the frozen
:class:`HubConfig`, raising :class:`HubConfigError` if there are errors.
Wiring into Django: a system check returns one ``Error``/``Warning`` per
problem (``id="wsviews.hub.E001"``/``W001``), and the settings module calls
:func:`parse` lazily and drops its cached result on ``setting_changed``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

__all__ = [
    "ChannelConfig", "ChannelOptions", "ClientConfig", "HttpAPIConfig", "HubConfig",
    "HubConfigError", "PersonalChannelConfig", "Problem", "TokenConfig", "WebsocketConfig",
    "parse", "parse_duration", "problems",
]

Level = Literal["error", "warning"]
Problem = tuple[Level, str, str]


class HubConfigError(ValueError):
    """The hub setting has errors; ``problems`` holds all of them."""

    def __init__(self, found: list[Problem]) -> None:
        self.problems = found
        lines = [f"{path}: {message}" for level, path, message in found if level == "error"]
        super().__init__("WSVIEWS_HUB is invalid:\n  " + "\n  ".join(lines))


# Typed configuration ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TokenConfig:
    """How JWTs are verified (``client.token``, ``client.subscription_token``)."""

    hmac_secret_key: str = ""
    hmac_previous_secret_key: str = ""
    hmac_previous_secret_key_valid_until: int = 0
    rsa_public_key: str = ""
    ecdsa_public_key: str = ""
    audience: str = ""
    audience_regex: str = ""
    issuer: str = ""
    issuer_regex: str = ""
    user_id_claim: str = ""


@dataclass(frozen=True, slots=True)
class PersonalChannelConfig:
    """``client.subscribe_to_user_personal_channel``."""

    enabled: bool = False
    personal_channel_namespace: str = ""
    single_connection: bool = False


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The ``client`` section. Durations are seconds; 0 disables pings / pong checks."""

    insecure: bool = False
    insecure_skip_token_signature_verify: bool = False
    allow_anonymous_connect_without_token: bool = False
    disallow_anonymous_connection_tokens: bool = False
    allowed_origins: tuple[str, ...] = ()
    token: TokenConfig = field(default_factory=TokenConfig)
    subscription_token_enabled: bool = False
    subscription_token: TokenConfig = field(default_factory=TokenConfig)
    ping_interval: float = 25.0
    pong_timeout: float = 8.0
    expired_close_delay: float = 25.0
    expired_sub_close_delay: float = 25.0
    stale_close_delay: float = 10.0
    presence_update_interval: float = 27.0
    channel_position_check_delay: float = 40.0
    channel_limit: int = 128
    queue_max_size: int = 1048576
    connection_limit: int = 0
    user_connection_limit: int = 0
    connect_include_server_time: bool = False
    history_max_publication_limit: int = 300
    recovery_max_publication_limit: int = 300
    subscribe_to_user_personal_channel: PersonalChannelConfig = field(
        default_factory=PersonalChannelConfig)

    @property
    def subscription_token_config(self) -> TokenConfig:
        """Return the token settings subscription tokens are verified with."""
        return self.subscription_token if self.subscription_token_enabled else self.token


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """The options of one namespace (``""`` for ``channel.without_namespace``).

    ``history_ttl`` and ``history_meta_ttl`` are seconds; ``history_meta_ttl``
    is already resolved against ``channel.history_meta_ttl``.
    """

    namespace: str = ""
    presence: bool = False
    join_leave: bool = False
    force_push_join_leave: bool = False
    history_size: int = 0
    history_ttl: float = 0.0
    history_meta_ttl: float = 720 * 3600.0
    force_positioning: bool = False
    allow_positioning: bool = False
    force_recovery: bool = False
    allow_recovery: bool = False
    allow_subscribe_for_anonymous: bool = False
    allow_subscribe_for_client: bool = False
    allow_publish_for_anonymous: bool = False
    allow_publish_for_subscriber: bool = False
    allow_publish_for_client: bool = False
    allow_presence_for_anonymous: bool = False
    allow_presence_for_subscriber: bool = False
    allow_presence_for_client: bool = False
    allow_history_for_anonymous: bool = False
    allow_history_for_subscriber: bool = False
    allow_history_for_client: bool = False
    allow_user_limited_channels: bool = False
    channel_regex: str = ""
    publication_data_format: str = ""
    compiled_channel_regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @property
    def history_enabled(self) -> bool:
        """Return whether channels of this namespace keep a history stream."""
        return self.history_size > 0 and self.history_ttl > 0


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """The ``channel`` section, and how a channel name maps onto it."""

    without_namespace: ChannelOptions = field(default_factory=ChannelOptions)
    namespaces: tuple[ChannelOptions, ...] = ()
    history_meta_ttl: float = 720 * 3600.0
    publication_data_format: str = ""
    max_length: int = 255
    private_prefix: str = "$"
    namespace_boundary: str = ":"
    user_boundary: str = "#"
    user_separator: str = ","

    def split(self, channel: str) -> tuple[str, str]:
        """Return ``(namespace, rest)`` of a channel name, as Centrifugo splits it."""
        bare = channel[len(self.private_prefix):] if (
            self.private_prefix and channel.startswith(self.private_prefix)) else channel
        boundary = self.namespace_boundary
        if boundary and boundary in bare:
            namespace, rest = bare.split(boundary, 1)
            return namespace, rest
        return "", channel

    def options(self, channel: str) -> ChannelOptions | None:
        """Return the options of the channel's namespace, or None if it is not declared."""
        namespace, _ = self.split(channel)
        if not namespace:
            return self.without_namespace
        for options in self.namespaces:
            if options.namespace == namespace:
                return options
        return None

    def is_private(self, channel: str) -> bool:
        """Return whether subscribing to the channel needs a subscription token."""
        return bool(self.private_prefix) and channel.startswith(self.private_prefix)

    def is_user_limited(self, channel: str) -> bool:
        """Return whether the channel name carries a user boundary (``news#42``)."""
        return bool(self.user_boundary) and self.user_boundary in channel

    def user_allowed(self, channel: str, user: str) -> bool:
        """Return whether ``user`` is among the users listed after the channel's user boundary."""
        if not self.is_user_limited(channel):
            return True
        allowed = channel.rsplit(self.user_boundary, 1)[1]
        if not self.user_separator:
            return allowed == user
        return user in allowed.split(self.user_separator)

    def personal_channel(self, user: str, namespace: str = "") -> str:
        """Return the user's personal channel (``#42``, or ``ns:#42`` with a namespace)."""
        if not namespace:
            return f"{self.user_boundary}{user}"
        return f"{namespace}{self.namespace_boundary}{self.user_boundary}{user}"


@dataclass(frozen=True, slots=True)
class HttpAPIConfig:
    """The ``http_api`` section (the server API under ``api/``)."""

    key: str = ""
    insecure: bool = False
    disabled: bool = False
    error_mode: str = "transport"


@dataclass(frozen=True, slots=True)
class WebsocketConfig:
    """The ``websocket`` section: the largest frame a client may send, in bytes."""

    message_size_limit: int = 65536


@dataclass(frozen=True, slots=True)
class HubConfig:
    """The whole parsed ``WSVIEWS_HUB`` setting."""

    client: ClientConfig = field(default_factory=ClientConfig)
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    http_api: HttpAPIConfig = field(default_factory=HttpAPIConfig)
    websocket: WebsocketConfig = field(default_factory=WebsocketConfig)


# Durations -------------------------------------------------------------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(value: Any) -> float:
    """Return a Centrifugo duration in seconds, or raise ValueError naming the accepted forms.

    Strings follow Go's ``time.ParseDuration`` (``"1h30m"``, ``"250ms"``,
    ``"-1s"``, ``"0"``); integers are nanoseconds as Centrifugo reads them;
    ``timedelta`` is taken as is.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; write a Go duration string, e.g. \"25s\"")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int):
        return value * 1e-9
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration; write a Go duration string, e.g. \"25s\"")
    text = value
    sign = 1.0
    if text and text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(
            f"{value!r} is not a duration; write a number with a unit (ns, us, ms, s, m, h), "
            "e.g. \"300ms\", \"25s\", \"1m30s\"")
    return sign * total


# The schema ------------------------------------------------------------------
#
# Every key Centrifugo v6 knows in the sections we read. A key maps to how its
# value is checked; ``_unsupported`` keys are known to Centrifugo but not
# implemented here, so setting them to anything but their "off" value warns.

_Check = Callable[[str, Any, list[Problem]], Any]


@dataclass(frozen=True)
class _Opt:
    check: _Check | None = None            # None: a nested section (``keys``)
    keys: Mapping[str, _Opt] | None = None
    unsupported: str = ""                  # why, when the option is not implemented
    always_warn: bool = False              # warn even for an "off" value (whole subsystems)


def _type_error(path: str, value: Any, expected: str, problems_: list[Problem]) -> None:
    problems_.append(("error", path, f"must be {expected}, not {type(value).__name__} {value!r}"))


def _bool(path: str, value: Any, problems_: list[Problem]) -> Any:
    if not isinstance(value, bool):
        _type_error(path, value, "true or false", problems_)
    return value


def _count(path: str, value: Any, problems_: list[Problem]) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        _type_error(path, value, "an integer", problems_)
    elif value < 0:
        problems_.append(("error", path, f"must be 0 or more, not {value}"))
    return value


def _int(path: str, value: Any, problems_: list[Problem]) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        _type_error(path, value, "an integer", problems_)
    return value


def _str(path: str, value: Any, problems_: list[Problem]) -> Any:
    if not isinstance(value, str):
        _type_error(path, value, "a string", problems_)
    return value


def _str_list(path: str, value: Any, problems_: list[Problem]) -> Any:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        _type_error(path, value, "a list of strings", problems_)
    return value


def _choice(*choices: str) -> _Check:
    def check(path: str, value: Any, problems_: list[Problem]) -> Any:
        if not isinstance(value, str) or value not in choices:
            close = difflib.get_close_matches(str(value), [c for c in choices if c], n=1)
            fix = f"did you mean {close[0]!r}? " if close else ""
            problems_.append(("error", path, f"{value!r} is not one of "
                              f"{', '.join(repr(c) for c in choices)}; {fix}".rstrip("; ")))
        return value
    return check


def _duration(path: str, value: Any, problems_: list[Problem], *, may_disable: bool = False
              ) -> Any:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        problems_.append(("error", path, str(exc)))
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1_000_000_000:
        problems_.append(("error", path, (
            f"{value} is {value} nanoseconds (Centrifugo reads numbers as nanoseconds); "
            f"write a string with a unit, e.g. \"{value}s\"")))
    elif seconds < 0 and not may_disable:
        problems_.append(("error", path, f"must not be negative, not {value!r}"))
    return seconds


def _duration_or_off(path: str, value: Any, problems_: list[Problem]) -> Any:
    return _duration(path, value, problems_, may_disable=True)


def _any(path: str, value: Any, problems_: list[Problem]) -> Any:
    return value


def _section(keys: Mapping[str, _Opt], unsupported: str = "", always_warn: bool = False) -> _Opt:
    return _Opt(keys=keys, unsupported=unsupported, always_warn=always_warn)


def _no(why: str, check: _Check = _any) -> _Opt:
    return _Opt(check=check, unsupported=why)


_PROXY = "proxies; decide in Django code (views, hooks) instead"
_MAP = "map subscriptions; channels here are stream channels"
_DELTA = "delta compression; publications are sent in full"
_POLL = "shared poll subscriptions; channels here are stream channels"
_MOUNT = "the URL is where you include('wsviews.hub.urls')"

_TOKEN_KEYS: dict[str, _Opt] = {
    "hmac_secret_key": _Opt(_str),
    "hmac_previous_secret_key": _Opt(_str),
    "hmac_previous_secret_key_valid_until": _Opt(_count),
    "rsa_public_key": _Opt(_str),
    "ecdsa_public_key": _Opt(_str),
    "jwks_public_endpoint": _no("JWKS endpoints; configure rsa_public_key, ecdsa_public_key "
                                "or hmac_secret_key"),
    "audience": _Opt(_str),
    "audience_regex": _Opt(_str),
    "issuer": _Opt(_str),
    "issuer_regex": _Opt(_str),
    "user_id_claim": _Opt(_str),
    "insecure_skip_jwks_endpoint_safety_check": _no("JWKS endpoints"),
}

_CLIENT_KEYS: dict[str, _Opt] = {
    "proxy": _section({}, unsupported=_PROXY, always_warn=True),
    "allowed_origins": _Opt(_str_list),
    "token": _section(_TOKEN_KEYS),
    "subscription_token": _section({"enabled": _Opt(_bool), **_TOKEN_KEYS}),
    "allow_anonymous_connect_without_token": _Opt(_bool),
    "disallow_anonymous_connection_tokens": _Opt(_bool),
    "ping_interval": _Opt(_duration_or_off),
    "pong_timeout": _Opt(_duration_or_off),
    "expired_close_delay": _Opt(_duration),
    "expired_sub_close_delay": _Opt(_duration),
    "stale_close_delay": _Opt(_duration),
    "channel_limit": _Opt(_count),
    "queue_max_size": _Opt(_count),
    "presence_update_interval": _Opt(_duration),
    "concurrency": _no("concurrent commands; a connection's commands are answered in order", _count),
    "channel_position_check_delay": _Opt(_duration),
    "channel_position_max_time_lag": _no("PUB/SUB lag measurement", _duration),
    "connection_limit": _Opt(_count),
    "user_connection_limit": _Opt(_count),
    "connection_rate_limit": _no("connection rate limits", _count),
    "connect_include_server_time": _Opt(_bool),
    "history_max_publication_limit": _Opt(_count),
    "recovery_max_publication_limit": _Opt(_count),
    "insecure_skip_token_signature_verify": _Opt(_bool),
    "user_id_http_header": _no("users come from the Django session or the connection token", _str),
    "insecure": _Opt(_bool),
    "subscribe_to_user_personal_channel": _section({
        "enabled": _Opt(_bool),
        "personal_channel_namespace": _Opt(_str),
        "single_connection": _no("one connection per user", _bool),
    }),
    "connect_code_to_unidirectional_disconnect": _section(
        {}, unsupported="unidirectional transports", always_warn=True),
}

_NAMESPACE_KEYS: dict[str, _Opt] = {
    "presence": _Opt(_bool),
    "join_leave": _Opt(_bool),
    "force_push_join_leave": _Opt(_bool),
    "map_clients_presence_channel_prefix": _no(_MAP, _str),
    "map_users_presence_channel_prefix": _no(_MAP, _str),
    "history_size": _Opt(_count),
    "history_ttl": _Opt(_duration),
    "history_meta_ttl": _Opt(_duration),
    "force_positioning": _Opt(_bool),
    "allow_positioning": _Opt(_bool),
    "force_recovery": _Opt(_bool),
    "allow_recovery": _Opt(_bool),
    "force_recovery_mode": _Opt(_choice("", "stream", "cache")),
    "auto_cache_recover": _no("cache recovery mode", _bool),
    "allowed_delta_types": _no(_DELTA, _str_list),
    "allow_tags_filter": _no("publication tag filters", _bool),
    "delta_publish": _no(_DELTA, _bool),
    "allow_subscribe_for_anonymous": _Opt(_bool),
    "allow_subscribe_for_client": _Opt(_bool),
    "allow_publish_for_anonymous": _Opt(_bool),
    "allow_publish_for_subscriber": _Opt(_bool),
    "allow_publish_for_client": _Opt(_bool),
    "allow_presence_for_anonymous": _Opt(_bool),
    "allow_presence_for_subscriber": _Opt(_bool),
    "allow_presence_for_client": _Opt(_bool),
    "allow_history_for_anonymous": _Opt(_bool),
    "allow_history_for_subscriber": _Opt(_bool),
    "allow_history_for_client": _Opt(_bool),
    "allow_user_limited_channels": _Opt(_bool),
    "channel_regex": _Opt(_str),
    "publication_data_format": _Opt(_choice("", "json", "json_object", "binary")),
    "subscribe_proxy_enabled": _no(_PROXY, _bool),
    "subscribe_proxy_name": _no(_PROXY, _str),
    "publish_proxy_enabled": _no(_PROXY, _bool),
    "publish_proxy_name": _no(_PROXY, _str),
    "sub_refresh_proxy_enabled": _no(_PROXY, _bool),
    "sub_refresh_proxy_name": _no(_PROXY, _str),
    "subscribe_stream_proxy_enabled": _no(_PROXY, _bool),
    "subscribe_stream_proxy_name": _no(_PROXY, _str),
    "subscribe_stream_proxy_bidirectional": _no(_PROXY, _bool),
    "subscription_type": _Opt(_choice("", "stream", "map", "map_clients", "map_users",
                                      "shared_poll")),
    "map": _section({}, unsupported=_MAP),
    "shared_poll": _section({}, unsupported=_POLL),
    # Used by centrifuge-js' own test configuration (publication debouncing).
    "client_publish_debounce_interval": _no("publication debouncing", _duration),
}

_CHANNEL_KEYS: dict[str, _Opt] = {
    "proxy": _section({}, unsupported=_PROXY),
    "without_namespace": _section(_NAMESPACE_KEYS),
    "namespaces": _Opt(_any),               # checked by _check_namespaces
    "history_meta_ttl": _Opt(_duration),
    "publication_data_format": _Opt(_choice("", "json", "json_object", "binary")),
    "max_length": _Opt(_count),
    "private_prefix": _Opt(_str),
    "namespace_boundary": _Opt(_str),
    "user_boundary": _Opt(_str),
    "user_separator": _Opt(_str),
}

_HTTP_API_KEYS: dict[str, _Opt] = {
    "disabled": _Opt(_bool),
    "handler_prefix": _no(_MOUNT, _str),
    "key": _Opt(_str),
    "error_mode": _Opt(_choice("", "transport", "custom")),
    "external": _no("there is one HTTP server; protect api/ in your deployment", _bool),
    "insecure": _Opt(_bool),
}

_WEBSOCKET_KEYS: dict[str, _Opt] = {
    "disabled": _no(_MOUNT, _bool),
    "handler_prefix": _no(_MOUNT, _str),
    "compression": _no("permessage-deflate is WSVIEWS_COMPRESSION (off by default), for all sockets",
                       _bool),
    "compression_min_size": _no("permessage-deflate is negotiated by the ASGI server", _count),
    "compression_level": _no("permessage-deflate is negotiated by the ASGI server", _count),
    "read_buffer_size": _no("buffers belong to the ASGI server", _count),
    "use_write_buffer_pool": _no("buffers belong to the ASGI server", _bool),
    "write_buffer_size": _no("buffers belong to the ASGI server", _count),
    "write_timeout": _no("write timeouts belong to the ASGI server", _duration),
    "message_size_limit": _Opt(_count),
    "decompressed_message_size_limit": _no("permessage-deflate is negotiated by the ASGI server",
                                           _count),
}

_ELSEWHERE = "this section; configure its concern in Django and your ASGI server"
_TOP_KEYS: dict[str, _Opt] = {
    "client": _section(_CLIENT_KEYS),
    "channel": _section(_CHANNEL_KEYS),
    "http_api": _section(_HTTP_API_KEYS),
    "websocket": _section(_WEBSOCKET_KEYS),
    **{name: _section({}, unsupported=_ELSEWHERE, always_warn=True) for name in (
        "http_server", "log", "engine", "broker", "presence_manager", "map_broker", "controller",
        "shared_poll", "rpc", "proxies", "grpc_api", "consumers", "sse", "http_stream",
        "webtransport", "uni_sse", "uni_http_stream", "uni_websocket", "uni_grpc", "emulation",
        "admin", "prometheus", "health", "swagger", "debug", "init", "opentelemetry", "graphite",
        "usage_stats", "node", "shutdown", "pid_file", "enable_unreleased_features")},
}

_NAMESPACE_NAME = re.compile(r"^[-a-zA-Z0-9_.]{2,}$")
_CLAIM_NAME = re.compile(r"^[a-zA-Z_]+$")


def _is_off(value: Any) -> bool:
    return value is None or value is False or value == 0 or value in ("", "stream") or (
        isinstance(value, (list, tuple, dict)) and not value)


def _walk(keys: Mapping[str, _Opt], value: Any, path: str, found: list[Problem]) -> dict[str, Any]:
    """Check one section against its schema; return its known, supported, checked values."""
    if not isinstance(value, Mapping):
        _type_error(path, value, "a dict", found)
        return {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        opt = keys.get(key) if isinstance(key, str) else None
        if opt is None:
            close = difflib.get_close_matches(str(key), list(keys), n=1)
            fix = f"did you mean {close[0]!r}?" if close else "remove it"
            found.append(("error", where, f"unknown option {key!r}: {fix}"))
            continue
        if opt.unsupported:
            if opt.always_warn or not _is_off(item):
                found.append(("warning", where, f"ignored, not implemented by wsviews: {opt.unsupported}"))
            continue
        if opt.check is None:
            out[key] = _walk(opt.keys or {}, item, where, found)
        else:
            out[key] = opt.check(where, item, found)
    return out


# Building the typed config ---------------------------------------------------

def _fields(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def _token(values: Mapping[str, Any], path: str, found: list[Problem]) -> TokenConfig:
    for exact, regex in (("audience", "audience_regex"), ("issuer", "issuer_regex")):
        if values.get(exact) and values.get(regex):
            found.append(("error", f"{path}.{regex}", f"set either {exact} or {regex}, not both"))
    for key in ("audience_regex", "issuer_regex"):
        _compile(values.get(key, ""), f"{path}.{key}", found)
    claim = values.get("user_id_claim", "")
    if isinstance(claim, str) and claim and not _CLAIM_NAME.match(claim):
        found.append(("error", f"{path}.user_id_claim",
                      f"{claim!r} must be a top-level claim name of letters and underscores"))
    secret = values.get("hmac_secret_key", "")
    if isinstance(secret, str) and 0 < len(secret.encode()) < 32:
        found.append(("warning", f"{path}.hmac_secret_key", f"is {len(secret.encode())} bytes; "
                      "use 32 or more random bytes (RFC 7518), e.g. secrets.token_urlsafe(32)"))
    for key, kind in (("rsa_public_key", "RSA"), ("ecdsa_public_key", "EC")):
        pem = values.get(key, "")
        if isinstance(pem, str) and pem:
            problem = _public_key_problem(pem, kind)
            if problem:
                found.append(("error", f"{path}.{key}", problem))
    return TokenConfig(**_fields(TokenConfig, values))


def _public_key_problem(pem: str, kind: str) -> str:
    try:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError:
        return "RSA and ECDSA tokens need the cryptography package: pip install cryptography"
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as exc:
        return f"is not a PEM public key ({exc}); paste the '-----BEGIN PUBLIC KEY-----' block"
    expected = rsa.RSAPublicKey if kind == "RSA" else ec.EllipticCurvePublicKey
    if not isinstance(key, expected):
        return f"is not an {kind} public key"
    return ""


def _compile(pattern: Any, path: str, found: list[Problem]) -> re.Pattern[str] | None:
    if not isinstance(pattern, str) or not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        found.append(("error", path, f"{pattern!r} is not a valid regular expression: {exc}"))
        return None


def _channel_options(values: Mapping[str, Any], namespace: str, global_meta_ttl: float,
                     global_format: str, path: str, found: list[Problem]) -> ChannelOptions:
    for key in ("history_ttl", "history_meta_ttl"):
        seconds = values.get(key, 0.0)
        if isinstance(seconds, float) and seconds > 0 and abs(seconds - round(seconds)) > 1e-9:
            found.append(("error", f"{path}.{key}", "must be whole seconds (Centrifugo does not "
                          "support sub-second precision here)"))
    size, ttl = values.get("history_size", 0), values.get("history_ttl", 0.0)
    if isinstance(size, int) and isinstance(ttl, float) and (size > 0) != (ttl > 0):
        missing = "history_ttl" if size > 0 else "history_size"
        found.append(("error", f"{path}.{missing}",
                      "history needs both history_size and history_ttl; set " + missing))
    meta_ttl = values.get("history_meta_ttl", 0.0) or global_meta_ttl
    if isinstance(ttl, float) and isinstance(meta_ttl, float) and ttl > meta_ttl:
        found.append(("error", f"{path}.history_ttl", "must not be longer than history_meta_ttl"))
    if values.get("force_recovery") and not (isinstance(size, int) and size > 0):
        found.append(("error", f"{path}.force_recovery",
                      "recovery needs history; set history_size and history_ttl"))
    if values.get("force_recovery_mode") == "cache":
        found.append(("warning", f"{path}.force_recovery_mode", "ignored, not implemented by "
                      "wsviews: cache recovery mode; stream recovery is used"))
    kind = values.get("subscription_type", "")
    if kind not in ("", "stream"):
        found.append(("warning", f"{path}.subscription_type", "ignored, not implemented by "
                      f"wsviews: {_POLL if kind == 'shared_poll' else _MAP}"))
    data_format = values.get("publication_data_format", "") or global_format
    if data_format == "binary":
        found.append(("warning", f"{path}.publication_data_format", "ignored, not implemented "
                      "by wsviews: binary data (it needs the Protobuf protocol); empty "
                      "publications are refused"))
    regex = _compile(values.get("channel_regex", ""), f"{path}.channel_regex", found)
    built = _fields(ChannelOptions, values)
    built.pop("namespace", None)
    built.update(history_meta_ttl=meta_ttl, publication_data_format=data_format,
                 compiled_channel_regex=regex)
    return ChannelOptions(namespace=namespace, **built)


def _namespaces(raw: Any, meta_ttl: float, data_format: str, found: list[Problem]
                ) -> tuple[ChannelOptions, ...]:
    path = "channel.namespaces"
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        _type_error(path, raw, "a list of namespace dicts", found)
        return ()
    built: list[ChannelOptions] = []
    seen: set[str] = set()
    for index, entry in enumerate(raw):
        where = f"{path}[{index}]"
        if not isinstance(entry, Mapping):
            _type_error(where, entry, "a dict with a 'name'", found)
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not _NAMESPACE_NAME.match(name):
            found.append(("error", f"{where}.name", f"{name!r} must be 2 or more of letters, "
                          "digits, '-', '_' and '.'"))
            name = ""
        elif name in seen:
            found.append(("error", f"{where}.name", f"namespace {name!r} is declared twice"))
        else:
            where = f"{path}[{name!r}]"
        seen.add(name)
        options = {k: v for k, v in entry.items() if k != "name"}
        values = _walk(_NAMESPACE_KEYS, options, where, found)
        if name:
            built.append(_channel_options(values, name, meta_ttl, data_format, where, found))
    return tuple(built)


def _client(values: Mapping[str, Any], found: list[Problem]) -> ClientConfig:
    token = _token(values.get("token", {}), "client.token", found)
    sub_values = dict(values.get("subscription_token", {}))
    sub_enabled = bool(sub_values.pop("enabled", False))
    sub_token = _token(sub_values, "client.subscription_token", found)
    built = _fields(ClientConfig, values)
    for key in ("token", "subscription_token", "subscribe_to_user_personal_channel"):
        built.pop(key, None)
    for key, default in (("ping_interval", 25.0), ("pong_timeout", 8.0)):
        if key in built:
            # As in Centrifugo: negative disables, zero means the default.
            built[key] = 0.0 if built[key] < 0 else built[key] or default
    personal = PersonalChannelConfig(**_fields(
        PersonalChannelConfig, values.get("subscribe_to_user_personal_channel", {})))
    if "allowed_origins" in built:
        built["allowed_origins"] = tuple(built["allowed_origins"])
    config = ClientConfig(token=token, subscription_token_enabled=sub_enabled,
                          subscription_token=sub_token,
                          subscribe_to_user_personal_channel=personal, **built)
    if config.ping_interval and config.pong_timeout and config.pong_timeout >= config.ping_interval:
        found.append(("warning", "client.pong_timeout",
                      "should be shorter than client.ping_interval, or clients are "
                      "disconnected before the next ping"))
    return config


def _build(values: Mapping[str, Any], found: list[Problem]) -> HubConfig:
    client = _client(values.get("client", {}), found)
    channel_values = dict(values.get("channel", {}))
    meta_ttl = channel_values.get("history_meta_ttl", 720 * 3600.0) or 720 * 3600.0
    data_format = channel_values.get("publication_data_format", "")
    without = _channel_options(channel_values.pop("without_namespace", {}), "", meta_ttl,
                               data_format, "channel.without_namespace", found)
    namespaces = _namespaces(channel_values.pop("namespaces", None), meta_ttl, data_format, found)
    channel_values["history_meta_ttl"] = meta_ttl
    channel = ChannelConfig(without_namespace=without, namespaces=namespaces,
                            **_fields(ChannelConfig, channel_values))
    personal = client.subscribe_to_user_personal_channel
    if personal.enabled and personal.personal_channel_namespace and all(
            ns.namespace != personal.personal_channel_namespace for ns in namespaces):
        found.append(("error", "client.subscribe_to_user_personal_channel.personal_channel_namespace",
                      f"namespace {personal.personal_channel_namespace!r} is not declared in "
                      "channel.namespaces"))
    http_values = dict(values.get("http_api", {}))
    http_values["error_mode"] = http_values.get("error_mode") or "transport"
    return HubConfig(client=client, channel=channel,
                     http_api=HttpAPIConfig(**_fields(HttpAPIConfig, http_values)),
                     websocket=WebsocketConfig(**_fields(WebsocketConfig,
                                                         values.get("websocket", {}))))


def _check(setting: Any) -> tuple[HubConfig | None, list[Problem]]:
    found: list[Problem] = []
    if setting is None:
        return HubConfig(), found
    values = _walk(_TOP_KEYS, setting, "", found)
    if any(level == "error" for level, _, _ in found):
        # Cross-checks on badly typed values would only repeat the same problems.
        return None, found
    config = _build(values, found)
    if any(level == "error" for level, _, _ in found):
        return None, found
    return config, found


def problems(setting: Any) -> list[Problem]:
    """Return every problem of a ``WSVIEWS_HUB`` value as ``(level, key_path, message)``.

    ``level`` is ``"error"`` (the setting cannot be used: unknown key, wrong
    type, impossible combination) or ``"warning"`` (a Centrifugo option this
    hub does not implement). An empty list means the setting is fully honoured.
    """
    return _check(setting)[1]


def parse(setting: Any) -> HubConfig:
    """Return the typed configuration of a ``WSVIEWS_HUB`` value (None: all defaults).

    Raise :class:`HubConfigError` listing every error; warnings do not raise.
    """
    config, found = _check(setting)
    if config is None:
        raise HubConfigError(found)
    return config
