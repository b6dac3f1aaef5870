"""Settings for the SDKs' own suites: the example project with the hub configured like their server.

``WSVIEWS_PEER_CONFIG`` names a Centrifugo ``config.json`` (centrifuge-js'
``centrifugo_test.json``) whose ``client``, ``http_api`` and ``channel``
sections become ``WSVIEWS_HUB``, less the namespaces of subscription types
the hub does not serve (map, map_clients, shared_poll). Without it, the
configuration of centrifuge-python's docker-compose.yml (there as
environment variables) is used, written out below.
"""

import json
import os
from typing import Any

from settings_views import *  # noqa: F403

PYTHON_SUITE = {
    "client": {"token": {"hmac_secret_key": "secret"},
               "subscribe_to_user_personal_channel": {"enabled": True}},
    "http_api": {"key": "test-api-key"},
    "channel": {
        "without_namespace": {
            "presence": True, "join_leave": True, "force_push_join_leave": True,
            "history_size": 100, "history_ttl": "300s", "force_recovery": True,
            "allow_publish_for_subscriber": True, "allow_presence_for_subscriber": True,
            "allow_history_for_subscriber": True,
        },
        "namespaces": [{"name": "smallhistory", "force_recovery": True, "history_size": 2,
                        "history_ttl": "300s", "allow_publish_for_subscriber": True,
                        "allow_history_for_subscriber": True}],
    },
}
_STREAMLESS = {"map", "map_clients", "shared_poll"}


def _from_centrifugo(path: str) -> dict[str, Any]:
    """Return WSVIEWS_HUB from a Centrifugo config.json: its client, http_api and stream channels."""
    with open(path) as f:
        raw = json.load(f)
    channel = dict(raw.get("channel", {}))
    channel["namespaces"] = [ns for ns in channel.get("namespaces", [])
                             if ns.get("subscription_type", "stream") not in _STREAMLESS]
    return {"client": raw.get("client", {}), "http_api": raw.get("http_api", {}), "channel": channel}


_config = os.environ.get("WSVIEWS_PEER_CONFIG")
WSVIEWS_HUB = _from_centrifugo(_config) if _config else PYTHON_SUITE
ROOT_URLCONF = "centrifuge_urls"
CHANNEL_LAYERS = {"default": {"BACKEND": "wsviews.layers.InMemoryChannelLayer"}}
LOGGING = {
    "version": 1, "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
