"""Registers the HubSpot adapter with spe-sdk's plugin manager (entry point ``spe``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spe_core.hookspecs import hookimpl


@hookimpl
def spe_register_adapters(register: Callable[[str, Any], None]) -> None:
    """Register ``hubspot``."""
    try:
        from spe_adapters.hubspot.adapter import HubSpotAdapter
    except ModuleNotFoundError as exc:  # the [hubspot] extra is not installed
        from spe_adapters._extras import missing_extra

        register("hubspot", missing_extra("hubspot", exc.name))
        return
    register("hubspot", HubSpotAdapter)
