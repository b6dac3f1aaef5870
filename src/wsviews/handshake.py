"""Decide a websocket handshake in one pass, before any handler runs.

:func:`decide` loads the session and user into the scope, then checks the
origin, the login and permissions a ``@websocket`` view asks for, and settles
the subprotocol and the message size limit. It returns an :class:`Admission`
or a :class:`Refusal`; :func:`refuse` answers a refusal on the wire.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http.request import validate_host

from .auth import populate_scope
from .conf import wsviews_settings
from .decorators import WebSocketOptions
from .types import Scope, Send

logger = logging.getLogger("wsviews")


@dataclass(frozen=True, slots=True)
class Admission:
    """The handshake may go on: what the socket is opened with."""

    max_message_size: int | None = None
    subprotocol: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """The handshake is refused: the HTTP status, the text sent to the client, the server's log line."""

    status: int
    reason: str
    log: str


async def decide(scope: Scope, options: WebSocketOptions | None) -> Admission | Refusal:
    """Return whether the handshake in ``scope`` is admitted, for a view's ``options`` (None: a consumer)."""
    await populate_scope(scope)
    origins = options.origins if options is not None else None
    refused = origin_refusal(scope, origins)
    if refused:
        return Refusal(403, "Forbidden: this origin may not open a websocket here.",
                       f"Forbidden (websocket origin): {scope['path']}: {refused}")
    if options is None:
        return CONSUMER_ADMISSION
    denied = await _denied(scope, options)
    if denied:
        return Refusal(403, f"Forbidden: {denied}", f"Forbidden (websocket): {scope['path']}: {denied}")
    limit = options.max_message_size
    return Admission(
        max_message_size=wsviews_settings.MAX_MESSAGE_SIZE if limit is None else limit,
        subprotocol=_negotiate(options, scope),
    )


# Consumers get no size limit of ours (the server's applies) and choose their subprotocol in accept().
CONSUMER_ADMISSION = Admission()


def not_found(path: str) -> Refusal:
    """Return the refusal of a handshake to ``path``, where no websocket route is."""
    return Refusal(404, f"Not Found: no websocket route for {path}", f"Not Found (websocket): {path}")


INTERNAL_ERROR = Refusal(500, "Internal Server Error", "")


def header(scope: Scope, name: bytes) -> str | None:
    """Return the first value of request header ``name`` (lower-case bytes), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def allowed_hosts() -> list[str]:
    """Return ALLOWED_HOSTS as Django's request validation applies it (DEBUG adds localhost)."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def origin_refusal(scope: Scope, origins: Sequence[str] | None = None) -> str | None:
    """Return why the handshake's ``Origin`` may not open a socket, naming the setting to change; else None.

    A handshake without ``Origin`` (a non-browser client) is allowed. With
    ``origins`` (from ``@websocket(origins=...)``, else the
    ``WSVIEWS_ALLOWED_ORIGINS`` setting) the origin must be listed (``"*"``
    allows any); without either, its host must match ``ALLOWED_HOSTS``, as
    Channels' ``AllowedHostsOriginValidator`` does.
    """
    origin = header(scope, b"origin")
    if origin is None:
        return None
    rule = "@websocket(origins=...) of this view"
    if origins is None:
        origins = wsviews_settings.ALLOWED_ORIGINS
        rule = "WSVIEWS_ALLOWED_ORIGINS"
    if origins is not None:
        if "*" in origins or origin.rstrip("/") in {o.rstrip("/") for o in origins}:
            return None
        return f"{origin} is not in {rule}"
    hostname = urlsplit(origin).hostname
    if not hostname:
        return f"{origin!r} is not an origin"
    host = hostname if ":" not in hostname else f"[{hostname}]"
    if validate_host(host, allowed_hosts()):
        return None
    return (f"{origin}: host {host!r} is not in ALLOWED_HOSTS (add it there, or list the origin "
            f"in WSVIEWS_ALLOWED_ORIGINS)")


async def _denied(scope: Scope, options: WebSocketOptions) -> str | None:
    user = scope.get("user")
    if options.login_required and not (user is not None and user.is_authenticated):
        return "login required"
    if options.permissions:
        if user is None or not await sync_to_async(user.has_perms)(options.permissions):
            return f"permission {', '.join(options.permissions)} required"
    return None


def _negotiate(options: WebSocketOptions, scope: Scope) -> str | None:
    for offered in scope.get("subprotocols", ()):
        if offered in options.subprotocols:
            return str(offered)
    return None


async def refuse(scope: Scope, send: Send, refusal: Refusal) -> None:
    """Log ``refusal`` (one line, no traceback) and refuse the handshake with its status and reason.

    Uses the ``websocket.http.response`` extension where the server has it;
    otherwise closing before accept makes the server answer 403.
    """
    if refusal.log:
        logger.warning(refusal.log)
    if "websocket.http.response" in (scope.get("extensions") or ()):
        body = refusal.reason.encode()
        _denial_response_sent.set(True)
        await send({
            "type": "websocket.http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        })
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": refusal.reason[:120]})


# uvicorn's sans-I/O websockets implementation (0.35 to at least 0.54) never
# marks the handshake complete after a denial response, so when the
# application returns it logs this ERROR for every refused handshake although
# the client got the response (uvicorn pull request 3138). The record is
# logged from the task that ran the application, where this variable is set
# once a denial response has been sent: the filter drops exactly that record.
UVICORN_INCOMPLETE_HANDSHAKE = "ASGI callable returned without completing handshake."
_denial_response_sent: ContextVar[bool] = ContextVar("wsviews_denial_response_sent", default=False)


class DenialResponseFilter(logging.Filter):
    """Drop uvicorn's "without completing handshake" ERROR after wsviews sent a denial response."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == UVICORN_INCOMPLETE_HANDSHAKE and _denial_response_sent.get())


_FILTER = DenialResponseFilter()


def quiet_uvicorn_denials() -> None:
    """Install :class:`DenialResponseFilter` on uvicorn's error logger (once)."""
    logging.getLogger("uvicorn.error").addFilter(_FILTER)
