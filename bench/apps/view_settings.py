"""The example's settings, routing through ``bench.apps.wsviews_view`` (adds ``/bench/echo/``)."""

from mysite.settings import *  # noqa: F403

ROOT_URLCONF = "bench.apps.wsviews_view"
