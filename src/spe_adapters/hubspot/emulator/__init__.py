"""A local HubSpot CRM v3 emulator (shaped like moto): for our tests and yours.

``models`` holds the portal's data and rules, ``responses`` the request
parsing, HubSpot-shaped replies and the URL map, ``server`` the server on
127.0.0.1 (plain HTTP, or TLS when asked) and ``spe emulator hubspot``. The
server, request log, faults and admin routes are the emulator kit's
(:mod:`spe_adapters.emulator_kit`).
"""

from __future__ import annotations

from spe_adapters.hubspot.emulator.models import Faults, Portal, RecordError
from spe_adapters.hubspot.emulator.server import EmulatorServer, main

__all__ = ["EmulatorServer", "Faults", "Portal", "RecordError", "main"]
