"""wsviews' settings: declared once, read lazily, validated, reset by override_settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from wsviews.conf import DEFAULT_MAX_MESSAGE_SIZE, Setting, WSViewsSettings, wsviews_settings

DOCS = Path(__file__).resolve().parent.parent / "docs" / "settings.md"


def test_defaults_when_the_project_sets_nothing(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    wsviews_settings.reload()
    assert wsviews_settings.ALLOWED_ORIGINS is None
    assert wsviews_settings.MAX_MESSAGE_SIZE == DEFAULT_MAX_MESSAGE_SIZE == 1024 * 1024
    assert wsviews_settings.DISCOVER_ROUTING is True
    assert wsviews_settings.REDIS_URL is None
    wsviews_settings.reload()


def test_values_are_cached_and_override_settings_resets_them():
    assert wsviews_settings.MAX_MESSAGE_SIZE == DEFAULT_MAX_MESSAGE_SIZE
    assert "MAX_MESSAGE_SIZE" in vars(wsviews_settings)  # cached on the instance
    with override_settings(WSVIEWS_MAX_MESSAGE_SIZE=64):
        assert wsviews_settings.MAX_MESSAGE_SIZE == 64
    assert wsviews_settings.MAX_MESSAGE_SIZE == DEFAULT_MAX_MESSAGE_SIZE


def test_an_invalid_value_raises_naming_the_setting_and_the_fix():
    with override_settings(WSVIEWS_MAX_MESSAGE_SIZE="big"), \
            pytest.raises(ImproperlyConfigured) as info:
        wsviews_settings.MAX_MESSAGE_SIZE  # noqa: B018
    assert str(info.value) == ("WSVIEWS_MAX_MESSAGE_SIZE must be a positive int (bytes), not 'big'; "
                               "e.g. WSVIEWS_MAX_MESSAGE_SIZE = 1024 * 1024")


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("WSVIEWS_ALLOWED_ORIGINS", "https://a.example", "must be a list of origins"),
    ("WSVIEWS_ALLOWED_ORIGINS", ["a.example"], "lists 'a.example', which is not an origin"),
    ("WSVIEWS_ALLOWED_ORIGINS", [3], "must list origins as str"),
    ("WSVIEWS_MAX_MESSAGE_SIZE", 0, "must be a positive int"),
    ("WSVIEWS_MAX_MESSAGE_SIZE", True, "must be a positive int"),
    ("WSVIEWS_DISCOVER_ROUTING", "no", "must be True or False"),
    ("WSVIEWS_COMPRESSION", 1, "must be True or False"),
    ("WSVIEWS_REDIS_URL", "localhost:6379", "must be a redis://, rediss:// or unix:// URL"),
])
def test_validators_name_what_is_wrong(key, value, expected):
    setting = {s.key: s for s in WSViewsSettings.declared()}[key]
    with override_settings(**{key: value}):
        messages = [p.message for p in setting.problems()]
    assert any(expected in message for message in messages), messages


@pytest.mark.parametrize(("key", "value"), [
    ("WSVIEWS_ALLOWED_ORIGINS", ["https://a.example", "http://b.example:8000/", "*"]),
    ("WSVIEWS_ALLOWED_ORIGINS", None),
    ("WSVIEWS_MAX_MESSAGE_SIZE", 1),
    ("WSVIEWS_DISCOVER_ROUTING", False),
    ("WSVIEWS_COMPRESSION", True),
    ("WSVIEWS_REDIS_URL", "rediss://user:pw@cache:6380/2"),
])
def test_valid_values_have_no_problems(key, value):
    setting = {s.key: s for s in WSViewsSettings.declared()}[key]
    with override_settings(**{key: value}):
        assert setting.problems() == []


def test_a_bare_host_in_allowed_origins_suggests_the_origin():
    setting = WSViewsSettings.ALLOWED_ORIGINS
    with override_settings(WSVIEWS_ALLOWED_ORIGINS=["app.example.com"]):
        (problem,) = setting.problems()
    assert problem.hint == "Did you mean 'https://app.example.com'? An origin is scheme://host[:port]."


def test_a_new_setting_is_one_declaration():
    class Extended(WSViewsSettings):
        WIDGETS: Setting[int] = Setting(3, type="int", doc="How many widgets.", check_id="wsviews.E999",
                                        hint="e.g. WSVIEWS_WIDGETS = 3",
                                        validate=lambda v: [] if isinstance(v, int) else ["must be an int"])

    assert Extended.WIDGETS.key == "WSVIEWS_WIDGETS"
    assert "WSVIEWS_WIDGETS" in [s.key for s in Extended.declared()]
    assert Extended().WIDGETS == 3
    with override_settings(WSVIEWS_WIDGETS="many"):
        assert [p.message for p in Extended.WIDGETS.problems()] == ["must be an int"]


def test_the_settings_page_documents_every_setting_and_check_id():
    page = DOCS.read_text()
    for setting in WSViewsSettings.declared():
        row = next((line for line in page.splitlines() if line.startswith(f"| `{setting.key}`")), None)
        assert row is not None, f"{setting.key} is missing from docs/settings.md"
        assert f"`{setting.check_id}`" in page
    documented = set(re.findall(r"`(wsviews\.[EW]\d{3})`", page))
    from wsviews import checks  # noqa: F401  (every id used in the code is documented)

    source = "".join(p.read_text() for p in (Path(checks.__file__).parent).glob("*.py"))
    assert set(re.findall(r'"(wsviews\.[EW]\d{3})"', source)) <= documented
