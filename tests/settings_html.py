"""The example project's settings, with the live-template tests' routes and templates."""

from pathlib import Path

from settings_views import *  # noqa: F403  (the example's settings, with test logging)
from settings_views import TEMPLATES

ROOT_URLCONF = "urls_html"
TEMPLATES = [{**TEMPLATES[0], "DIRS": [Path(__file__).resolve().parent / "templates"]}]
