"""``@websocket``: turn an async function into a websocket view for ``urls.py``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from django.core.exceptions import ImproperlyConfigured

View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class WebSocketOptions:
    """What ``@websocket`` was given; the ASGI application reads it after resolving."""

    login_required: bool = False
    permission: str | Sequence[str] | None = None
    subprotocols: Sequence[str] = ()
    origins: Sequence[str] | None = None
    max_message_size: int | None = None

    @property
    def permissions(self) -> tuple[str, ...]:
        if self.permission is None:
            return ()
        if isinstance(self.permission, str):
            return (self.permission,)
        return tuple(self.permission)


@overload
def websocket(view: View, /) -> View: ...


@overload
def websocket(
    *,
    login_required: bool = ...,
    permission: str | Sequence[str] | None = ...,
    subprotocols: Sequence[str] = ...,
    origins: Sequence[str] | None = ...,
    max_message_size: int | None = ...,
) -> Callable[[View], View]: ...


def websocket(view: Any = None, /, **options: Any) -> Any:
    """Mark ``async def view(socket, **url_kwargs)`` as a websocket view.

    Use it bare (``@websocket``) or with options (``@websocket(login_required=True)``):

    * ``login_required``: refuse anonymous handshakes with HTTP 403;
    * ``permission``: a permission name (or several) the user must have, else 403;
    * ``subprotocols``: subprotocols this view speaks; the first one the client
      offers is chosen and available as ``socket.subprotocol``;
    * ``origins``: allowed ``Origin`` values for this view (``["*"]`` for any),
      instead of the ``WSVIEWS_ALLOWED_ORIGINS`` setting;
    * ``max_message_size``: the largest message ``receive()`` accepts, in
      bytes or characters; larger ones close the socket with 1009.
    """
    opts = WebSocketOptions(**options)
    if isinstance(opts.subprotocols, str):
        raise ImproperlyConfigured("@websocket(subprotocols=...) takes a list of names, not a str.")

    def mark(func: View) -> View:
        if not inspect.iscoroutinefunction(func):
            raise ImproperlyConfigured(
                f"@websocket view {func.__module__}.{func.__qualname__} must be a coroutine "
                f"function: declare it with 'async def'."
            )
        func.websocket_options = opts  # type: ignore[attr-defined]
        return func

    return mark(view) if view is not None else mark


def websocket_options(func: Any) -> WebSocketOptions | None:
    """Return the options of a ``@websocket`` view, or None for anything else."""
    return getattr(func, "websocket_options", None)
