"""Registers the CSV adapter with spe-sdk (entry point ``spe``: ``csv``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spe_core import hookimpl


@hookimpl
def spe_register_adapters(register: Callable[[str, Any], None]) -> None:
    """Register ``csv``."""
    from spe_csv_adapter import CsvAdapter

    register("csv", CsvAdapter)
