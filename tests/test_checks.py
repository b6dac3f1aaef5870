"""System checks name the problem and the fix."""

from __future__ import annotations

from django.test import override_settings

from wsviews import checks


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_the_example_project_passes():
    assert checks.check_channel_layers() == []
    assert checks.check_routes() == []
    assert checks.check_settings() == []
    assert checks.check_installed_apps() == []


def test_wsviews_not_first_is_a_warning():
    with override_settings(INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                                           "wsviews"]):
        (warning,) = checks.check_installed_apps()
    assert warning.id == "wsviews.W001"
    assert "top of INSTALLED_APPS" in warning.hint


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


def test_no_websocket_routes_is_a_warning():
    with override_settings(ROOT_URLCONF="urls_http_only", WSVIEWS_DISCOVER_ROUTING=False):
        (warning,) = checks.check_routes()
    assert warning.id == "wsviews.W002"


def test_bad_settings_are_errors():
    with override_settings(WSVIEWS_ALLOWED_ORIGINS="https://a.example", WSVIEWS_MAX_MESSAGE_SIZE=0,
                           ASGI_APPLICATION="nowhere.asgi.application"):
        assert ids(checks.check_settings()) == ["wsviews.E009", "wsviews.E010", "wsviews.E011"]
