"""A pytest fixture for integrators: a running HubSpot emulator, reset per test.

Enable it in your ``conftest.py``::

    pytest_plugins = ["spe_adapters.hubspot.testing"]

    def test_my_integration(hubspot_emulator):
        token = hubspot_emulator.portal.seed()["access_token"]
        ...  # hubspot_emulator.url, .portal, .requests
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spe_adapters.hubspot.emulator import EmulatorServer


@pytest.fixture(scope="session")
def _hubspot_emulator_server() -> Iterator[EmulatorServer]:
    server = EmulatorServer().start()
    yield server
    server.stop()


@pytest.fixture
def hubspot_emulator(_hubspot_emulator_server: EmulatorServer) -> EmulatorServer:
    """The emulator, with an empty portal and a fresh request log."""
    _hubspot_emulator_server.portal.reset()
    _hubspot_emulator_server.requests.reset_counts()
    return _hubspot_emulator_server
