"""wsviews' own settings: each ``WSVIEWS_*`` setting declared once, read lazily, validated.

``wsviews_settings.MAX_MESSAGE_SIZE`` reads ``settings.WSVIEWS_MAX_MESSAGE_SIZE``
(or its default) on first use, validates it and caches it; the cache is
dropped on ``setting_changed`` (``override_settings``), connected in
``WSViewsConfig.ready()``. The system checks validate every declared setting,
so adding one is one :class:`Setting` attribute on :class:`WSViewsSettings`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")

PREFIX = "WSVIEWS_"
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a setting's value, and optionally a hint more precise than the setting's."""

    message: str
    hint: str | None = None


Validator = Callable[[Any], Sequence[Problem | str]]


class Setting(Generic[T]):
    """A ``WSVIEWS_*`` setting: default, validator, check id and a one-line doc.

    Declared as a class attribute of :class:`WSViewsSettings`; reading it on
    the instance returns the validated value and caches it there.
    """

    def __init__(
        self,
        default: T | Callable[[], T],
        *,
        type: str,
        doc: str,
        validate: Validator,
        check_id: str,
        hint: str,
        default_doc: str | None = None,
    ) -> None:
        self._default = default
        self.type = type
        self.doc = doc
        self.validate = validate
        self.check_id = check_id
        self.hint = hint
        self.default_doc = default_doc or repr(default)
        self.name = ""
        self.key = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.key = PREFIX + name

    @overload
    def __get__(self, instance: None, owner: type) -> Setting[T]: ...

    @overload
    def __get__(self, instance: WSViewsSettings, owner: type) -> T: ...

    def __get__(self, instance: WSViewsSettings | None, owner: type) -> Setting[T] | T:
        if instance is None:
            return self
        value = self.value()
        # Shadows this (non-data) descriptor until the cache is reset.
        instance.__dict__[self.name] = value
        return value

    def default(self) -> T:
        """Return the default value (computed now, when it comes from the environment)."""
        if callable(self._default):
            return self._default()
        return self._default

    def is_set(self) -> bool:
        """Return True if the project's settings set this one."""
        return hasattr(settings, self.key)

    def raw(self) -> Any:
        """Return the value as the project set it, or the default."""
        return getattr(settings, self.key) if self.is_set() else self.default()

    def problems(self) -> list[Problem]:
        """Return what is wrong with the current value (nothing for the default)."""
        if not self.is_set():
            return []
        return [p if isinstance(p, Problem) else Problem(p) for p in self.validate(self.raw())]

    def value(self) -> T:
        """Return the current value; raise ``ImproperlyConfigured`` naming the fix if it is invalid."""
        problems = self.problems()
        if problems:
            first = problems[0]
            raise ImproperlyConfigured(f"{self.key} {first.message}; {first.hint or self.hint}")
        return self.raw()  # type: ignore[no-any-return]


# Validators: each returns the problems of a value the project set.


def _positive_int(value: Any) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return [f"must be a positive int (bytes), not {value!r}"]
    return []


def _seconds(value: Any, *, zero: str | None = None) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or \
            (value == 0 and zero is None):
        wanted = f"0 ({zero}) or more seconds" if zero else "a positive number of seconds"
        return [f"must be {wanted}, not {value!r}"]
    return []


def _positive_seconds(value: Any) -> list[str]:
    return _seconds(value)


def _rate_limit(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (tuple, list)) and len(value) == 2:
        rate, burst = value
        if not isinstance(rate, bool) and isinstance(rate, (int, float)) and rate > 0 and \
                not isinstance(burst, bool) and isinstance(burst, int) and burst >= 1:
            return []
    return [f"must be None or (messages a second > 0, burst >= 1), not {value!r}"]


def _seconds_or_zero_disables(value: Any) -> list[str]:
    return _seconds(value, zero="disabled")


def _seconds_or_zero_waits_forever(value: Any) -> list[str]:
    return _seconds(value, zero="wait forever")


def _seconds_or_zero_at_once(value: Any) -> list[str]:
    return _seconds(value, zero="close all at once")


def _positive_count(value: Any) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return [f"must be a positive int, not {value!r}"]
    return []


def _positive_int_or_none(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return [f"must be a positive int or None, not {value!r}"]
    return []


def _boolean(value: Any) -> list[str]:
    return [] if isinstance(value, bool) else [f"must be True or False, not {value!r}"]


def _origins(value: Any) -> list[Problem | str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        return [Problem(f"must be a list of origins, not {value!r}",
                        f"Write WSVIEWS_ALLOWED_ORIGINS = [{value!r}].")]
    problems: list[Problem | str] = []
    for origin in value:
        if not isinstance(origin, str):
            problems.append(f"must list origins as str, not {origin!r}")
        elif origin != "*" and "://" not in origin:
            # Browsers send scheme://host[:port]: a bare host would never match.
            problems.append(Problem(f"lists {origin!r}, which is not an origin",
                                    f"Did you mean 'https://{origin}'? An origin is scheme://host[:port]."))
    return problems


def _redis_url(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str) or not value.startswith(("redis://", "rediss://", "unix://")):
        return [f"must be a redis://, rediss:// or unix:// URL, not {value!r}"]
    return []


def _redis_url_from_environment() -> str | None:
    return os.environ.get("REDIS_URL") or None


# Observability and revocation (wsviews.metrics, wsviews.admin, wsviews.revocation).

REVOKE_EVENTS = ("logout", "deactivate", "delete", "password_change", "session_delete")


def _revoke_events(value: Any) -> list[Problem | str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        return [Problem(f"must be a list of events, not {value!r}",
                        f"e.g. WSVIEWS_REVOKE_ON = {list(REVOKE_EVENTS)!r}, or [] to wire none.")]
    problems: list[Problem | str] = []
    for event in value:
        if event not in REVOKE_EVENTS:
            import difflib

            close = difflib.get_close_matches(str(event), REVOKE_EVENTS, n=1)
            problems.append(Problem(
                f"lists {event!r}, which is not an event wsviews revokes on",
                f"Did you mean {close[0]!r}?" if close else f"The events are: {', '.join(REVOKE_EVENTS)}."))
    return problems


def _metrics_token(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str) or len(value) < 16:
        return [f"must be None or a secret str of 16 or more characters, not {value!r}"]
    return []


def _networks(value: Any) -> list[Problem | str]:
    import ipaddress

    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        return [Problem(f"must be a list of IP addresses or networks, not {value!r}",
                        f"Write WSVIEWS_METRICS_ALLOWED_IPS = [{value!r}].")]
    problems: list[Problem | str] = []
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except (TypeError, ValueError):
            problems.append(f"lists {entry!r}, which is not an IP address or network")
    return problems


def _hub(value: Any) -> list[Problem]:
    from .hub.config import problems

    return [Problem(f"[{path!r}]: {message}" if path else message)
            for level, path, message in problems(value) if level == "error"]


class WSViewsSettings:
    """wsviews' settings, read lazily from Django's settings; reset with :meth:`reload`."""

    ALLOWED_ORIGINS: Setting[Sequence[str] | None] = Setting(
        None,
        type="list[str] | None",
        doc="Origins allowed to open sockets (['*']: any); None checks the Origin against ALLOWED_HOSTS.",
        validate=_origins,
        check_id="wsviews.E009",
        hint="e.g. ['https://example.com'], or ['*'] to allow any origin.",
        default_doc="None (check against ALLOWED_HOSTS)",
    )
    MAX_MESSAGE_SIZE: Setting[int] = Setting(
        DEFAULT_MAX_MESSAGE_SIZE,
        type="int",
        doc="Largest incoming message, in bytes: a view's receive() limit; the server's own limit "
            "is the largest of this and the routes' max_message_size.",
        validate=_positive_int,
        check_id="wsviews.E010",
        hint="e.g. WSVIEWS_MAX_MESSAGE_SIZE = 1024 * 1024",
        default_doc="1048576 (1 MiB)",
    )
    DISCOVER_ROUTING: Setting[bool] = Setting(
        True,
        type="bool",
        doc="Also route the websocket_urlpatterns of routing.py modules (the project's and each app's).",
        validate=_boolean,
        check_id="wsviews.E012",
        hint="Set WSVIEWS_DISCOVER_ROUTING = False to route from ROOT_URLCONF only.",
    )
    REDIS_URL: Setting[str | None] = Setting(
        _redis_url_from_environment,
        type="str | None",
        doc="With CHANNEL_LAYERS unset: serve groups with wsviews.layers.RedisChannelLayer on this URL.",
        validate=_redis_url,
        check_id="wsviews.E013",
        hint="e.g. WSVIEWS_REDIS_URL = 'redis://localhost:6379/0'",
        default_doc="$REDIS_URL from the environment, else None",
    )

    # Serving: applied by `manage.py serve`, runserver and wsviews.workers.UvicornWorker.
    HANDSHAKE_TIMEOUT: Setting[float] = Setting(
        5.0,
        type="float",
        doc="Close a connection that has not sent a complete request (or websocket handshake) "
            "within this many seconds.",
        validate=_positive_seconds,
        check_id="wsviews.E030",
        hint="e.g. WSVIEWS_HANDSHAKE_TIMEOUT = 5",
    )
    WRITE_TIMEOUT: Setting[float] = Setting(
        10.0,
        type="float",
        doc="Abort a connection whose peer has read nothing of a full send buffer for this many "
            "seconds; also bounds a close whose peer does not answer.",
        validate=_positive_seconds,
        check_id="wsviews.E031",
        hint="e.g. WSVIEWS_WRITE_TIMEOUT = 10",
    )
    DRAIN_TIMEOUT: Setting[float] = Setting(
        10.0,
        type="float",
        doc="On SIGTERM, close websockets with 1012 in batches spread over this many seconds.",
        validate=_seconds_or_zero_at_once,
        check_id="wsviews.E032",
        hint="e.g. WSVIEWS_DRAIN_TIMEOUT = 10 (keep it below systemd's TimeoutStopSec "
             "and gunicorn's --graceful-timeout)",
    )
    PING_INTERVAL: Setting[float] = Setting(
        20.0,
        type="float",
        doc="Ping each websocket every this many seconds; 0 disables pings.",
        validate=_seconds_or_zero_disables,
        check_id="wsviews.E033",
        hint="e.g. WSVIEWS_PING_INTERVAL = 20",
    )
    PING_TIMEOUT: Setting[float] = Setting(
        20.0,
        type="float",
        doc="Close a websocket whose ping is not answered within this many seconds (1011); 0 waits forever.",
        validate=_seconds_or_zero_waits_forever,
        check_id="wsviews.E034",
        hint="e.g. WSVIEWS_PING_TIMEOUT = 20",
    )
    MAX_CONNECTIONS: Setting[int | None] = Setting(
        None,
        type="int | None",
        doc="Connections per process; a request or handshake over it gets HTTP 503. None: as many "
            "as the file descriptor limit leaves room for.",
        validate=_positive_int_or_none,
        check_id="wsviews.E035",
        hint="e.g. WSVIEWS_MAX_CONNECTIONS = 10000, or None",
        default_doc="None (the RLIMIT_NOFILE limit less a reserve)",
    )
    BACKLOG: Setting[int] = Setting(
        2048,
        type="int",
        doc="Listen backlog: connections the kernel queues before the server accepts them.",
        validate=_positive_count,
        check_id="wsviews.E036",
        hint="e.g. WSVIEWS_BACKLOG = 2048 (the kernel caps it at net.core.somaxconn)",
    )
    COMPRESSION: Setting[bool] = Setting(
        False,
        type="bool",
        doc="Negotiate permessage-deflate (RFC 7692) with clients that offer it. Off: every socket "
            "keeps no zlib state, and a broadcast is one frame written to all its sockets.",
        validate=_boolean,
        check_id="wsviews.E037",
        hint="Set WSVIEWS_COMPRESSION = True or False.",
    )

    # Backpressure: bounds on each socket's outbound backlog (docs/backpressure.md).
    MAX_QUEUE_BYTES: Setting[int] = Setting(
        1024 * 1024,
        type="int",
        doc="Close a socket as slow (4008) once the layer messages waiting for it plus what its "
            "transport has not flushed pass this many bytes.",
        validate=_positive_int,
        check_id="wsviews.E040",
        hint="e.g. WSVIEWS_MAX_QUEUE_BYTES = 1024 * 1024 (at least the largest message a "
             "socket is sent)",
        default_doc="1048576 (1 MiB)",
    )
    MAX_QUEUE_MESSAGES: Setting[int] = Setting(
        1000,
        type="int",
        doc="Close a socket as slow (4008) once more than this many layer messages wait for it.",
        validate=_positive_count,
        check_id="wsviews.E041",
        hint="e.g. WSVIEWS_MAX_QUEUE_MESSAGES = 1000",
    )
    RATE_LIMIT: Setting[tuple[float, int] | None] = Setting(
        None,
        type="(float, int) | None",
        doc="Client messages per socket: (messages a second, burst). The first message over it closes "
            "the socket with 1008. None: no limit.",
        validate=_rate_limit,
        check_id="wsviews.E050",
        hint="e.g. WSVIEWS_RATE_LIMIT = (20, 40): 20 messages a second, 40 at once; or None",
    )

    # Observability and revocation.
    METRICS_BYTES: Setting[bool] = Setting(
        False,
        type="bool",
        doc="Also count the bytes of each message received and sent (a len() per message), "
            "for the metrics' byte counters.",
        validate=_boolean,
        check_id="wsviews.E070",
        hint="Set WSVIEWS_METRICS_BYTES = True or False.",
    )
    METRICS_TOKEN: Setting[str | None] = Setting(
        None,
        type="str | None",
        doc="A secret the metrics URL requires as 'Authorization: Bearer <token>'; None: no token "
            "(then only WSVIEWS_METRICS_ALLOWED_IPS protects it).",
        validate=_metrics_token,
        check_id="wsviews.E071",
        hint="e.g. WSVIEWS_METRICS_TOKEN = os.environ['METRICS_TOKEN'] (16+ characters)",
    )
    METRICS_ALLOWED_IPS: Setting[Sequence[str]] = Setting(
        ("127.0.0.1", "::1"),
        type="list[str]",
        doc="Client addresses or networks that may read the metrics URL (['0.0.0.0/0', '::/0']: "
            "any, then set a token).",
        validate=_networks,
        check_id="wsviews.E072",
        hint="e.g. WSVIEWS_METRICS_ALLOWED_IPS = ['127.0.0.1', '10.0.0.0/8']",
        default_doc="('127.0.0.1', '::1') (loopback only)",
    )
    REVOKE_ON: Setting[Sequence[str]] = Setting(
        REVOKE_EVENTS,
        type="list[str]",
        doc="Events that close a user's or session's open sockets in every process: logout, "
            "deactivate (is_active saved False), delete, password_change, session_delete.",
        validate=_revoke_events,
        check_id="wsviews.E073",
        hint=f"e.g. WSVIEWS_REVOKE_ON = {list(REVOKE_EVENTS)!r}",
        default_doc=repr(list(REVOKE_EVENTS)),
    )

    HUB: Setting[dict[str, Any] | None] = Setting(
        None,
        type="dict | None",
        doc="The realtime hub (wsviews.hub): the client, channel, http_api and websocket sections of "
            "a Centrifugo config.json, in its option names (docs/hub.md).",
        validate=_hub,
        check_id="wsviews.E060",
        hint="see docs/hub.md for the supported keys, e.g. WSVIEWS_HUB = {'channel': "
             "{'namespaces': [{'name': 'chat', 'history_size': 100, 'history_ttl': '300s'}]}}",
        default_doc="None (no namespaces, tokens or API key)",
    )

    @classmethod
    def declared(cls) -> Iterator[Setting[Any]]:
        """Yield every declared setting, in declaration order."""
        for value in vars(cls).values():
            if isinstance(value, Setting):
                yield value

    def reload(self) -> None:
        """Forget the cached values: the next read sees the current settings."""
        self.__dict__.clear()


wsviews_settings = WSViewsSettings()


def reset_on_setting_changed(setting: str, **kwargs: Any) -> None:
    """Reset the cache when a ``WSVIEWS_*`` setting changes (a ``setting_changed`` receiver)."""
    if setting.startswith(PREFIX):
        wsviews_settings.reload()
