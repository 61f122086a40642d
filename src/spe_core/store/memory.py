"""The in-memory store: the reference model every other store is tested against.

State lives in dicts; the backlog and the queue are binary heaps of
``(rank, id)`` with lazy deletion, so a pull costs O(log n). One lock
serialises transactions (threads may share a store); a transaction that
raises is undone from its undo log, so a failed operation leaves nothing
behind.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import date, datetime
from types import TracebackType
from typing import Any

from spe_core import model
from spe_core.errors import StoreError
from spe_core.events import Event, Recorded
from spe_core.model import (
    Booking,
    Busy,
    Member,
    Opportunity,
    OpportunityStatus,
    Task,
    TaskStatus,
)
from spe_core.operations import Operation
from spe_core.outbox import OutboxItem, OutboxStatus, Quarantined
from spe_core.store.base import RANKED_STATUSES

__all__ = ["MemoryStore"]

_Undo = Callable[[], object]
_RELEASED = OpportunityStatus.RELEASED


class MemoryStore:
    """A store held in this process's memory (``open_store("memory:")``)."""

    url = "memory:"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.members_by_id: dict[str, Member] = {}
        self.opps: dict[str, Opportunity] = {}
        self.ranks: dict[str, bytes] = {}
        self.heaps: dict[OpportunityStatus, list[tuple[bytes, str]]] = {
            s: [] for s in RANKED_STATUSES
        }
        self.counts: dict[OpportunityStatus, int] = dict.fromkeys(OpportunityStatus, 0)
        self.held: dict[str, set[str]] = {}
        self.pulls: dict[tuple[str, date], int] = {}
        self.log: list[Recorded] = []
        self.log_operations: list[str | None] = []  # the operation id of each event
        self.operations: dict[str, Operation] = {}
        self.meta: dict[str, str] = {}
        # --- tasks (routing) ----------------------------------------------------------
        self.tasks: dict[str, Task] = {}
        self.task_holders: dict[str, dict[str, float]] = {}

        # --- calendar (bookings and busy time) ----------------------------------------
        self.bookings: dict[str, Booking] = {}
        self.busy: dict[tuple[str, str], Busy] = {}
        self.outbox: dict[tuple[str, str, str], OutboxItem] = {}
        self.quarantine: dict[tuple[str, str, str, str], Quarantined] = {}
        self._tx: _MemoryTransaction | None = None
        self._closed = False

    def transaction(self) -> AbstractContextManager[_MemoryTransaction]:
        """A transaction; nested calls in one thread join the outer one."""
        return _Opening(self)

    def events(self, after: int = 0, limit: int | None = None) -> Iterator[Recorded]:
        """Recorded events after ``after``, in order."""
        with self._lock:
            items = self.log[after:] if limit is None else self.log[after : after + limit]
        yield from items

    def opportunities(self, status: OpportunityStatus | None = None) -> Iterator[Opportunity]:
        """Every opportunity (or those in ``status``), by id."""
        with self._lock:
            items = [self.opps[k] for k in sorted(self.opps)]
        yield from (o for o in items if status is None or o.status is status)

    def close(self) -> None:
        """Forget everything."""
        self._closed = True

    def __repr__(self) -> str:
        return f"MemoryStore({len(self.opps)} opportunities, {len(self.log)} events)"


class _Opening:
    """The context manager :meth:`MemoryStore.transaction` returns (a class rather than
    a generator: every engine operation opens one)."""

    __slots__ = ("_joined", "_store", "_tx")

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._tx: _MemoryTransaction | None = None
        self._joined = False

    def __enter__(self) -> _MemoryTransaction:
        s = self._store
        s._lock.acquire()
        try:
            if s._closed:
                raise StoreError("this memory store is closed.", "open a new store.")
            if s._tx is not None:
                self._joined = True
                return s._tx
            tx = self._tx = s._tx = _MemoryTransaction(s)
            return tx
        except BaseException:
            s._lock.release()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        s = self._store
        try:
            if not self._joined:
                try:
                    if kind is not None and self._tx is not None:
                        self._tx.rollback()
                finally:
                    s._tx = None
        finally:
            s._lock.release()


class _MemoryTransaction:
    """A transaction on a :class:`MemoryStore` (see :class:`~spe_core.store.base.Transaction`)."""

    def __init__(self, store: MemoryStore) -> None:
        self.s = store
        self.undo: list[_Undo] = []

    def rollback(self) -> None:
        for action in reversed(self.undo):
            action()
        self.undo.clear()
        # heap entries popped during the failed transaction may be gone: re-push
        # every ranked opportunity whose entry is missing (duplicates are harmless).
        for status, heap in self.s.heaps.items():
            present = {oid for _, oid in heap}
            for oid, opp in self.s.opps.items():
                if opp.status is status and oid not in present:
                    heapq.heappush(heap, (self.s.ranks[oid], oid))

    def _set(self, mapping: dict[Any, Any], key: Any, value: Any) -> None:
        missing = key not in mapping
        old = mapping.get(key)
        mapping[key] = value

        def undo() -> None:
            if missing:
                mapping.pop(key, None)
            else:
                mapping[key] = old

        self.undo.append(undo)

    def _delete(self, mapping: dict[Any, Any], key: Any) -> None:
        if key in mapping:
            old = mapping.pop(key)
            self.undo.append(lambda: mapping.__setitem__(key, old))

    def expect_pull(self) -> None:
        """The engine's hook before a pull (nothing to read ahead in memory; defined so
        that looking the hook up costs no failed attribute lookup)."""

    # members ----------------------------------------------------------------------
    def get_member(self, member_id: str) -> Member | None:
        return self.s.members_by_id.get(member_id)

    def put_member(self, member: Member) -> None:
        self._set(self.s.members_by_id, member.id, member)

    def members(self) -> list[Member]:
        return [self.s.members_by_id[k] for k in sorted(self.s.members_by_id)]

    # opportunities ----------------------------------------------------------------
    def get_opportunity(self, opportunity_id: str) -> Opportunity | None:
        return self.s.opps.get(opportunity_id)

    def put_opportunity(self, opportunity: Opportunity, rank: bytes | None = None) -> None:
        if opportunity.queued_at is None:
            model.check_stamped(opportunity)
        s = self.s
        oid = opportunity.id
        opps, ranks, counts, held = s.opps, s.ranks, s.counts, s.held
        old = opps.get(oid)
        old_rank = ranks.get(oid)
        if rank is None:
            if old is None:
                raise StoreError(
                    f"opportunity {oid!r} is new, so it needs a rank.",
                    "pass rank=spe_core.queue.rank_key(opportunity, policy.order).",
                )
            rank = old_rank
        assert rank is not None
        new_status = opportunity.status
        old_status = None if old is None else old.status
        old_owner = old.owner_id if old_status is _RELEASED else None  # type: ignore[union-attr]
        new_owner = opportunity.owner_id if new_status is _RELEASED else None
        opps[oid] = opportunity
        if old_rank != rank:
            ranks[oid] = rank
        if old_status is not new_status:
            if old_status is not None:
                counts[old_status] -= 1
            counts[new_status] += 1
        if new_status in RANKED_STATUSES and (old_status is not new_status or old_rank != rank):
            heapq.heappush(s.heaps[new_status], (rank, oid))
        moved = old_owner != new_owner
        if moved:
            if old_owner is not None:
                held.setdefault(old_owner, set()).discard(oid)
            if new_owner is not None:
                held.setdefault(new_owner, set()).add(oid)

        def undo() -> None:
            if old is None:
                opps.pop(oid, None)
                ranks.pop(oid, None)
            else:
                opps[oid] = old
                if old_rank != rank and old_rank is not None:
                    ranks[oid] = old_rank
            if old_status is not new_status:
                if old_status is not None:
                    counts[old_status] += 1
                counts[new_status] -= 1
            if moved:
                if new_owner is not None:
                    held[new_owner].discard(oid)
                if old_owner is not None:
                    held[old_owner].add(oid)

        self.undo.append(undo)

    def iter_ranked(self, status: OpportunityStatus) -> Iterator[Opportunity]:
        if status not in RANKED_STATUSES:
            raise StoreError(
                f"{status.value} opportunities are not ranked.", "iterate the backlog or the queue."
            )
        s = self.s
        heap = s.heaps[status]
        popped: list[tuple[bytes, str]] = []
        seen: set[str] = set()
        try:
            while heap:
                entry = heapq.heappop(heap)
                rank, oid = entry
                opp = s.opps.get(oid)
                if opp is None or opp.status is not status or s.ranks[oid] != rank or (oid in seen):
                    continue  # a stale entry: drop it for good
                seen.add(oid)
                popped.append(entry)
                yield opp
        finally:
            for rank, oid in popped:
                opp = s.opps.get(oid)
                if opp is not None and opp.status is status and s.ranks[oid] == rank:
                    heapq.heappush(heap, (rank, oid))

    def count(self, status: OpportunityStatus) -> int:
        return self.s.counts[status]

    def oldest(self, status: OpportunityStatus) -> Opportunity | None:
        items = [o for o in self.s.opps.values() if o.status is status]
        return min(items, key=lambda o: (o.queued_at, o.id), default=None)

    def held_by(self, member_id: str) -> int:
        return len(self.s.held.get(member_id, ()))

    def iter_lease_expired(self, now: datetime) -> Iterator[Opportunity]:
        found = [
            self.s.opps[oid]
            for held in self.s.held.values()
            for oid in held
            if (lease := self.s.opps[oid].lease_expires_at) is not None and lease <= now
        ]
        found.sort(key=lambda o: (o.lease_expires_at, o.id))
        yield from found

    def iter_queued_before(self, cutoff: datetime) -> Iterator[Opportunity]:
        found = [
            o
            for o in self.s.opps.values()
            if o.status is OpportunityStatus.QUEUED
            and o.queued_at is not None
            and o.queued_at <= cutoff
        ]
        found.sort(key=lambda o: (o.queued_at, o.id))
        yield from found

    def iter_expiring(self, now: datetime) -> Iterator[Opportunity]:
        found = [
            o
            for o in self.s.opps.values()
            if o.status in RANKED_STATUSES and o.expires_at is not None and o.expires_at <= now
        ]
        found.sort(key=lambda o: (o.expires_at, o.id))
        yield from found

    def pulls_on(self, member_id: str, day: date) -> int:
        return self.s.pulls.get((member_id, day), 0)

    def add_pulls(self, member_id: str, day: date, count: int) -> None:
        key = (member_id, day)
        self._set(self.s.pulls, key, self.s.pulls.get(key, 0) + count)

    # --- tasks (routing) --------------------------------------------------------------
    def get_task(self, task_id: str) -> Task | None:
        return self.s.tasks.get(task_id)

    def put_task(self, task: Task) -> None:
        model.check_stamped(task)
        old = self.s.tasks.get(task.id)
        self._set(self.s.tasks, task.id, task)
        before = old.assignee_id if old is not None and old.is_open else None
        after = task.assignee_id if task.is_open else None
        if before is not None:
            self._delete(self.s.task_holders.setdefault(before, {}), task.id)
        if after is not None:
            self._set(self.s.task_holders.setdefault(after, {}), task.id, task.weight)

    def open_task_loads(self) -> dict[str, tuple[int, float]]:
        return {
            member: (len(held), sum(held.values()))
            for member, held in self.s.task_holders.items()
            if held
        }

    def iter_open_tasks(self, member_id: str) -> Iterator[Task]:
        held = self.s.task_holders.get(member_id, {})
        yield from (self.s.tasks[tid] for tid in sorted(held))

    def iter_queued_tasks(self, role: str) -> Iterator[Task]:
        found = [
            t
            for t in self.s.tasks.values()
            if t.status is TaskStatus.UNASSIGNED
            and t.queue_role is not None
            and t.queue_role.value == role
        ]
        found.sort(key=lambda t: (t.priority, t.created_at, t.id))
        yield from found

    def iter_overdue_tasks(self, now: datetime) -> Iterator[Task]:
        found = [
            t
            for t in self.s.tasks.values()
            if t.is_open
            and (
                (t.status is TaskStatus.ASSIGNED and t.accept_by is not None and t.accept_by <= now)
                or (t.complete_by is not None and t.complete_by <= now)
            )
        ]
        found.sort(key=lambda t: t.id)
        yield from found

    # --- calendar (bookings and busy time) --------------------------------------------
    def get_booking(self, booking_id: str) -> Booking | None:
        return self.s.bookings.get(booking_id)

    def put_booking(self, booking: Booking) -> None:
        self._set(self.s.bookings, booking.id, booking)

    def iter_bookings(
        self, member_id: str | None, start: datetime, end: datetime
    ) -> Iterator[Booking]:
        found = [
            b
            for b in self.s.bookings.values()
            if b.active
            and (member_id is None or b.member_id == member_id)
            and b.start < end
            and b.end > start
        ]
        found.sort(key=lambda b: (b.start, b.id))
        yield from found

    def replace_busy(
        self, member_id: str, start: datetime, end: datetime, busy: list[Busy]
    ) -> None:
        for key, item in list(self.s.busy.items()):
            if item.member_id == member_id and start <= item.start < end:
                self._delete(self.s.busy, key)
        for item in busy:
            self._set(self.s.busy, (item.member_id, item.id), item)

    def delete_busy(self, member_id: str, busy_id: str) -> None:
        if (member_id, busy_id) in self.s.busy:
            self._delete(self.s.busy, (member_id, busy_id))

    def iter_busy(self, member_id: str, start: datetime, end: datetime) -> Iterator[Busy]:
        found = [
            b
            for b in self.s.busy.values()
            if b.member_id == member_id and b.start < end and b.end > start
        ]
        found.sort(key=lambda b: (b.start, b.id))
        yield from found

    # --- sync (outbox and quarantine) -------------------------------------------------
    def outbox_get(self, adapter: str, kind: str, key: str) -> OutboxItem | None:
        return self.s.outbox.get((adapter, kind, key))

    def outbox_put(self, item: OutboxItem) -> None:
        self._set(self.s.outbox, (item.adapter, item.kind.value, item.key), item)

    def outbox_delete(self, adapter: str, kind: str, key: str) -> None:
        self._delete(self.s.outbox, (adapter, kind, key))

    def outbox_due(self, adapter: str, now: datetime, limit: int) -> list[OutboxItem]:
        due = [
            i
            for i in self.outbox_items(adapter, OutboxStatus.PENDING)
            if i.next_attempt_at is None or i.next_attempt_at <= now
        ]
        return due[:limit]

    def outbox_items(self, adapter: str, status: str | None = None) -> list[OutboxItem]:
        items = [
            i
            for (a, _, _), i in self.s.outbox.items()
            if a == adapter and (status is None or i.status == status)
        ]
        items.sort(key=lambda i: (i.seq, i.kind.value, i.key))
        return items

    def quarantine_put(self, record: Quarantined) -> None:
        key = (record.adapter, record.direction, record.stream, record.key)
        self._set(self.s.quarantine, key, record)

    def quarantined(self, adapter: str) -> list[Quarantined]:
        return [q for k, q in sorted(self.s.quarantine.items()) if k[0] == adapter]

    # events and metadata ------------------------------------------------------------
    def append(self, event: Event, operation: str | None = None) -> Recorded:
        log, ops = self.s.log, self.s.log_operations
        recorded = Recorded(len(log) + 1, event)
        log.append(recorded)
        ops.append(operation)
        self.undo.append(log.pop)
        self.undo.append(ops.pop)
        return recorded

    def events(self, after: int = 0, limit: int | None = None) -> list[Recorded]:
        log = self.s.log
        return log[after:] if limit is None else log[after : after + limit]

    def get_operation(self, operation_id: str) -> Operation | None:
        return self.s.operations.get(operation_id)

    def put_operation(self, operation: Operation) -> None:
        self._set(self.s.operations, operation.id, operation)

    def forget_operations(self, before: datetime) -> int:
        old = [k for k, op in self.s.operations.items() if op.at < before]
        for key in old:
            self._delete(self.s.operations, key)
        return len(old)

    def get_meta(self, key: str) -> str | None:
        return self.s.meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self._set(self.s.meta, key, value)

    def lock(self, name: str) -> None:
        pass  # writers are already serialised by the store lock
