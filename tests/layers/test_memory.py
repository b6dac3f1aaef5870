"""The layer contract, run against the in-memory layer."""

from __future__ import annotations

from typing import Any

from wsviews.layers import InMemoryChannelLayer

from .contract import LayerContract


class TestInMemoryLayer(LayerContract):
    def make_layer(self, **config: Any) -> InMemoryChannelLayer:
        return InMemoryChannelLayer(**config)
