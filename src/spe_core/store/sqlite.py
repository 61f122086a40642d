"""The SQLite store: the embedded default, shared by processes on one machine.

The file runs in WAL mode; every transaction starts with ``BEGIN IMMEDIATE``,
which takes SQLite's write lock up front, so two processes pulling at the same
moment are serialised and a claim is atomic across processes. The queue order
lives in one index on ``(status, rank)``: a pull walks that index from the
best rank until the rules find an eligible opportunity.

Times in indexed columns are integer microseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import json
import operator
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, suppress
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from spe_core import codec, model
from spe_core.errors import (
    StoreDamaged,
    StoreError,
    StoreFull,
    StoreGone,
    StoreLocked,
    StoreReadOnly,
    StoreUnavailable,
)
from spe_core.events import Event, Recorded
from spe_core.model import Member, Opportunity, OpportunityStatus, Outcome
from spe_core.queue import _with_state as with_state
from spe_core.store.base import RANKED_STATUSES
from spe_core.store.sql import SQLITE, SharedTransaction, from_micros, micros, opportunity_pages

__all__ = ["DEFAULT_BUSY_TIMEOUT", "SCHEMA_VERSION", "SQLiteStore", "translate"]

_FIRST_PAGE = 4  # a pull usually takes the first candidate: fetch few rows first
_PAGE = 64
_MEMBERS: dict[str, Member] = {}

#: Seconds a writer waits for another connection's write lock by default.
DEFAULT_BUSY_TIMEOUT = 30.0

_DAMAGED_FIX = (
    "stop every process using it and keep a copy of the file, its -wal and -shm files "
    "as they are; run `spe store check` to see what is wrong; restore the last backup "
    "(`spe store backup` makes one), or save what is readable with "
    "`sqlite3 {path} .recover | sqlite3 recovered.db`."
)

# SQLite result codes (https://www.sqlite.org/rescode.html)
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26
_READONLY_DBMOVED = 1032
_IOERR_WRITES = {778, 1034, 1290, 1546}  # IOERR_WRITE, _FSYNC, _DIR_FSYNC, _TRUNCATE

MIGRATIONS: tuple[str, ...] = (
    # 1: the pull queue
    """
    CREATE TABLE members (
        id TEXT PRIMARY KEY,
        data TEXT NOT NULL
    );
    CREATE TABLE opportunities (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        rank BLOB NOT NULL,
        owner_id TEXT,
        queued_at INTEGER NOT NULL,
        lease_expires_at INTEGER,
        expires_at INTEGER,
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
        member_id TEXT NOT NULL,
        day TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (member_id, day)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE outbox (
        adapter TEXT NOT NULL,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        status TEXT NOT NULL,
        next_attempt_at INTEGER,
        data TEXT NOT NULL,
        PRIMARY KEY (adapter, kind, key)
    ) WITHOUT ROWID;
    CREATE INDEX outbox_due ON outbox (adapter, status, seq, kind, key);
    CREATE TABLE quarantine (
        adapter TEXT NOT NULL,
        direction TEXT NOT NULL,
        stream TEXT NOT NULL,
        key TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (adapter, direction, stream, key)
    ) WITHOUT ROWID;
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2: task routing
    """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        assignee_id TEXT,
        queue_role TEXT,
        priority INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        accept_by INTEGER,
        complete_by INTEGER,
        weight REAL NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX tasks_open ON tasks (assignee_id) WHERE status IN ('assigned', 'accepted');
    CREATE INDEX tasks_queued ON tasks (queue_role, priority, created_at, id)
        WHERE status = 'unassigned';
    """,
    # 3: calendar
    """
    CREATE TABLE bookings (
        id TEXT PRIMARY KEY,
        member_id TEXT NOT NULL,
        status TEXT NOT NULL,
        start INTEGER NOT NULL,
        finish INTEGER NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX bookings_active ON bookings (member_id, start) WHERE status = 'booked';
    CREATE INDEX bookings_time ON bookings (start) WHERE status = 'booked';
    CREATE TABLE busy (
        member_id TEXT NOT NULL,
        id TEXT NOT NULL,
        start INTEGER NOT NULL,
        finish INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (member_id, id)
    );
    CREATE INDEX busy_time ON busy (member_id, start);
    """,
    # 4: an opportunity's state in the flow in columns (a transition writes them alone,
    # not the whole value as JSON); owner_id now holds the owner of resolved ones too.
    # The columns of existing rows are filled from their JSON (_fill_state_columns).
    """
    ALTER TABLE opportunities ADD COLUMN released_at INTEGER;
    ALTER TABLE opportunities ADD COLUMN excluded_ids TEXT;
    ALTER TABLE opportunities ADD COLUMN outcome TEXT;
    ALTER TABLE opportunities ADD COLUMN resolved_at INTEGER
    """,
    # 5: operation ids (spe_core.operations): each event names the unit of work that
    # recorded it; calls that carried a caller-supplied id keep their result
    """
    ALTER TABLE events ADD COLUMN op TEXT;
    CREATE TABLE operations (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        request TEXT NOT NULL,
        result TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX operations_at ON operations (at)
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

#: The columns an opportunity is read from: ``data`` (the JSON of the whole value as it
#: was when its description last changed) and its state in the flow, which wins.
_OPP = "data, status, owner_id, released_at, lease_expires_at, excluded_ids, outcome, resolved_at"
#: The fields a transition changes; every other field lives in ``data``.
_STATE = ("status", "owner_id", "released_at", "lease_expires_at", "excluded", "outcome")
_DESCRIPTION = operator.attrgetter(
    *(f.name for f in attrs.fields(Opportunity) if f.name not in (*_STATE, "resolved_at"))
)
#: The state columns, in the order of :func:`_state`.
_STATE_COLUMNS = (
    "status",
    "owner_id",
    "released_at",
    "lease_expires_at",
    "excluded_ids",
    "outcome",
    "resolved_at",
)
_UPDATES: dict[tuple[int, ...], str] = {}  # changed state columns -> the UPDATE writing them
_QUEUED = OpportunityStatus.QUEUED.value
_RECENT_DAYS = 3  # pull counts read with a member: the latest days (today is among them)
#: A member (a row tagged 0: data, held, latest pull counts as JSON) and the first page
#: of queued candidates (rows tagged 1: rank and the :data:`_OPP` columns), in one read.
#
#: Statuses are written into statements as literals, never bound: the opportunities
#: table has partial indexes on a status, and a bound value compared with such a column
#: makes SQLite prepare the statement again each time it runs (the plan may depend on it).
_MEMBER_FOR_PULL = (
    "SELECT 0, data, (SELECT COUNT(*) FROM opportunities WHERE owner_id = ?1 "
    "AND status = 'released'), (SELECT json_group_array(json_array(day, count)) FROM "
    f"(SELECT day, count FROM pulls WHERE member_id = ?1 ORDER BY day DESC LIMIT {_RECENT_DAYS}"
    ")), NULL, NULL, NULL, NULL, NULL, NULL FROM members WHERE id = ?1 UNION ALL "
    f"SELECT * FROM (SELECT 1, rank, {_OPP} FROM opportunities WHERE status = '{_QUEUED}' "
    "ORDER BY rank LIMIT ?2)"
)
#: A page of ranked opportunities in a status, after a rank.
_RANKED = {
    status: f"SELECT rank, {_OPP} FROM opportunities WHERE status = '{status.value}' "
    "AND rank > ? ORDER BY rank LIMIT ?"
    for status in RANKED_STATUSES
}
_STATUSES = {s.value: s for s in OpportunityStatus}
_OUTCOMES = {o.value: o for o in Outcome}
_NO_IDS: frozenset[str] = frozenset()
_DESCRIBED: dict[str, Opportunity] = {}  # data text -> value: keyed by the text, never stale


def _described(text: str) -> Opportunity:
    """The opportunity ``text`` (a ``data`` column) encodes, decoded once per text."""
    opp = _DESCRIBED.get(text)
    if opp is None:
        if len(_DESCRIBED) >= 10_000:
            _DESCRIBED.clear()
        opp = _DESCRIBED[text] = codec.loads(text)
    return opp


def _member(text: str) -> Member:
    """The member ``text`` (a ``data`` column) encodes, decoded once per text."""
    member = _MEMBERS.get(text)  # keyed by the stored text itself, so never stale
    if member is None:
        if len(_MEMBERS) > 10_000:
            _MEMBERS.clear()
        member = _MEMBERS[text] = codec.loads(text)
    return member


def _opportunity(row: tuple[Any, ...]) -> Opportunity:
    """An opportunity from its row (the columns of :data:`_OPP`)."""
    text, status, owner, released, lease, excluded, outcome, resolved = row
    return with_state(
        _described(text),
        _STATUSES[status],
        owner,
        None if released is None else from_micros(released),
        None if lease is None else from_micros(lease),
        _NO_IDS if excluded is None else frozenset(json.loads(excluded)),
        None if outcome is None else _OUTCOMES[outcome],
        None if resolved is None else from_micros(resolved),
    )


def _state(o: Opportunity) -> tuple[object, ...]:
    """The state columns of ``o`` (status, owner, times, exclusions, outcome)."""
    return (
        o.status.value,
        o.owner_id,
        micros(o.released_at),
        micros(o.lease_expires_at),
        json.dumps(sorted(o.excluded)) if o.excluded else None,
        None if o.outcome is None else o.outcome.value,
        micros(o.resolved_at),
    )


def _stored_state(text: str) -> tuple[object, ...]:
    """The state columns of a row written before schema version 4, read from its JSON
    (every release so far wrote these fields in this form; anything else is decoded
    in full by the codec)."""
    try:
        d = json.loads(text)
        when = [
            None if d[k] is None else micros(datetime.fromisoformat(d[k]["$dt"]))
            for k in ("released_at", "lease_expires_at", "resolved_at")
        ]
        excluded = sorted(d["excluded"]["$set"])
        status, owner, outcome = d["status"], d["owner_id"], d["outcome"]
        if (
            status in _STATUSES
            and (outcome is None or outcome in _OUTCOMES)
            and all(type(x) is str for x in excluded)
            and (owner is None or type(owner) is str)
        ):
            return (
                status,
                owner,
                when[0],
                when[1],
                json.dumps(excluded) if excluded else None,
                outcome,
                when[2],
            )
    except (KeyError, TypeError, ValueError, AttributeError):
        pass
    return _state(codec.loads(text))


def _fill_state_columns(conn: sqlite3.Connection) -> None:
    """Migration 4's data step: fill the state columns from each row's JSON."""
    last = ""
    while True:
        rows = conn.execute(
            "SELECT id, data FROM opportunities WHERE id > ? ORDER BY id LIMIT 1000", (last,)
        ).fetchall()
        if not rows:
            return
        conn.executemany(
            "UPDATE opportunities SET status = ?, owner_id = ?, released_at = ?, "
            "lease_expires_at = ?, excluded_ids = ?, outcome = ?, resolved_at = ? WHERE id = ?",
            [(*_stored_state(data), oid) for oid, data in rows],
        )
        last = rows[-1][0]


_MIGRATION_STEPS = {4: _fill_state_columns}


def translate(exc: sqlite3.Error, path: str, during: str, busy_timeout: float) -> StoreError:
    """The :mod:`spe_core.errors` error for a ``sqlite3`` error on the store in ``path``
    (raise it ``from exc``). Every error leaving :class:`SQLiteStore` goes through here."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    reason = str(exc) or type(exc).__name__
    where = f"SQLite store {path!r}"
    if primary in (_BUSY, _LOCKED):
        return StoreLocked(
            f"{where}: another connection held the write lock longer than the busy timeout "
            f"({busy_timeout:g} s) while {during} ({reason}); nothing was committed.",
            "try again; if it keeps happening, find the process holding the file "
            f"(fuser {path}) or raise the wait with ?busy_timeout=SECONDS in the store URL.",
            store=path,
        )
    if code == _READONLY_DBMOVED:
        return StoreGone(
            f"{where} was deleted or moved while open ({reason}); nothing more is written.",
            "put the right file back or restore a backup, then restart the processes using it.",
            store=path,
        )
    if primary == _READONLY:
        return StoreReadOnly(
            f"{where} refused a write while {during}: {reason}.",
            "make the file and its folder writable by this user (SQLite writes the -wal and "
            "-shm files next to it), or check that the disk is not mounted read-only.",
            store=path,
        )
    if primary == _FULL or code in _IOERR_WRITES:
        folder = Path(path).expanduser().resolve().parent
        try:
            free = f"{shutil.disk_usage(folder).free / 1e6:.1f} MB free on its disk"
        except OSError:
            free = "free space unknown"
        return StoreFull(
            f"{where}: a write failed while {during} ({reason}; {free}); nothing was committed.",
            f"free space on the disk holding {folder} (or raise the file size limit, "
            "`ulimit -f`), then try again.",
            store=path,
        )
    if primary in (_CORRUPT, _NOTADB, _IOERR):
        return StoreDamaged(
            f"{where} is damaged or unreadable ({reason}) while {during}.",
            _DAMAGED_FIX.format(path=path),
            store=path,
        )
    if primary == _CANTOPEN:
        return StoreUnavailable(
            f"{where} cannot be opened ({reason}) while {during}.",
            "check that the file and its folder exist and that this user may read and write them.",
            store=path,
        )
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in reason:
        return StoreError(f"{where} is closed ({reason}).", "open a new store.", store=path)
    return StoreError(
        f"{where}: {type(exc).__name__} while {during}: {reason}.",
        "this is probably a bug in spe-sdk or a plugin; report it with the traceback.",
        store=path,
    )


class SQLiteStore:
    """A store in one SQLite file (``open_store("sqlite:///path/to/spe.db")``).

    Safe to share between threads (one writing connection, serialised; reads
    outside transactions use a connection per thread, so they do not wait behind
    writes) and between processes (SQLite's file locks). ``timeout`` is how long
    a writer waits for another process's transaction before giving up with
    :class:`~spe_core.errors.StoreLocked` (``?busy_timeout=`` in the store URL).

    The store refuses rather than guesses: a file that fails SQLite's quick
    integrity check is not opened (:class:`~spe_core.errors.StoreDamaged`), and
    a file deleted or replaced while open is noticed before the next transaction
    (:class:`~spe_core.errors.StoreGone`). Every ``sqlite3`` error is translated
    by :func:`translate` at this boundary.
    """

    def __init__(self, path: str | Path, *, timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.path = str(path)
        self.url = "sqlite:///" + self.path
        self.timeout = float(timeout)
        self._memory = self.path == ":memory:"
        self._identity: tuple[int, int] | None = None
        if not self._memory:
            parent = Path(self.path).expanduser().resolve().parent
            if not parent.is_dir():
                raise StoreError(
                    f"cannot open SQLite store {self.path!r}: folder {parent} does not exist.",
                    "create the folder, or point the store URL at an existing one.",
                    store=self.path,
                )
        self._lock = threading.RLock()
        self._tx: _SQLiteTransaction | None = None
        self._readers = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._closed = False
        self.conn = self._connect("opening the store")
        try:
            self.conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            if not self._memory:
                self._quick_check()
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            self.conn.close()
            raise self._error(exc, "opening the store") from exc
        except BaseException:
            self.conn.close()
            raise
        if not self._memory:
            self._identity = self._file_identity()

    def _connect(self, during: str) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(exc, during) from exc

    def _error(self, exc: sqlite3.Error, during: str) -> StoreError:
        return translate(exc, self.path, during, self.timeout)

    def _quick_check(self) -> None:
        rows = self.conn.execute("PRAGMA quick_check(5)").fetchall()
        problems = [str(r[0]) for r in rows if str(r[0]) != "ok"]
        if problems:
            raise StoreDamaged(
                f"SQLite store {self.path!r} failed its integrity check: "
                f"{'; '.join(problems)[:300]}.",
                _DAMAGED_FIX.format(path=self.path),
                store=self.path,
            )

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def _check_file(self) -> None:
        """Raise :class:`StoreGone` when the file is no longer the one opened."""
        if self._memory:
            return
        now = self._file_identity()
        if now != self._identity:
            what = "deleted (or moved)" if now is None else "replaced by another file"
            raise StoreGone(
                f"SQLite store {self.path!r} was {what} while this process had it open; "
                "nothing more is written to it.",
                "stop the processes using the store, find out what removed the file, put "
                "the right file back (or restore a backup: `spe store backup` makes one) "
                "and start them again.",
                store=self.path,
            )

    def _rollback(self, conn: sqlite3.Connection) -> None:
        # after a disk-full or I/O error SQLite has rolled back already: a second
        # ROLLBACK would raise "cannot rollback - no transaction is active" and hide
        # the real cause, so roll back only an open transaction, quietly
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _migrate(self) -> None:
        if int(self.conn.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION:
            return  # up to date: no write lock needed (another process may hold it)
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"SQLite store {self.path!r} has schema version {version}, newer than "
                        f"this spe-sdk understands ({SCHEMA_VERSION}).",
                        "upgrade spe-sdk to the version that wrote this file.",
                        store=self.path,
                    )
                for number in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[number].split(";"):
                        if statement.strip():
                            self.conn.execute(statement)
                    step = _MIGRATION_STEPS.get(number + 1)
                    if step is not None:
                        step(self.conn)
                    self.conn.execute(f"PRAGMA user_version={number + 1}")
                self.conn.execute("COMMIT")
            except BaseException:
                self._rollback(self.conn)
                raise

    def transaction(self) -> AbstractContextManager[_SQLiteTransaction]:
        """A write transaction (``BEGIN IMMEDIATE``); nested calls join the outer one."""
        return _Opening(self)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(
                f"SQLite store {self.path!r} is closed.",
                "open a new store; close it only when done with it.",
                store=self.path,
            )

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection (the writing one for ``:memory:``)."""
        if self._memory:
            return self.conn
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            conn = self._connect("opening a read connection")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            conn.execute("PRAGMA query_only=1")
            self._readers.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    def _read(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        """One read outside a transaction, on this thread's read connection."""
        self._check_open()
        self._check_file()
        try:
            if self._memory:
                with self._lock:
                    return self.conn.execute(sql, args).fetchall()
            return self._reader().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc, "reading") from exc

    def events(self, after: int = 0, limit: int | None = None) -> Iterator[Recorded]:
        """Recorded events after ``after``, streamed in pages."""
        remaining = limit
        while remaining is None or remaining > 0:
            page = 1000 if remaining is None else min(1000, remaining)
            rows = self._read(
                "SELECT seq, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, page)
            )
            if not rows:
                return
            for seq, data in rows:
                yield Recorded(int(seq), codec.loads(str(data)))  # type: ignore[call-overload]
            after = int(rows[-1][0])  # type: ignore[call-overload]
            if remaining is not None:
                remaining -= len(rows)

    def opportunities(self, status: OpportunityStatus | None = None) -> Iterator[Opportunity]:
        """Every opportunity (or those in ``status``), by id, streamed in pages."""
        return opportunity_pages(self._read, _SQLiteTransaction, _opportunity, status)

    def close(self) -> None:
        """Close the connections."""
        with self._lock:
            self._closed = True
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
            self.conn.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"


class _Opening:
    """The context manager :meth:`SQLiteStore.transaction` returns (a class rather than
    a generator: every engine operation opens one). Joins the open transaction, or
    begins one (``BEGIN IMMEDIATE``) and commits it when the block ends without an
    error (never into a file that went away, never after a driver error the caller
    caught), rolling it back otherwise; every ``sqlite3`` error leaves translated."""

    __slots__ = ("_joined", "_store", "_tx")

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._tx: _SQLiteTransaction | None = None
        self._joined = False

    def __enter__(self) -> _SQLiteTransaction:
        s = self._store
        s._lock.acquire()
        try:
            if s._tx is not None:
                self._joined = True
                return s._tx
            s._check_open()
            s._check_file()
            try:
                s.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise s._error(exc, "starting a transaction") from exc
            tx = self._tx = s._tx = _SQLiteTransaction(s.conn, s)
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
            if self._joined:
                return
            tx = self._tx
            assert tx is not None
            try:
                if kind is not None:
                    if isinstance(error, sqlite3.Error):
                        raise error
                    s._rollback(s.conn)
                    return
                if tx.failed is not None:  # a driver error the caller caught: never commit
                    raise tx.failed
                # the file may have gone while the transaction ran: never commit into it
                s._check_file()
                s.conn.execute("COMMIT")
                return
            except sqlite3.Error as exc:
                s._rollback(s.conn)
                raise s._error(exc, "committing") from exc
            except BaseException:
                s._rollback(s.conn)
                raise
            finally:
                s._tx = None
        finally:
            s._lock.release()


class _SQLiteTransaction(SharedTransaction, dialect=SQLITE, opportunity=_OPP):
    """A transaction on a :class:`SQLiteStore` (what both stores' SQL shares is
    :class:`~spe_core.store.sql.SharedTransaction`)."""

    def __init__(self, conn: sqlite3.Connection, store: SQLiteStore) -> None:
        self.conn = conn
        self.store = store
        self.failed: StoreError | None = None
        # id -> (as read or written, its data text, its state columns as stored)
        self._texts: dict[str, tuple[Opportunity, str, tuple[object, ...]]] = {}
        self._pull_expected = False
        # read with a member for a pull (expect_pull), valid until an opportunity or a
        # pull count is written: member id -> (held, {ISO day: pulls} of the latest days
        # or None), and the first page of queued candidates
        self._member_facts: dict[str, tuple[int, dict[str, int] | None]] = {}
        self._first_page: list[tuple[Any, ...]] | None = None

    def _x(self, sql: str, args: tuple[object, ...] = ()) -> sqlite3.Cursor:
        """Run one statement; a driver error is translated, and the transaction will
        not commit even if the caller catches it."""
        try:
            return self.conn.execute(sql, args)
        except sqlite3.Error as exc:
            self.failed = self.store._error(exc, "running a statement")
            raise self.failed from exc

    def _many(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        try:
            self.conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            self.failed = self.store._error(exc, "running a statement")
            raise self.failed from exc

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> tuple[object, ...] | None:
        row: tuple[object, ...] | None = self._x(sql, args).fetchone()
        return row

    def _all(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return self._x(sql, args).fetchall()

    def expect_pull(self) -> None:
        """A store hook the engine calls before a pull: the next ``get_member`` also
        reads what the pull needs (what the member holds, their latest pull counts, the
        first page of queued candidates) in the same statement."""
        self._pull_expected = True

    def _member_for_pull(self, member_id: str) -> Member | None:
        """The member, read with the facts a pull needs (see :meth:`expect_pull`)."""
        rows = self._all(_MEMBER_FOR_PULL, (member_id, _FIRST_PAGE))
        self._first_page = [row[1:] for row in rows if row[0] == 1]
        found = [row for row in rows if row[0] == 0]
        if not found:
            return None
        _, text, held, days, *_ = found[0]
        self._member_facts[member_id] = (int(held), {d: int(c) for d, c in json.loads(days)})
        return _member(str(text))

    # members ----------------------------------------------------------------------
    def get_member(self, member_id: str) -> Member | None:
        if self._pull_expected:
            self._pull_expected = False
            return self._member_for_pull(member_id)
        row = self._one("SELECT data FROM members WHERE id = ?", (member_id,))
        if row is None:
            return None
        return _member(str(row[0]))

    def held_by(self, member_id: str) -> int:
        facts = self._member_facts.get(member_id)
        if facts is not None:  # read with the member, nothing written since
            return facts[0]
        return super().held_by(member_id)

    def pulls_on(self, member_id: str, day: date) -> int:
        facts = self._member_facts.get(member_id)
        days = None if facts is None else facts[1]
        if days is not None:  # the member's latest days with pulls, read with the member
            key = day.isoformat()
            if key in days:
                return days[key]
            if len(days) < _RECENT_DAYS or key > min(days):
                return 0  # every day is there, or a later one than the day is
        return super().pulls_on(member_id, day)

    def add_pulls(self, member_id: str, day: date, count: int) -> None:
        facts = self._member_facts.get(member_id)
        if facts is not None:
            self._member_facts[member_id] = (facts[0], None)
        super().add_pulls(member_id, day, count)

    # put_member, members: SharedTransaction

    # opportunities ----------------------------------------------------------------
    def _read_opportunity(self, row: tuple[Any, ...]) -> Opportunity:
        """An opportunity read in this transaction (remembered with its ``data``
        text, so writing back a new state of it writes only the state columns)."""
        opp = _opportunity(row)
        self._texts[opp.id] = (opp, row[0], tuple(row[1:]))
        return opp

    def get_opportunity(self, opportunity_id: str) -> Opportunity | None:
        row = self._one(f"SELECT {_OPP} FROM opportunities WHERE id = ?", (opportunity_id,))
        return None if row is None else self._read_opportunity(row)

    def put_opportunity(self, opportunity: Opportunity, rank: bytes | None = None) -> None:
        o = opportunity
        if o.queued_at is None:
            model.check_stamped(o)
        if self._first_page is not None or self._member_facts:
            self._member_facts.clear()  # who holds what may change
            self._first_page = None  # and what is queued
        state = _state(o)
        known = self._texts.get(o.id)
        if rank is None and known is not None and _DESCRIPTION(known[0]) == _DESCRIPTION(o):
            # read (or written) in this transaction, same description: its data text
            # still holds; only the state columns that change are written (fewer index
            # entries to touch)
            before = known[2]
            changed = tuple(i for i in range(len(state)) if state[i] != before[i])
            if changed:
                sql = _UPDATES.get(changed)
                if sql is None:
                    sql = _UPDATES[changed] = (
                        "UPDATE opportunities SET "
                        + ", ".join(f"{_STATE_COLUMNS[i]} = ?" for i in changed)
                        + " WHERE id = ?"
                    )
                self._x(sql, (*(state[i] for i in changed), o.id))
            self._texts[o.id] = (o, known[1], state)
            return
        text = codec.dumps(o)
        values = (micros(o.queued_at), micros(o.expires_at), text, *state)
        if rank is None:
            cursor = self._x(
                "UPDATE opportunities SET queued_at = ?, expires_at = ?, data = ?, status = ?, "
                "owner_id = ?, released_at = ?, lease_expires_at = ?, excluded_ids = ?, "
                "outcome = ?, resolved_at = ? WHERE id = ?",
                (*values, o.id),
            )
            if cursor.rowcount != 1:
                raise StoreError(
                    f"opportunity {o.id!r} is new, so it needs a rank.",
                    "pass rank=spe_core.queue.rank_key(opportunity, policy.order).",
                )
        else:
            self._x(
                "INSERT INTO opportunities (id, rank, queued_at, expires_at, data, status, "
                "owner_id, released_at, lease_expires_at, excluded_ids, outcome, resolved_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "rank = excluded.rank, queued_at = excluded.queued_at, "
                "expires_at = excluded.expires_at, data = excluded.data, "
                "status = excluded.status, owner_id = excluded.owner_id, "
                "released_at = excluded.released_at, "
                "lease_expires_at = excluded.lease_expires_at, "
                "excluded_ids = excluded.excluded_ids, "
                "outcome = excluded.outcome, resolved_at = excluded.resolved_at",
                (o.id, rank, *values),
            )
        if len(_DESCRIBED) < 10_000:
            _DESCRIBED[text] = o
        self._texts[o.id] = (o, text, state)

    def iter_ranked(self, status: OpportunityStatus) -> Iterator[Opportunity]:
        if status not in RANKED_STATUSES:
            raise StoreError(
                f"{status.value} opportunities are not ranked.", "iterate the backlog or the queue."
            )
        last = b""
        page = _FIRST_PAGE
        first = self._first_page if status is OpportunityStatus.QUEUED else None
        self._first_page = None
        while True:
            if first is not None:  # read with the member (expect_pull), nothing written since
                rows, first = first, None
            else:
                rows = self._x(_RANKED[status], (last, page)).fetchall()
            for row in rows:
                yield self._read_opportunity(row[1:])
                last = row[0]
            if len(rows) < page:
                return
            page = _PAGE

    # count, oldest, held_by, iter_lease_expired, iter_queued_before, iter_expiring:
    # SharedTransaction (the rows read through _stream)

    def _stream(self, sql: str, args: tuple[object, ...]) -> Iterator[Opportunity]:
        rows = self._x(sql, args).fetchall()
        for row in rows:
            yield self._read_opportunity(row)

    # pull counts, tasks, calendar, outbox, quarantine, metadata: SharedTransaction

    # events and metadata ------------------------------------------------------------
    def append(self, event: Event, operation: str | None = None) -> Recorded:
        cursor = self._x(
            "INSERT INTO events (at, kind, data, op) VALUES (?, ?, ?, ?)",
            (micros(event.at), event.kind, codec.dumps(event), operation),
        )
        return Recorded(int(cursor.lastrowid or 0), event)

    def events(self, after: int = 0, limit: int | None = None) -> list[Recorded]:
        rows = self._x(
            "SELECT seq, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, -1 if limit is None else limit),
        ).fetchall()
        return [Recorded(int(seq), codec.loads(data)) for seq, data in rows]

    def lock(self, name: str) -> None:
        pass  # BEGIN IMMEDIATE already serialises writers
