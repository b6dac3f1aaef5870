from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed


class WSViewsConfig(AppConfig):  # type: ignore[misc, unused-ignore]  # Django is untyped here
    name = "wsviews"
    verbose_name = "wsviews"

    def ready(self) -> None:
        from . import checks, conf, routing
        from .channel_layer_settings import configure_channel_layers

        checks.register_all()

        from .revocation import connect_signals

        connect_signals()

        configure_channel_layers()
        setting_changed.connect(conf.reset_on_setting_changed, dispatch_uid="wsviews.conf")
        setting_changed.connect(routing.reset_on_setting_changed, dispatch_uid="wsviews.routing")
        setting_changed.connect(_channel_layers_changed, dispatch_uid="wsviews.channel_layers")


def _channel_layers_changed(setting: str, **kwargs: Any) -> None:
    if setting == "CHANNEL_LAYERS":
        from .channel_layer_settings import configure_channel_layers

        configure_channel_layers()
