"""A local Salesforce REST emulator (shaped like moto): for our tests and yours.

``models`` holds the org's data and rules, ``soql`` the query language
subset, ``responses`` the request parsing and Salesforce-shaped replies and
the URL map, ``server`` the HTTPS server with its test certificate authority
and ``spe emulator salesforce``. The server, CA, request log, faults and admin
routes are the emulator kit's (:mod:`spe_adapters.emulator_kit`).
"""

from __future__ import annotations

from spe_adapters.salesforce.emulator.models import Faults, Org, RecordError
from spe_adapters.salesforce.emulator.server import EmulatorServer, main

__all__ = ["EmulatorServer", "Faults", "Org", "RecordError", "main"]
