"""System checks: each names what is wrong and the setting that fixes it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.utils.module_loading import import_string

from .conf import CHANNELS_REDIS_BACKENDS


@register("wsviews")
def check_installed_apps(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    apps = list(settings.INSTALLED_APPS)
    if apps and apps[0] not in ("wsviews", "wsviews.apps.WSViewsConfig"):
        return [Warning(
            "'wsviews' is not the first entry of INSTALLED_APPS, so another app's runserver "
            "may serve instead of wsviews' (HTTP and websockets).",
            hint="Move 'wsviews' to the top of INSTALLED_APPS.",
            id="wsviews.W001",
        )]
    return []


@register("wsviews")
def check_channel_layers(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if not isinstance(layers, dict):
        return [Error("CHANNEL_LAYERS must be a dict of aliases to layer configs.",
                      hint="Use {'default': {'BACKEND': ..., 'CONFIG': {...}}}.", id="wsviews.E001")]
    errors: list[Any] = []
    for alias, entry in layers.items():
        errors += _check_layer(alias, entry)
    return errors


def _check_layer(alias: str, entry: Any) -> list[Any]:
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

        return [Error(f"{where}['CONFIG']: {problem}", id="wsviews.E006")
                for problem in check_config(config)]
    return []


@register("wsviews")
def check_routes(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    from django.urls import get_resolver

    from .routing import is_websocket_endpoint, routing_resolver

    if not getattr(settings, "ROOT_URLCONF", None):
        return [Error("ROOT_URLCONF is not set, so no websocket route can be found.",
                      hint="Set ROOT_URLCONF to your project's urls module.", id="wsviews.E007")]
    try:
        resolvers = [get_resolver(), routing_resolver()]
        found = any(resolver is not None and _has_websocket_route(resolver, is_websocket_endpoint)
                    for resolver in resolvers)
    except Exception as exc:  # the URLconf itself is broken; Django's own check reports it
        return [Error(f"Websocket routes could not be loaded: {exc!r}.",
                      hint="Fix the import error in ROOT_URLCONF or a routing.py module.",
                      id="wsviews.E008")]
    if not found:
        return [Warning(
            "No websocket routes: neither ROOT_URLCONF nor any routing.py "
            "websocket_urlpatterns has a @websocket view or a Consumer.as_asgi().",
            hint="Add path('ws/.../', MyConsumer.as_asgi()) or a @websocket view to urls.py.",
            id="wsviews.W002",
        )]
    return []


def _has_websocket_route(resolver: Any, is_endpoint: Any) -> bool:
    for pattern in resolver.url_patterns:
        if hasattr(pattern, "url_patterns"):
            if _has_websocket_route(pattern, is_endpoint):
                return True
        elif is_endpoint(pattern.callback):
            return True
    return False


@register("wsviews")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    errors: list[Any] = []
    origins = getattr(settings, "WSVIEWS_ALLOWED_ORIGINS", None)
    if origins is not None and (
        isinstance(origins, str) or not all(isinstance(o, str) for o in origins)
    ):
        errors.append(Error("WSVIEWS_ALLOWED_ORIGINS must be a list of origins.",
                            hint="e.g. ['https://example.com'], or ['*'] to allow any origin.",
                            id="wsviews.E009"))
    size = getattr(settings, "WSVIEWS_MAX_MESSAGE_SIZE", 1)
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        errors.append(Error("WSVIEWS_MAX_MESSAGE_SIZE must be a positive int (bytes).",
                            hint="e.g. WSVIEWS_MAX_MESSAGE_SIZE = 1024 * 1024", id="wsviews.E010"))
    asgi = getattr(settings, "ASGI_APPLICATION", None)
    if asgi:
        try:
            import_string(asgi)
        except Exception as exc:
            errors.append(Error(f"ASGI_APPLICATION {asgi!r} cannot be imported: {exc!r}.",
                                hint="Fix the path, or remove ASGI_APPLICATION to use "
                                     "'wsviews.asgi.application'.", id="wsviews.E011"))
    return errors
