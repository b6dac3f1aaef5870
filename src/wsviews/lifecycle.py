"""Startup and shutdown of a serving process: check the server and the channel layer, then release it."""

from __future__ import annotations

import logging
from typing import Any

from channels.layers import channel_layers

from .channel_layer_settings import CHANNELS_REDIS_CORE

logger = logging.getLogger("wsviews")


FOREIGN_SERVER_WARNING = (
    "wsviews' serving limits are not applied: this server was not started by 'manage.py serve', "
    "'manage.py runserver' or 'gunicorn -k wsviews.workers.UvicornWorker', so WSVIEWS_MAX_MESSAGE_SIZE "
    "is not enforced before buffering and there are no handshake or write timeouts and no drain. "
    "Serve with one of those (docs/serving.md)."
)
FAST_LAYER_HINT = (
    "The default channel layer is channels_redis' RedisChannelLayer: a group message costs this server "
    "14-40x more CPU per member than wsviews' layer does (docs/performance.md). To switch, set "
    "CHANNEL_LAYERS['default']['BACKEND'] = 'wsviews.layers.RedisChannelLayer' (same CONFIG; docs/layers.md)."
)


async def startup() -> None:
    """Warn when a foreign server runs the application; check that each channel layer answers.

    An unreachable layer does not stop the server: HTTP and sockets that do
    not use the layer keep working, and the layer retries on its own.
    """
    from .serving import applied

    if not applied():
        logger.warning(FOREIGN_SERVER_WARNING)
    for alias in list(getattr(channel_layers, "configs", {}) or {}):
        try:
            layer = channel_layers[alias]
        except Exception as exc:
            logger.error("Channel layer %r cannot be created: %s. Fix CHANNEL_LAYERS[%r].",
                         alias, exc, alias)
            continue
        backend = f"{type(layer).__module__}.{type(layer).__qualname__}"
        if alias == "default" and backend == CHANNELS_REDIS_CORE:
            logger.info(FAST_LAYER_HINT)
        problem = await _ping(layer)
        if problem:
            logger.error(
                "Channel layer %r (%s) is unreachable: %s. Start Redis or fix the hosts in "
                "CHANNEL_LAYERS[%r]['CONFIG'] (or REDIS_URL); sockets that use groups will fail "
                "until it answers.", alias, type(layer).__name__, problem, alias,
            )
    _start_observing()


def _start_observing() -> None:
    """Open the control channel (revocation across processes) and start syncing metrics."""
    from . import control, metrics

    control.ensure_started()
    metrics.ensure_syncing()


async def _ping(layer: Any) -> str | None:
    ping = getattr(layer, "ping", None)
    if ping is not None:
        try:
            await ping()
        except Exception as exc:
            return str(exc) or type(exc).__name__
        return None
    hosts = getattr(layer, "hosts", None)
    if not hosts or not hasattr(layer, "create_pool"):
        return None
    # channels_redis: open a throwaway client on each host's pool.
    from redis import asyncio as aioredis

    for index in range(len(hosts)):
        client = aioredis.Redis(connection_pool=layer.create_pool(index))
        try:
            await client.ping()
        except Exception as exc:
            return str(exc) or type(exc).__name__
        finally:
            await client.aclose(close_connection_pool=True)
    return None


async def shutdown() -> None:
    """Stop the control channel; close every channel layer this process created."""
    from . import control

    await control.stop()
    for alias, layer in list(channel_layers.backends.items()):
        close = getattr(layer, "close", None)
        if close is None:
            continue
        try:
            await close()
        except Exception:
            logger.warning("Closing channel layer %r failed", alias, exc_info=True)
