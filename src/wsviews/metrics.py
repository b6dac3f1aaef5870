"""Prometheus metrics of the websockets served, at a URL the project mounts.

Mount it with ``path("metrics/", include("wsviews.metrics"))`` (or route
:func:`view` yourself). It answers only clients in ``WSVIEWS_METRICS_ALLOWED_IPS``
(loopback by default) and, when ``WSVIEWS_METRICS_TOKEN`` is set, only requests
with ``Authorization: Bearer <token>``.

Nothing here runs per message: sockets count into their
:class:`~wsviews.connections.Connection` records and :mod:`wsviews.counters`,
layers into their ``stats``, and :func:`sync` turns those into Prometheus
series. A scrape syncs first, so one process's scrape is exact. With several
worker processes set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, before
the processes start): each process then syncs once a second into its files and
a scrape, answered by any process, sums them all.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from . import connections, counters
from .burstlog import BurstLog
from .conf import wsviews_settings

logger = logging.getLogger("wsviews")
# A misconfigured scraper retries every few seconds: one line per burst, not one per scrape.
_refusals = BurstLog(logger, logging.WARNING, "Metrics scrape refused %d time(s), the last: %s")

SYNC_INTERVAL = 1.0


def multiprocess_dir() -> str | None:
    """Return ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client reads it when first imported)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


SOCKETS_OPEN = Gauge("wsviews_sockets_open", "Websockets open, by route and kind (view, consumer, hub).",
                     ["route", "kind"], multiprocess_mode="livesum")
HANDSHAKES = Counter("wsviews_handshakes", "Websocket handshakes decided, by outcome and reason.",
                     ["outcome", "reason"])
RECEIVED = Counter("wsviews_messages_received", "Messages received from clients.", ["route", "kind"])
SENT = Counter("wsviews_messages_sent", "Messages sent to clients.", ["route", "kind"])
RECEIVED_BYTES = Counter("wsviews_received_bytes",
                         "Bytes of messages received (with WSVIEWS_METRICS_BYTES).", ["route", "kind"])
SENT_BYTES = Counter("wsviews_sent_bytes", "Bytes of messages sent (with WSVIEWS_METRICS_BYTES).",
                     ["route", "kind"])
SLOW_CLOSES = Counter("wsviews_slow_closes", "Sockets closed because the client fell behind.", ["route"])
REVOKED = Counter("wsviews_revoked_sockets", "Sockets closed by revocation (user or session).")
QUEUED = Gauge("wsviews_queued_messages", "Layer messages waiting in sockets' mailboxes.",
               multiprocess_mode="livesum")
PUBLISHES = Counter("wsviews_layer_publishes", "Messages sent on the channel layer (send and group_send).")
DELIVERIES = Counter("wsviews_layer_deliveries", "Layer messages delivered to local channels.")
REDIS_OUTAGES = Counter("wsviews_redis_outages", "Times the Redis layer lost a Redis server.")
REDIS_RECONNECTS = Counter("wsviews_redis_reconnects", "Times the Redis layer's subscriber reconnected.")
LAYER_EVENTS = Counter("wsviews_layer_events", "Every counter the channel layers keep, by layer and event.",
                       ["layer", "event"])
BROADCAST_LATENCY = Histogram("wsviews_broadcast_latency_seconds",
                              "Time from a broadcast's sending to its delivery to a local socket.",
                              buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))

# What was last written to each Counter, so that a sync adds only the difference.
_synced: dict[tuple[Any, tuple[str, ...]], float] = {}
_gauge_labels: set[tuple[str, str]] = set()
_PUBLISH_EVENTS = ("sent", "group_sent")


def _add(counter: Counter, labels: tuple[str, ...], total: float) -> None:
    key = (counter, labels)
    last = _synced.get(key, 0)
    if total < last:  # the source was reset (a new layer instance): count from zero again
        last = 0
    if total > last:
        (counter.labels(*labels) if labels else counter).inc(total - last)
    _synced[key] = total


def sync() -> None:
    """Bring every series up to date with this process's records, counters and layers."""
    open_by_route: dict[tuple[str, str], int] = {}
    queued = 0
    for record in connections.open_connections():
        key = (record.route, record.kind)
        open_by_route[key] = open_by_route.get(key, 0) + 1
        queued += record.queued()
    for key in _gauge_labels - open_by_route.keys():
        SOCKETS_OPEN.labels(*key).set(0)
    for key, value in open_by_route.items():
        SOCKETS_OPEN.labels(*key).set(value)
    _gauge_labels.update(open_by_route)
    QUEUED.set(queued)
    for key, (received, sent, bytes_in, bytes_out) in connections.totals().items():
        _add(RECEIVED, key, received)
        _add(SENT, key, sent)
        if bytes_in or bytes_out:
            _add(RECEIVED_BYTES, key, bytes_in)
            _add(SENT_BYTES, key, bytes_out)
    for (outcome, reason), value in list(counters.handshakes.items()):
        _add(HANDSHAKES, (outcome, reason), value)
    for route, value in list(counters.slow_closes.items()):
        _add(SLOW_CLOSES, (route,), value)
    _add(REVOKED, (), counters.events["revocations"])
    for seconds in counters.take_latencies():
        BROADCAST_LATENCY.observe(seconds)
    _sync_layers()


def _sync_layers() -> None:
    from channels.layers import channel_layers

    publishes = deliveries = outages = reconnects = 0
    for alias, layer in list(channel_layers.backends.items()):
        stats = getattr(layer, "stats", None)
        if not isinstance(stats, dict):
            continue
        for event, value in list(stats.items()):
            if isinstance(value, int):
                _add(LAYER_EVENTS, (alias, event), value)
        publishes += sum(stats.get(event, 0) for event in _PUBLISH_EVENTS)
        deliveries += stats.get("delivered", 0)
        outages += stats.get("outages", 0)
        reconnects += stats.get("reconnects", 0)
    publishes += counters.events["publishes"]
    deliveries += counters.events["deliveries"]
    outages += counters.events["redis_outages"]
    reconnects += counters.events["redis_reconnects"]
    _add(PUBLISHES, (), publishes)
    _add(DELIVERIES, (), deliveries)
    _add(REDIS_OUTAGES, (), outages)
    _add(REDIS_RECONNECTS, (), reconnects)


def render() -> bytes:
    """Return the exposition text: this process's series, or every process's with multiprocess."""
    sync()
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


_syncing: set[asyncio.AbstractEventLoop] = set()


def ensure_syncing() -> None:
    """With ``PROMETHEUS_MULTIPROC_DIR``, sync this process's series once a second on the running loop."""
    if not multiprocess_dir():
        return
    loop = asyncio.get_running_loop()
    if loop in _syncing:
        return
    _syncing.add(loop)
    loop.create_task(_sync_forever(), name="wsviews metrics sync")


async def _sync_forever() -> None:
    while True:
        await asyncio.sleep(SYNC_INTERVAL)
        try:
            sync()
        except Exception:
            logger.exception("Syncing metrics failed")


# The URL


def allowed(request: HttpRequest) -> tuple[int, str] | None:
    """Return the (status, reason) refusing ``request`` to the metrics URL, or None if it may read it."""
    address = request.META.get("REMOTE_ADDR") or ""
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return 403, f"client address {address!r} is not an IP address"
    if not any(client in ipaddress.ip_network(net, strict=False)
               for net in wsviews_settings.METRICS_ALLOWED_IPS):
        return 403, f"{address} is not in WSVIEWS_METRICS_ALLOWED_IPS"
    token = wsviews_settings.METRICS_TOKEN
    if token is not None:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return 401, "missing or wrong bearer token (WSVIEWS_METRICS_TOKEN)"
    return None


async def view(request: HttpRequest) -> HttpResponse:
    """Answer a scrape with the exposition text, or 403/401 to a client it does not admit."""
    refused = allowed(request)
    if refused is not None:
        status, reason = refused
        _refusals.hit(asyncio.get_running_loop(), reason)
        response = HttpResponse(f"{status} {reason}\n", status=status, content_type="text/plain")
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="wsviews metrics"'
        return response
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)


view.csrf_exempt = True  # type: ignore[attr-defined]

urlpatterns = [path("", view, name="wsviews-metrics")]
