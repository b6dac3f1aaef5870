"""channels_redis' core layer as the default: ``manage.py serve`` says once how to switch to the fast one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from serving_support import start_serve
from wsclient import connect, recv
from wsviews.lifecycle import FAST_LAYER_HINT

REDIS = os.environ.get("WSVIEWS_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/")


def layers(backend: str) -> dict[str, object]:
    config = {"hosts": [f"{REDIS}/11"], "prefix": f"hint-{uuid.uuid4().hex[:8]}"}
    logging = {  # levels shown, so that the test sees the line is INFO
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"level": {"format": "%(levelname)s %(name)s %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "level"}},
        "root": {"handlers": ["console"], "level": "INFO"},
    }
    return {"CHANNEL_LAYERS": {"default": {"BACKEND": backend, "CONFIG": config}}, "LOGGING": logging}


@pytest.mark.parametrize(
    ("backend", "shown"),
    [
        ("channels_redis.core.RedisChannelLayer", 1),
        ("wsviews.layers.RedisChannelLayer", 0),
        ("channels_redis.pubsub.RedisPubSubChannelLayer", 0),
    ],
)
async def test_the_hint_is_one_info_line_for_channels_redis_core_only(
    tmp_path: Path, _database: None, backend: str, shown: int
) -> None:
    with start_serve(tmp_path / "server.log", layers(backend)) as server:
        async with connect(f"{server.ws}/ws/myapp/") as ws:  # served, whatever the layer
            await ws.send("hello")
            assert await recv(ws) == "hello"
        log = server.log()
    assert log.count(FAST_LAYER_HINT) == shown
    if shown:
        line = next(line for line in log.splitlines() if FAST_LAYER_HINT in line)
        assert line == f"INFO wsviews {FAST_LAYER_HINT}"
        assert "Traceback" not in log
