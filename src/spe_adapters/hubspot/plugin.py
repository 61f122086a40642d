"""Registers the HubSpot adapter with spe-sdk's plugin manager (entry point ``spe``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spe_core.hookspecs import hookimpl


@hookimpl
def spe_register_adapters(register: Callable[[str, Any], None]) -> None:
    """Register ``hubspot``."""
    from spe_adapters.hubspot.adapter import HubSpotAdapter

    register("hubspot", HubSpotAdapter)
