"""The example project's settings, with the browser tests' extra routes."""

from mysite.settings import *  # noqa: F403

ROOT_URLCONF = "urls_browser"
