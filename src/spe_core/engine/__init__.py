"""The engine: the one place where rules, store and hooks meet.

Every operation runs in one unit of work (:mod:`spe_core.engine.unit`): it
reads what it needs through one store transaction, asks the pure rules
(:mod:`spe_core.queue`, :mod:`spe_core.routing`, :mod:`spe_core.calendar`)
what to do, writes the new state, appends the events in the same transaction
and, once it has committed, hands the events to the listeners. The clock is
injected; rules are handed ``now``. The sync (:mod:`spe_core.sync`) changes
state only through these operations, inside units of its own.

The parts, one module each: :mod:`~spe_core.engine.team` (members),
:mod:`~spe_core.engine.queue` (the pull queue),
:mod:`~spe_core.engine.routing` (tasks), :mod:`~spe_core.engine.calendar`
(busy time, proposals, bookings).
"""

from __future__ import annotations

from spe_core.engine.calendar import CalendarPart
from spe_core.engine.queue import PullResult, QueuePart, QueueStatus, ReplenishResult, SweepResult
from spe_core.engine.routing import RoutingPart
from spe_core.engine.team import TeamPart
from spe_core.engine.unit import UnitOfWork

__all__ = [
    "Engine",
    "PullResult",
    "QueueStatus",
    "ReplenishResult",
    "SweepResult",
    "UnitOfWork",
]


class Engine(TeamPart, QueuePart, RoutingPart, CalendarPart):
    """Runs SPE against a store.

    >>> from spe_core.store import open_store
    >>> engine = Engine(open_store("memory:"))

    One engine may be shared by threads: each operation is one store
    transaction, and units of work are kept per thread. Close the store
    (``engine.store.close()``) when done.
    """
