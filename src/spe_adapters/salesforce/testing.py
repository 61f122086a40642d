"""A pytest fixture for integrators: a running Salesforce emulator, reset per test.

Enable it in your ``conftest.py``::

    pytest_plugins = ["spe_adapters.salesforce.testing"]

    def test_my_integration(salesforce_emulator):
        login = salesforce_emulator.org.seed()
        ...  # salesforce_emulator.url, .ca_path, .org, .requests

``salesforce_emulator``: the emulator, with an empty org and a fresh request log.
"""

from __future__ import annotations

from spe_adapters.emulator_kit.fixtures import emulator_fixtures
from spe_adapters.salesforce.emulator import EmulatorServer

_salesforce_emulator_server, salesforce_emulator = emulator_fixtures(
    "salesforce_emulator", EmulatorServer
)
