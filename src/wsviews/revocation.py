"""Close every open socket of a user or a session, in every process.

:func:`disconnect_user` / :func:`adisconnect_user` and :func:`disconnect_session`
/ :func:`adisconnect_session` close the matching sockets of this process at
once, then group-send a ``wsviews.revoke`` message on the control channel
(:mod:`wsviews.control`), which closes them in every other process on the
channel layer. Views and consumers are closed with ``code`` (default 4401)
and ``reason``; a realtime hub connection closes its own way (its record's
``on_revoke`` and ``revoke_code``).

:func:`connect_signals` (called from ``WSViewsConfig.ready()``) wires them to
the events named in ``WSVIEWS_REVOKE_ON``: logout (the session's sockets),
deactivation (``is_active`` saved False), deletion and password change (the
user's sockets), and deletion of a database session row (its sockets).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction

from . import connections, control, counters
from .conf import wsviews_settings

logger = logging.getLogger("wsviews")

DEFAULT_CODE = 4401
MESSAGE_TYPE = "wsviews.revoke"


async def adisconnect_user(user: Any, code: int = DEFAULT_CODE, reason: str = "access revoked") -> int:
    """Close every socket of ``user`` (a user or its primary key) in every process.

    Return how many sockets of this process were closed.
    """
    return await _revoke({"type": MESSAGE_TYPE, "user": _user_id(user), "code": code,
                          "reason": reason[:120]})


async def adisconnect_session(session_key: str, code: int = DEFAULT_CODE,
                              reason: str = "session ended") -> int:
    """Close every socket opened with the session ``session_key`` in every process.

    Return how many sockets of this process were closed.
    """
    return await _revoke({"type": MESSAGE_TYPE, "session": str(session_key), "code": code,
                          "reason": reason[:120]})


def disconnect_user(user: Any, code: int = DEFAULT_CODE, reason: str = "access revoked") -> None:
    """Close every socket of ``user`` in every process (from sync code; see :func:`adisconnect_user`).

    Called from async code (a running loop in this thread), the closing is
    scheduled on that loop instead of awaited.
    """
    _run(adisconnect_user(user, code, reason))


def disconnect_session(session_key: str, code: int = DEFAULT_CODE, reason: str = "session ended") -> None:
    """Close every socket of the session ``session_key`` in every process, from sync code."""
    _run(adisconnect_session(session_key, code, reason))


async def _revoke(message: dict[str, Any]) -> int:
    closed = await _close_local(message)
    try:
        await control.publish(message)
    except Exception as exc:
        logger.warning("Revocation could not reach other processes (%s): only this process's "
                       "sockets were closed.", exc or type(exc).__name__)
    return closed


async def _close_local(message: dict[str, Any]) -> int:
    """Close this process's matching sockets, on the loop that serves them."""
    home = control.loop()
    if home is not None and home.is_running() and home is not _running_loop():
        future = asyncio.run_coroutine_threadsafe(close_matching(message), home)
        return await asyncio.wrap_future(future)
    return await close_matching(message)


async def close_matching(message: dict[str, Any]) -> int:
    """Close the sockets of this process that a ``wsviews.revoke`` message names; return how many."""
    code = int(message.get("code") or DEFAULT_CODE)
    reason = str(message.get("reason") or "")
    if message.get("user") is not None:
        records = list(connections.of_user(str(message["user"])))
        whose = f"user {message['user']}"
    elif message.get("session"):
        records = list(connections.of_session(str(message["session"])))
        whose = "a session"
    else:
        return 0
    if not records:
        return 0
    results = await asyncio.gather(*(record.revoke(code, reason) for record in records),
                                   return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            logger.warning("Closing a revoked socket failed: %s", result or type(result).__name__)
    counters.revocation(len(records))
    logger.info("Revoked %d socket(s) of %s: %d %s", len(records), whose, code, reason)
    return len(records)


async def _on_control_message(message: dict[str, Any]) -> None:
    await close_matching(message)


control.on(MESSAGE_TYPE, _on_control_message)


_background: set[asyncio.Task[int]] = set()


def _run(coro: Coroutine[Any, Any, int]) -> None:
    loop = _running_loop()
    if loop is not None:
        task = loop.create_task(coro)
        _background.add(task)
        task.add_done_callback(_background.discard)
        return

    async def run() -> int:
        return await coro

    async_to_sync(run)()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _user_id(user: Any) -> str:
    pk = getattr(user, "pk", user)
    if pk is None:
        raise ValueError("disconnect_user() needs a saved user or a primary key, not an unsaved user")
    return str(pk)


# Signals


def _wanted(event: str) -> bool:
    return event in wsviews_settings.REVOKE_ON


def _after_commit(using: str | None, revoke: Any, *args: Any, **kwargs: Any) -> None:
    # After the commit: a socket reconnecting at once must find the user already changed.
    transaction.on_commit(lambda: revoke(*args, **kwargs), using=using)


def _on_logout(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    if not _wanted("logout"):
        return
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if key:
        disconnect_session(key, reason="logged out")
    elif user is not None and user.pk is not None:
        disconnect_user(user, reason="logged out")


def _on_user_saved(sender: Any, instance: Any, created: bool = False, update_fields: Any = None,
                   using: str | None = None, **kwargs: Any) -> None:
    if created:
        return
    # AbstractBaseUser.save() keeps the new raw password in _password until after post_save.
    if getattr(instance, "_password", None) is not None and _wanted("password_change"):
        _after_commit(using, disconnect_user, instance.pk, reason="password changed")
        return
    if getattr(instance, "is_active", True) is False and _wanted("deactivate") and \
            (update_fields is None or "is_active" in update_fields):
        _after_commit(using, disconnect_user, instance.pk, reason="account deactivated")


def _on_user_deleted(sender: Any, instance: Any, using: str | None = None, **kwargs: Any) -> None:
    if _wanted("delete") and instance.pk is not None:
        _after_commit(using, disconnect_user, instance.pk, reason="account deleted")


def _on_session_deleted(sender: Any, instance: Any, using: str | None = None, **kwargs: Any) -> None:
    if _wanted("session_delete"):
        _after_commit(using, disconnect_session, instance.session_key, reason="session ended")


def connect_signals() -> None:
    """Connect revocation to logout, user save and delete, and session row deletion."""
    from django.apps import apps
    from django.db.models.signals import post_delete, post_save

    if apps.is_installed("django.contrib.auth"):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_out

        user_model = get_user_model()
        user_logged_out.connect(_on_logout, dispatch_uid="wsviews.revoke.logout")
        post_save.connect(_on_user_saved, sender=user_model, dispatch_uid="wsviews.revoke.save")
        post_delete.connect(_on_user_deleted, sender=user_model, dispatch_uid="wsviews.revoke.delete")
    if apps.is_installed("django.contrib.sessions"):
        from django.contrib.sessions.models import Session

        post_delete.connect(_on_session_deleted, sender=Session, dispatch_uid="wsviews.revoke.session")
