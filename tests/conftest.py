"""Shared fixtures: Django configured for the tests, and real servers on free ports."""

from __future__ import annotations

import gc
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT / "example", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

# One SQLite file shared by the test process and the servers it starts, so a
# session created here (client.login()) is valid there.
os.environ.setdefault("DJANGO_DB", os.path.join(tempfile.mkdtemp(prefix="wsviews-tests-"), "db.sqlite3"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings_views")
os.environ.pop("REDIS_URL", None)

import django  # noqa: E402

django.setup()

from harness import REDIS_SERVER, Server, raise_nofile, start_uvicorn  # noqa: E402

REDIS_URL = REDIS_SERVER
# Tests open a thousand sockets at once; servers they start inherit the limit.
raise_nofile()


@pytest.fixture(scope="module", autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect garbage after each module.

    A resource left open warns (an error here) when it is collected; collected
    here, it fails the module that leaked it, not whichever test the collector
    happens to run in. Per module, not per test: a collection costs ~35 ms.
    """
    yield
    gc.collect()


@pytest.fixture(scope="session", autouse=True)
def _database() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _server(tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str]) -> Server:
    log = tmp_path_factory.mktemp(name) / "server.log"
    return start_uvicorn("settings_views", log, env=env)


@pytest.fixture(scope="module")
def memory_server(tmp_path_factory: pytest.TempPathFactory, _database: None) -> Iterator[Server]:
    """uvicorn serving the example project plus test routes, on the in-memory layer."""
    server = _server(tmp_path_factory, "memory", {})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory, _database: None) -> Iterator[Server]:
    """The same, on the seed's channels_redis layer (CHANNEL_LAYERS as the tutorial wrote it)."""
    server = _server(tmp_path_factory, "redis", {"REDIS_URL": REDIS_URL})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_server_b(tmp_path_factory: pytest.TempPathFactory, _database: None) -> Iterator[Server]:
    """A second process on the seed's Redis layer, to prove cross-process delivery."""
    server = _server(tmp_path_factory, "redis-b", {"REDIS_URL": REDIS_URL})
    yield server
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def server(request: pytest.FixtureRequest) -> Server:
    """Each test using it runs once per layer."""
    server: Server = request.getfixturevalue(f"{request.param}_server")
    return server
