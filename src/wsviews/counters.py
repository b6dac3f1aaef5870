"""Process-wide event counters: plain ints that any part of wsviews bumps, read by :mod:`wsviews.metrics`.

Bumping one is a dict or int update, cheap enough for a delivery path;
turning them into Prometheus series happens only when metrics are synced (a
scrape, or once a second with several processes). Callers:

* :func:`handshake` -- :mod:`wsviews.endpoints`, for every handshake decided;
* :func:`slow_close` -- the delivery path, when it closes a client that fell behind;
* :func:`layer_publish` / :func:`layer_delivery` -- channel layers, per message
  published and per message handed to a local socket;
* :func:`redis_outage` / :func:`redis_reconnect` -- the Redis layer;
* :func:`broadcast_latency` -- the receiving side of a broadcast that carries
  its send time.
"""

from __future__ import annotations

from collections import Counter

from .handshake import Refusal

# (outcome, reason) -> handshakes; outcome is "admitted" or "refused".
handshakes: Counter[tuple[str, str]] = Counter()
# route -> sockets closed for falling behind.
slow_closes: Counter[str] = Counter()
# name -> count: "publishes", "deliveries", "redis_outages", "redis_reconnects", "revocations".
events: Counter[str] = Counter()
# Broadcast latencies (seconds) observed since the last sync; bounded, the rest counted as dropped.
latencies: list[float] = []
MAX_PENDING_LATENCIES = 10_000


def handshake(refusal: Refusal | None) -> None:
    """Count a handshake: admitted when ``refusal`` is None, else refused for its reason."""
    if refusal is None:
        handshakes["admitted", "ok"] += 1
    else:
        handshakes["refused", refusal_reason(refusal)] += 1


def refusal_reason(refusal: Refusal) -> str:
    """Return a short label for why ``refusal`` was made (a metric label: few distinct values)."""
    if refusal.status == 404:
        return "not_found"
    if refusal.status == 403:
        if "origin" in refusal.log:
            return "origin"
        if "login required" in refusal.reason:
            return "login_required"
        if "permission" in refusal.reason:
            return "permission"
        return "forbidden"
    if refusal.status == 503:
        return "over_capacity"
    if refusal.status >= 500:
        return "error"
    return str(refusal.status)


def slow_close(route: str = "") -> None:
    """Count a socket of ``route`` closed because its client fell behind."""
    slow_closes[route] += 1


def layer_publish(count: int = 1) -> None:
    """Count ``count`` messages published on the channel layer."""
    events["publishes"] += count


def layer_delivery(count: int = 1) -> None:
    """Count ``count`` layer messages handed to local sockets."""
    events["deliveries"] += count


def redis_outage() -> None:
    """Count the Redis layer losing its connection."""
    events["redis_outages"] += 1


def redis_reconnect() -> None:
    """Count the Redis layer connecting again after an outage."""
    events["redis_reconnects"] += 1


def revocation(count: int) -> None:
    """Count ``count`` sockets closed by revocation."""
    events["revocations"] += count


def broadcast_latency(seconds: float) -> None:
    """Record how long a broadcast took from its sender to a local socket."""
    if len(latencies) < MAX_PENDING_LATENCIES:
        latencies.append(seconds)
    else:
        events["latencies_dropped"] += 1


def take_latencies() -> list[float]:
    """Return and forget the latencies recorded since the last call."""
    taken = latencies[:]
    del latencies[:]
    return taken
