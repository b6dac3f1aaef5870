"""WSVIEWS_HUB problems are Django system check errors (E060) and warnings (W060) naming the key."""

from __future__ import annotations

from django.test.utils import override_settings

from wsviews import checks


def test_unknown_hub_keys_are_errors_with_did_you_mean() -> None:
    with override_settings(WSVIEWS_HUB={"client": {"tokn": {}}}):
        found = [m for m in checks.check_settings() if m.id == "wsviews.E060"]
    assert len(found) == 1
    assert "'client.tokn'" in found[0].msg and "did you mean 'token'" in found[0].msg
    assert "docs/hub.md" in found[0].hint


def test_wrongly_typed_namespace_option_is_an_error() -> None:
    with override_settings(WSVIEWS_HUB={"channel": {"namespaces": [{"name": "ns", "presence": "yes"}]}}):
        found = [m for m in checks.check_settings() if m.id == "wsviews.E060"]
    assert [m for m in found if "presence" in m.msg and "not str" in m.msg]


def test_unsupported_centrifugo_options_are_warnings_not_ignored() -> None:
    hub = {"channel": {"namespaces": [{"name": "ns", "delta_publish": True}]}}
    with override_settings(WSVIEWS_HUB=hub):
        assert not [m for m in checks.check_settings() if m.id == "wsviews.E060"]
        warnings = checks.check_hub()
    assert [w.id for w in warnings] == ["wsviews.W060"]
    assert "delta_publish" in warnings[0].msg


def test_a_valid_hub_setting_has_no_problem() -> None:
    hub = {"channel": {"namespaces": [{"name": "chat", "history_size": 10, "history_ttl": "60s"}]},
           "http_api": {"key": "k"}}
    with override_settings(WSVIEWS_HUB=hub):
        assert not [m for m in checks.check_settings() if m.id in ("wsviews.E060", "wsviews.W003")]
        assert checks.check_hub() == []
