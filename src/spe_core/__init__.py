"""spe-sdk: Sales Process Engineering for the CRM you already run.

The core is pure: :mod:`spe_core.queue` (and the routing, calendar and flow
modules) hold the rules as functions of values and a time passed in;
:class:`spe_core.engine.Engine` applies them against a store
(:func:`spe_core.store.open_store`) and records every change as an event.
"""

from __future__ import annotations

from spe_core.clock import Clock, SystemClock
from spe_core.engine import Engine, PullResult, QueueStatus, ReplenishResult
from spe_core.hookspecs import hookimpl
from spe_core.model import Member, Opportunity, OpportunityStatus, Outcome, Role
from spe_core.plugins import Plugins
from spe_core.queue import QueuePolicy, Zone
from spe_core.store import open_store

__all__ = [
    "Clock",
    "Engine",
    "Member",
    "Opportunity",
    "OpportunityStatus",
    "Outcome",
    "Plugins",
    "PullResult",
    "QueuePolicy",
    "QueueStatus",
    "ReplenishResult",
    "Role",
    "SystemClock",
    "Zone",
    "__version__",
    "hookimpl",
    "open_store",
]

__version__ = "0.1.0.dev0"
