"""A pytest fixture for integrators: a running HubSpot emulator, reset per test.

Enable it in your ``conftest.py``::

    pytest_plugins = ["spe_adapters.hubspot.testing"]

    def test_my_integration(hubspot_emulator):
        token = hubspot_emulator.portal.seed()["access_token"]
        ...  # hubspot_emulator.url, .portal, .requests

``hubspot_emulator``: the emulator, with an empty portal and a fresh request log.
"""

from __future__ import annotations

from spe_adapters.emulator_kit.fixtures import emulator_fixtures
from spe_adapters.hubspot.emulator import EmulatorServer

_hubspot_emulator_server, hubspot_emulator = emulator_fixtures("hubspot_emulator", EmulatorServer)
