"""The SQL the SQLite and PostgreSQL stores share, and the :class:`Dialect` that tells them apart.

Both stores keep the same tables with the same columns (members, tasks,
bookings, busy time, outbox, quarantine, meta, pull counts, and the columns of
opportunities their queries filter and sort on), times as integer microseconds
since the epoch, and values as :mod:`spe_core.codec` JSON text. So one text per
statement serves both, written with ``?`` for a parameter and rendered once, when
a store's transaction class is defined, for its dialect:

- the parameter placeholder (``?`` for ``sqlite3``, ``%s`` for ``psycopg``);
- the row lock a read takes when the transaction will write what it read
  (``FOR UPDATE`` on PostgreSQL; nothing on SQLite, whose ``BEGIN IMMEDIATE``
  already serialises writers), and the lock a read of work to claim takes
  (``FOR UPDATE SKIP LOCKED``, so concurrent claimers skip each other's rows);
- how a calendar day is stored (ISO text on SQLite, ``DATE`` on PostgreSQL).

Upserts (``ON CONFLICT ... DO UPDATE SET col = excluded.col``), ``RETURNING`` and
the JSON text columns are written the same way on both, so the dialect has no
switch for them.

:class:`SharedTransaction` holds the methods whose SQL is the same on both; a
store's transaction class inherits them and keeps what truly differs (SQLite's
state columns and cached members; PostgreSQL's claims, pipelined writes, event
numbering). The statements run through the store's own ``_x``/``_one``/``_all``/
``_many``, so each store's driver errors are translated at its one place
(``translate`` in its module); nothing here touches a driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from spe_core import codec, model
from spe_core.model import Booking, Busy, Member, Opportunity, OpportunityStatus, Task
from spe_core.operations import Operation
from spe_core.outbox import OutboxItem, Quarantined

__all__ = ["POSTGRES", "SQLITE", "Dialect", "SharedTransaction", "from_micros", "micros"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LONGEST = timedelta(hours=12)  # the longest meeting a request may ask for


def micros(value: datetime | None) -> int | None:
    """``value`` as integer microseconds since the epoch (None stays None)."""
    if value is None:
        return None
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """The UTC datetime ``value`` microseconds after the epoch."""
    return _EPOCH + timedelta(microseconds=value)


def _as_date(day: date) -> date:
    return day


@attrs.frozen
class Dialect:
    """What differs between the SQL of two stores."""

    #: The parameter placeholder the driver takes.
    param: str
    #: Appended to a read of rows the transaction will write ("" when writers are
    #: serialised anyway).
    lock: str
    #: Appended to a read of rows to claim: concurrent claimers skip each other's.
    skip_locked: str
    #: A calendar day as its column stores it.
    day: Callable[[date], object]

    def render(self, text: str, opportunity: str) -> str:
        """``text`` (``?`` parameters, ``{lock}``, ``{skip_locked}`` and ``{opp}``, the
        columns an opportunity is read from) in this dialect."""
        return text.replace("?", self.param).format(
            lock=self.lock, skip_locked=self.skip_locked, opp=opportunity
        )


SQLITE = Dialect(param="?", lock="", skip_locked="", day=date.isoformat)
POSTGRES = Dialect(
    param="%s", lock=" FOR UPDATE", skip_locked=" FOR UPDATE SKIP LOCKED", day=_as_date
)


class SharedTransaction:
    """The transaction methods whose SQL both stores share.

    A subclass names its dialect and the columns it reads an opportunity from
    (``class T(SharedTransaction, dialect=SQLITE, opportunity="data")``); every
    ``_sql_*`` statement is rendered for it then, once. It provides the
    statement runners and the opportunity decoding (see the declarations under
    ``TYPE_CHECKING``), and overrides any method it does differently.
    """

    _dialect: ClassVar[Dialect]

    if TYPE_CHECKING:

        def _x(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
            """Run one statement; returns its cursor (driver errors translated)."""

        def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None: ...

        def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...

        def _many(self, sql: str, rows: list[tuple[Any, ...]]) -> None: ...

        def _read_opportunity(self, row: tuple[Any, ...]) -> Opportunity:
            """An opportunity from a row of the ``{opp}`` columns."""

        def _stream(self, sql: str, args: tuple[Any, ...]) -> Iterator[Opportunity]:
            """The opportunities the rows of ``sql`` hold (locked, where the store locks)."""

    def __init_subclass__(cls, *, dialect: Dialect, opportunity: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._dialect = dialect
        for name, text in vars(SharedTransaction).items():
            if name.startswith("_sql_"):
                setattr(cls, name, dialect.render(text, opportunity))

    # members ----------------------------------------------------------------------
    _sql_put_member: ClassVar[str] = (
        "INSERT INTO members (id, data) VALUES (?, ?) "
        "ON CONFLICT (id) DO UPDATE SET data = excluded.data"
    )
    _sql_members: ClassVar[str] = "SELECT data FROM members ORDER BY id"

    def put_member(self, member: Member) -> None:
        self._x(self._sql_put_member, (member.id, codec.dumps(member)))

    def members(self) -> list[Member]:
        return [codec.loads(r[0]) for r in self._all(self._sql_members)]

    # opportunities ----------------------------------------------------------------
    _sql_count: ClassVar[str] = "SELECT COUNT(*) FROM opportunities WHERE status = ?"
    _sql_oldest: ClassVar[str] = (
        "SELECT {opp} FROM opportunities WHERE status = ? ORDER BY queued_at, id LIMIT 1"
    )
    _sql_held_by: ClassVar[str] = (
        "SELECT COUNT(*) FROM opportunities WHERE owner_id = ? AND status = 'released'"
    )
    _sql_lease_expired: ClassVar[str] = (
        "SELECT {opp} FROM opportunities WHERE status = 'released' "
        "AND lease_expires_at IS NOT NULL AND lease_expires_at <= ? "
        "ORDER BY lease_expires_at, id{skip_locked}"
    )
    _sql_queued_before: ClassVar[str] = (
        "SELECT {opp} FROM opportunities WHERE status = 'queued' AND queued_at <= ? "
        "ORDER BY queued_at, id{skip_locked}"
    )
    _sql_expiring: ClassVar[str] = (
        "SELECT {opp} FROM opportunities WHERE expires_at <= ? "
        "AND status IN ('backlog', 'queued') ORDER BY expires_at, id{skip_locked}"
    )
    #: Every opportunity by id, a page after the id given (a store's ``opportunities()``).
    _sql_page: ClassVar[str] = (
        "SELECT id, {opp} FROM opportunities WHERE id > ? ORDER BY id LIMIT 1000"
    )
    _sql_page_in: ClassVar[str] = (
        "SELECT id, {opp} FROM opportunities WHERE id > ? AND status = ? ORDER BY id LIMIT 1000"
    )

    def count(self, status: OpportunityStatus) -> int:
        row = self._one(self._sql_count, (status.value,))
        return int(row[0]) if row else 0

    def oldest(self, status: OpportunityStatus) -> Opportunity | None:
        row = self._one(self._sql_oldest, (status.value,))
        return None if row is None else self._read_opportunity(row)

    def held_by(self, member_id: str) -> int:
        row = self._one(self._sql_held_by, (member_id,))
        return int(row[0]) if row else 0

    def iter_lease_expired(self, now: datetime) -> Iterator[Opportunity]:
        return self._stream(self._sql_lease_expired, (micros(now),))

    def iter_queued_before(self, cutoff: datetime) -> Iterator[Opportunity]:
        return self._stream(self._sql_queued_before, (micros(cutoff),))

    def iter_expiring(self, now: datetime) -> Iterator[Opportunity]:
        return self._stream(self._sql_expiring, (micros(now),))

    # pull counts per member and day -----------------------------------------------
    _sql_pulls_on: ClassVar[str] = "SELECT count FROM pulls WHERE member_id = ? AND day = ?"
    _sql_add_pulls: ClassVar[str] = (
        "INSERT INTO pulls (member_id, day, count) VALUES (?, ?, ?) "
        "ON CONFLICT (member_id, day) DO UPDATE SET count = pulls.count + excluded.count"
    )

    def pulls_on(self, member_id: str, day: date) -> int:
        row = self._one(self._sql_pulls_on, (member_id, self._dialect.day(day)))
        return 0 if row is None else int(row[0])

    def add_pulls(self, member_id: str, day: date, count: int) -> None:
        self._x(self._sql_add_pulls, (member_id, self._dialect.day(day), count))

    # --- tasks (routing) --------------------------------------------------------------
    _sql_get_task: ClassVar[str] = "SELECT data FROM tasks WHERE id = ?{lock}"
    _sql_put_task: ClassVar[str] = (
        "INSERT INTO tasks (id, status, assignee_id, queue_role, priority, created_at, "
        "accept_by, complete_by, weight, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
        "assignee_id = excluded.assignee_id, queue_role = excluded.queue_role, "
        "priority = excluded.priority, accept_by = excluded.accept_by, "
        "complete_by = excluded.complete_by, weight = excluded.weight, data = excluded.data"
    )
    _sql_task_loads: ClassVar[str] = (
        "SELECT assignee_id, COUNT(*), SUM(weight) FROM tasks WHERE status IN "
        "('assigned', 'accepted') GROUP BY assignee_id"
    )
    _sql_open_tasks: ClassVar[str] = (
        "SELECT data FROM tasks WHERE assignee_id = ? AND status IN "
        "('assigned', 'accepted') ORDER BY id"
    )
    _sql_queued_tasks: ClassVar[str] = (
        "SELECT data FROM tasks WHERE status = 'unassigned' AND queue_role = ? "
        "ORDER BY priority, created_at, id{skip_locked}"
    )
    _sql_overdue_tasks: ClassVar[str] = (
        "SELECT data FROM tasks WHERE (status = 'assigned' AND accept_by <= ?) OR "
        "(status IN ('assigned', 'accepted') AND complete_by <= ?) ORDER BY id{skip_locked}"
    )

    def get_task(self, task_id: str) -> Task | None:
        row = self._one(self._sql_get_task, (task_id,))
        return None if row is None else codec.loads(row[0])

    def put_task(self, task: Task) -> None:
        model.check_stamped(task)
        t = task
        self._x(
            self._sql_put_task,
            (
                t.id,
                t.status.value,
                t.assignee_id if t.is_open else None,
                t.queue_role.value if t.queue_role else None,
                t.priority,
                micros(t.created_at),
                micros(t.accept_by),
                micros(t.complete_by),
                t.weight,
                codec.dumps(t),
            ),
        )

    def open_task_loads(self) -> dict[str, tuple[int, float]]:
        rows = self._all(self._sql_task_loads)
        return {str(r[0]): (int(r[1]), float(r[2])) for r in rows}

    def iter_open_tasks(self, member_id: str) -> Iterator[Task]:
        for (data,) in self._all(self._sql_open_tasks, (member_id,)):
            yield codec.loads(data)

    def iter_queued_tasks(self, role: str) -> Iterator[Task]:
        for (data,) in self._all(self._sql_queued_tasks, (role,)):
            yield codec.loads(data)

    def iter_overdue_tasks(self, now: datetime) -> Iterator[Task]:
        at = micros(now)
        for (data,) in self._all(self._sql_overdue_tasks, (at, at)):
            yield codec.loads(data)

    # --- calendar (bookings and busy time) --------------------------------------------
    _sql_get_booking: ClassVar[str] = "SELECT data FROM bookings WHERE id = ?{lock}"
    _sql_put_booking: ClassVar[str] = (
        "INSERT INTO bookings (id, member_id, status, start, finish, data) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
        "member_id = excluded.member_id, status = excluded.status, "
        "start = excluded.start, finish = excluded.finish, data = excluded.data"
    )
    # meetings last at most 12 hours, so the start bound keeps the index range tight
    _sql_bookings: ClassVar[str] = (
        "SELECT data FROM bookings WHERE status = 'booked' AND start >= ? "
        "AND start < ? AND finish > ? ORDER BY start, id"
    )
    _sql_member_bookings: ClassVar[str] = (
        "SELECT data FROM bookings WHERE status = 'booked' AND member_id = ? "
        "AND start >= ? AND start < ? AND finish > ? ORDER BY start, id"
    )
    _sql_clear_busy: ClassVar[str] = (
        "DELETE FROM busy WHERE member_id = ? AND start >= ? AND start < ?"
    )
    _sql_put_busy: ClassVar[str] = (
        "INSERT INTO busy (member_id, id, start, finish, data) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (member_id, id) DO UPDATE SET start = excluded.start, "
        "finish = excluded.finish, data = excluded.data"
    )
    _sql_delete_busy: ClassVar[str] = "DELETE FROM busy WHERE member_id = ? AND id = ?"
    _sql_busy: ClassVar[str] = (
        "SELECT data FROM busy WHERE member_id = ? AND start < ? AND finish > ? ORDER BY start, id"
    )

    def get_booking(self, booking_id: str) -> Booking | None:
        row = self._one(self._sql_get_booking, (booking_id,))
        return None if row is None else codec.loads(row[0])

    def put_booking(self, booking: Booking) -> None:
        b = booking
        self._x(
            self._sql_put_booking,
            (b.id, b.member_id, b.status.value, micros(b.start), micros(b.end), codec.dumps(b)),
        )

    def iter_bookings(
        self, member_id: str | None, start: datetime, end: datetime
    ) -> Iterator[Booking]:
        lo, hi = micros(start - _LONGEST), micros(end)
        if member_id is None:
            rows = self._all(self._sql_bookings, (lo, hi, micros(start)))
        else:
            rows = self._all(self._sql_member_bookings, (member_id, lo, hi, micros(start)))
        for (data,) in rows:
            yield codec.loads(data)

    def replace_busy(
        self, member_id: str, start: datetime, end: datetime, busy: list[Busy]
    ) -> None:
        self._x(self._sql_clear_busy, (member_id, micros(start), micros(end)))
        if busy:
            self._many(
                self._sql_put_busy,
                [(b.member_id, b.id, micros(b.start), micros(b.end), codec.dumps(b)) for b in busy],
            )

    def delete_busy(self, member_id: str, busy_id: str) -> None:
        self._x(self._sql_delete_busy, (member_id, busy_id))

    def iter_busy(self, member_id: str, start: datetime, end: datetime) -> Iterator[Busy]:
        for (data,) in self._all(self._sql_busy, (member_id, micros(end), micros(start))):
            yield codec.loads(data)

    # --- sync (outbox and quarantine) -------------------------------------------------
    _sql_outbox_get: ClassVar[str] = (
        "SELECT data FROM outbox WHERE adapter = ? AND kind = ? AND key = ?"
    )
    _sql_outbox_put: ClassVar[str] = (
        "INSERT INTO outbox (adapter, kind, key, seq, status, next_attempt_at, data) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (adapter, kind, key) DO UPDATE SET "
        "seq = excluded.seq, status = excluded.status, "
        "next_attempt_at = excluded.next_attempt_at, data = excluded.data"
    )
    _sql_outbox_delete: ClassVar[str] = (
        "DELETE FROM outbox WHERE adapter = ? AND kind = ? AND key = ?"
    )
    _sql_outbox_due: ClassVar[str] = (
        "SELECT data FROM outbox WHERE adapter = ? AND status = 'pending' AND "
        "(next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY seq, kind, key LIMIT ?"
    )
    _sql_outbox_items: ClassVar[str] = (
        "SELECT data FROM outbox WHERE adapter = ? ORDER BY seq, kind, key"
    )
    _sql_outbox_items_in: ClassVar[str] = (
        "SELECT data FROM outbox WHERE adapter = ? AND status = ? ORDER BY seq, kind, key"
    )
    _sql_quarantine_put: ClassVar[str] = (
        "INSERT INTO quarantine (adapter, direction, stream, key, data) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (adapter, direction, stream, key) "
        "DO UPDATE SET data = excluded.data"
    )
    _sql_quarantined: ClassVar[str] = (
        "SELECT data FROM quarantine WHERE adapter = ? ORDER BY direction, stream, key"
    )

    def outbox_get(self, adapter: str, kind: str, key: str) -> OutboxItem | None:
        row = self._one(self._sql_outbox_get, (adapter, kind, key))
        return None if row is None else codec.loads(row[0])

    def outbox_put(self, item: OutboxItem) -> None:
        self._x(
            self._sql_outbox_put,
            (
                item.adapter,
                item.kind.value,
                item.key,
                item.seq,
                item.status.value,
                micros(item.next_attempt_at),
                codec.dumps(item),
            ),
        )

    def outbox_delete(self, adapter: str, kind: str, key: str) -> None:
        self._x(self._sql_outbox_delete, (adapter, kind, key))

    def outbox_due(self, adapter: str, now: datetime, limit: int) -> list[OutboxItem]:
        rows = self._all(self._sql_outbox_due, (adapter, micros(now), limit))
        return [codec.loads(r[0]) for r in rows]

    def outbox_items(self, adapter: str, status: str | None = None) -> list[OutboxItem]:
        if status is None:
            rows = self._all(self._sql_outbox_items, (adapter,))
        else:
            rows = self._all(self._sql_outbox_items_in, (adapter, str(status)))
        return [codec.loads(r[0]) for r in rows]

    def quarantine_put(self, record: Quarantined) -> None:
        self._x(
            self._sql_quarantine_put,
            (record.adapter, record.direction, record.stream, record.key, codec.dumps(record)),
        )

    def quarantined(self, adapter: str) -> list[Quarantined]:
        return [codec.loads(r[0]) for r in self._all(self._sql_quarantined, (adapter,))]

    # metadata -------------------------------------------------------------------------
    # operations (spe_core.operations) -----------------------------------------------
    _sql_get_operation: ClassVar[str] = (
        "SELECT kind, request, result, at FROM operations WHERE id = ?"
    )
    _sql_put_operation: ClassVar[str] = (
        "INSERT INTO operations (id, kind, request, result, at) VALUES (?, ?, ?, ?, ?)"
    )
    _sql_forget_operations: ClassVar[str] = "DELETE FROM operations WHERE at < ?"

    def get_operation(self, operation_id: str) -> Operation | None:
        row = self._one(self._sql_get_operation, (operation_id,))
        if row is None:
            return None
        kind, request, result, at = row
        return Operation(operation_id, str(kind), str(request), str(result), from_micros(int(at)))

    def put_operation(self, operation: Operation) -> None:
        self._x(
            self._sql_put_operation,
            (
                operation.id,
                operation.kind,
                operation.request,
                operation.result,
                micros(operation.at),
            ),
        )

    def forget_operations(self, before: datetime) -> int:
        return int(self._x(self._sql_forget_operations, (micros(before),)).rowcount)

    _sql_get_meta: ClassVar[str] = "SELECT value FROM meta WHERE key = ?"
    _sql_set_meta: ClassVar[str] = (
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )

    def get_meta(self, key: str) -> str | None:
        row = self._one(self._sql_get_meta, (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._x(self._sql_set_meta, (key, value))


def opportunity_pages(
    read: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]],
    statements: type[SharedTransaction],
    decode: Callable[[tuple[Any, ...]], Opportunity],
    status: OpportunityStatus | None,
) -> Iterator[Opportunity]:
    """Every opportunity (or those in ``status``), by id, read in pages with ``read``
    (a store's read outside a transaction) and the statements of a store's
    transaction class; ``decode`` takes a row's opportunity columns."""
    last = ""
    while True:
        if status is None:
            rows = read(statements._sql_page, (last,))
        else:
            rows = read(statements._sql_page_in, (last, status.value))
        if not rows:
            return
        for row in rows:
            yield decode(row[1:])
        last = str(rows[-1][0])
