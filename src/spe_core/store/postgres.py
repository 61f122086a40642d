"""The PostgreSQL store: many workers on many hosts (``pip install 'spe-sdk[postgres]'``).

``open_store("postgresql://user@host:5432/db?schema=spe")`` opens a pool of
psycopg 3 connections. Design points:

- **Claims** walk the queue index ``(status, rank)`` in small pages with
  ``FOR UPDATE SKIP LOCKED``: concurrent pullers skip each other's candidates
  instead of waiting. Under READ COMMITTED, PostgreSQL re-checks ``status =
  'queued'`` on the newest row version once the lock is taken, so a row
  another transaction just released is skipped: never released twice.
- **Per-member serialisation**: ``get_member`` locks the member's row
  (``FOR UPDATE``) for the transaction, so two pulls for the same member
  cannot both pass the WIP-limit check; pulls for different members run in
  parallel.
- **Events** get gap-free sequence numbers in commit order from a one-row
  counter that the appending transaction locks until it commits. A reader of
  ``events(after=n)`` therefore never sees ``n + 2`` before ``n + 1`` commits,
  and the sync engine's outbox cursor can never skip an event.
- **Migrations** are versioned in ``spe_schema_migrations`` and applied on
  open under a transaction-level advisory lock, so two processes opening the
  same database at once are safe; re-running is a no-op.
- **LISTEN/NOTIFY**: every transaction that queues an opportunity sends
  ``NOTIFY spe_queue``; :meth:`PostgresStore.wait_for_work` lets an idle puller
  sleep until then.

The ``schema`` query parameter (default ``public``) selects the schema, so
several teams or test runs share one database without colliding.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from spe_core import codec, model
from spe_core.errors import StoreError
from spe_core.events import Event, Recorded
from spe_core.model import Booking, Busy, Member, Opportunity, OpportunityStatus, Task
from spe_core.outbox import OutboxItem, Quarantined
from spe_core.store.base import RANKED_STATUSES

try:
    import psycopg
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "the PostgreSQL store needs psycopg: pip install 'spe-sdk[postgres]'"
    ) from exc

__all__ = ["MIGRATIONS", "PostgresStore"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LONGEST = timedelta(hours=12)  # the longest meeting a request may ask for
_FIRST_PAGE = 4
_PAGE = 64
_LOCK_KEY = 0x5350455F4D494752  # "SPE_MIGR"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

MIGRATIONS: tuple[str, ...] = (
    # 1: the pull queue, the event log, the outbox
    """
    CREATE TABLE members (
        id TEXT COLLATE "C" PRIMARY KEY,
        data TEXT NOT NULL
    );
    CREATE TABLE opportunities (
        id TEXT COLLATE "C" PRIMARY KEY,
        status TEXT NOT NULL,
        rank BYTEA NOT NULL,
        owner_id TEXT COLLATE "C",
        queued_at BIGINT NOT NULL,
        lease_expires_at BIGINT,
        expires_at BIGINT,
        data TEXT NOT NULL
    );
    CREATE INDEX opportunities_ranked ON opportunities (status, rank);
    CREATE INDEX opportunities_owner ON opportunities (owner_id) WHERE status = 'released';
    CREATE INDEX opportunities_lease ON opportunities (lease_expires_at, id)
        WHERE status = 'released' AND lease_expires_at IS NOT NULL;
    CREATE INDEX opportunities_queued_at ON opportunities (queued_at, id)
        WHERE status = 'queued';
    CREATE INDEX opportunities_expires ON opportunities (expires_at, id)
        WHERE expires_at IS NOT NULL;
    CREATE TABLE pulls (
        member_id TEXT COLLATE "C" NOT NULL,
        day DATE NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (member_id, day)
    );
    CREATE TABLE event_seq (
        one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        last BIGINT NOT NULL
    );
    INSERT INTO event_seq (one, last) VALUES (TRUE, 0);
    CREATE TABLE events (
        seq BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE outbox (
        adapter TEXT COLLATE "C" NOT NULL,
        kind TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        status TEXT NOT NULL,
        next_attempt_at BIGINT,
        data TEXT NOT NULL,
        PRIMARY KEY (adapter, kind, key)
    );
    CREATE INDEX outbox_due ON outbox (adapter, status, seq, kind, key);
    CREATE TABLE quarantine (
        adapter TEXT COLLATE "C" NOT NULL,
        direction TEXT COLLATE "C" NOT NULL,
        stream TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (adapter, direction, stream, key)
    );
    CREATE TABLE meta (
        key TEXT COLLATE "C" PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: task routing
    """
    CREATE TABLE tasks (
        id TEXT COLLATE "C" PRIMARY KEY,
        status TEXT NOT NULL,
        assignee_id TEXT COLLATE "C",
        queue_role TEXT,
        priority INTEGER NOT NULL,
        created_at BIGINT NOT NULL,
        accept_by BIGINT,
        complete_by BIGINT,
        weight DOUBLE PRECISION NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX tasks_open ON tasks (assignee_id) WHERE status IN ('assigned', 'accepted');
    CREATE INDEX tasks_queued ON tasks (queue_role, priority, created_at, id)
        WHERE status = 'unassigned';
    """,
    # 3: calendar
    """
    CREATE TABLE bookings (
        id TEXT COLLATE "C" PRIMARY KEY,
        member_id TEXT COLLATE "C" NOT NULL,
        status TEXT NOT NULL,
        start BIGINT NOT NULL,
        finish BIGINT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX bookings_active ON bookings (member_id, start) WHERE status = 'booked';
    CREATE INDEX bookings_time ON bookings (start) WHERE status = 'booked';
    CREATE TABLE busy (
        member_id TEXT COLLATE "C" NOT NULL,
        id TEXT COLLATE "C" NOT NULL,
        start BIGINT NOT NULL,
        finish BIGINT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (member_id, id)
    );
    CREATE INDEX busy_time ON busy (member_id, start);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def micros(value: datetime | None) -> int | None:
    """``value`` as integer microseconds since the epoch (None stays None)."""
    if value is None:
        return None
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _split_url(url: str) -> tuple[str, str, dict[str, str]]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", "public")
    pool: dict[str, str] = {k: query.pop(k) for k in ("pool_min", "pool_max") if k in query}
    if not _SCHEMA_NAME.match(schema):
        raise StoreError(
            f"schema {schema!r} in the store URL is not a plain lower-case identifier.",
            "use letters, digits and underscores, starting with a letter, e.g. ?schema=spe.",
        )
    conninfo = urlunsplit(
        (
            parts.scheme.replace("postgres", "postgresql", 1)
            if parts.scheme == "postgres"
            else parts.scheme,
            parts.netloc,
            parts.path,
            urlencode(query),
            parts.fragment,
        )
    )
    return conninfo, schema, pool


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


class PostgresStore:
    """A store in a PostgreSQL schema, shared by any number of processes and hosts."""

    def __init__(
        self, url: str, *, min_size: int = 1, max_size: int = 8, timeout: float = 30.0
    ) -> None:
        self.url = _redact(url)
        conninfo, self.schema, pool = _split_url(url)
        min_size = int(pool.get("pool_min", min_size))
        max_size = int(pool.get("pool_max", max(max_size, min_size)))
        schema = self.schema

        def configure(conn: psycopg.Connection[Any]) -> None:
            conn.execute(f'SET search_path TO "{schema}"'.encode())
            conn.commit()

        try:
            # fail fast (and say why) when the server cannot be reached at all
            psycopg.connect(conninfo, connect_timeout=max(1, int(min(timeout, 10)))).close()
            self.pool = ConnectionPool(
                conninfo,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                configure=configure,
                open=False,
            )
            self.pool.open(wait=True, timeout=timeout)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if parts_password := urlsplit(url).password:
                reason = reason.replace(parts_password, "***")
            raise StoreError(
                f"cannot connect to PostgreSQL at {self.url}: {reason}.",
                "check the host, port, database and credentials in the store URL, and that "
                "the server accepts connections.",
            ) from None
        self._local = threading.local()
        self._migrate()

    def _migrate(self) -> None:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'.encode())
            conn.execute(f'SET LOCAL search_path TO "{self.schema}"'.encode())
            conn.execute(
                "CREATE TABLE IF NOT EXISTS spe_schema_migrations ("
                "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            row = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM spe_schema_migrations"
            ).fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"PostgreSQL schema {self.schema!r} has version {version}, newer than this "
                    f"spe-sdk understands ({SCHEMA_VERSION}).",
                    "upgrade spe-sdk on this host to the version the others run.",
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        conn.execute(statement.encode())
                conn.execute(
                    "INSERT INTO spe_schema_migrations (version) VALUES (%s)", (number + 1,)
                )

    @contextmanager
    def transaction(self) -> Iterator[_PgTransaction]:
        """A READ COMMITTED transaction on a pooled connection; nested calls join it."""
        current: _PgTransaction | None = getattr(self._local, "tx", None)
        if current is not None:
            yield current
            return
        with self.pool.connection() as conn, conn.transaction():
            tx = _PgTransaction(conn)
            self._local.tx = tx
            try:
                yield tx
                if tx.queued:
                    conn.execute("NOTIFY spe_queue")
            finally:
                self._local.tx = None

    def events(self, after: int = 0, limit: int | None = None) -> Iterator[Recorded]:
        """Committed events after ``after``, in order, streamed in pages."""
        remaining = limit
        while remaining is None or remaining > 0:
            page = 1000 if remaining is None else min(1000, remaining)
            with self.pool.connection() as conn:
                rows = conn.execute(
                    "SELECT seq, data FROM events WHERE seq > %s ORDER BY seq LIMIT %s",
                    (after, page),
                ).fetchall()
            if not rows:
                return
            for seq, data in rows:
                yield Recorded(int(seq), codec.loads(data))
            after = int(rows[-1][0])
            if remaining is not None:
                remaining -= len(rows)

    def opportunities(self, status: OpportunityStatus | None = None) -> Iterator[Opportunity]:
        """Every opportunity (or those in ``status``), by id, in pages."""
        last = ""
        while True:
            with self.pool.connection() as conn:
                if status is None:
                    rows = conn.execute(
                        "SELECT id, data FROM opportunities WHERE id > %s ORDER BY id LIMIT 1000",
                        (last,),
                    ).fetchall()
                else:
                    rows = conn.execute(
                        "SELECT id, data FROM opportunities WHERE id > %s AND status = %s "
                        "ORDER BY id LIMIT 1000",
                        (last, status.value),
                    ).fetchall()
            if not rows:
                return
            for _, data in rows:
                yield codec.loads(data)
            last = rows[-1][0]

    def wait_for_work(self, timeout: float) -> bool:
        """Block until an opportunity is queued (NOTIFY) or ``timeout`` seconds pass."""
        with self.pool.connection() as conn:
            conn.autocommit = True
            try:
                conn.execute("LISTEN spe_queue")
                for _ in conn.notifies(timeout=timeout, stop_after=1):
                    return True
                return False
            finally:
                conn.execute("UNLISTEN spe_queue")
                conn.autocommit = False

    def drop(self) -> None:
        """Drop this store's schema and everything in it (tests and teardown only)."""
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'.encode())

    def close(self) -> None:
        """Close every pooled connection."""
        self.pool.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r}, schema={self.schema!r})"


class _PgTransaction:
    """A transaction on a :class:`PostgresStore`."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.queued = False

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.conn.execute(sql.encode(), args).fetchone()
        return row

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql.encode(), args).fetchall()

    # members ----------------------------------------------------------------------
    def get_member(self, member_id: str) -> Member | None:
        row = self._one("SELECT data FROM members WHERE id = %s FOR UPDATE", (member_id,))
        return None if row is None else codec.loads(row[0])

    def put_member(self, member: Member) -> None:
        self.conn.execute(
            "INSERT INTO members (id, data) VALUES (%s, %s) "
            "ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            (member.id, codec.dumps(member)),
        )

    def members(self) -> list[Member]:
        return [codec.loads(r[0]) for r in self._all("SELECT data FROM members ORDER BY id")]

    # opportunities ----------------------------------------------------------------
    def get_opportunity(self, opportunity_id: str) -> Opportunity | None:
        row = self._one(
            "SELECT data FROM opportunities WHERE id = %s FOR UPDATE", (opportunity_id,)
        )
        return None if row is None else codec.loads(row[0])

    def put_opportunity(self, opportunity: Opportunity, rank: bytes | None = None) -> None:
        model.check_stamped(opportunity)
        o = opportunity
        owner = o.owner_id if o.status is OpportunityStatus.RELEASED else None
        values = (
            o.status.value,
            owner,
            micros(o.queued_at),
            micros(o.lease_expires_at),
            micros(o.expires_at),
            codec.dumps(o),
        )
        if o.status is OpportunityStatus.QUEUED:
            self.queued = True
        if rank is None:
            cursor = self.conn.execute(
                "UPDATE opportunities SET status = %s, owner_id = %s, queued_at = %s, "
                "lease_expires_at = %s, expires_at = %s, data = %s WHERE id = %s",
                (*values, o.id),
            )
            if cursor.rowcount != 1:
                raise StoreError(
                    f"opportunity {o.id!r} is new, so it needs a rank.",
                    "pass rank=spe_core.queue.rank_key(opportunity, policy.order).",
                )
            return
        self.conn.execute(
            "INSERT INTO opportunities (id, rank, status, owner_id, queued_at, "
            "lease_expires_at, expires_at, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET rank = excluded.rank, status = excluded.status, "
            "owner_id = excluded.owner_id, queued_at = excluded.queued_at, "
            "lease_expires_at = excluded.lease_expires_at, expires_at = excluded.expires_at, "
            "data = excluded.data",
            (o.id, rank, *values),
        )

    def iter_ranked(self, status: OpportunityStatus) -> Iterator[Opportunity]:
        if status not in RANKED_STATUSES:
            raise StoreError(
                f"{status.value} opportunities are not ranked.", "iterate the backlog or the queue."
            )
        last = b""
        page = _FIRST_PAGE
        while True:
            rows = self._all(
                "SELECT rank, data FROM opportunities WHERE status = %s AND rank > %s "
                "ORDER BY rank LIMIT %s FOR UPDATE SKIP LOCKED",
                (status.value, last, page),
            )
            for rank, data in rows:
                last = bytes(rank)
                yield codec.loads(data)
            if len(rows) < page:
                return
            page = _PAGE

    def count(self, status: OpportunityStatus) -> int:
        row = self._one("SELECT COUNT(*) FROM opportunities WHERE status = %s", (status.value,))
        return int(row[0]) if row else 0

    def oldest(self, status: OpportunityStatus) -> Opportunity | None:
        row = self._one(
            "SELECT data FROM opportunities WHERE status = %s ORDER BY queued_at, id LIMIT 1",
            (status.value,),
        )
        return None if row is None else codec.loads(row[0])

    def held_by(self, member_id: str) -> int:
        row = self._one(
            "SELECT COUNT(*) FROM opportunities WHERE owner_id = %s AND status = 'released'",
            (member_id,),
        )
        return int(row[0]) if row else 0

    def _stream(self, sql: str, args: tuple[Any, ...]) -> Iterator[Opportunity]:
        for (data,) in self._all(sql, args):
            yield codec.loads(data)

    def iter_lease_expired(self, now: datetime) -> Iterator[Opportunity]:
        return self._stream(
            "SELECT data FROM opportunities WHERE status = 'released' AND lease_expires_at IS "
            "NOT NULL AND lease_expires_at <= %s ORDER BY lease_expires_at, id "
            "FOR UPDATE SKIP LOCKED",
            (micros(now),),
        )

    def iter_queued_before(self, cutoff: datetime) -> Iterator[Opportunity]:
        return self._stream(
            "SELECT data FROM opportunities WHERE status = 'queued' AND queued_at <= %s "
            "ORDER BY queued_at, id FOR UPDATE SKIP LOCKED",
            (micros(cutoff),),
        )

    def iter_expiring(self, now: datetime) -> Iterator[Opportunity]:
        return self._stream(
            "SELECT data FROM opportunities WHERE expires_at <= %s AND status IN "
            "('backlog', 'queued') ORDER BY expires_at, id FOR UPDATE SKIP LOCKED",
            (micros(now),),
        )

    def pulls_on(self, member_id: str, day: date) -> int:
        row = self._one(
            "SELECT count FROM pulls WHERE member_id = %s AND day = %s", (member_id, day)
        )
        return 0 if row is None else int(row[0])

    def add_pulls(self, member_id: str, day: date, count: int) -> None:
        self.conn.execute(
            "INSERT INTO pulls (member_id, day, count) VALUES (%s, %s, %s) "
            "ON CONFLICT (member_id, day) DO UPDATE SET count = pulls.count + excluded.count",
            (member_id, day, count),
        )

    # --- tasks (routing) --------------------------------------------------------------
    def get_task(self, task_id: str) -> Task | None:
        row = self._one("SELECT data FROM tasks WHERE id = %s FOR UPDATE", (task_id,))
        return None if row is None else codec.loads(row[0])

    def put_task(self, task: Task) -> None:
        model.check_stamped(task)
        t = task
        self.conn.execute(
            "INSERT INTO tasks (id, status, assignee_id, queue_role, priority, created_at, "
            "accept_by, complete_by, weight, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "%s) ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
            "assignee_id = excluded.assignee_id, queue_role = excluded.queue_role, "
            "priority = excluded.priority, accept_by = excluded.accept_by, "
            "complete_by = excluded.complete_by, weight = excluded.weight, data = excluded.data",
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
        rows = self._all(
            "SELECT assignee_id, COUNT(*), SUM(weight) FROM tasks WHERE status IN "
            "('assigned', 'accepted') GROUP BY assignee_id"
        )
        return {str(r[0]): (int(r[1]), float(r[2])) for r in rows}

    def iter_open_tasks(self, member_id: str) -> Iterator[Task]:
        rows = self._all(
            "SELECT data FROM tasks WHERE assignee_id = %s AND status IN "
            "('assigned', 'accepted') ORDER BY id",
            (member_id,),
        )
        for (data,) in rows:
            yield codec.loads(data)

    def iter_queued_tasks(self, role: str) -> Iterator[Task]:
        rows = self._all(
            "SELECT data FROM tasks WHERE status = 'unassigned' AND queue_role = %s "
            "ORDER BY priority, created_at, id FOR UPDATE SKIP LOCKED",
            (role,),
        )
        for (data,) in rows:
            yield codec.loads(data)

    def iter_overdue_tasks(self, now: datetime) -> Iterator[Task]:
        at = micros(now)
        rows = self._all(
            "SELECT data FROM tasks WHERE (status = 'assigned' AND accept_by <= %s) OR "
            "(status IN ('assigned', 'accepted') AND complete_by <= %s) ORDER BY id "
            "FOR UPDATE SKIP LOCKED",
            (at, at),
        )
        for (data,) in rows:
            yield codec.loads(data)

    # --- calendar (bookings and busy time) --------------------------------------------
    def get_booking(self, booking_id: str) -> Booking | None:
        row = self._one("SELECT data FROM bookings WHERE id = %s FOR UPDATE", (booking_id,))
        return None if row is None else codec.loads(row[0])

    def put_booking(self, booking: Booking) -> None:
        b = booking
        self.conn.execute(
            "INSERT INTO bookings (id, member_id, status, start, finish, data) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
            "member_id = excluded.member_id, status = excluded.status, "
            "start = excluded.start, finish = excluded.finish, data = excluded.data",
            (b.id, b.member_id, b.status.value, micros(b.start), micros(b.end), codec.dumps(b)),
        )

    def iter_bookings(
        self, member_id: str | None, start: datetime, end: datetime
    ) -> Iterator[Booking]:
        lo, hi = micros(start - _LONGEST), micros(end)
        if member_id is None:
            rows = self._all(
                "SELECT data FROM bookings WHERE status = 'booked' AND start >= %s "
                "AND start < %s AND finish > %s ORDER BY start, id",
                (lo, hi, micros(start)),
            )
        else:
            rows = self._all(
                "SELECT data FROM bookings WHERE status = 'booked' AND member_id = %s "
                "AND start >= %s AND start < %s AND finish > %s ORDER BY start, id",
                (member_id, lo, hi, micros(start)),
            )
        for (data,) in rows:
            yield codec.loads(data)

    def replace_busy(
        self, member_id: str, start: datetime, end: datetime, busy: list[Busy]
    ) -> None:
        self.conn.execute(
            "DELETE FROM busy WHERE member_id = %s AND start >= %s AND start < %s",
            (member_id, micros(start), micros(end)),
        )
        if busy:
            with self.conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO busy (member_id, id, start, finish, data) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (member_id, id) DO UPDATE SET "
                    "start = excluded.start, finish = excluded.finish, data = excluded.data",
                    [
                        (b.member_id, b.id, micros(b.start), micros(b.end), codec.dumps(b))
                        for b in busy
                    ],
                )

    def delete_busy(self, member_id: str, busy_id: str) -> None:
        self.conn.execute("DELETE FROM busy WHERE member_id = %s AND id = %s", (member_id, busy_id))

    def iter_busy(self, member_id: str, start: datetime, end: datetime) -> Iterator[Busy]:
        rows = self._all(
            "SELECT data FROM busy WHERE member_id = %s AND start < %s AND finish > %s "
            "ORDER BY start, id",
            (member_id, micros(end), micros(start)),
        )
        for (data,) in rows:
            yield codec.loads(data)

    # --- sync (outbox and quarantine) -------------------------------------------------
    def outbox_get(self, adapter: str, kind: str, key: str) -> OutboxItem | None:
        row = self._one(
            "SELECT data FROM outbox WHERE adapter = %s AND kind = %s AND key = %s",
            (adapter, kind, key),
        )
        return None if row is None else codec.loads(row[0])

    def outbox_put(self, item: OutboxItem) -> None:
        self.conn.execute(
            "INSERT INTO outbox (adapter, kind, key, seq, status, next_attempt_at, data) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (adapter, kind, key) DO UPDATE "
            "SET seq = excluded.seq, status = excluded.status, "
            "next_attempt_at = excluded.next_attempt_at, data = excluded.data",
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
        self.conn.execute(
            "DELETE FROM outbox WHERE adapter = %s AND kind = %s AND key = %s", (adapter, kind, key)
        )

    def outbox_due(self, adapter: str, now: datetime, limit: int) -> list[OutboxItem]:
        rows = self._all(
            "SELECT data FROM outbox WHERE adapter = %s AND status = 'pending' AND "
            "(next_attempt_at IS NULL OR next_attempt_at <= %s) "
            "ORDER BY seq, kind, key LIMIT %s",
            (adapter, micros(now), limit),
        )
        return [codec.loads(r[0]) for r in rows]

    def outbox_items(self, adapter: str, status: str | None = None) -> list[OutboxItem]:
        if status is None:
            rows = self._all(
                "SELECT data FROM outbox WHERE adapter = %s ORDER BY seq, kind, key", (adapter,)
            )
        else:
            rows = self._all(
                "SELECT data FROM outbox WHERE adapter = %s AND status = %s "
                "ORDER BY seq, kind, key",
                (adapter, str(status)),
            )
        return [codec.loads(r[0]) for r in rows]

    def quarantine_put(self, record: Quarantined) -> None:
        self.conn.execute(
            "INSERT INTO quarantine (adapter, direction, stream, key, data) VALUES "
            "(%s, %s, %s, %s, %s) ON CONFLICT (adapter, direction, stream, key) "
            "DO UPDATE SET data = excluded.data",
            (record.adapter, record.direction, record.stream, record.key, codec.dumps(record)),
        )

    def quarantined(self, adapter: str) -> list[Quarantined]:
        rows = self._all(
            "SELECT data FROM quarantine WHERE adapter = %s ORDER BY direction, stream, key",
            (adapter,),
        )
        return [codec.loads(r[0]) for r in rows]

    # events and metadata ------------------------------------------------------------
    def append(self, event: Event) -> Recorded:
        row = self._one("UPDATE event_seq SET last = last + 1 RETURNING last")
        if row is None:
            raise StoreError(
                "the PostgreSQL store's event counter (table event_seq) has no row.",
                "the schema was changed by hand: restore the row with "
                "INSERT INTO event_seq (last) SELECT coalesce(max(seq), 0) FROM events.",
            )
        seq = int(row[0])
        self.conn.execute(
            "INSERT INTO events (seq, at, kind, data) VALUES (%s, %s, %s, %s)",
            (seq, micros(event.at), event.kind, codec.dumps(event)),
        )
        return Recorded(seq, event)

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) "
            "DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def lock(self, name: str) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (name,))
