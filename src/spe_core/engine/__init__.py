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

from types import TracebackType

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

    Use it as a context manager, or call :meth:`close`, to close its store::

        with Engine(open_store("sqlite:spe.db")) as engine:
            engine.pull("ann")

    **Threads.** One engine may be shared by any number of threads (the
    threads of a web server, say): every operation runs in one unit of work,
    that is one store transaction, and a unit is kept per thread (a thread
    joins only the unit it opened itself). Concurrent operations are
    serialised by the store (a lock for ``memory:``, SQLite's write lock,
    PostgreSQL row locks), so two threads never pull the same opportunity or
    resolve one twice. The policies, rules and plugins an engine holds are
    read-only after construction; do not change them while threads use it.
    SQLite and PostgreSQL stores also serve several processes at once.
    """

    def close(self) -> None:
        """Close the store (its connections). Calling it again does nothing."""
        if not self._closed:
            self._closed = True
            self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
