"""The unit of work: one transaction, the state it changes, its events, listeners after commit.

Every change to SPE's state goes through a unit of work, whether an
:class:`~spe_core.engine.Engine` operation or the sync
(:class:`~spe_core.sync.SyncEngine`) makes it:

- the state change and its events are written in one store transaction, so
  they are committed together or not at all;
- the events are handed to the ``spe_event`` listeners once, in log order,
  after the commit (never for a unit that rolled back);
- the whole unit sees one ``now``, read from the engine's clock when it began.

Units nest: an engine operation called inside ``with engine.unit():`` joins the
outer unit (its writes and events commit with the outer one). An error raised
by a nested operation aborts the whole outer unit, even if the caller catches
it, so a unit is never committed half-applied.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from types import TracebackType
from typing import TypeVar

import attrs

from spe_core.errors import StoreError
from spe_core.events import Event, Recorded
from spe_core.operations import new_operation_id
from spe_core.store.base import Store, Transaction

__all__ = ["UnitOfWork", "UnitRunner"]

T = TypeVar("T")


@attrs.define
class UnitOfWork:
    """One open unit of work: read and write through :attr:`tx`, record events with
    :meth:`record`. Obtain one from :meth:`spe_core.engine.Engine.unit`."""

    tx: Transaction
    """The store transaction every read and write of this unit goes through."""
    now: datetime
    """The unit's time (the engine clock's reading when the unit began)."""
    recorded: list[Recorded] = attrs.Factory(list)
    """The events recorded so far, with their log positions (provisional on a store that
    numbers events once they commit, PostgreSQL: listeners hear the final ones)."""
    failed: bool = False
    """True once a nested operation raised: the unit will not commit."""
    locks: set[str] = attrs.Factory(set)
    """The names this unit holds locks on."""
    operation: str = attrs.Factory(new_operation_id)
    """The unit's operation id, stored with each event it records (see
    :mod:`spe_core.operations`): generated, or the id the caller supplied."""
    supplied: bool = False
    """True when the caller supplied :attr:`operation` (a retried call may have done
    the work already: look it up before acting)."""

    def record(self, *events: Event) -> list[Recorded]:
        """Append ``events`` to the log in this unit's transaction; returns them as
        recorded (with their log positions)."""
        append, operation = self.tx.append, self.operation
        done = [append(e, operation) for e in events]
        self.recorded.extend(done)
        return done

    def lock(self, name: str) -> bool:
        """Serialise with every other unit locking ``name`` until this one ends (used
        before creating a record that another process may be creating at once).
        Returns False when this unit holds the lock already."""
        if name in self.locks:
            return False
        self.tx.lock(name)
        self.locks.add(name)
        return True

    def get_or_lock(self, kind: str, key: str, get: Callable[[str], T | None]) -> T | None:
        """The stored ``kind`` record ``key`` (read with ``get``), or None with
        ``kind:key`` locked until the unit ends: a unit creating the same record at
        the same moment waits, then finds it stored. A record this unit locked
        already is not read twice."""
        found = get(key)
        if found is None and self.lock(f"{kind}:{key}"):
            found = get(key)
        return found


class UnitRunner:
    """Opens units of work on one store for one engine (per thread, nesting joins)."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        notify: Callable[[Sequence[Recorded]], None],
        listening: Callable[[], bool] = lambda: True,
    ) -> None:
        self._store = store
        self._now = now
        self._notify = notify
        self._listening = listening
        self._local = threading.local()

    @property
    def current(self) -> UnitOfWork | None:
        """The unit open in this thread, if any."""
        unit: UnitOfWork | None = getattr(self._local, "unit", None)
        return unit

    def open(self, operation_id: str | None = None) -> AbstractContextManager[UnitOfWork]:
        """A new unit, or the one already open in this thread (joined). A new unit takes
        ``operation_id`` as its operation id when given (else it gets a fresh one)."""
        return _Opening(self, operation_id)


class _Opening:
    """The context manager :meth:`UnitRunner.open` returns (a class rather than a
    generator: it runs twice per engine operation)."""

    __slots__ = ("_operation", "_outer", "_runner", "_tx", "_unit")

    def __init__(self, runner: UnitRunner, operation: str | None) -> None:
        self._runner = runner
        self._operation = operation
        self._outer: UnitOfWork | None = None
        self._tx: AbstractContextManager[Transaction] | None = None
        self._unit: UnitOfWork | None = None

    def __enter__(self) -> UnitOfWork:
        runner = self._runner
        outer: UnitOfWork | None = getattr(runner._local, "unit", None)
        if outer is not None:
            self._outer = outer
            return outer
        now = runner._now()
        opening = runner._store.transaction()
        tx = opening.__enter__()
        self._tx = opening
        if self._operation is None:
            unit = self._unit = UnitOfWork(tx, now)
        else:
            unit = self._unit = UnitOfWork(tx, now, operation=self._operation, supplied=True)
        runner._local.unit = unit
        return unit

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> bool:
        if self._outer is not None:
            if kind is not None:
                self._outer.failed = True
            return False
        unit, opening = self._unit, self._tx
        assert unit is not None and opening is not None
        self._runner._local.unit = None
        if kind is None and unit.failed:
            error = StoreError(
                "an engine operation failed inside this unit of work, so none of "
                "the unit's changes were kept.",
                "let the operation's error leave the `with engine.unit()` block "
                "(check inputs before calling the operation if you expect it to fail).",
            )
            if not opening.__exit__(StoreError, error, None):
                raise error
            return False
        if opening.__exit__(kind, error, trace):
            return True  # the store swallowed the error (no store does)
        if kind is None and unit.recorded and self._runner._listening():
            # a store that numbers events after they commit (PostgreSQL) gives their final
            # log positions here; what ``record`` returned was provisional there
            committed: Callable[[], list[Recorded]] | None = getattr(
                unit.tx, "committed_events", None
            )
            self._runner._notify(unit.recorded if committed is None else committed())
        return False
