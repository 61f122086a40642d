"""Many processes against one PostgreSQL queue: zero double releases, nothing lost."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from spe_core import Engine, Member, Opportunity, OpportunityStatus, QueuePolicy
from spe_core.events import LeaseExpired, OpportunityReleased
from spe_core.plugins import Plugins
from spe_core.testing import FakeClock
from tests.pg import drop_test_schemas, needs_postgres, schema_url

pytestmark = [needs_postgres, pytest.mark.postgres, pytest.mark.slow]

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
WORKERS = 16
MEMBERS = 4
N = int(os.environ.get("SPE_TEST_PG_OPPORTUNITIES", "100000"))
POLICY = QueuePolicy(
    target=N, daily_pull_cap=None, default_wip_limit=5, lease=timedelta(hours=1), stale_age=None
)


def _engine(url: str) -> Engine:
    from spe_core.store.postgres import PostgresStore

    return Engine(
        PostgresStore(url, max_size=1),
        policy=POLICY,
        clock=FakeClock(T0),
        plugins=Plugins.create(entry_points=False),
    )


def _worker(url: str, index: int, out: mp.Queue[list[str]]) -> None:
    engine = _engine(url)
    members = [f"w{index:02d}m{k}" for k in range(MEMBERS)]
    got: list[str] = []
    idle = 0
    k = 0
    while idle < len(members):
        member = members[k % len(members)]
        k += 1
        result = engine.pull(member, 5)
        if not result.released:
            idle += 1
            continue
        idle = 0
        for opp in result.released:
            got.append(opp.id)
            engine.resolve(opp.id, member, "won")
    engine.store.close()
    out.put(got)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> object:
    yield None
    drop_test_schemas()


def _seed(url: str, n: int) -> Engine:
    engine = _engine(url)
    engine.upsert_members(
        Member(f"w{i:02d}m{k}", f"Worker {i}/{k}", "inside_sales")
        for i in range(WORKERS)
        for k in range(MEMBERS)
    )
    batch: list[Opportunity] = []
    for i in range(n):
        batch.append(
            Opportunity(
                f"o{i:06d}",
                f"a{i % 997}",
                T0 - timedelta(seconds=i % 5000),
                tier=i % 3,
                score=float(i % 101),
            )
        )
        if len(batch) == 5000:
            engine.enqueue(batch)
            batch = []
    if batch:
        engine.enqueue(batch)
    return engine


def test_sixteen_workers_pull_and_resolve_everything_exactly_once() -> None:
    url = schema_url()
    engine = _seed(url, N)
    ctx = mp.get_context("spawn")
    out: mp.Queue[list[str]] = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, i, out)) for i in range(WORKERS)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get(timeout=1200) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    elapsed = time.perf_counter() - started
    pulled = Counter(oid for got in results for oid in got)
    assert max(pulled.values()) == 1, "an opportunity was released twice"
    assert len(pulled) == N, f"lost {N - len(pulled)} opportunities"
    assert sum(1 for got in results if got) == WORKERS, "every worker took part"
    releases = Counter(
        r.event.opportunity_id
        for r in engine.store.events()
        if isinstance(r.event, OpportunityReleased)
    )
    assert len(releases) == N
    assert set(releases.values()) == {1}
    seqs = [r.seq for r in engine.store.events()]
    assert seqs == list(range(1, len(seqs) + 1)), "event sequence has gaps or reorders"
    assert engine.queue_status().level == 0
    print(
        f"\n{N} pull+resolve cycles by {WORKERS} processes in {elapsed:.1f}s ({N / elapsed:.0f}/s)"
    )
    engine.store.close()


def _hold_then_hang(url: str, ready: mp.Queue[str]) -> None:
    engine = _engine(url)
    result = engine.pull("w00m0")
    ready.put(result.released[0].id)
    time.sleep(600)  # killed long before this


def test_a_worker_killed_while_holding_a_claim_loses_nothing() -> None:
    url = schema_url()
    engine = _seed(url, 3)
    ctx = mp.get_context("spawn")
    ready: mp.Queue[str] = ctx.Queue()
    victim = ctx.Process(target=_hold_then_hang, args=(url, ready))
    victim.start()
    held = ready.get(timeout=60)
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(30)
    assert engine.opportunity(held).status is OpportunityStatus.RELEASED
    assert engine.opportunity(held).owner_id == "w00m0"
    clock = engine.clock
    assert isinstance(clock, FakeClock)
    clock.advance(hours=1)
    assert engine.expire_leases() == (held,)
    assert engine.opportunity(held).status is OpportunityStatus.QUEUED
    taken = [o.id for o in engine.pull("w01m0", 5).released]
    assert held in taken
    assert sorted(taken) == sorted(o.id for o in engine.store.opportunities())
    kinds = [type(r.event) for r in engine.store.events()]
    assert LeaseExpired in kinds
    engine.store.close()
