"""The daily jobs of ``spe serve`` on a schedule: the morning top-up at a local time in
each team time zone, lease and stale sweeps and SLA escalation every few minutes.

**Once per tick, however many replicas.** A job runs in one unit of work that first
locks the job's name in the store, reads when it last ran (store metadata
``serve:jobs:<name>``), runs only when due, and writes the new time in the same
transaction. Two replicas that tick together serialise on the lock and the second
finds the job done. On PostgreSQL one replica is also the *leader* (a session
advisory lock, :class:`PostgresLeadership`), so the others do not even try: when the
leader dies its database session ends, the lock is free, and another replica takes
over at its next tick (within ``tick`` seconds plus the time PostgreSQL needs to
notice the dead connection; TCP keep-alives bound that to about 15 s).

:func:`is_due` is the pure rule (values in, a decision out); :class:`Scheduler` applies
it on a thread beside the web server.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import attrs

from spe_core.engine import Engine
from spe_core.errors import InvalidValue

__all__ = [
    "Job",
    "Leadership",
    "LocalLeadership",
    "PostgresLeadership",
    "Scheduler",
    "daily_jobs",
    "is_due",
    "leadership_for",
    "sync_with",
]

log = logging.getLogger("spe_serve.scheduler")
META = "serve:jobs:"


@attrs.frozen
class Job:
    """A job: every ``every``, or once a day at ``at`` local time in ``time_zone``."""

    name: str
    run: Callable[[Engine], object] = attrs.field(eq=False, repr=False)
    every: timedelta | None = None
    at: time | None = None
    time_zone: str = "UTC"
    in_unit: bool = True
    """Run inside the unit that claims the tick (the work and the time commit together;
    a failure leaves nothing and is tried at the next check). False for jobs that talk
    to the outside for long (the CRM sync): the tick is claimed in a short transaction,
    then the job runs outside it, so it never holds the store's lock while it waits on
    the CRM; a failed run is tried again at the next interval."""

    def __attrs_post_init__(self) -> None:
        if (self.every is None) == (self.at is None):
            raise InvalidValue(
                f"job {self.name!r} needs exactly one of every= and at=.",
                "give an interval (every=timedelta(minutes=5)) or a local time (at=time(7)).",
            )
        if self.every is not None and self.every <= timedelta(0):
            raise InvalidValue(
                f"job {self.name!r} runs every {self.every}.", "use a positive interval."
            )
        ZoneInfo(self.time_zone)  # an unknown zone fails here


def is_due(job: Job, last_run: datetime | None, now: datetime) -> bool:
    """Whether ``job``, last run at ``last_run`` (None: never), is due at ``now`` (aware).

    An interval job is due once ``every`` has passed. A daily job is due once the
    latest local ``at`` on or before ``now`` is later than its last run: it runs at
    most once per local day, and a replica that starts after that day's time (or a
    leader that took over late) still runs that day's job once.
    """
    if job.every is not None:
        return last_run is None or now - last_run >= job.every
    assert job.at is not None
    zone = ZoneInfo(job.time_zone)
    local = now.astimezone(zone)
    occurrence = datetime.combine(local.date(), job.at, tzinfo=zone)
    if occurrence > local:
        occurrence = datetime.combine(local.date() - timedelta(days=1), job.at, tzinfo=zone)
    return last_run is None or last_run < occurrence


def daily_jobs(
    engine: Engine,
    *,
    replenish_at: time | None = time(7, 0),
    sweep_every: timedelta | None = timedelta(minutes=5),
    escalate_every: timedelta | None = timedelta(minutes=5),
    sync: Callable[[Engine], object] | None = None,
    sync_every: timedelta = timedelta(minutes=10),
) -> list[Job]:
    """SPE's routine: the top-up at ``replenish_at`` in the time zone of each team that
    pulls (the members whose role may pull), the sweeps, the SLA escalation and, given
    ``sync`` (see :func:`sync_with`), the CRM sync every ``sync_every``."""
    jobs: list[Job] = []
    if sync is not None:
        jobs.append(Job("sync", sync, every=sync_every, in_unit=False))
    if replenish_at is not None:
        zones = sorted(
            {
                m.time_zone
                for m in engine.members()
                if m.active and m.role in engine.policy.pull_roles
            }
        ) or ["UTC"]
        for zone in zones:
            jobs.append(
                Job(f"replenish@{zone}", lambda e: e.replenish(), at=replenish_at, time_zone=zone)
            )
    if sweep_every is not None:
        jobs.append(Job("sweep", lambda e: e.sweep(), every=sweep_every))
    if escalate_every is not None:
        jobs.append(Job("escalate", lambda e: e.escalate_overdue(), every=escalate_every))
    return jobs


def sync_settings(cfg: Any) -> Any:
    """The :class:`~spe_core.sync.SyncSettings` of ``cfg``'s ``[sync]`` table."""
    from spe_core.outbox import RetryPolicy
    from spe_core.sync import SyncSettings

    return SyncSettings(
        clock_skew=timedelta(minutes=cfg.sync["clock_skew_minutes"]),
        conflicts=cfg.sync["conflicts"],
        retry=RetryPolicy(max_permanent_failures=cfg.sync["max_permanent_failures"]),
    )


def adapter_class(cfg: Any) -> Any:
    """The installed adapter class ``cfg``'s ``[adapter] name`` names."""
    from spe_core.errors import ConfigError
    from spe_core.plugins import Plugins

    found = Plugins.create().adapters()
    cls = found.get(cfg.adapter)
    if cls is None:
        raise ConfigError(
            f"[adapter] name = {cfg.adapter!r} is not an installed adapter.",
            f"install its package, or use one of: {', '.join(sorted(found)) or 'none'}.",
        )
    return cls


def sync_with(cfg: Any) -> Callable[[Engine], object]:
    """A job that runs the CRM sync the way ``spe sync`` does, with the adapter and the
    ``[sync]`` settings of ``cfg`` (a :class:`spe_core.config.Config`)."""
    from spe_core.sync import SyncEngine

    cls = adapter_class(cfg)
    settings = sync_settings(cfg)

    def run(engine: Engine) -> object:
        adapter = cls.from_config(cfg.adapter_options)
        try:
            report = SyncEngine(engine, adapter, settings).run()
        finally:
            adapter.close()
        return report

    return run


class Leadership(Protocol):
    """Who among the replicas runs the jobs."""

    def acquire(self) -> bool:
        """Whether this replica leads now (taking the lead when it is free)."""
        ...

    def release(self) -> None:
        """Give the lead up (on shutdown)."""
        ...


class LocalLeadership:
    """One process per store (SQLite, memory): it always leads. Replicas sharing a store
    still run each job once per tick (the job's lock and last-run time)."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


def _conninfo(url: str) -> str:
    """The store URL without spe's own query parameters (schema, pool sizes)."""
    parts = urlsplit(url)
    query = [
        (k, v) for k, v in parse_qsl(parts.query) if k not in ("schema", "pool_min", "pool_max")
    ]
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


class PostgresLeadership:
    """The lead is a session advisory lock held on a connection of its own.

    The key is derived from the store's schema, so stores in different schemas of one
    database have one leader each. A dead leader's session ends and frees the lock;
    keep-alives make PostgreSQL notice a vanished host in about 15 seconds.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        schema = dict(parse_qsl(urlsplit(url).query)).get("schema", "public")
        digest = hashlib.sha256(f"spe-serve-scheduler:{schema}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)
        self._conn: Any = None
        self._held = False

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            _conninfo(self.url),
            autocommit=True,
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        )

    def acquire(self) -> bool:
        try:
            if self._conn is None or self._conn.closed:
                self._conn, self._held = self._connect(), False
            if self._held:
                self._conn.execute("SELECT 1")  # still our session, so still our lock
                return True
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            self._held = bool(row and row[0])
        except Exception as exc:  # the database is away: nobody here leads
            log.warning("leader lease: %s", type(exc).__name__)
            self.release()
            return False
        return self._held

    def release(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                conn.close()  # ending the session frees the lock


def leadership_for(url: str) -> Leadership:
    """PostgreSQL stores elect a leader; the embedded stores have one process."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresLeadership(url)
    return LocalLeadership()


class Scheduler:
    """Runs due jobs every ``tick`` on a thread, while this replica leads."""

    def __init__(
        self,
        engine: Engine,
        jobs: Sequence[Job],
        leadership: Leadership | None = None,
        *,
        tick: timedelta = timedelta(seconds=30),
    ) -> None:
        names = [j.name for j in jobs]
        if len(set(names)) != len(names):
            raise InvalidValue("two jobs share a name.", "give every job its own name.")
        self.engine = engine
        self.jobs = list(jobs)
        self.leadership = leadership or leadership_for(engine.store.url)
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self) -> list[str]:
        """One tick: the names of the jobs this replica ran (none unless it leads)."""
        if not self.leadership.acquire():
            return []
        ran: list[str] = []
        for job in self.jobs:
            try:
                if self._run_if_due(job):
                    ran.append(job.name)
            except Exception as exc:  # the next tick tries again
                log.error("job %s failed: %s", job.name, type(exc).__name__, exc_info=exc)
        return ran

    def _run_if_due(self, job: Job) -> bool:
        with self.engine.unit() as u:
            u.tx.lock(META + job.name)
            text = u.tx.get_meta(META + job.name)
            last = None if text is None else datetime.fromisoformat(text)
            if not is_due(job, last, u.now):
                return False
            if job.in_unit:
                job.run(self.engine)  # joins this unit: the job and its time commit together
            u.tx.set_meta(META + job.name, u.now.isoformat())
        if not job.in_unit:
            job.run(self.engine)  # claimed above; its own units commit as it goes
        log.info("job %s ran", job.name)
        return True

    def last_runs(self) -> dict[str, datetime | None]:
        """When each job last ran (None: never)."""
        with self.engine.unit() as u:
            texts = {j.name: u.tx.get_meta(META + j.name) for j in self.jobs}
        return {k: None if v is None else datetime.fromisoformat(v) for k, v in texts.items()}

    def start(self) -> None:
        """Tick on a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="spe-scheduler", daemon=True)
        self._thread.start()
        log.info("scheduler started: %s", ", ".join(j.name for j in self.jobs))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_due()
            self._stop.wait(self.tick.total_seconds())

    def stop(self, timeout: float = 30.0) -> None:
        """Stop ticking (a job running finishes first) and give the lead up."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.leadership.release()
        log.info("scheduler stopped")
