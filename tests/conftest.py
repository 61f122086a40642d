"""Shared fixtures and hypothesis profiles.

Profiles: ``dev`` (default, quick), ``ci`` (what CI runs: at least 200
examples per stateful machine). Choose with HYPOTHESIS_PROFILE.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from spe_core.engine import Engine
from spe_core.plugins import Plugins
from spe_core.store import open_store
from spe_core.store.base import Store
from spe_core.testing import FakeClock

settings.register_profile(
    "ci",
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "dev",
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store of each embedded kind."""
    url = "memory:" if request.param == "memory" else f"sqlite:///{tmp_path / 'spe.db'}"
    s = open_store(url)
    yield s
    s.close()


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at Monday 2026-01-05 08:00 UTC."""
    return FakeClock()


@pytest.fixture
def engine(store: Store, clock: FakeClock) -> Engine:
    """An engine over each embedded store, with the fake clock and no entry points."""
    return Engine(store, clock=clock, plugins=Plugins.create(entry_points=False))
