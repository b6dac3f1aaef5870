"""The test project's settings, with serving settings for one test taken from the environment.

``WSVIEWS_TEST_SETTINGS`` holds a JSON object of settings (e.g.
``{"WSVIEWS_WRITE_TIMEOUT": 1}``) so each test starts its server with the
limits it exercises.
"""

import json
import os

from settings_views import *  # noqa: F403

ROOT_URLCONF = "urls_serving"
globals().update(json.loads(os.environ.get("WSVIEWS_TEST_SETTINGS", "{}")))
