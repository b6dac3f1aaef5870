"""Decide on a websocket handshake before any handler runs: session, user, origin, refusal."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host

from .auth import populate_scope
from .types import Scope, Send

logger = logging.getLogger("wsviews")


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


def origin_allowed(scope: Scope, origins: Sequence[str] | None = None) -> bool:
    """Return True if the handshake's ``Origin`` may open a socket.

    A handshake without ``Origin`` (a non-browser client) is allowed. With
    ``origins`` (from ``@websocket(origins=...)``, else the
    ``WSVIEWS_ALLOWED_ORIGINS`` setting) the origin must be listed (``"*"``
    allows any); without either, its host must match ``ALLOWED_HOSTS``, as
    Channels' ``AllowedHostsOriginValidator`` does.
    """
    origin = header(scope, b"origin")
    if origin is None:
        return True
    if origins is None:
        origins = getattr(settings, "WSVIEWS_ALLOWED_ORIGINS", None)
    if origins is not None:
        return "*" in origins or origin.rstrip("/") in {o.rstrip("/") for o in origins}
    parsed = urlsplit(origin)
    if not parsed.hostname:
        return False
    host = parsed.hostname if ":" not in parsed.hostname else f"[{parsed.hostname}]"
    return validate_host(host, allowed_hosts())


async def refuse(scope: Scope, send: Send, status: int, text: str) -> None:
    """Refuse the handshake with an HTTP ``status`` and a short text body.

    Uses the ``websocket.http.response`` extension where the server has it;
    otherwise closing before accept makes the server answer 403.
    """
    if "websocket.http.response" in scope.get("extensions", {}):
        body = text.encode()
        await send({
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        })
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": text[:120]})


async def admit(scope: Scope, send: Send, origins: Sequence[str] | None = None) -> bool:
    """Load the session and user into ``scope`` and check the origin.

    Return True to go on; otherwise refuse the handshake (403) and return False.
    """
    await populate_scope(scope)
    if origin_allowed(scope, origins):
        return True
    logger.warning("Forbidden (websocket origin): %s from %s", scope["path"], header(scope, b"origin"))
    await refuse(scope, send, 403, "Forbidden: this origin may not open a websocket here.")
    return False
