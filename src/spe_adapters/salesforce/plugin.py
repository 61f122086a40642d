"""Registers the Salesforce adapter with spe-sdk's plugin manager (entry point ``spe``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spe_core.hookspecs import hookimpl


@hookimpl
def spe_register_adapters(register: Callable[[str, Any], None]) -> None:
    """Register ``salesforce``."""
    try:
        from spe_adapters.salesforce.adapter import SalesforceAdapter
    except ModuleNotFoundError as exc:  # the [salesforce] extra is not installed
        from spe_adapters._extras import missing_extra

        register("salesforce", missing_extra("salesforce", exc.name))
        return
    register("salesforce", SalesforceAdapter)
