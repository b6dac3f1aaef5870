"""Servers for the live-template tests, and the npm packages their pages load.

Loaded with ``pytest_plugins = ["html_pages"]`` (browser tests add
``"browser"`` for Chromium and the example's database).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from servers import EXAMPLE, REDIS_SERVER, ROOT, Server, free_port, server_env, start_uvicorn

SETTINGS = "settings_html"
# What the example's pages load from node_modules (versions in package.json).
PACKAGE_FILES = [
    "htmx.org/dist/htmx.min.js",
    "htmx-ext-ws/dist/ws.min.js",
    "@hotwired/turbo/dist/turbo.es2017-esm.js",
]


def install_browser_packages() -> None:
    """Run ``npm ci`` at the repository root unless node_modules has every package."""
    modules = ROOT / "node_modules"
    if all((modules / name).is_file() for name in PACKAGE_FILES):
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is missing: the live pages load htmx and Turbo from npm (apt-get install -y npm)")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=ROOT, check=True, timeout=300)
    missing = [name for name in PACKAGE_FILES if not (modules / name).is_file()]
    assert not missing, f"npm ci did not provide {missing}"


@pytest.fixture(scope="session")
def browser_packages() -> None:
    """htmx, htmx-ext-ws and Turbo in node_modules, as scripts/demo installs them."""
    install_browser_packages()


@pytest.fixture(scope="module")
def html_server(tmp_path_factory: pytest.TempPathFactory, _database: None) -> Iterator[Server]:
    """uvicorn serving the example plus the live-template test routes, in-memory layer, test database."""
    server = start_uvicorn(SETTINGS, tmp_path_factory.mktemp("html") / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def html_redis_servers(
    tmp_path_factory: pytest.TempPathFactory, _database: None
) -> Iterator[tuple[Server, Server]]:
    """Two such processes on the tutorial's Redis layer (REDIS_URL), sharing the test database."""
    logs = tmp_path_factory.mktemp("html-redis")
    servers: list[Server] = []
    try:
        for name in ("a", "b"):
            servers.append(start_uvicorn(SETTINGS, logs / f"{name}.log", env={"REDIS_URL": REDIS_SERVER}))
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def start_live_example(port: int, log_path: Path, db: Path, env: dict[str, str] | None = None) -> Server:
    """Run the example (with the live-template test routes) on uvicorn on ``port``, database ``db``."""
    from browser import start_example

    return start_example(port, log_path, db, settings=SETTINGS, env=env)


@pytest.fixture
def live_servers(tmp_path: Path, _database: None, browser_packages: None) -> Iterator[Callable[..., Server]]:
    """Start the example on a port (again, after a stop, if a test likes); stop them all after the test.

    They share the test database, so the test can change rows with the ORM
    while a server is down (or through a server's admin).
    """
    started: list[Server] = []

    def start_(port: int | None = None, env: dict[str, str] | None = None) -> Server:
        server = start_live_example(port or free_port(), tmp_path / f"server-{len(started)}.log",
                                    Path(os.environ["DJANGO_DB"]), env)
        started.append(server)
        return server

    yield start_
    for server in started:
        server.stop()


def run_in_example(code: str, db: Path, env: dict[str, str] | None = None) -> str:
    """Run Python ``code`` in ``manage.py shell`` of the example (a process with no sockets)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=EXAMPLE, env=server_env(SETTINGS, {"DJANGO_DB": str(db), **(env or {})}),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout

