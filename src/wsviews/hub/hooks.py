"""Django-side hooks of the hub: who may subscribe or publish, and RPC handlers.

On top of the channel options of ``WSVIEWS_HUB``, a project registers
Python callables, usually in an app's ``ready()`` or a module it imports::

    from wsviews import hub

    @hub.allow_subscribe("chat")
    def members_only(user, channel, data):
        return Room.objects.filter(name=channel.partition(":")[2], members__pk=user).exists()

    @hub.allow_publish("chat")
    async def no_shouting(user, channel, data):
        if data.get("text", "").isupper():
            raise hub.HubError(4000, "no shouting")
        return {**data, "text": data["text"].strip()}

    @hub.rpc("time")
    async def server_time(user, data):
        return {"now": time.time()}

``user`` is the connection's user id (``str(user.pk)`` for a session user,
the token's ``sub``; ``""`` for an anonymous client), ``channel`` the hub
channel and ``data`` the decoded JSON the client sent. Hooks may be plain
functions (run in a worker thread, so they may use the ORM) or coroutine
functions (run on the event loop).

* A subscribe hook returns a truthy value to allow, a falsy one to deny
  (error 103 "permission denied"). Hooks of a namespace are asked in the
  order registered; all must allow. They are asked only for client-side
  subscriptions the channel options (or a subscription token) allow
  already: they narrow the options, never widen them.
* A publish hook returns ``True``/``None`` to allow the data as is, ``False``
  to deny, or a new JSON value that replaces the data (validate or transform).
* An RPC handler returns a JSON value, the reply's ``data``. A method with no
  handler answers 104 "method not found"; with no handler registered at
  all, 108 "not available", as Centrifugo without an RPC proxy.

Any hook may raise :class:`HubError` for a specific protocol error; other
exceptions are logged with their traceback and answer 100 "internal error".
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from asgiref.sync import sync_to_async

from .codes import ClientError

__all__ = ["HubError", "Hooks", "allow_publish", "allow_subscribe", "hooks", "rpc"]

F = TypeVar("F", bound=Callable[..., Any])


class HubError(Exception):
    """Raise from a hook to answer the client with this protocol error (code >= 400 for your own)."""

    def __init__(self, code: int, message: str, temporary: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.error = ClientError(code, message, temporary=temporary)


@dataclass
class Hooks:
    """The registered hooks, by namespace ("" for channels without one) and by RPC method."""

    subscribe: dict[str, list[Callable[..., Any]]] = field(default_factory=dict)
    publish: dict[str, list[Callable[..., Any]]] = field(default_factory=dict)
    rpc: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def clear(self) -> None:
        """Forget every hook (tests)."""
        self.subscribe.clear()
        self.publish.clear()
        self.rpc.clear()


#: The process-wide registry the hub's connections consult.
hooks = Hooks()


def call(func: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    """Return an awaitable of ``func(*args)``: awaited if async, else run in a worker thread."""
    if inspect.iscoroutinefunction(func):
        result: Awaitable[Any] = func(*args)
        return result
    return sync_to_async(func, thread_sensitive=True)(*args)


def _check_callable(func: Any, what: str) -> None:
    if not callable(func):
        raise TypeError(f"{what} decorates a function, got {type(func).__name__}")


def allow_subscribe(namespace: str = "") -> Callable[[F], F]:
    """Register ``func(user, channel, data) -> bool`` for subscriptions to channels of ``namespace``."""
    def register(func: F) -> F:
        _check_callable(func, "allow_subscribe()")
        hooks.subscribe.setdefault(namespace, []).append(func)
        return func
    return register


def allow_publish(namespace: str = "") -> Callable[[F], F]:
    """Register ``func(user, channel, data)`` for client publications into channels of ``namespace``."""
    def register(func: F) -> F:
        _check_callable(func, "allow_publish()")
        hooks.publish.setdefault(namespace, []).append(func)
        return func
    return register


def rpc(method: str) -> Callable[[F], F]:
    """Register ``func(user, data) -> result`` as the handler of RPC ``method``."""
    if not isinstance(method, str):
        raise TypeError('rpc() takes the method name: @rpc("method")')

    def register(func: F) -> F:
        _check_callable(func, "rpc()")
        hooks.rpc[method] = func
        return func
    return register
