"""System checks: each names what is wrong and the setting or line that fixes it."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.utils.module_loading import import_string

from .channel_layer_settings import CHANNELS_REDIS_BACKENDS, channels_redis_config_problems
from .conf import PREFIX, WSViewsSettings


def check_runserver(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when another app's ``runserver`` wins over wsviews' (HTTP only, no websockets)."""
    from django.core.management import get_commands

    winner = get_commands().get("runserver")
    if winner in (None, "wsviews"):
        return []
    return [Warning(
        f"'manage.py runserver' is {winner}'s, not wsviews': it serves HTTP only, so every "
        f"websocket handshake fails.",
        hint=f"Move 'wsviews' above {winner!r} in INSTALLED_APPS.",
        id="wsviews.W001",
    )]


def check_channel_layers(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Check ``CHANNEL_LAYERS``: backends importable, ``CONFIG`` keys the backend takes."""
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if not isinstance(layers, dict):
        return [Error("CHANNEL_LAYERS must be a dict of aliases to layer configs.",
                      hint="Use {'default': {'BACKEND': ..., 'CONFIG': {...}}}.", id="wsviews.E001")]
    errors: list[CheckMessage] = []
    for alias, entry in layers.items():
        errors += _check_layer(alias, entry)
    return errors


def _check_layer(alias: str, entry: Any) -> list[CheckMessage]:
    where = f"CHANNEL_LAYERS[{alias!r}]"
    if not isinstance(entry, dict) or "BACKEND" not in entry:
        return [Error(f"{where} has no BACKEND.",
                      hint="Set BACKEND, e.g. 'wsviews.layers.RedisChannelLayer'.", id="wsviews.E002")]
    backend = entry["BACKEND"]
    try:
        import_string(backend)
    except ImportError as exc:
        hint = "Check the dotted path."
        if backend in CHANNELS_REDIS_BACKENDS:
            hint = "pip install channels_redis, or use 'wsviews.layers.RedisChannelLayer'."
        return [Error(f"{where}['BACKEND'] {backend!r} cannot be imported: {exc}.",
                      hint=hint, id="wsviews.E003")]
    config = entry.get("CONFIG", {})
    if not isinstance(config, dict):
        return [Error(f"{where}['CONFIG'] must be a dict.", hint="Use {'hosts': [...]}.",
                      id="wsviews.E004")]
    hosts = config.get("hosts")
    if isinstance(hosts, (str, bytes)):
        return [Error(f"{where}['CONFIG']['hosts'] is a string; it must be a list.",
                      hint=f"Write 'hosts': [{hosts!r}].", id="wsviews.E005")]
    if backend == "wsviews.layers.RedisChannelLayer":
        from .layers.redis import check_config

        problems = list(check_config(config))
    elif backend in CHANNELS_REDIS_BACKENDS:
        problems = channels_redis_config_problems(backend, config)
    else:
        problems = []
    return [Error(f"{where}['CONFIG']: {problem}", id="wsviews.E006") for problem in problems]


def check_routes(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Check that websocket routes exist and that each routes something that can serve a socket."""
    from django.urls import get_resolver

    from .routing import routing_resolver

    if not getattr(settings, "ROOT_URLCONF", None):
        return [Error("ROOT_URLCONF is not set, so no websocket route can be found.",
                      hint="Set ROOT_URLCONF to your project's urls module.", id="wsviews.E007")]
    try:
        urlconf = list(_callbacks(get_resolver()))
        discovered = routing_resolver()
        routing = list(_callbacks(discovered)) if discovered is not None else []
    except Exception as exc:  # the URLconf itself is broken; Django's own check reports it
        return [Error(f"Websocket routes could not be loaded: {exc!r}.",
                      hint="Fix the import error in ROOT_URLCONF or a routing.py module.",
                      id="wsviews.E008")]
    errors: list[CheckMessage] = []
    seen: set[int] = set()
    for where, callback in urlconf + routing:
        if id(callback) not in seen:
            seen.add(id(callback))
            errors += _check_callback(where, callback, in_routing=(where, callback) in routing)
    if not any(_is_endpoint(callback) for _, callback in urlconf + routing):
        errors.append(Warning(
            "No websocket routes: neither ROOT_URLCONF nor any routing.py "
            "websocket_urlpatterns has a @websocket view or a Consumer.as_asgi().",
            hint="Add path('ws/.../', MyConsumer.as_asgi()) or a @websocket view to urls.py.",
            id="wsviews.W002",
        ))
    return errors


def _callbacks(resolver: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if hasattr(pattern, "url_patterns"):
            yield from _callbacks(pattern, route)
        else:
            yield route, pattern.callback


def _is_endpoint(callback: Any) -> bool:
    from .routing import is_websocket_endpoint

    return is_websocket_endpoint(callback)


def _check_callback(route: str, callback: Any, in_routing: bool) -> list[CheckMessage]:
    from channels.consumer import AsyncConsumer

    if isinstance(callback, type) and issubclass(callback, AsyncConsumer):
        return [Error(
            f"The route {route!r} points at the consumer class {callback.__qualname__} itself, "
            f"which cannot serve a websocket (every handshake would get 404).",
            hint=f"Route {callback.__qualname__}.as_asgi() instead.",
            id="wsviews.E015",
        )]
    if in_routing and not _is_endpoint(callback):
        name = getattr(callback, "__qualname__", repr(callback))
        return [Error(
            f"websocket_urlpatterns routes {route!r} to {name}, which is neither a @websocket "
            f"view nor a Consumer.as_asgi(), so every handshake to it gets 404.",
            hint="Decorate it with @websocket (async def view(socket, ...)), route a "
                 "Consumer.as_asgi(), or move this HTTP view to urls.py.",
            id="wsviews.E016",
        )]
    return []


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Check every declared ``WSVIEWS_*`` setting, and warn about ones that are not declared."""
    errors: list[CheckMessage] = []
    declared = {setting.key: setting for setting in WSViewsSettings.declared()}
    for setting in declared.values():
        for problem in setting.problems():
            errors.append(Error(f"{setting.key} {problem.message}.", hint=problem.hint or setting.hint,
                                id=setting.check_id))
    for name in dir(settings):
        if name.startswith(PREFIX) and name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1)
            errors.append(Warning(
                f"{name} is not a wsviews setting, so it changes nothing.",
                hint=f"Did you mean {close[0]}?" if close else
                     f"wsviews' settings are: {', '.join(declared)}.",
                id="wsviews.W003",
            ))
    return errors


def check_asgi_application(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Check that ``ASGI_APPLICATION`` imports and can serve websockets."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return []
    try:
        app = import_string(path)
    except Exception as exc:
        return [Error(f"ASGI_APPLICATION {path!r} cannot be imported: {exc!r}.",
                      hint="Fix the path, or remove ASGI_APPLICATION to use "
                           "'wsviews.asgi.application'.", id="wsviews.E011")]
    problem = _websocket_problem(app)
    if problem is None:
        return []
    return [Error(
        f"ASGI_APPLICATION {path!r} is {problem}, so every websocket handshake gets HTTP 500.",
        hint="In its asgi.py use 'from wsviews.asgi import get_asgi_application' instead of "
             "Django's, or remove ASGI_APPLICATION.",
        id="wsviews.E014",
    )]


def _websocket_problem(app: Any) -> str | None:
    from django.core.handlers.asgi import ASGIHandler

    from .asgi import innermost_application

    inner = innermost_application(app)
    if isinstance(inner, ASGIHandler):
        return "Django's ASGIHandler (django.core.asgi.get_asgi_application()), which serves HTTP only"
    mapping: Any = getattr(inner, "application_mapping", None)
    if isinstance(mapping, dict) and "websocket" not in mapping:
        return "a ProtocolTypeRouter without a 'websocket' entry"
    return None



CHECKS = (check_runserver, check_channel_layers, check_routes, check_settings, check_asgi_application)


def register_all() -> None:
    """Register every check with Django's check framework (tag ``wsviews``); called from ``ready()``."""
    for check in CHECKS:
        register(check, "wsviews")


def check_metrics(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Check ``PROMETHEUS_MULTIPROC_DIR``: wsviews.metrics writes every process's series there."""
    import os

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory or os.path.isdir(directory):
        return []
    return [Error(
        f"PROMETHEUS_MULTIPROC_DIR is {directory!r}, which is not a directory: wsviews.metrics "
        f"cannot record this process's series there.",
        hint="Create it (empty) before starting the server processes, or unset it with one process.",
        id="wsviews.E074",
    )]


register(check_metrics, "wsviews")
