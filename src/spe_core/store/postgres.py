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
- **Events** are numbered after they commit, so appending locks nothing other
  pulls wait for. A row gets an identity when written; its log position
  ``seq`` is set by the first reader (``events()``, the outbox cursor), which
  numbers every committed, unnumbered event in one step under an advisory lock
  (:meth:`_PgTransaction.settle`). Readers see numbered events only, and
  numbering continues the log, so positions are gap-free and in commit order
  and a reader of ``events(after=n)`` never skips an event that commits late.
  What ``append`` returns is provisional; ``committed_events()`` gives the
  final positions after the commit (the unit of work's listeners hear those).
- **Round trips**: writes whose result nobody reads wait and go to the server
  with the next statement or the COMMIT (pipeline mode); BEGIN goes with the
  first statement; ``get_member`` brings the member's WIP and recent pull
  counts along, and before a pull (``expect_pull``) the first page of
  candidates. A pull is two round trips, a resolve two.
- **Migrations** are versioned in ``spe_schema_migrations`` and applied on
  open under a transaction-level advisory lock, so two processes opening the
  same database at once are safe; re-running is a no-op.
- **LISTEN/NOTIFY**: every transaction that queues an opportunity sends
  ``NOTIFY spe_queue``; :meth:`PostgresStore.wait_for_work` lets an idle puller
  sleep until then, on one dedicated listening connection per store.
- **Faults**: every wait is bounded (connect, lock, statement, idle in
  transaction, pool; settable in the URL), pooled connections are checked on
  checkout, TCP keepalives are on, and every driver error is translated into
  :mod:`spe_core.errors` by :func:`translate`.

The ``schema`` query parameter (default ``public``) selects the schema, so
several teams or test runs share one database without colliding.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import date
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from spe_core import codec, model
from spe_core.errors import (
    CommitOutcomeUnknown,
    NotCommitted,
    StoreDamaged,
    StoreError,
    StoreFull,
    StoreGone,
    StoreLocked,
    StoreReadOnly,
    StoreUnavailable,
)
from spe_core.events import Event, Recorded
from spe_core.model import Member, Opportunity, OpportunityStatus
from spe_core.operations import Operation
from spe_core.store.base import RANKED_STATUSES, seconds_param
from spe_core.store.sql import POSTGRES, SharedTransaction, micros, opportunity_pages

try:
    import psycopg
    from psycopg.pq import TransactionStatus
    from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "the PostgreSQL store needs psycopg: pip install 'spe-sdk[postgres]'"
    ) from exc

__all__ = [
    "DEFAULT_POOL_TIMEOUT",
    "LIBPQ_DEFAULTS",
    "MIGRATIONS",
    "SERVER_DEFAULTS",
    "PostgresStore",
    "translate",
]

_FIRST_PAGE = 4
_RECENT_DAYS = 3  # pull counts read with a member: the latest days (today is among them)
_RANKED = (
    "SELECT rank, data FROM opportunities WHERE status = %s AND rank > %s "
    "ORDER BY rank LIMIT %s FOR UPDATE SKIP LOCKED"
)
_PAGE = 64
_LOCK_KEY = 0x5350455F4D494752  # "SPE_MIGR"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Numbering committed events: every event without a position, in id order (an event
# appended after another transaction's commit has a larger id than that transaction's
# events, so a cause is numbered before its effect), continues the log. Run only under
# the numbering lock, as a statement after taking it.
_NUMBER = (
    "WITH top AS (SELECT COALESCE(MAX(seq), 0) AS last FROM events), "
    "todo AS (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n FROM events WHERE seq IS NULL) "
    "UPDATE events SET seq = top.last + todo.n FROM todo, top WHERE events.id = todo.id"
)

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
    # 4: events numbered after they commit (no counter locked by every appending
    # transaction): ``id`` is identity only; ``seq``, the gap-free log position, is
    # set by the numbering step (see _PgTransaction.settle) once the row is committed
    """
    ALTER TABLE events DROP CONSTRAINT events_pkey;
    ALTER TABLE events ALTER COLUMN seq DROP NOT NULL;
    ALTER TABLE events ADD COLUMN id BIGINT GENERATED BY DEFAULT AS IDENTITY;
    ALTER TABLE events ADD PRIMARY KEY (id);
    ALTER TABLE events ADD CONSTRAINT events_seq_key UNIQUE (seq);
    CREATE INDEX events_unnumbered ON events (id) WHERE seq IS NULL;
    DROP TABLE event_seq;
    """,
    # 5: operation ids (spe_core.operations): each event names the unit of work that
    # recorded it (looked up when a commit's reply is lost; no index: the lookup reads
    # only events numbered after the unit began, or not numbered yet); calls that
    # carried a caller-supplied id keep their result
    """
    ALTER TABLE events ADD COLUMN op TEXT;
    CREATE TABLE operations (
        id TEXT COLLATE "C" PRIMARY KEY,
        kind TEXT NOT NULL,
        request TEXT NOT NULL,
        result TEXT NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE INDEX operations_at ON operations (at);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def _opportunity(row: tuple[Any, ...]) -> Opportunity:
    """An opportunity from its row (its ``data`` column)."""
    opp: Opportunity = codec.loads(row[0])
    return opp


_OURS = (
    "schema",
    "pool_min",
    "pool_max",
    "pool_timeout",
    "lock_timeout",
    "statement_timeout",
    "idle_in_transaction_session_timeout",
)

#: libpq parameters set unless the URL sets them: connecting gives up after 10 s, and
#: TCP keepalives plus a TCP user timeout notice a dead peer or a silent partition
#: within about 30 s even while a call waits for an answer.
LIBPQ_DEFAULTS: dict[str, str] = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}

#: Server settings made on every connection unless the URL sets them (as its own
#: parameter, or with ``options=-c name=value``). Values are PostgreSQL's: ``10s``,
#: ``500ms``; a bare number is milliseconds; ``0`` turns the limit off.
SERVER_DEFAULTS: dict[str, str] = {
    "lock_timeout": "10s",
    "statement_timeout": "20s",
    "idle_in_transaction_session_timeout": "60s",
}

_FRESH = 1.0  # seconds after use in which a pooled connection is taken unchecked

#: Seconds a call waits for a free pooled connection by default.
DEFAULT_POOL_TIMEOUT = 10.0

_UNITS_MS = {
    "us": 0.001,
    "ms": 1.0,
    "s": 1000.0,
    "min": 60_000.0,
    "h": 3_600_000.0,
    "d": 86_400_000.0,
}


def _pg_ms(value: str) -> float | None:
    """A PostgreSQL duration setting in milliseconds (None when not understood)."""
    found = re.fullmatch(r"\s*([0-9.]+)\s*([a-z]*)\s*", value.lower())
    if found is None or found.group(2) not in ("", *_UNITS_MS):
        return None
    try:
        return float(found.group(1)) * _UNITS_MS.get(found.group(2), 1.0)
    except ValueError:
        return None


class _Settings:
    """What a PostgreSQL store URL says, split into libpq's part and spe-sdk's part."""

    def __init__(self, url: str, min_size: int, max_size: int, timeout: float) -> None:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        parts = urlsplit(url)
        self.password = parts.password or ""
        ours: dict[str, str] = {}
        rest: list[str] = []
        for piece in parts.query.split("&"):
            if not piece:
                continue
            key, _, value = piece.partition("=")
            if unquote(key) in _OURS:
                ours[unquote(key)] = unquote(value)  # %20 is a space; "+" stays "+", as in libpq
            else:
                rest.append(piece)  # left exactly as written: libpq decodes it
        self.schema = ours.get("schema", "public")
        if not _SCHEMA_NAME.match(self.schema):
            raise StoreError(
                f"schema {self.schema!r} in the store URL is not a plain lower-case identifier.",
                "use letters, digits and underscores, starting with a letter, e.g. ?schema=spe.",
            )
        base = urlunsplit(("postgresql", parts.netloc, parts.path, "&".join(rest), ""))
        try:
            params: dict[str, Any] = conninfo_to_dict(base)
        except psycopg.Error as exc:
            raise StoreError(
                f"store URL {_redact(url)} is not a valid PostgreSQL URL: "
                f"{self.scrub(str(exc).splitlines()[0])}.",
                "check its parameters: spe-sdk's are " + ", ".join(_OURS) + "; any other must "
                "be a libpq connection parameter (sslmode, connect_timeout, options, ...).",
            ) from None
        for key, value in LIBPQ_DEFAULTS.items():
            params.setdefault(key, value)
        self.params = params
        self.conninfo = make_conninfo("", **params)
        options = str(params.get("options") or "")
        self.server: dict[str, str] = {}
        for name, default in SERVER_DEFAULTS.items():
            if name in ours:
                if _pg_ms(ours[name]) is None:
                    raise StoreError(
                        f"store URL parameter {name}={ours[name]!r} is not a duration.",
                        f"write it as PostgreSQL does: {name}=10s, 500ms or 0 (no limit).",
                    )
                self.server[name] = ours[name].strip()
            elif not re.search(rf"{name}\s*=", options):
                self.server[name] = default
        self.pool_min = _count(ours.get("pool_min"), "pool_min", min_size, 0)
        self.pool_max = _count(ours.get("pool_max"), "pool_max", max(max_size, self.pool_min), 1)
        if self.pool_max < self.pool_min:
            raise StoreError(
                f"store URL has pool_max={self.pool_max} below pool_min={self.pool_min}.",
                "make pool_max at least pool_min.",
            )
        self.pool_timeout = seconds_param(ours.get("pool_timeout"), "pool_timeout", timeout)
        try:
            self.connect_timeout = float(params["connect_timeout"])
        except ValueError:
            raise StoreError(
                f"store URL parameter connect_timeout={params['connect_timeout']!r} is not "
                "a number of seconds.",
                "write e.g. connect_timeout=10.",
            ) from None
        in_options = re.search(r"statement_timeout\s*=\s*([0-9.]+\s*[a-z]*)", options)
        statement_text = self.server.get(
            "statement_timeout", in_options.group(1) if in_options else "0"
        )
        statement = _pg_ms(statement_text) or 0.0
        # the client's own bound on one statement: a stalled network path (a proxy that
        # stops forwarding) looks healthy to TCP, so the server's timeout never arrives
        self.statement_bound = (
            statement / 1000 + min(5.0, max(1.0, statement / 1000)) if statement else 0.0
        )
        host = str(params.get("host") or params.get("hostaddr") or "local socket")
        port = str(params.get("port") or "5432")
        dbname = str(params.get("dbname") or params.get("user") or "")
        self.where = f"PostgreSQL {host}:{port}/{dbname} (schema {self.schema})"

    def scrub(self, text: str) -> str:
        """``text`` without the URL's password."""
        return text.replace(self.password, "***") if self.password else text

    def summary(self) -> dict[str, str]:
        """Every bound in force, for ``spe store check`` and error messages."""
        values = {k: str(self.params[k]) for k in LIBPQ_DEFAULTS}
        values.update(self.server)
        values.update(
            pool_min=str(self.pool_min),
            pool_max=str(self.pool_max),
            pool_timeout=f"{self.pool_timeout:g}s",
        )
        return values


def _count(text: str | None, name: str, default: int, minimum: int) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise StoreError(
            f"store URL parameter {name}={text!r} is not a whole number of at least {minimum}.",
            f"write e.g. {name}={max(minimum, 1)}.",
        )
    return value


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


def translate(exc: BaseException, settings: _Settings, during: str) -> StoreError:
    """The :mod:`spe_core.errors` error for a ``psycopg`` or ``psycopg_pool`` error on the
    store ``settings`` describes (raise it ``from exc``). Every error leaving
    :class:`PostgresStore` goes through here."""
    where = settings.where
    reason = _reason(exc, settings)
    state = str(getattr(exc, "sqlstate", None) or "")
    server = settings.server
    if isinstance(exc, PoolTimeout):
        return StoreUnavailable(
            f"{where}: no pooled connection came free within pool_timeout "
            f"({settings.pool_timeout:g} s, pool_max {settings.pool_max}) while {during}.",
            "check that the server is reachable; if it is, other calls hold every "
            "connection: raise pool_max or pool_timeout in the store URL.",
            store=where,
        )
    if isinstance(exc, PoolClosed):
        return StoreError(f"{where}: the store is closed.", "open a new store.", store=where)
    if state == "55P03":
        return StoreLocked(
            f"{where}: another session held a lock longer than lock_timeout "
            f"({server.get('lock_timeout', 'as set on the server')}) while {during} "
            f"({reason}); nothing was committed.",
            "try again; if it keeps happening, find the session holding it (pg_locks, "
            "pg_stat_activity) or raise lock_timeout in the store URL (?lock_timeout=30s).",
            store=where,
        )
    if state in ("40P01", "40001"):
        return StoreLocked(
            f"{where}: the transaction was chosen to give way to a concurrent one while "
            f"{during} ({reason}); nothing was committed.",
            "try the call again.",
            store=where,
        )
    if state == "57014":
        return StoreUnavailable(
            f"{where}: a statement ran longer than statement_timeout "
            f"({server.get('statement_timeout', 'as set on the server')}) while {during}; "
            "nothing was committed.",
            "try again; if the server is slow, raise statement_timeout in the store URL "
            "(?statement_timeout=60s).",
            store=where,
        )
    if state == "25006":
        return StoreReadOnly(
            f"{where} is read-only ({reason}): a standby, perhaps after a failover.",
            "point the store URL at the primary; with several hosts in the URL add "
            "target_session_attrs=read-write so libpq picks the writable one.",
            store=where,
        )
    if state == "53100":
        return StoreFull(
            f"{where}: the server's disk is full ({reason}) while {during}; nothing was committed.",
            "free space on the database server, then try again.",
            store=where,
        )
    if state in ("XX001", "XX002"):
        return StoreDamaged(
            f"{where}: the server reports damaged data ({reason}) while {during}.",
            "stop the workers, have the database administrator check the server's log and "
            "restore from backup (pg_dump, see `spe store backup`).",
            store=where,
        )
    if state in ("3F000", "42P01"):
        return StoreGone(
            f"{where}: the schema or its tables are gone ({reason}); they were dropped "
            "while the store was open.",
            "restore the schema from a backup, or reopen the store to create an empty one "
            "if that is what was meant.",
            store=where,
        )
    if state.startswith("28"):
        return StoreError(
            f"{where} refused the credentials ({reason}).",
            "check the user name and password (PGPASSWORD or ~/.pgpass) and pg_hba.conf.",
            store=where,
        )
    if isinstance(exc, psycopg.OperationalError) or state.startswith(("08", "57P", "53")):
        if during == "connecting":
            problem = f"cannot connect to {where}: {reason}."
        else:
            problem = (
                f"{where}: the connection failed while {during} ({reason}); nothing was committed."
            )
        return StoreUnavailable(
            problem,
            "check that the server is up and reachable (host, port, firewall); the store "
            "reconnects by itself once it is. Check the credentials in the URL if it keeps "
            "failing.",
            store=where,
        )
    return StoreError(
        f"{where}: {type(exc).__name__} while {during}: {reason}.",
        "this is probably a bug in spe-sdk or a plugin; report it with the traceback.",
        store=where,
    )


def _reason(exc: BaseException, settings: _Settings) -> str:
    lines = str(exc).strip().splitlines()
    return settings.scrub(lines[0] if lines else type(exc).__name__)


class _Deadlines:
    """Client-side bounds: breaks the socket of a connection whose call outlives its
    deadline, so a call blocked on a path that TCP thinks healthy (a stalled proxy)
    returns with an error. One daemon thread per store, started on first use."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[int, tuple[float, psycopg.Connection[Any]]] = {}
        self._next = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextmanager
    def guard(self, conn: psycopg.Connection[Any], seconds: float) -> Iterator[None]:
        if seconds <= 0:
            yield
            return
        with self._cond:
            self._next += 1
            token = self._next
            self._due[token] = (time.monotonic() + seconds, conn)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="spe-store-deadlines", daemon=True
                )
                self._thread.start()
            # no notify: the thread looks at least once a second, and every bound is
            # longer than that, so waking it for each statement would only cost
        try:
            yield
        finally:
            with self._cond:
                self._due.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                late = [t for t, (d, _) in self._due.items() if d <= now]
                broken = [self._due.pop(t)[1] for t in late]
                if not broken:
                    soonest = min((d for d, _ in self._due.values()), default=now + 1.0)
                    self._cond.wait(timeout=max(0.01, min(1.0, soonest - now)))
                    continue
            for conn in broken:
                _break(conn)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(2)


def _break(conn: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket down: the call blocked on it fails at once."""
    with suppress(Exception):
        fd = conn.pgconn.socket
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


class PostgresStore:
    """A store in a PostgreSQL schema, shared by any number of processes and hosts.

    Every wait is bounded (see :data:`LIBPQ_DEFAULTS`, :data:`SERVER_DEFAULTS` and
    ``pool_timeout``; each settable in the store URL), pooled connections are
    checked on checkout and replaced when their backend went away, and every
    ``psycopg``/``psycopg_pool`` error is translated by :func:`translate` into an
    error of :mod:`spe_core.errors`.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        timeout: float = DEFAULT_POOL_TIMEOUT,
    ) -> None:
        self.url = _redact(url)
        self.settings = settings = _Settings(url, min_size, max_size, timeout)
        self.schema = settings.schema
        self.where = settings.where
        self._numbering = f"spe-event-numbering:{self.schema}"
        self._last_seq = 0  # the log's end as last seen: the base of provisional numbers
        self._deadlines = _Deadlines()
        self._local = threading.local()
        self._returned: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        self._listener: threading.Thread | None = None
        self._listen_cond = threading.Condition()
        self._listen_generation = 0
        self._listening = False
        self._closed = False
        try:
            # fail fast (and say why) when the server cannot be reached at all; the
            # URL's connect_timeout (or the default) bounds it
            with psycopg.connect(settings.conninfo) as first:
                self._configure(first)
            self.pool = ConnectionPool(
                settings.conninfo,
                min_size=settings.pool_min,
                max_size=settings.pool_max,
                timeout=settings.pool_timeout,
                configure=self._configure,
                check=self._check,
                open=False,
                name=f"spe-{self.schema}",
            )
            self.pool.open(wait=True, timeout=max(settings.connect_timeout, 1.0) * 2)
        except psycopg.Error as exc:
            raise translate(exc, settings, "connecting") from exc
        try:
            self._migrate()
        except psycopg.Error as exc:
            self.pool.close()
            raise translate(exc, settings, "migrating the schema") from exc
        except BaseException:
            self.pool.close()
            raise

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f'SET search_path TO "{self.schema}"'.encode())
        for name, value in self.settings.server.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        conn.commit()

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        # a connection that worked a moment ago is not checked again (a round trip
        # per transaction costs a third of a short one); one idle for longer, whose
        # backend a restart, failover or idle timeout may have ended, is
        last = self._returned.get(conn)
        if last is not None and time.monotonic() - last < _FRESH:
            return
        with self._deadlines.guard(conn, self.settings.connect_timeout):
            ConnectionPool.check_connection(conn)

    def _putconn(self, conn: psycopg.Connection[Any]) -> None:
        if not conn.closed:
            self._returned[conn] = time.monotonic()
        with suppress(Exception):
            self.pool.putconn(conn)

    def _getconn(self, during: str) -> psycopg.Connection[Any]:
        if self._closed:
            raise StoreError(f"{self.where}: the store is closed.", "open a new store.")
        try:
            return self.pool.getconn()
        except psycopg.Error as exc:
            raise translate(exc, self.settings, during) from exc

    def _rollback(self, conn: psycopg.Connection[Any]) -> None:
        if conn.closed or conn.info.transaction_status == TransactionStatus.IDLE:
            return
        with suppress(psycopg.Error), self._deadlines.guard(conn, self.settings.connect_timeout):
            conn.rollback()

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
                    store=self.where,
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
        conn = self._getconn("starting a transaction")
        tx = _PgTransaction(conn, self)
        self._local.tx = tx
        committing = returned = False
        backend = 0
        try:
            yield tx
            if tx.failed is not None:  # a driver error the caller caught: never commit
                raise tx.failed
            if tx.queued:
                tx._defer("NOTIFY spe_queue")
            committing = True
            backend = conn.info.backend_pid
            with self._deadlines.guard(conn, self.settings.statement_bound):
                tx._flush(commit=True)  # the writes still pending and the COMMIT: one round trip
        except psycopg.Error as exc:
            self._rollback(conn)
            if committing and isinstance(exc, psycopg.OperationalError):
                self._local.tx = None
                self._putconn(conn)  # a pool of one needs it back (the pool replaces it)
                returned = True
                self._resolve_outcome(tx, backend, exc)  # returns only if it committed
                return
            raise translate(
                exc, self.settings, "committing" if committing else "running a transaction"
            ) from exc
        except BaseException:
            self._rollback(conn)
            raise
        finally:
            self._local.tx = None
            if not returned:
                self._putconn(conn)

    def _resolve_outcome(self, tx: _PgTransaction, backend: int, exc: BaseException) -> None:
        """The connection broke while ``tx`` committed: find out, on a fresh connection,
        whether it did. First the broken session is ended (a COMMIT its server has not
        run yet never runs) and awaited; then the events tagged with the transaction's
        operation id are looked for. Returns when they are there (committed; ``tx``
        learns their row ids); raises :class:`NotCommitted` when they are not, and
        :class:`CommitOutcomeUnknown` when it cannot tell."""
        reason = _reason(exc, self.settings)

        def unknown(why: str) -> CommitOutcomeUnknown:
            return CommitOutcomeUnknown(
                f"{self.where}: the connection failed after the commit was sent ({reason}), "
                f"and {why}; the transaction may or may not have committed.",
                "read the state back (the opportunity, task or booking, or the event log), "
                "or repeat the call with the same operation_id: a call already done "
                "returns its first result.",
                store=self.where,
            )

        if not tx.wrote:
            return  # nothing was written: there was nothing to commit
        if tx.untagged or (not tx.appended and not tx.kept):
            raise unknown("it recorded no event with an operation id to look it up by") from exc
        deadline = time.monotonic() + max(5.0, 2 * self.settings.connect_timeout)
        while True:  # the lookup's own connection may break too: try until the deadline
            try:
                rows, kept = self._look_up(tx, backend, deadline)
                break
            except StoreError as lookup:
                if time.monotonic() > deadline:
                    raise unknown(f"looking it up failed too ({lookup.problem})") from exc
                time.sleep(0.05)
            except TimeoutError:
                raise unknown("its server session is still running") from exc
        if len(rows) != len(tx.appended) or kept != len(tx.kept):
            if rows or kept:  # never: a transaction commits all of its writes or none
                raise unknown(f"{len(rows)} of its {len(tx.appended)} events are in the log")
            raise NotCommitted(
                f"{self.where}: the connection failed while committing ({reason}); the "
                "store checked on a fresh connection that nothing was committed.",
                "try the call again (the engine already tried it twice); if this keeps "
                "happening, check the network path to the server.",
                store=self.where,
            ) from exc
        tx.appended = [(int(row[0]), r) for row, (_, r) in zip(rows, tx.appended, strict=True)]

    def _look_up(
        self, tx: _PgTransaction, backend: int, deadline: float
    ) -> tuple[list[tuple[Any, ...]], int]:
        """One try of :meth:`_resolve_outcome`'s lookup on a fresh pooled connection: end
        the broken session ``backend``, wait until it is gone (TimeoutError past
        ``deadline``), then the row ids of ``tx``'s events that are in the log, and how
        many of the operations it kept are stored."""
        conn = self._getconn("finding out whether a commit took effect")
        try:
            with self._deadlines.guard(conn, self.settings.statement_bound):
                # ending a session of our own role needs no privilege beyond being it
                conn.execute("SELECT pg_terminate_backend(%s)", (backend,))
                while conn.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (backend,)
                ).fetchone():
                    conn.rollback()
                    if time.monotonic() > deadline:
                        raise TimeoutError
                    time.sleep(0.02)
                rows = []
                if tx.appended:
                    rows = conn.execute(
                        "SELECT id FROM events WHERE op = %s AND (seq IS NULL OR seq > %s) "
                        "ORDER BY id",
                        (tx.operation, tx.log_end),
                    ).fetchall()
                found = conn.execute(
                    "SELECT COUNT(*) FROM operations WHERE id = ANY(%s)", (tx.kept,)
                ).fetchone()
                conn.rollback()
                return rows, int(found[0]) if found else 0
        except psycopg.Error as error:
            self._rollback(conn)
            raise translate(error, self.settings, "looking up a commit") from error
        finally:
            self._putconn(conn)

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """One read outside a transaction (inside one: through it, so a pool of one
        cannot deadlock against itself)."""
        current: _PgTransaction | None = getattr(self._local, "tx", None)
        if current is not None:
            return current._all(sql, args)
        for attempt in (1, 2):
            conn = self._getconn("reading")
            try:
                with self._deadlines.guard(conn, self.settings.statement_bound):
                    rows = conn.execute(sql.encode(), args).fetchall()
                    conn.rollback()
                return rows
            except psycopg.OperationalError as exc:
                self._rollback(conn)
                if attempt == 1 and conn.closed:
                    continue  # its backend was gone: a read is safe to try once more
                raise translate(exc, self.settings, "reading") from exc
            except psycopg.Error as exc:
                self._rollback(conn)
                raise translate(exc, self.settings, "reading") from exc
            finally:
                self._putconn(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def settle(self) -> None:
        """Give every committed event without a log position its position (in a short
        transaction of its own; a no-op when every event has one)."""
        with self.transaction() as tx:
            tx.settle()

    def events(self, after: int = 0, limit: int | None = None) -> Iterator[Recorded]:
        """Committed events after ``after``, in order, streamed in pages."""
        if getattr(self._local, "tx", None) is None:
            self.settle()  # inside a transaction: only what is numbered (see Transaction.events)
        remaining = limit
        while remaining is None or remaining > 0:
            page = 1000 if remaining is None else min(1000, remaining)
            rows = self._read(
                "SELECT seq, data FROM events WHERE seq > %s ORDER BY seq LIMIT %s",
                (after, page),
            )
            if not rows:
                return
            after = int(rows[-1][0])
            self._last_seq = max(self._last_seq, after)
            for seq, data in rows:
                yield Recorded(int(seq), codec.loads(data))
            if remaining is not None:
                remaining -= len(rows)

    def opportunities(self, status: OpportunityStatus | None = None) -> Iterator[Opportunity]:
        """Every opportunity (or those in ``status``), by id, in pages."""
        return opportunity_pages(self._read, _PgTransaction, _opportunity, status)

    # --- LISTEN/NOTIFY --------------------------------------------------------------

    def wait_for_work(self, timeout: float) -> bool:
        """Block until an opportunity is queued (NOTIFY) or ``timeout`` seconds pass.

        Holds no pooled connection: one dedicated listening connection per store
        serves every waiter, and reconnects when its backend goes away (waking the
        waiters, since a notification may have been missed). Returns False on
        timeout, and also when the listener cannot reach the server: the caller's
        next store call then reports the fault.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._listen_cond:
            self._start_listener()
            while not self._listening and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._listen_cond.wait(left)
            seen = self._listen_generation
            while self._listen_generation == seen and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._listen_cond.wait(left)
            return self._listen_generation != seen

    def _start_listener(self) -> None:
        if self._listener is None and not self._closed:
            self._listener = threading.Thread(
                target=self._listen, name=f"spe-listen-{self.schema}", daemon=True
            )
            self._listener.start()

    def _wake(self, listening: bool) -> None:
        with self._listen_cond:
            self._listening = listening
            self._listen_generation += 1
            self._listen_cond.notify_all()

    def _listen(self) -> None:
        pause = 0.1
        while not self._closed:
            try:
                with psycopg.connect(self.settings.conninfo, autocommit=True) as conn:
                    conn.execute("LISTEN spe_queue")
                    self._wake(True)  # (re)connected: a notification may have been missed
                    pause = 0.1
                    while not self._closed:
                        for _ in conn.notifies(timeout=0.5):
                            self._wake(True)
                        # notifies() returns after the timeout; a ping notices a dead backend
                        with self._deadlines.guard(conn, self.settings.connect_timeout):
                            conn.execute("")
            except psycopg.Error:
                with self._listen_cond:
                    self._listening = False
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def drop(self) -> None:
        """Drop this store's schema and everything in it (tests and teardown only)."""
        conn = self._getconn("dropping the schema")
        try:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'.encode())
            conn.commit()
        except psycopg.Error as exc:
            self._rollback(conn)
            raise translate(exc, self.settings, "dropping the schema") from exc
        finally:
            self._putconn(conn)

    def close(self) -> None:
        """Close every pooled connection and the listening one."""
        with self._listen_cond:
            self._closed = True
            self._listen_cond.notify_all()
        if self._listener is not None:
            self._listener.join(3)
        self._deadlines.close()
        self.pool.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r}, schema={self.schema!r})"


# statements that write (numbering events, a WITH ... UPDATE, is left out on purpose: it
# is redone by the next reader when its commit is lost, whatever the outcome)
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE"})


class _PgTransaction(SharedTransaction, dialect=POSTGRES, opportunity="data"):
    """A transaction on a :class:`PostgresStore` (what both stores' SQL shares is
    :class:`~spe_core.store.sql.SharedTransaction`)."""

    def __init__(self, conn: psycopg.Connection[Any], store: PostgresStore) -> None:
        self.conn = conn
        self.store = store
        self.queued = False
        self.failed: StoreError | None = None
        self.appended: list[tuple[int, Recorded]] = []  # (row id, provisional)
        self.unnumbered = 0  # own appends not numbered yet
        self._base = 0  # the log's end when the first of them was appended
        # Writes whose result nobody reads wait here and go to the server together with
        # the next statement (or the COMMIT), in one round trip (pipeline mode).
        self._pending: list[tuple[bytes, tuple[Any, ...], int | None]] = []
        self._begun = False  # BEGIN goes with the first statement, not in a round trip of its own
        self._locked: set[str] = set()  # opportunities this transaction holds locked
        self._member_facts: dict[str, tuple[int, dict[date, int] | None]] = {}
        self._pull_expected = False
        self._first_page: list[tuple[Any, ...]] | None = None  # queued candidates, locked
        self.wrote = False  # whether a statement that writes was sent
        self.kept: list[str] = []  # the operation ids whose results this transaction keeps
        self.operation: str | None = None  # the unit of work's id, as its events carry it
        self.untagged = False  # an event was appended without an operation id
        self.log_end = store._last_seq  # every event this transaction commits comes after

    def _defer(self, sql: str, args: tuple[Any, ...] = (), event: int | None = None) -> None:
        self.wrote = True  # every deferred statement is a write
        self._pending.append((sql.encode(), args, event))

    def _send(self, sql: bytes, args: tuple[Any, ...]) -> psycopg.Cursor[Any]:
        cur = self.conn.cursor()
        cur.execute(sql, args)
        return cur

    def _flush(self, *then: tuple[str, tuple[Any, ...]], commit: bool = False) -> list[Any]:
        """Send the pending writes, then ``then`` (and COMMIT), in one pipeline: one round
        trip. Returns the cursors of ``then``. Raises psycopg's error (callers translate)."""
        pending, self._pending = self._pending, []
        if not self.wrote:
            self.wrote = any(sql[:6].upper() in _WRITES for sql, _ in then)
        if not pending and not commit and self._begun and len(then) == 1:
            sql, args = then[0]
            return [self.conn.execute(sql.encode(), args)]
        self._begun = True
        with self.conn.pipeline():
            written = [(self._send(sql, args), event) for sql, args, event in pending]
            cursors = [self._send(sql.encode(), args) for sql, args in then]
            if commit:
                self.conn.commit()
        for cur, event in written:
            row = cur.fetchone() if event is not None else None
            if event is not None and row is not None:  # an event row: its id, the log's end
                self.appended[event] = (int(row[0]), self.appended[event][1])
                self.store._last_seq = max(self.store._last_seq, int(row[1]))
        return cursors

    def _x(self, sql: str, args: tuple[Any, ...] = ()) -> psycopg.Cursor[Any]:
        """Run one statement (after the pending writes, in the same round trip) within
        the client-side bound; a driver error is translated, and the transaction will
        not commit even if the caller catches it."""
        return self._xs((sql, args))[0]

    def _xs(self, *statements: tuple[str, tuple[Any, ...]]) -> list[psycopg.Cursor[Any]]:
        """Several statements in one round trip; each takes its own snapshot when it
        starts, so one that follows a lock wait sees what the lock holder committed."""
        store = self.store
        try:
            with store._deadlines.guard(self.conn, store.settings.statement_bound):
                return self._flush(*statements)
        except psycopg.Error as exc:
            self.failed = translate(exc, store.settings, "running a statement")
            raise self.failed from exc

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._x(sql, args).fetchone()
        return row

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._x(sql, args).fetchall()

    def _many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One statement per row of ``rows``, after the pending writes (errors as in _xs)."""
        self._xs()  # the pending writes first
        store = self.store
        try:
            with (
                store._deadlines.guard(self.conn, store.settings.statement_bound),
                self.conn.cursor() as cur,
            ):
                cur.executemany(sql, rows)
        except psycopg.Error as exc:
            self.failed = translate(exc, store.settings, "running a statement")
            raise self.failed from exc

    def expect_pull(self) -> None:
        """A store hook the engine calls before a pull: the next ``get_member`` also
        locks and brings the first page of queued candidates, in the same round trip."""
        self._pull_expected = True

    # members ----------------------------------------------------------------------
    def get_member(self, member_id: str) -> Member | None:
        # the facts a pull needs come in the same round trip: separate statements, each
        # starting after the member's row is locked, so they see what a pull for the same
        # member that held the lock committed
        statements: list[tuple[str, tuple[Any, ...]]] = [
            ("SELECT data FROM members WHERE id = %s FOR UPDATE", (member_id,)),
            (self._sql_held_by, (member_id,)),
            (
                "SELECT day, count FROM pulls WHERE member_id = %s ORDER BY day DESC LIMIT %s",
                (member_id, _RECENT_DAYS),
            ),
        ]
        if self._pull_expected:
            self._pull_expected = False
            statements.append((_RANKED, (OpportunityStatus.QUEUED.value, b"", _FIRST_PAGE)))
        member, held, pulls, *page = self._xs(*statements)
        if page:
            self._first_page = page[0].fetchall()
        row = member.fetchone()
        held_row = held.fetchone()
        days = {d: int(c) for d, c in pulls.fetchall()}
        self._member_facts[member_id] = (int(held_row[0]) if held_row else 0, days)
        return None if row is None else codec.loads(row[0])

    # put_member, members: SharedTransaction

    # opportunities ----------------------------------------------------------------
    def get_opportunity(self, opportunity_id: str) -> Opportunity | None:
        row = self._one(
            "SELECT data FROM opportunities WHERE id = %s FOR UPDATE", (opportunity_id,)
        )
        if row is None:
            return None
        self._locked.add(opportunity_id)
        opp: Opportunity = codec.loads(row[0])
        return opp

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
        self._member_facts.clear()  # who holds what may have changed
        self._first_page = None  # and what is queued
        if rank is None and o.id in self._locked:  # stored and locked: the update cannot miss
            self._defer(
                "UPDATE opportunities SET status = %s, owner_id = %s, queued_at = %s, "
                "lease_expires_at = %s, expires_at = %s, data = %s WHERE id = %s",
                (*values, o.id),
            )
            return
        if rank is None:
            cursor = self._x(
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
        self._x(
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
        first = self._first_page if status is OpportunityStatus.QUEUED else None
        self._first_page = None
        while True:
            if first is not None:  # read and locked with the member (expect_pull)
                rows, first = first, None
            else:
                rows = self._all(_RANKED, (status.value, last, page))
            for rank, data in rows:
                last = bytes(rank)
                opp: Opportunity = codec.loads(data)
                self._locked.add(opp.id)
                yield opp
            if len(rows) < page:
                return
            page = _PAGE

    # count, oldest: SharedTransaction

    def held_by(self, member_id: str) -> int:
        facts = self._member_facts.get(member_id)
        if facts is not None:  # read with the member's row, nothing written since
            return facts[0]
        return super().held_by(member_id)

    def _read_opportunity(self, row: tuple[Any, ...]) -> Opportunity:
        return _opportunity(row)

    def _stream(self, sql: str, args: tuple[Any, ...]) -> Iterator[Opportunity]:
        for (data,) in self._all(sql, args):  # every caller locks what it reads
            opp: Opportunity = codec.loads(data)
            self._locked.add(opp.id)
            yield opp

    # iter_lease_expired, iter_queued_before, iter_expiring: SharedTransaction (the
    # rows read, and locked, through _stream)

    def pulls_on(self, member_id: str, day: date) -> int:
        facts = self._member_facts.get(member_id)
        days = None if facts is None else facts[1]
        if days is not None:  # the member's latest days, read with the member's row
            if day in days:
                return days[day]
            if len(days) < _RECENT_DAYS or day > max(days):
                return 0  # every day is there, or the day is after the latest with pulls
        return super().pulls_on(member_id, day)

    def add_pulls(self, member_id: str, day: date, count: int) -> None:
        facts = self._member_facts.get(member_id)
        if facts is not None:
            self._member_facts[member_id] = (facts[0], None)
        self._defer(self._sql_add_pulls, (member_id, day, count))

    # tasks, calendar, outbox, quarantine, metadata: SharedTransaction

    # events and metadata ------------------------------------------------------------
    def append(self, event: Event, operation: str | None = None) -> Recorded:
        # no counter is locked: the row gets an identity now and its log position
        # (seq) once committed (settle). The seq returned is provisional: the place
        # the event takes if nothing else is numbered before it; committed_events()
        # gives the final ones after the commit.
        # The row goes to the server with the next statement or the COMMIT.
        if not self.unnumbered:
            self._base = self.store._last_seq
        self.unnumbered += 1
        recorded = Recorded(self._base + self.unnumbered, event)
        if operation is None:
            self.untagged = True  # appended outside a unit of work: no id to look it up by
        else:
            self.operation = operation
        self._defer(
            "INSERT INTO events (at, kind, data, op) VALUES (%s, %s, %s, %s) "
            "RETURNING id, (SELECT COALESCE(MAX(seq), 0) FROM events)",
            (micros(event.at), event.kind, codec.dumps(event), operation),
            event=len(self.appended),
        )
        self.appended.append((0, recorded))
        return recorded

    def settle(self) -> None:
        """Number the committed events that have no log position yet (and this
        transaction's own), in one step under the store's numbering lock, held until
        this transaction ends. Only readers do this, never an appending unit of work."""
        row = self._one("SELECT EXISTS (SELECT 1 FROM events WHERE seq IS NULL)")
        if row is None or not row[0]:
            return
        self._x("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self.store._numbering,))
        self._x(_NUMBER)  # a statement after the lock: its snapshot sees the last numbering
        self.unnumbered = 0

    def events(self, after: int = 0, limit: int | None = None) -> list[Recorded]:
        self.settle()
        rows = self._all(
            "SELECT seq, data FROM events WHERE seq > %s ORDER BY seq LIMIT %s", (after, limit)
        )
        if rows:
            self.store._last_seq = max(self.store._last_seq, int(rows[-1][0]))
        return [Recorded(int(seq), codec.loads(data)) for seq, data in rows]

    def committed_events(self) -> list[Recorded]:
        """After the commit: the events this transaction appended, in append order, with
        their final log positions (numbering them now if no reader has yet)."""
        if not self.appended:
            return []
        ids = [i for i, _ in self.appended]
        sql = "SELECT id, seq FROM events WHERE id = ANY(%s)"
        found = {int(i): s for i, s in self.store._read(sql, (ids,))}
        if any(found.get(i) is None for i in ids):
            self.store.settle()
            found = {int(i): s for i, s in self.store._read(sql, (ids,))}
        missing = [i for i in ids if found.get(i) is None]
        if missing:
            raise StoreError(
                f"{self.store.where}: {len(missing)} event(s) this transaction appended are "
                "not in the log; it did not commit.",
                "ask for committed events only after the transaction committed.",
                store=self.store.where,
            )
        return [Recorded(int(found[i]), r.event) for i, r in self.appended]

    def put_operation(self, operation: Operation) -> None:
        self.kept.append(operation.id)  # looked up too if the commit's reply is lost
        self._defer(  # pipelined with the commit: no round trip of its own
            self._sql_put_operation,
            (
                operation.id,
                operation.kind,
                operation.request,
                operation.result,
                micros(operation.at),
            ),
        )

    def lock(self, name: str) -> None:
        self._x("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (name,))
