"""The scheduled jobs of `spe serve`: the due rule (property-tested across DST), the
jobs run once per tick however many replicas tick, failures retried, and on PostgreSQL
one leader whose death hands the lead over."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time as clock_time
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spe_core import Engine, FakeClock, Member, Opportunity, Plugins, Role, open_store
from spe_core.errors import InvalidValue
from spe_core.queue import QueuePolicy
from spe_serve.scheduler import (
    META,
    Job,
    LocalLeadership,
    PostgresLeadership,
    Scheduler,
    daily_jobs,
    is_due,
)
from tests.pg import drop_test_schemas, needs_postgres, schema_url

SRC = Path(__file__).resolve().parent.parent / "src"


def _noop(engine: Engine) -> None:
    return None


# --- the rule ---------------------------------------------------------------------------


@given(
    zone=st.sampled_from(["America/New_York", "Europe/London", "Asia/Kolkata", "UTC"]),
    at=st.sampled_from([time(0, 0), time(1, 30), time(2, 30), time(7, 0), time(23, 59)]),
    start=st.datetimes(
        min_value=datetime(2026, 3, 1), max_value=datetime(2026, 11, 5), timezones=st.just(UTC)
    ),
    steps=st.lists(st.integers(min_value=1, max_value=180), min_size=1, max_size=120),
)
def test_a_daily_job_runs_once_in_each_local_day_after_its_time(
    zone: str, at: time, start: datetime, steps: list[int]
) -> None:
    job = Job("top-up", _noop, at=at, time_zone=zone)
    tz = ZoneInfo(zone)
    ticks, now = [], start
    for minutes in steps:
        now += timedelta(minutes=minutes)
        ticks.append(now)
    runs, last = [], None
    for tick in ticks:
        if is_due(job, last, tick):
            runs.append(tick)
            last = tick
    assert runs and runs[0] == ticks[0]  # never run before: the missed occurrence runs now

    def occurrence(t: datetime) -> datetime:
        """The latest local `at` on or before t (the window t falls in)."""
        local = t.astimezone(tz)
        o = datetime.combine(local.date(), at, tzinfo=tz)
        return o if o <= local else datetime.combine(local.date() - timedelta(1), at, tzinfo=tz)

    windows = [occurrence(t) for t in runs]
    assert len(set(windows)) == len(windows)  # at most one run per window
    for r in runs[1:]:
        assert r >= occurrence(r) > occurrence(runs[0])  # after the day's time, never early
    # every window a tick fell in (after the first) got its run, at its first tick
    for t in ticks[1:]:
        if occurrence(t) != occurrence(ticks[0]):
            first = min(x for x in ticks if occurrence(x) == occurrence(t))
            assert first in runs


def test_an_interval_job_waits_its_interval() -> None:
    job = Job("sweep", _noop, every=timedelta(minutes=5))
    t = datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert is_due(job, None, t)
    assert not is_due(job, t, t + timedelta(minutes=4, seconds=59))
    assert is_due(job, t, t + timedelta(minutes=5))


def test_a_job_is_either_daily_or_periodic() -> None:
    with pytest.raises(InvalidValue):
        Job("x", _noop)
    with pytest.raises(InvalidValue):
        Job("x", _noop, every=timedelta(minutes=1), at=time(7))
    with pytest.raises(InvalidValue):
        Job("x", _noop, every=timedelta(0))
    with pytest.raises(Exception, match="Mars"):
        Job("x", _noop, at=time(7), time_zone="Mars/Olympus")


# --- the scheduler on SQLite -----------------------------------------------------------

LONDON_6AM = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # Monday; London is on UTC in March


def _engine(url: str, clock: FakeClock) -> Engine:
    return Engine(
        open_store(url),
        clock=clock,
        policy=QueuePolicy(target=4),
        plugins=Plugins.create(entry_points=False),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(LONDON_6AM)


@pytest.fixture
def engine(tmp_path: Path, clock: FakeClock) -> Any:
    e = _engine(f"sqlite:///{tmp_path / 'spe.db'}", clock)
    e.upsert_members(
        [
            Member("ann", "Ann", Role.INSIDE_SALES, time_zone="Europe/London"),
            Member("bob", "Bob", Role.INSIDE_SALES, time_zone="America/New_York"),
            Member("cs", "Cas", Role.CUSTOMER_SERVICE, time_zone="Asia/Tokyo"),
        ]
    )
    yield e
    e.close()


def test_the_top_up_runs_each_morning_in_each_team_time_zone(
    engine: Engine, clock: FakeClock
) -> None:
    names = [j.name for j in daily_jobs(engine)]
    assert names == ["replenish@America/New_York", "replenish@Europe/London", "sweep", "escalate"]
    scheduler = Scheduler(engine, daily_jobs(engine), LocalLeadership())
    assert sorted(scheduler.run_due()) == sorted(names)  # first start: yesterday's are missed
    engine.add_to_backlog([Opportunity(f"o{i}", "a") for i in range(20)])
    clock.advance(minutes=59)  # 06:59 in London
    assert scheduler.run_due() == ["sweep", "escalate"]
    clock.advance(minutes=1)  # 07:00 in London, 02:00 in New York
    assert scheduler.run_due() == ["replenish@Europe/London"]
    assert engine.queue_status().level == 4
    clock.advance(minutes=5)
    assert scheduler.run_due() == ["sweep", "escalate"]
    clock.set(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))  # 07:00 in New York
    assert scheduler.run_due() == ["replenish@America/New_York", "sweep", "escalate"]
    clock.set(datetime(2026, 3, 3, 7, 0, tzinfo=UTC))  # the next morning in London
    assert "replenish@Europe/London" in scheduler.run_due()
    last = scheduler.last_runs()
    assert last["replenish@Europe/London"] == datetime(2026, 3, 3, 7, 0, tzinfo=UTC)


def test_replicas_ticking_together_run_each_job_once(
    tmp_path: Path, engine: Engine, clock: FakeClock
) -> None:
    others = [_engine(engine.store.url, clock) for _ in range(3)]
    try:
        schedulers = [Scheduler(e, daily_jobs(e), LocalLeadership()) for e in [engine, *others]]
        for _ in range(3):
            ran: list[str] = []
            barrier = threading.Barrier(len(schedulers))

            def tick(s: Scheduler, ran: list[str] = ran, barrier: Any = barrier) -> None:
                barrier.wait()
                ran.extend(s.run_due())

            threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(ran) == sorted(set(ran))  # nobody ran a job twice
            clock.advance(minutes=5)
        assert sorted(ran) == ["escalate", "sweep"]
    finally:
        for e in others:
            e.close()


def test_a_failing_job_is_logged_and_tried_again(
    engine: Engine, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def flaky(e: Engine) -> None:
        calls.append(1)
        if len(calls) == 1:
            e.enqueue([Opportunity("half-done", "a")])  # rolled back with the failure
            raise RuntimeError("boom")

    scheduler = Scheduler(
        engine,
        [Job("flaky", flaky, every=timedelta(minutes=5)), Job("ok", _noop, every=timedelta(1))],
        LocalLeadership(),
    )
    with caplog.at_level(logging.ERROR, "spe_serve.scheduler"):
        assert scheduler.run_due() == ["ok"]
    assert "job flaky failed: RuntimeError" in caplog.text
    assert scheduler.last_runs()["flaky"] is None
    assert engine.queue_status().level == 0  # the failed job's work was rolled back
    assert scheduler.run_due() == ["flaky"]  # next tick, no need to wait the interval


def test_nobody_leading_runs_nothing(engine: Engine) -> None:
    class Follower(LocalLeadership):
        def acquire(self) -> bool:
            return False

    assert Scheduler(engine, daily_jobs(engine), Follower()).run_due() == []
    with engine.unit() as u:
        assert u.tx.get_meta(META + "sweep") is None


def test_the_app_starts_and_stops_the_scheduler(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from spe_serve.app import create_app

    scheduler = Scheduler(engine, daily_jobs(engine), tick=timedelta(seconds=0.05))
    with caplog.at_level(logging.INFO, "spe_serve.scheduler"):
        with TestClient(create_app(engine, scheduler=scheduler)) as client:
            assert client.get("/healthz").status_code == 200
            deadline = clock_time.monotonic() + 10
            while scheduler.last_runs()["sweep"] is None and clock_time.monotonic() < deadline:
                clock_time.sleep(0.02)
        assert scheduler._thread is None
    assert scheduler.last_runs()["sweep"] is not None
    assert "scheduler started" in caplog.text and "scheduler stopped" in caplog.text


# --- PostgreSQL: one leader --------------------------------------------------------------


@needs_postgres
@pytest.mark.postgres
def test_postgres_elects_one_leader_and_hands_over_on_release() -> None:
    url = schema_url()
    a, b, other = PostgresLeadership(url), PostgresLeadership(url), PostgresLeadership(schema_url())
    try:
        assert a.acquire() and a.acquire()
        assert not b.acquire()
        assert other.acquire()  # another schema, another store: its own leader
        a.release()
        # the unlock reaches the server a moment later under load: wait for it, bounded
        deadline = clock_time.monotonic() + 10
        while not b.acquire() and clock_time.monotonic() < deadline:
            clock_time.sleep(0.1)
        assert b.acquire() and not a.acquire()
    finally:
        for lease in (a, b, other):
            lease.release()


@needs_postgres
@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_a_killed_leader_is_replaced_within_seconds() -> None:
    url = schema_url()
    code = (
        "import sys, time\n"
        "from spe_serve.scheduler import PostgresLeadership\n"
        "lease = PostgresLeadership(sys.argv[1])\n"
        "assert lease.acquire()\n"
        "print('leading', flush=True)\n"
        "time.sleep(120)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    leader = subprocess.Popen(
        [sys.executable, "-c", code, url], env=env, stdout=subprocess.PIPE, text=True
    )
    follower = PostgresLeadership(url)
    try:
        assert leader.stdout is not None and leader.stdout.readline().strip() == "leading"
        assert not follower.acquire()
        leader.send_signal(signal.SIGKILL)
        leader.wait(10)
        killed = clock_time.monotonic()
        while not follower.acquire():
            assert clock_time.monotonic() - killed < 15, "the lead was not taken over"
            clock_time.sleep(0.1)
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait(10)
        follower.release()


@needs_postgres
@pytest.mark.postgres
def test_postgres_two_replicas_run_each_job_once(clock: FakeClock) -> None:
    url = schema_url()
    engines = [_engine(url, clock) for _ in range(2)]
    try:
        engines[0].upsert_members([Member("ann", "Ann", Role.INSIDE_SALES)])
        engines[0].add_to_backlog([Opportunity(f"o{i}", "a") for i in range(10)])
        # no leader lease here: the job's lock and last-run time alone keep it to one run
        schedulers = [Scheduler(e, daily_jobs(e), LocalLeadership()) for e in engines]
        ran: list[str] = []
        threads = [threading.Thread(target=lambda s=s: ran.extend(s.run_due())) for s in schedulers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(ran) == ["escalate", "replenish@UTC", "sweep"]
        assert engines[0].queue_status().level == 4
    finally:
        for e in engines:
            e.close()
        drop_test_schemas()


# --- the CRM sync on a schedule ------------------------------------------------------------


def test_the_sync_runs_on_its_interval_outside_the_claiming_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the HubSpot emulator, with spe.toml's adapter, as `spe serve` runs it."""
    emulator = pytest.importorskip("spe_adapters.hubspot.emulator.server")
    from spe_core import config as config_module
    from spe_serve.scheduler import sync_with
    from spe_serve.setup import engine_from_config
    from tests.doc_examples import CRM_CONFIG

    with emulator.EmulatorServer() as server:
        token = server.portal.seed(deals=12)["access_token"]
        monkeypatch.setenv("SPE_DOCS_HUBSPOT_TOKEN", token)
        monkeypatch.chdir(tmp_path)
        Path("spe.toml").write_text(CRM_CONFIG.format(url=server.url), encoding="utf-8")
        cfg = config_module.load("spe.toml")
        clock = FakeClock(datetime(2026, 3, 2, 10, tzinfo=UTC))
        engine = engine_from_config(cfg)
        engine.clock = clock
        try:
            inner, free = sync_with(cfg), []

            def sync(e: Engine) -> object:
                # nobody holds the store's write lock while the sync talks to the CRM
                other = sqlite3.connect(tmp_path / "spe-hubspot.db", timeout=0)
                try:
                    other.execute("BEGIN IMMEDIATE")
                    other.execute("ROLLBACK")
                    free.append(True)
                finally:
                    other.close()
                return inner(e)

            scheduler = Scheduler(
                engine, daily_jobs(engine, replenish_at=None, sync=sync), LocalLeadership()
            )
            assert scheduler.run_due() == ["sync", "sweep", "escalate"]
            assert len(engine.members()) == 4 and engine.queue_status().backlog == 12
            calls = sum(server.requests.counts().values())
            clock.advance(minutes=5)
            assert scheduler.run_due() == ["sweep", "escalate"]  # the sync waits 10 minutes
            assert sum(server.requests.counts().values()) == calls
            clock.advance(minutes=5)
            assert scheduler.run_due() == ["sync", "sweep", "escalate"]
            assert sum(server.requests.counts().values()) > calls
            assert free == [True, True]
        finally:
            engine.close()
