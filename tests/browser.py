"""Headless Chromium (through Playwright's sync API) and the example project on uvicorn.

Loaded by browser test modules with ``pytest_plugins = ["browser"]``. The sync
API is used from plain test functions: it runs its own event loop, which must
not meet pytest-asyncio's.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from harness import EXAMPLE, REDIS_SERVER, Server, free_port, server_env, start, uvicorn_argv

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]
SETTINGS = "settings_browser"
REDIS_URL = REDIS_SERVER
USERNAME, PASSWORD = "ada", "correct horse battery staple"


def migrate(db: Path, settings: str = SETTINGS) -> None:
    """Create the example's tables in the SQLite file ``db``, in a subprocess."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=EXAMPLE, env=server_env(settings, {"DJANGO_DB": str(db)}), check=True, timeout=60,
    )


def create_superuser(db: Path, username: str, password: str, settings: str = SETTINGS) -> None:
    """Add a superuser (who may log in at /admin/) to the example's database ``db``."""
    code = ("from django.contrib.auth.models import User; "
            f"User.objects.create_superuser({username!r}, '', {password!r})")
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=EXAMPLE, env=server_env(settings, {"DJANGO_DB": str(db)}), check=True, timeout=60,
    )


def start_example(port: int, log_path: Path, db: Path, settings: str = SETTINGS,
                  env: dict[str, str] | None = None) -> Server:
    """Run the example project on uvicorn on ``port`` (which may have served before).

    Without ``REDIS_URL`` in ``env`` it runs on the in-memory layer; with it,
    on the tutorial's channels_redis layer.
    """
    argv = uvicorn_argv("wsviews.asgi:application", port, "--timeout-graceful-shutdown", "5")
    return start(argv, settings, log_path, port, {"DJANGO_DB": str(db), **(env or {})})


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module."""
    if not CHROMIUM.exists():
        # scripts/services installs it; a missing browser is a broken setup, not a skip.
        pytest.fail(f"{CHROMIUM} is missing: run scripts/services (apt-get install -y chromium)")
    expect.set_options(timeout=10_000)  # a loaded CI machine, not a slow page
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="module")
def example_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database for the example project, with the superuser USERNAME."""
    db = tmp_path_factory.mktemp("browser-db") / "db.sqlite3"
    migrate(db)
    create_superuser(db, USERNAME, PASSWORD)
    return db


@pytest.fixture
def superuser(example_db: Path) -> tuple[str, str]:
    """The username and password of the superuser in ``example_db``."""
    return USERNAME, PASSWORD


@pytest.fixture(scope="module")
def example_server(
    tmp_path_factory: pytest.TempPathFactory, example_db: Path
) -> Iterator[Server]:
    """The example project (plus the browser tests' routes) on uvicorn, in-memory layer."""
    log = tmp_path_factory.mktemp("browser-server") / "server.log"
    server = start_example(free_port(), log, example_db)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def example_redis_servers(
    tmp_path_factory: pytest.TempPathFactory, example_db: Path
) -> Iterator[tuple[Server, Server]]:
    """Two processes of the example on the tutorial's Redis layer: one chat, two servers."""
    logs = tmp_path_factory.mktemp("browser-redis")
    servers: list[Server] = []
    try:
        for name in ("a", "b"):
            servers.append(start_example(free_port(), logs / f"{name}.log", example_db,
                                         env={"REDIS_URL": REDIS_URL}))
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def start_server(example_db: Path, tmp_path: Path) -> Iterator[Callable[[int], Server]]:
    """Start the example on a given port, as often as a test likes; stop them all after it."""
    servers: list[Server] = []

    def start_(port: int) -> Server:
        server = start_example(port, tmp_path / f"server-{len(servers)}.log", example_db)
        servers.append(server)
        return server

    yield start_
    for server in servers:
        server.stop()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Open a URL in a fresh browser context (its own cookies); fail on uncaught page errors.

    Keyword arguments go to ``browser.new_context()`` (``java_script_enabled=False``...).
    """
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def open_(url: str, **options: Any) -> Page:
        context = browser.new_context(**options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
