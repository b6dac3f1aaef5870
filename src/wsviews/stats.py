"""A snapshot of what this process serves right now, for the live admin page.

:func:`snapshot` counts the open sockets by route and by user, the groups of
each channel layer with their local member counts, and whatever registered
sources add: the realtime hub registers ``hub_channels`` (channel -> local
subscribers) with :func:`register_source`. Rates are left to the reader: two
snapshots' ``received`` and ``sent`` over their ``time`` difference.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from . import connections, counters

Source = Callable[[], Mapping[str, int]]
_sources: dict[str, Source] = {}


def register_source(name: str, source: Source) -> None:
    """Add ``source()`` (names to counts) to every snapshot as ``name``, largest counts first."""
    _sources[name] = source


def unregister_source(name: str) -> None:
    """Stop adding ``name`` to snapshots."""
    _sources.pop(name, None)


def snapshot(top: int = 20) -> dict[str, Any]:
    """Return this process's open sockets, groups and totals as JSON-ready data (``top`` rows a table)."""
    records = connections.open_connections()
    routes: Counter[tuple[str, str]] = Counter((r.route, r.kind) for r in records)
    users: Counter[str] = Counter(r.username or "(anonymous)" for r in records)
    received = sent = 0
    for values in connections.totals().values():
        received += values[0]
        sent += values[1]
    data: dict[str, Any] = {
        "pid": os.getpid(),
        "time": time.time(),
        "sockets": len(records),
        "routes": [{"route": route, "kind": kind, "count": n}
                   for (route, kind), n in routes.most_common(top)],
        "users": [{"user": user, "count": n} for user, n in users.most_common(top)],
        "groups": _top(_groups(), top),
        "received": received,
        "sent": sent,
        "handshakes": {f"{outcome} {reason}": n
                       for (outcome, reason), n in sorted(counters.handshakes.items())},
        "revoked": counters.events["revocations"],
        "slow_closes": sum(counters.slow_closes.values()),
    }
    for name, source in list(_sources.items()):
        try:
            data[name] = _top(dict(source()), top)
        except Exception as exc:
            data[name] = [{"name": f"({type(exc).__name__}: {exc})", "count": 0}]
    return data


def _groups() -> dict[str, int]:
    """Return each channel layer group with its members in this process."""
    from channels.layers import channel_layers

    found: dict[str, int] = {}
    for layer in list(channel_layers.backends.values()):
        groups = getattr(getattr(layer, "local", None), "groups", None)
        if not isinstance(groups, dict):
            groups = getattr(layer, "groups", None)  # Channels' in-memory layer
        if isinstance(groups, dict):
            for name, members in list(groups.items()):
                found[name] = found.get(name, 0) + len(members)
    return found


def _top(counts: Mapping[str, int], top: int) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [{"name": name, "count": n} for name, n in ranked]
