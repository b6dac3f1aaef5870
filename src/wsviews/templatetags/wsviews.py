"""Template tags for live pages: ``{% load wsviews %}``.

* ``{% ws_url 'chat' room=room %}``: the URL of a websocket route, for htmx's
  ``ws-connect``;
* ``{% turbo_stream_from "rows" %}``: a reconnecting Turbo Stream source for
  the signed stream ``rows``;
* ``{% dom_id item %}``: the element id model broadcasts use for ``item``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import template
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .. import model_broadcasts, turbo

register = template.Library()

STREAM_SOURCE_SCRIPT = "wsviews/turbo-stream-source.js"


def websocket_url(path: str, request: Any = None) -> str:
    """Return ``path`` as a ``ws://`` or ``wss://`` URL on ``request``'s host, or ``path`` without one.

    ``wss://`` when ``request.is_secure()``, which honours
    ``SECURE_PROXY_SSL_HEADER`` behind a TLS-terminating proxy; the host is
    ``request.get_host()`` (``USE_X_FORWARDED_HOST``, ``ALLOWED_HOSTS``).
    """
    if request is None or not hasattr(request, "get_host"):
        return path
    scheme = "wss" if request.is_secure() else "ws"
    return f"{scheme}://{request.get_host()}{path}"


def ws_url(context: template.Context, view_name: str, *args: Any, **kwargs: Any) -> str:
    """Return the URL of the websocket route ``view_name`` (``reverse(view_name, args, kwargs)``).

    Absolute (``ws://host/path``, ``wss://`` behind TLS) when the context has
    the ``request`` (the ``request`` context processor, or ``render(request,
    ...)``); otherwise the path, which htmx's ``ws-connect`` resolves against
    the page's URL just as well.
    """
    return websocket_url(reverse(view_name, args=args, kwargs=kwargs), context.get("request"))


def turbo_stream_from(context: template.Context, *parts: Any, reload: str | None = None) -> SafeString:
    """Render a stream source listening to the stream named by ``parts``, signed.

    The element is ``<wsviews-stream-source>`` (``wsviews/turbo-stream-source.js``,
    loaded by a module script rendered with it): Turbo's own
    ``<turbo-stream-source>`` does not reconnect a dropped websocket. With
    ``reload="frame-id other-frame"`` those ``<turbo-frame>`` elements are
    reloaded each time the socket opens, and stream messages wait until they
    have loaded, so the page misses nothing while it was disconnected.
    """
    try:
        path = reverse(turbo.URL_NAME)
    except NoReverseMatch:
        raise ImproperlyConfigured(
            f"{{% turbo_stream_from %}} needs the turbo_streams view routed as {turbo.URL_NAME!r}: add "
            f"path('ws/turbo-streams/', turbo_streams, name={turbo.URL_NAME!r}) to urls.py "
            f"(from wsviews.turbo import turbo_streams)."
        ) from None
    query = urlencode({"stream": turbo.sign_stream_name(*parts)})
    src = f"{websocket_url(path, context.get('request'))}?{query}"
    reload_attribute = format_html(' reload="{}"', reload) if reload else ""
    return format_html(
        '<script type="module" src="{}"></script><wsviews-stream-source src="{}"{}></wsviews-stream-source>',
        static(STREAM_SOURCE_SCRIPT), src, reload_attribute,
    )


def dom_id(instance: Model, prefix: str | None = None) -> str:
    """Return the element id of ``instance`` (``item-3``; ``edit-item-3`` with a prefix)."""
    return model_broadcasts.dom_id(instance, prefix)


# Registered by call rather than as decorators, which would erase the type hints.
register.simple_tag(ws_url, takes_context=True)
register.simple_tag(turbo_stream_from, takes_context=True)
register.simple_tag(dom_id)
