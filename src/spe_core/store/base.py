"""The store interface every engine (memory, SQLite, PostgreSQL) implements.

A store persists state and the event log; it never applies SPE rules. The
engine opens a :class:`Transaction`, reads through it, asks the pure rules
what to do, writes the results and appends the events; the transaction
commits all of it or none of it. Iteration orders are part of the contract
(every store yields the same items in the same order), so one random
operation sequence gives identical answers on every store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Protocol, runtime_checkable

from spe_core.errors import StoreError
from spe_core.events import Event, Recorded
from spe_core.model import Booking, Busy, Member, Opportunity, OpportunityStatus, Task
from spe_core.operations import Operation
from spe_core.outbox import OutboxItem, Quarantined

__all__ = ["RANKED_STATUSES", "Store", "Transaction", "seconds_param"]

#: Statuses whose opportunities are kept in rank order (the backlog and the queue).
RANKED_STATUSES = (OpportunityStatus.BACKLOG, OpportunityStatus.QUEUED)


@runtime_checkable
class Transaction(Protocol):
    """One atomic unit of work against a store.

    Writes become visible to other transactions only when the transaction
    commits (when its ``with`` block ends without an exception). Two
    transactions that both pull from the queue never release the same
    opportunity: stores serialise writers (SQLite) or lock the rows they
    claim (PostgreSQL ``FOR UPDATE SKIP LOCKED``).
    """

    # members ----------------------------------------------------------------------
    def get_member(self, member_id: str) -> Member | None:
        """The member with ``member_id``, or None."""
        ...

    def put_member(self, member: Member) -> None:
        """Insert or replace a member."""
        ...

    def members(self) -> list[Member]:
        """Every member, ordered by id."""
        ...

    # opportunities ----------------------------------------------------------------
    def get_opportunity(self, opportunity_id: str) -> Opportunity | None:
        """The opportunity with ``opportunity_id``, or None."""
        ...

    def put_opportunity(self, opportunity: Opportunity, rank: bytes | None = None) -> None:
        """Insert or replace an opportunity.

        ``rank`` (from :func:`spe_core.queue.rank_key`) is required the first
        time an opportunity is stored; None keeps the stored rank.
        """
        ...

    def iter_ranked(self, status: OpportunityStatus) -> Iterator[Opportunity]:
        """Opportunities in ``status`` (backlog or queued), best rank first.

        The iterator may be abandoned early; writes made while iterating are
        allowed (the engine releases what it pulls as it goes). PostgreSQL
        locks the rows it yields for this transaction and skips rows other
        transactions hold.
        """
        ...

    def count(self, status: OpportunityStatus) -> int:
        """How many opportunities are in ``status``."""
        ...

    def oldest(self, status: OpportunityStatus) -> Opportunity | None:
        """The opportunity in ``status`` with the earliest ``queued_at`` (ties: id)."""
        ...

    def held_by(self, member_id: str) -> int:
        """How many released opportunities ``member_id`` holds."""
        ...

    def iter_lease_expired(self, now: datetime) -> Iterator[Opportunity]:
        """Released opportunities whose lease ran out by ``now``, by (lease end, id)."""
        ...

    def iter_queued_before(self, cutoff: datetime) -> Iterator[Opportunity]:
        """Queued opportunities with ``queued_at <= cutoff``, by (queued_at, id)."""
        ...

    def iter_expiring(self, now: datetime) -> Iterator[Opportunity]:
        """Backlog and queued opportunities with ``expires_at <= now``, by (expires_at, id)."""
        ...

    def pulls_on(self, member_id: str, day: date) -> int:
        """How many opportunities ``member_id`` pulled on their local ``day``."""
        ...

    def add_pulls(self, member_id: str, day: date, count: int) -> None:
        """Count ``count`` more pulls for ``member_id`` on ``day``."""
        ...

    # --- tasks (routing) --------------------------------------------------------------
    def get_task(self, task_id: str) -> Task | None:
        """The task with ``task_id``, or None."""
        ...

    def put_task(self, task: Task) -> None:
        """Insert or replace a task."""
        ...

    def open_task_loads(self) -> dict[str, tuple[int, float]]:
        """Member id -> (open tasks, their summed weight), for members holding any."""
        ...

    def iter_open_tasks(self, member_id: str) -> Iterator[Task]:
        """Tasks ``member_id`` holds (assigned or accepted), by id."""
        ...

    def iter_queued_tasks(self, role: str) -> Iterator[Task]:
        """Unassigned tasks waiting in ``role``'s queue, by (priority, created_at, id)."""
        ...

    def iter_overdue_tasks(self, now: datetime) -> Iterator[Task]:
        """Open tasks whose accept-by or complete-by passed by ``now``, by id."""
        ...

    # --- calendar (bookings and busy time) --------------------------------------------
    def get_booking(self, booking_id: str) -> Booking | None:
        """The booking with ``booking_id`` (its request's id), cancelled or not, or None."""
        ...

    def put_booking(self, booking: Booking) -> None:
        """Insert or replace a booking."""
        ...

    def iter_bookings(
        self, member_id: str | None, start: datetime, end: datetime
    ) -> Iterator[Booking]:
        """Active bookings overlapping ``start``..``end`` (of one member, or everyone's
        when ``member_id`` is None), by (start, id)."""
        ...

    def replace_busy(
        self, member_id: str, start: datetime, end: datetime, busy: list[Busy]
    ) -> None:
        """Drop the member's busy time starting in ``start``..``end`` and store ``busy``."""
        ...

    def delete_busy(self, member_id: str, busy_id: str) -> None:
        """Forget one entry of busy time (gone from the member's calendar)."""
        ...

    def iter_busy(self, member_id: str, start: datetime, end: datetime) -> Iterator[Busy]:
        """The member's busy time overlapping ``start``..``end``, by (start, id)."""
        ...

    # --- sync (outbox and quarantine) -------------------------------------------------
    def outbox_get(self, adapter: str, kind: str, key: str) -> OutboxItem | None:
        """The outbox item for one record, or None."""
        ...

    def outbox_put(self, item: OutboxItem) -> None:
        """Insert or replace the outbox item for (adapter, kind, key)."""
        ...

    def outbox_delete(self, adapter: str, kind: str, key: str) -> None:
        """Remove a delivered item."""
        ...

    def outbox_due(self, adapter: str, now: datetime, limit: int) -> list[OutboxItem]:
        """Pending items whose next attempt is due, by (seq, kind, key)."""
        ...

    def outbox_items(self, adapter: str, status: str | None = None) -> list[OutboxItem]:
        """Every item (or those in ``status``), by (seq, kind, key)."""
        ...

    def quarantine_put(self, record: Quarantined) -> None:
        """Record a quarantined record (one per adapter, direction, stream and key)."""
        ...

    def quarantined(self, adapter: str) -> list[Quarantined]:
        """Quarantined records of ``adapter``, by (direction, stream, key)."""
        ...

    # events and metadata ------------------------------------------------------------
    def append(self, event: Event, operation: str | None = None) -> Recorded:
        """Append ``event`` to the log, stored with the id of the ``operation`` (the
        unit of work) that recorded it; returns it with its sequence number."""
        ...

    def events(self, after: int = 0, limit: int | None = None) -> list[Recorded]:
        """Recorded events with ``seq > after`` (at most ``limit``), in log order, read in
        this transaction (its own appends included). Use this, not
        :meth:`Store.events`, inside a transaction: the store's read may need a
        second connection, which a pool of one cannot give while this one is held."""
        ...

    def get_operation(self, operation_id: str) -> Operation | None:
        """The finished call that carried the caller-supplied ``operation_id``, or None."""
        ...

    def put_operation(self, operation: Operation) -> None:
        """Keep a finished call's result under its caller-supplied id (a new id)."""
        ...

    def forget_operations(self, before: datetime) -> int:
        """Forget the calls kept from before ``before``; returns how many."""
        ...

    def get_meta(self, key: str) -> str | None:
        """A small piece of engine state (a cursor, a pointer), or None."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Store a small piece of engine state."""
        ...

    def lock(self, name: str) -> None:
        """Hold a lock on ``name`` until this transaction ends.

        Two transactions that lock the same name run one after the other from
        that point, so "is this record new? then create it" is atomic even
        when a webhook and a scheduled sync create the same record at once.
        Stores whose writers are already serialised (memory, SQLite) do nothing.
        """
        ...


@runtime_checkable
class Store(Protocol):
    """Persistence for the engine: transactions, and read access to the log."""

    url: str

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A new transaction; it commits when the ``with`` block ends cleanly."""
        ...

    def events(self, after: int = 0, limit: int | None = None) -> Iterator[Recorded]:
        """Recorded events with ``seq > after``, in log order (streamed)."""
        ...

    def opportunities(self, status: OpportunityStatus | None = None) -> Iterator[Opportunity]:
        """Every opportunity (or those in ``status``), ordered by id."""
        ...

    def close(self) -> None:
        """Release connections and files. The store is unusable afterwards."""
        ...


def seconds_param(text: str | None, name: str, default: float) -> float:
    """A store URL's timeout parameter in seconds (``30``, ``2.5``, ``500ms``, ``1min``)."""
    if text is None:
        return default
    value = text.strip().lower()
    scale = 1.0
    for suffix, factor in (("ms", 0.001), ("min", 60.0), ("s", 1.0)):
        if value.endswith(suffix):
            value, scale = value[: -len(suffix)].strip(), factor
            break
    try:
        seconds = float(value) * scale
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise StoreError(
            f"store URL parameter {name}={text!r} is not a duration.",
            f"write seconds, e.g. {name}=30, or with a unit: 500ms, 30s, 2min.",
        )
    return seconds
