"""Fixtures shared by the hub's tests."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from .sdks import centrifuge_python


@pytest.fixture(scope="session")
def centrifuge(request: pytest.FixtureRequest) -> Any:
    """The ``centrifuge`` module of centrifuge-python 0.7, installed from PyPI at first use."""
    where = str(centrifuge_python(request.config))
    if where not in sys.path:
        sys.path.insert(0, where)
    import centrifuge

    return centrifuge
