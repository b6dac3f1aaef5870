"""The example project's settings with the test routes added (layer chosen by REDIS_URL)."""

from mysite.settings import *  # noqa: F403

ROOT_URLCONF = "urls_views"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
