"""The test routes plus metrics, the live admin page and a logout URL; Redis layer when OBSERVE_REDIS is set.

Every process started with the same ``OBSERVE_REDIS`` and ``OBSERVE_PREFIX``
shares one layer, and so one control channel group.
"""

import os

from settings_views import *  # noqa: F403  (the example's settings, with test logging)

if os.environ.get("OBSERVE_REDIS"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "wsviews.layers.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["OBSERVE_REDIS"]],
                       "prefix": os.environ.get("OBSERVE_PREFIX", "wsviews-observe")},
        },
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "wsviews.layers.InMemoryChannelLayer"}}

ROOT_URLCONF = "urls_observe"
WSVIEWS_METRICS_TOKEN = os.environ.get("OBSERVE_METRICS_TOKEN") or None
if os.environ.get("OBSERVE_METRICS_BYTES"):
    WSVIEWS_METRICS_BYTES = True
