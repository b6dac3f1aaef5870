"""The official SDKs, installed at test time from their registries (never committed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

CENTRIFUGE_JS = "centrifuge@5"
WS = "ws@8"
CENTRIFUGE_PYTHON = "centrifuge-python==0.7.0"


def _cache(config: pytest.Config, name: str) -> Path:
    """Return pytest's cache directory for ``name`` (a temp directory without the cache plugin)."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir(name))
    where = Path(tempfile.gettempdir()) / name
    where.mkdir(exist_ok=True)
    return where


def centrifuge_js(config: pytest.Config) -> Path:
    """Return a directory with centrifuge-js 5 and ws installed (npm), reusing an earlier install."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed to run centrifuge-js: apt-get install nodejs npm")
    where = _cache(config, "wsviews-centrifuge-js")
    if not (where / "node_modules" / "centrifuge" / "package.json").exists():
        (where / "package.json").write_text('{"private": true, "type": "module"}\n')
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent", CENTRIFUGE_JS, WS],
                       cwd=where, check=True, timeout=300)
    return where


def centrifuge_python(config: pytest.Config) -> Path:
    """Return a directory to put on sys.path with centrifuge-python 0.7 and protobuf (pip)."""
    where = _cache(config, "wsviews-centrifuge-python")
    if not (where / "centrifuge" / "client.py").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(where), CENTRIFUGE_PYTHON, "protobuf>=5.29.6"],
                       check=True, timeout=300)
    return where


CENT = "cent==5.2.0"


def cent(config: pytest.Config) -> Path:
    """Return a directory with Centrifugo's Python API client ``cent`` 5 and its dependencies (pip).

    It goes on the ``PYTHONPATH`` of a subprocess, never on this process's
    ``sys.path``: its dependencies must not shadow the test environment's.
    """
    where = _cache(config, "wsviews-cent")
    if not (where / "cent" / "__init__.py").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(where),
                        CENT], check=True, timeout=300)
    return where
