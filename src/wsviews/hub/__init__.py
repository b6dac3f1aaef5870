"""The realtime hub: the Centrifugal client protocol (JSON) served from Django.

The official SDKs (centrifuge-js, centrifuge-python) connect to it unchanged.
Mount it with ``path("", include("wsviews.hub.urls"))``; publish from Django
with :func:`publish` (and the other server API functions of
:mod:`~wsviews.hub.server_api`, re-exported here); register hooks with
:func:`allow_subscribe`, :func:`allow_publish` and :func:`rpc`.

Its parts, each importable alone (importing this package loads none of them
until a name below is used):

* :mod:`~wsviews.hub.protocol` - the sans-I/O per-connection core;
* :mod:`~wsviews.hub.events` - what the core asks of its shell and gets back;
* :mod:`~wsviews.hub.commands` - the JSON codec of commands, replies, pushes;
* :mod:`~wsviews.hub.config` - ``WSVIEWS_HUB`` in Centrifugo's option names;
* :mod:`~wsviews.hub.tokens` - connection and subscription JWTs;
* :mod:`~wsviews.hub.access`, :mod:`~wsviews.hub.recovery` - permission rules
  and stream-position arithmetic;
* :mod:`~wsviews.hub.codes`, :mod:`~wsviews.hub.records` - protocol codes and
  the values shared with engines;
* :mod:`~wsviews.hub.node`, :mod:`~wsviews.hub.shell` - the process's hub and
  the asyncio shell of one connection; :mod:`~wsviews.hub.urls`,
  :mod:`~wsviews.hub.api` - the endpoint and the server HTTP API;
* :mod:`~wsviews.hub.hooks`, :mod:`~wsviews.hub.server_api` - the Django side.
"""

from __future__ import annotations

import importlib
from typing import Any

_SERVER_API = (
    "abroadcast", "achannels", "adisconnect", "ahistory", "ahistory_remove", "ainfo", "apresence",
    "apresence_stats", "apublish", "asubscribe", "aunsubscribe", "broadcast", "channels",
    "connection_token", "disconnect", "history", "history_remove", "info", "presence",
    "presence_stats", "publish", "subscribe", "subscription_token", "unsubscribe",
)
_HOOKS = ("HubError", "allow_publish", "allow_subscribe", "rpc")

__all__ = [*_SERVER_API, *_HOOKS]


def __getattr__(name: str) -> Any:
    if name in _SERVER_API:
        return getattr(importlib.import_module(".server_api", __name__), name)
    if name in _HOOKS:
        return getattr(importlib.import_module(".hooks", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
