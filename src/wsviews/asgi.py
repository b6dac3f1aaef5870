"""The ASGI application: Django for HTTP, Django's URL resolver for websockets.

``get_asgi_application()`` mirrors ``django.core.asgi.get_asgi_application``;
``from wsviews.asgi import application`` gives a ready instance (Django is set
up on first access, so importing this module does not need settings).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import django
from asgiref.sync import markcoroutinefunction
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponse
from django.urls.exceptions import Resolver404
from django.urls.resolvers import ResolverMatch

from .endpoints import serve_websocket
from .handshake import quiet_uvicorn_denials
from .lifecycle import shutdown, startup
from .routing import is_websocket_endpoint, resolve_websocket
from .types import Receive, Scope, Send


def upgrade_required(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Answer a plain HTTP request to a websocket route with 426."""
    response = HttpResponse(
        "426 Upgrade Required: this is a websocket endpoint; connect with a websocket client.\n",
        status=426,
        content_type="text/plain; charset=utf-8",
    )
    response["Upgrade"] = "websocket"
    response["Connection"] = "Upgrade"
    return response


class HttpHandler(ASGIHandler):  # type: ignore[misc, unused-ignore]  # Django is untyped here
    """Django's ASGI handler, answering 426 for websocket routes instead of calling them."""

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        try:
            match = super().resolve_request(request)
        except Resolver404:
            match = resolve_websocket(request.path_info)
            if match is None:
                raise
            request.resolver_match = match
        if is_websocket_endpoint(match.func):
            match.func = upgrade_required
        return match


class Lifespan:
    """Answer lifespan events; close channel layers on shutdown."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


class WSViewsApplication:
    """HTTP to Django, websockets to their routes in ``urls.py``, lifespan handled."""

    def __init__(self) -> None:
        self.http = HttpHandler()
        self.lifespan = Lifespan()

    @markcoroutinefunction
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Returns the handler's coroutine instead of awaiting it, so an open
        # socket keeps no frame of this method; marked so that servers still
        # see an ASGI 3 coroutine function.
        kind = scope["type"]
        if kind == "websocket":
            return serve_websocket(scope, receive, send)
        if kind == "http":
            return self.http(scope, receive, send)  # type: ignore[no-any-return]
        if kind == "lifespan":
            return self.lifespan(scope, receive, send)
        raise ValueError(f"wsviews cannot handle ASGI scope type {kind!r}")


def get_asgi_application() -> WSViewsApplication:
    """Set up Django and return the ASGI application for HTTP and websockets."""
    django.setup(set_prefix=False)
    quiet_uvicorn_denials()
    return WSViewsApplication()


# Where ASGI wrappers keep the application they wrap: Django's
# ASGIStaticFilesHandler, Channels' middleware, most third-party middleware.
_WRAPPED = ("application", "inner", "app")


def innermost_application(app: Any) -> Any:
    """Return the application ``app`` wraps, seen through static-files handlers and middleware."""
    for _ in range(10):  # bounded: a wrapper may point back at itself
        if isinstance(app, WSViewsApplication):
            return app
        inner = next((getattr(app, name) for name in _WRAPPED if callable(getattr(app, name, None))),
                     None)
        if inner is None:
            return app
        app = inner
    return app


def is_wsviews_application(app: Any) -> bool:
    """Return True if ``app`` is wsviews' application, possibly wrapped."""
    return isinstance(innermost_application(app), WSViewsApplication)


def __getattr__(name: str) -> Any:
    if name == "application":
        app = get_asgi_application()
        globals()["application"] = app
        return app
    raise AttributeError(f"module 'wsviews.asgi' has no attribute {name!r}")
