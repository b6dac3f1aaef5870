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

import pytest
from servers import EXAMPLE, Server, server_env, start

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]
SETTINGS = "settings_browser"


def migrate(db: Path, settings: str = SETTINGS) -> None:
    """Create the example's tables in the SQLite file ``db``, in a subprocess."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=EXAMPLE, env=server_env(settings, {"DJANGO_DB": str(db)}), check=True, timeout=60,
    )


def start_example(port: int, log_path: Path, db: Path, settings: str = SETTINGS) -> Server:
    """Run the example project on uvicorn on ``port`` (which may have served before)."""
    argv = [
        sys.executable, "-m", "uvicorn", "wsviews.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--ws", "websockets", "--log-level", "info",
        "--timeout-graceful-shutdown", "5",
    ]
    return start(argv, settings, log_path, port, {"DJANGO_DB": str(db)})


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium per test module."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="module")
def example_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database for the example project."""
    db = tmp_path_factory.mktemp("browser-db") / "db.sqlite3"
    migrate(db)
    return db


@pytest.fixture(scope="module")
def example_server(
    tmp_path_factory: pytest.TempPathFactory, example_db: Path
) -> Iterator[Server]:
    """The example project (plus the browser tests' routes) on uvicorn, in-memory layer."""
    from servers import free_port

    log = tmp_path_factory.mktemp("browser-server") / "server.log"
    server = start_example(free_port(), log, example_db)
    yield server
    server.stop()


@pytest.fixture
def open_page(browser: object) -> Iterator[Callable[[str], object]]:
    """Open a URL in a fresh browser context (its own cookies); fail on uncaught page errors."""
    contexts = []
    errors: list[str] = []

    def open_(url: str) -> object:
        context = browser.new_context()  # type: ignore[attr-defined]
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
