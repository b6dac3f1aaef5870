from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed


class WSViewsConfig(AppConfig):
    name = "wsviews"
    verbose_name = "wsviews"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .conf import configure_channel_layers

        configure_channel_layers()
        setting_changed.connect(_channel_layers_changed, dispatch_uid="wsviews.channel_layers")


def _channel_layers_changed(setting: str, enter: bool, **kwargs: Any) -> None:
    if setting == "CHANNEL_LAYERS":
        from .conf import configure_channel_layers

        configure_channel_layers()
