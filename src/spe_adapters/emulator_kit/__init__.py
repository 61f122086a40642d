"""The emulator kit: what the Salesforce and HubSpot emulators share.

- :mod:`~spe_adapters.emulator_kit.server`: a threaded werkzeug server on
  127.0.0.1, plain HTTP or TLS (:mod:`~spe_adapters.emulator_kit.tls`: a trustme
  CA, temporary or kept in a folder);
- :mod:`~spe_adapters.emulator_kit.app`: the WSGI skeleton (URL map, request
  log, the ``/__emulator/`` admin routes: reset, seed, faults, requests);
- :mod:`~spe_adapters.emulator_kit.log`: the request log;
- :mod:`~spe_adapters.emulator_kit.faults`: fault injection per call, per
  record, latency, and rolling rate windows;
- :mod:`~spe_adapters.emulator_kit.fixtures`: a pytest fixture factory;
- :mod:`~spe_adapters.emulator_kit.state` and :mod:`~spe_adapters.emulator_kit.run`:
  ``spe emulator <crm>``'s stable state folder, options and output.

Each emulator keeps its CRM's routes, rules and reply shapes.
"""

from __future__ import annotations

from spe_adapters.emulator_kit.app import ADMIN_PREFIX, EmulatedCrm, KitApp, json_response
from spe_adapters.emulator_kit.faults import Faults, RollingWindow
from spe_adapters.emulator_kit.log import LoggedRequest, RequestLog
from spe_adapters.emulator_kit.server import KitServer
from spe_adapters.emulator_kit.state import EmulatorState, default_state_dir
from spe_adapters.emulator_kit.tls import CertificateAuthority

__all__ = [
    "ADMIN_PREFIX",
    "CertificateAuthority",
    "EmulatedCrm",
    "EmulatorState",
    "Faults",
    "KitApp",
    "KitServer",
    "LoggedRequest",
    "RequestLog",
    "RollingWindow",
    "default_state_dir",
    "json_response",
]
