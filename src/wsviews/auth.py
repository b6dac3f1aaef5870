"""Cookies, session and user in the websocket scope, as Channels' auth middleware sets them."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.http import parse_cookie

from .types import Scope


async def populate_scope(scope: Scope) -> None:
    """Set ``scope["cookies"]``, ``scope["session"]`` and ``scope["user"]``.

    The user is loaded once, at the handshake, so it can be read from async
    code without a database call. A handshake without a session cookie costs
    no database query.
    """
    cookies = _cookies(scope)
    scope["cookies"] = cookies
    if "session" not in scope and apps.is_installed("django.contrib.sessions"):
        engine = import_module(settings.SESSION_ENGINE)
        scope["session"] = engine.SessionStore(cookies.get(settings.SESSION_COOKIE_NAME))
    if "user" not in scope and apps.is_installed("django.contrib.auth"):
        scope["user"] = await _user(scope)


def _cookies(scope: Scope) -> dict[str, str]:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            cookies: dict[str, str] = parse_cookie(value.decode("latin-1"))
            return cookies
    return {}


async def _user(scope: Scope) -> Any:
    from django.contrib.auth.models import AnonymousUser

    session = scope.get("session")
    if session is None or session.session_key is None:
        return AnonymousUser()
    from channels.auth import get_user

    return await get_user(scope)
