"""A pytest fixture for integrators: a running Salesforce emulator, reset per test.

Enable it in your ``conftest.py``::

    pytest_plugins = ["spe_adapters.salesforce.testing"]

    def test_my_integration(salesforce_emulator):
        login = salesforce_emulator.org.seed()
        ...  # salesforce_emulator.url, .ca_path, .org, .requests
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spe_adapters.salesforce.emulator import EmulatorServer


@pytest.fixture(scope="session")
def _salesforce_emulator_server() -> Iterator[EmulatorServer]:
    server = EmulatorServer().start()
    yield server
    server.stop()


@pytest.fixture
def salesforce_emulator(_salesforce_emulator_server: EmulatorServer) -> EmulatorServer:
    """The emulator, with an empty org and a fresh request log."""
    _salesforce_emulator_server.org.reset()
    _salesforce_emulator_server.requests.reset_counts()
    return _salesforce_emulator_server
