"""Eight processes pull from one SQLite file: zero duplicates, nothing lost."""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spe_core import Engine, Member, Opportunity, OpportunityStatus, QueuePolicy
from spe_core.events import OpportunityReleased
from spe_core.plugins import Plugins
from spe_core.store.sqlite import SQLiteStore
from spe_core.testing import FakeClock

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
PROCESSES = 8
MEMBERS_PER_PROCESS = 4
N = 1_600
POLICY = QueuePolicy(target=N, daily_pull_cap=None, default_wip_limit=2)


def _worker(path: str, index: int, out: mp.Queue[list[str]]) -> None:
    engine = Engine(
        SQLiteStore(path),
        policy=POLICY,
        clock=FakeClock(T0),
        plugins=Plugins.create(entry_points=False),
    )
    members = [f"w{index}m{k}" for k in range(MEMBERS_PER_PROCESS)]
    got: list[str] = []
    k = 0
    while True:
        member = members[k % len(members)]
        k += 1
        result = engine.pull(member, 2)
        if not result.released:
            break
        for opp in result.released:
            got.append(opp.id)
            engine.resolve(opp.id, member, "won")
    out.put(got)


def test_eight_processes_share_one_sqlite_queue(tmp_path: Path) -> None:
    path = str(tmp_path / "spe.db")
    store = SQLiteStore(path)
    engine = Engine(
        store, policy=POLICY, clock=FakeClock(T0), plugins=Plugins.create(entry_points=False)
    )
    engine.upsert_members(
        Member(f"w{i}m{k}", f"Worker {i}/{k}", "inside_sales")
        for i in range(PROCESSES)
        for k in range(MEMBERS_PER_PROCESS)
    )
    engine.enqueue(
        Opportunity(f"o{i:05d}", "acct", T0 - timedelta(seconds=i), score=i % 17) for i in range(N)
    )
    ctx = mp.get_context("spawn")
    out: mp.Queue[list[str]] = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(path, i, out)) for i in range(PROCESSES)]
    for w in workers:
        w.start()
    results = [out.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    pulled = Counter(oid for got in results for oid in got)
    assert max(pulled.values()) == 1, "an opportunity was released twice"
    assert len(pulled) == N, "an opportunity was lost"
    assert sum(1 for got in results if got) >= 2, "the processes did not run concurrently"
    releases = Counter(
        r.event.opportunity_id for r in store.events() if isinstance(r.event, OpportunityReleased)
    )
    assert set(releases.values()) == {1}
    assert sum(1 for _ in store.opportunities(OpportunityStatus.RESOLVED)) == N
    seqs = [r.seq for r in store.events()]
    assert seqs == list(range(1, len(seqs) + 1))
