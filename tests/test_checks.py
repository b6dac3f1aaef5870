"""System checks name the problem and the fix."""

from __future__ import annotations

import sys
import types

import pytest
from django.core import checks as django_checks
from django.test import override_settings

from wsviews import checks

EXAMPLE_APPS = ["wsviews", "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
                "django.contrib.sessions", "django.contrib.messages", "django.contrib.staticfiles",
                "channels", "myapp"]


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_the_example_project_passes():
    assert django_checks.run_checks(tags=["wsviews"]) == []


def test_every_check_is_registered_under_the_wsviews_tag():
    registered = django_checks.registry.registry.get_checks(include_deployment_checks=False)
    assert set(checks.CHECKS) <= set(registered)
    assert all("wsviews" in check.tags for check in checks.CHECKS)


# W001: whose runserver wins


def test_another_apps_runserver_winning_is_a_warning_naming_it():
    apps = [a for a in EXAMPLE_APPS if a != "wsviews"] + ["wsviews"]  # staticfiles' runserver wins
    with override_settings(INSTALLED_APPS=apps):
        (warning,) = checks.check_runserver()
    assert warning.id == "wsviews.W001"
    assert "django.contrib.staticfiles" in warning.msg
    assert warning.hint == "Move 'wsviews' above 'django.contrib.staticfiles' in INSTALLED_APPS."


def test_wsviews_not_first_but_winning_is_fine():
    apps = ["django.contrib.auth", "django.contrib.contenttypes", "wsviews", "django.contrib.staticfiles"]
    with override_settings(INSTALLED_APPS=apps):
        assert checks.check_runserver() == []


# CHANNEL_LAYERS


def test_backend_that_cannot_import_names_the_fix():
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "nope.Layer"}}):
        (error,) = checks.check_channel_layers()
    assert error.id == "wsviews.E003"
    assert "nope.Layer" in error.msg


def test_hosts_as_a_string_is_an_error_naming_the_fix():
    layers = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                          "CONFIG": {"hosts": "redis://localhost:6379"}}}
    with override_settings(CHANNEL_LAYERS=layers):
        (error,) = checks.check_channel_layers()
    assert error.id == "wsviews.E005"
    assert "['redis://localhost:6379']" in error.hint


def test_missing_backend_is_an_error():
    with override_settings(CHANNEL_LAYERS={"default": {"CONFIG": {}}}):
        assert ids(checks.check_channel_layers()) == ["wsviews.E002"]


@pytest.mark.parametrize("backend", ["channels_redis.core.RedisChannelLayer",
                                     "channels_redis.pubsub.RedisPubSubChannelLayer"])
def test_channels_redis_config_typo_is_an_error_with_did_you_mean(backend):
    layers = {"default": {"BACKEND": backend, "CONFIG": {"hosts": [("localhost", 6379)], "prefx": "x"}}}
    with override_settings(CHANNEL_LAYERS=layers):
        (error,) = checks.check_channel_layers()
    assert error.id == "wsviews.E006"
    assert "unknown key 'prefx'. Did you mean 'prefix'?" in error.msg


def test_wsviews_redis_config_typo_is_the_same_error():
    layers = {"default": {"BACKEND": "wsviews.layers.RedisChannelLayer",
                          "CONFIG": {"hosts": ["redis://localhost:6379"], "prefx": "x"}}}
    with override_settings(CHANNEL_LAYERS=layers):
        (error,) = checks.check_channel_layers()
    assert error.id == "wsviews.E006"
    assert "prefx" in error.msg


# Routes


def test_no_websocket_routes_is_a_warning():
    with override_settings(ROOT_URLCONF="urls_http_only", WSVIEWS_DISCOVER_ROUTING=False):
        (warning,) = checks.check_routes()
    assert warning.id == "wsviews.W002"


def _urlconf(name: str, patterns: list) -> str:
    module = types.ModuleType(name)
    module.urlpatterns = patterns
    sys.modules[name] = module
    return name


def test_a_consumer_class_routed_without_as_asgi_is_an_error_naming_the_fix():
    from django.urls import path

    from myapp.consumers import MyConsumer

    urlconf = _urlconf("urls_check_consumer_class", [path("ws/raw/", MyConsumer)])
    with override_settings(ROOT_URLCONF=urlconf, WSVIEWS_DISCOVER_ROUTING=False):
        errors = checks.check_routes()
    assert ids(errors) == ["wsviews.E015", "wsviews.W002"]
    assert "'ws/raw/'" in errors[0].msg
    assert errors[0].hint == "Route MyConsumer.as_asgi() instead."


def test_an_http_view_in_websocket_urlpatterns_is_an_error(monkeypatch):
    from django.http import HttpResponse
    from django.urls import path

    from wsviews import routing

    def page(request):  # pragma: no cover - never called
        return HttpResponse()

    module = types.ModuleType("check_routing_app.routing")
    module.websocket_urlpatterns = [path("ws/page/", page)]
    monkeypatch.setitem(sys.modules, "check_routing_app.routing", module)
    monkeypatch.setattr(routing, "routing_modules", lambda: ["check_routing_app.routing"])
    routing.routing_resolver.cache_clear()
    try:
        errors = [e for e in checks.check_routes() if e.id == "wsviews.E016"]
    finally:
        routing.routing_resolver.cache_clear()
    (error,) = errors
    assert "'ws/page/'" in error.msg and "page" in error.msg
    assert "@websocket" in error.hint


def test_an_http_view_in_urls_py_is_not_an_error():
    assert [e for e in checks.check_routes() if e.id == "wsviews.E016"] == []


# Settings


def test_bad_settings_are_errors_naming_the_setting():
    with override_settings(WSVIEWS_ALLOWED_ORIGINS="https://a.example", WSVIEWS_MAX_MESSAGE_SIZE=0,
                           WSVIEWS_DISCOVER_ROUTING="yes", WSVIEWS_REDIS_URL="localhost"):
        errors = checks.check_settings()
    assert ids(errors) == ["wsviews.E009", "wsviews.E010", "wsviews.E012", "wsviews.E013"]
    assert errors[0].msg.startswith("WSVIEWS_ALLOWED_ORIGINS must be a list of origins")
    assert errors[0].hint == "Write WSVIEWS_ALLOWED_ORIGINS = ['https://a.example']."
    assert errors[1].hint == "e.g. WSVIEWS_MAX_MESSAGE_SIZE = 1024 * 1024"


def test_each_problem_of_a_setting_is_an_error():
    with override_settings(WSVIEWS_ALLOWED_ORIGINS=["a.example", "b.example"]):
        errors = checks.check_settings()
    assert ids(errors) == ["wsviews.E009", "wsviews.E009"]
    assert [e.hint for e in errors] == [
        "Did you mean 'https://a.example'? An origin is scheme://host[:port].",
        "Did you mean 'https://b.example'? An origin is scheme://host[:port].",
    ]


def test_a_misspelt_setting_is_a_warning_with_did_you_mean():
    with override_settings(WSVIEWS_ALLOWED_ORIGIN=["https://a.example"]):
        (warning,) = checks.check_settings()
    assert warning.id == "wsviews.W003"
    assert warning.hint == "Did you mean WSVIEWS_ALLOWED_ORIGINS?"


# ASGI_APPLICATION


def test_asgi_application_that_cannot_import_is_an_error():
    with override_settings(ASGI_APPLICATION="nowhere.asgi.application"):
        assert ids(checks.check_asgi_application()) == ["wsviews.E011"]


def _asgi_module(name: str, application) -> str:
    module = types.ModuleType(name)
    module.application = application
    sys.modules[name] = module
    return f"{name}.application"


def test_djangos_stock_asgi_application_is_an_error_naming_the_fix():
    from django.core.asgi import get_asgi_application

    path = _asgi_module("stock_asgi", get_asgi_application())
    with override_settings(ASGI_APPLICATION=path):
        (error,) = checks.check_asgi_application()
    assert error.id == "wsviews.E014"
    assert "Django's ASGIHandler" in error.msg and "HTTP 500" in error.msg
    assert "from wsviews.asgi import get_asgi_application" in error.hint


def test_a_protocol_type_router_without_websocket_is_an_error_and_with_it_is_fine():
    from channels.routing import ProtocolTypeRouter
    from django.core.asgi import get_asgi_application

    http_only = _asgi_module("router_http_asgi", ProtocolTypeRouter({"http": get_asgi_application()}))
    with override_settings(ASGI_APPLICATION=http_only):
        assert ids(checks.check_asgi_application()) == ["wsviews.E014"]
    from myapp.consumers import MyConsumer

    both = _asgi_module("router_ws_asgi", ProtocolTypeRouter({"websocket": MyConsumer.as_asgi()}))
    with override_settings(ASGI_APPLICATION=both):
        assert checks.check_asgi_application() == []


def test_wsviews_application_wrapped_in_static_files_is_fine():
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from wsviews.asgi import get_asgi_application

    path = _asgi_module("static_asgi", ASGIStaticFilesHandler(get_asgi_application()))
    with override_settings(ASGI_APPLICATION=path):
        assert checks.check_asgi_application() == []
