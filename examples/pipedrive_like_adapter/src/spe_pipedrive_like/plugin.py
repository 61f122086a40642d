"""Registers the Pipedrive-like adapter with spe-sdk (entry point ``spe``: ``pipedrive_like``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spe_core import hookimpl


@hookimpl
def spe_register_adapters(register: Callable[[str, Any], None]) -> None:
    """Register ``pipedrive_like``."""
    from spe_pipedrive_like.adapter import PipedriveLikeAdapter

    register("pipedrive_like", PipedriveLikeAdapter)
