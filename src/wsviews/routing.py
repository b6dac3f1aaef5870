"""Resolve websocket paths with Django's own URL resolver.

Routes come from ``ROOT_URLCONF`` (so ``include()``, converters,
``re_path()``, namespaces and ``reverse()`` all work), then from the
``websocket_urlpatterns`` lists of Channels-style ``routing.py`` modules: the
one beside ``ROOT_URLCONF`` and one per installed app.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from typing import Any

from django.apps import apps
from django.conf import settings
from django.urls import URLResolver, get_resolver
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern, ResolverMatch

from .conf import wsviews_settings
from .decorators import websocket_options


def is_websocket_endpoint(func: Any) -> bool:
    """Return True for a ``@websocket`` view or a Channels ``Consumer.as_asgi()`` app."""
    return getattr(func, "consumer_class", None) is not None or websocket_options(func) is not None


def routing_modules() -> list[str]:
    """Return the names of the ``routing.py`` modules whose ``websocket_urlpatterns`` count.

    Candidates are ``<project>.routing`` for the top-level package of
    ROOT_URLCONF, ASGI_APPLICATION and the settings module, and
    ``<app>.routing`` for every installed app.
    """
    candidates = []
    # The project package: where ROOT_URLCONF, ASGI_APPLICATION or the settings live.
    for dotted in (
        getattr(settings, "ROOT_URLCONF", None),
        getattr(settings, "ASGI_APPLICATION", None),
        getattr(settings, "SETTINGS_MODULE", None),
    ):
        if isinstance(dotted, str) and "." in dotted:
            candidates.append(dotted.split(".")[0] + ".routing")
    candidates += [f"{config.name}.routing" for config in apps.get_app_configs()]
    found = []
    for name in dict.fromkeys(candidates):
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is not None and name != __name__:
            found.append(name)
    return found


@functools.cache
def routing_resolver() -> URLResolver | None:
    """Return a resolver over every discovered ``websocket_urlpatterns``, or None."""
    if not wsviews_settings.DISCOVER_ROUTING:
        return None
    patterns: list[Any] = []
    for name in routing_modules():
        patterns += getattr(importlib.import_module(name), "websocket_urlpatterns", [])
    return URLResolver(RegexPattern(r"^/"), patterns) if patterns else None


def resolve_websocket(path: str, urlconf: str | None = None) -> ResolverMatch | None:
    """Return the match of a websocket endpoint for ``path``, or None."""
    for resolver in (get_resolver(urlconf), routing_resolver()):
        if resolver is None:
            continue
        try:
            match = resolver.resolve(path)
        except Resolver404:
            continue
        if is_websocket_endpoint(match.func):
            return match
    return None


#: The most handshake paths whose match is kept (then the cache starts over).
MATCHES_MAX = 1024

_matches: dict[str, ResolverMatch] = {}
_matches_resolver: URLResolver | None = None  # the ROOT_URLCONF resolver _matches came from


def match_websocket(path: str) -> ResolverMatch | None:
    """Return :func:`resolve_websocket` of ``path``, remembered per path for the next handshake.

    A route in a ``routing.py`` module (the Channels tutorial's) is found
    after ``ROOT_URLCONF`` failed to match, which costs a full resolve and a
    ``Resolver404`` per handshake; a chat's sockets mostly share a few paths.
    Only matches are kept (a scan of unknown paths cannot fill the cache),
    at most :data:`MATCHES_MAX` of them. They are forgotten when Django's own
    resolver is rebuilt (``clear_url_caches()``, a new ``ROOT_URLCONF``) and
    when the discovered routes change. The match is shared: read it, never
    change it.
    """
    global _matches_resolver
    resolver = get_resolver()
    if resolver is not _matches_resolver:
        _matches.clear()
        _matches_resolver = resolver
    match = _matches.get(path)
    if match is None:
        match = resolve_websocket(path)
        if match is not None:
            if len(_matches) >= MATCHES_MAX:
                _matches.clear()
            _matches[path] = match
    return match


def reset_on_setting_changed(setting: str, **kwargs: Any) -> None:
    """Forget the discovered routes when a setting they depend on changes (a ``setting_changed`` receiver)."""
    if setting in {"ROOT_URLCONF", "INSTALLED_APPS", "WSVIEWS_DISCOVER_ROUTING"}:
        routing_resolver.cache_clear()
        _matches.clear()
