"""Benchmark: pull + resolve throughput of the pull queue on each embedded store.

For 100k and 1M queued opportunities and 1,000 inside salespeople, time N
pull+resolve cycles through the Engine, and beside it, in the same run, a
baseline doing the bare minimum on the same data:

- memory store vs ``heapq``: heappop of the same (rank, id) tuples to claim
  and a dict write to resolve;
- SQLite store vs a bare loop on the same kind of file (WAL, synchronous=NORMAL):
  ``UPDATE ... SET status='released' WHERE id = (SELECT id ... ORDER BY rank
  LIMIT 1)`` to claim, ``UPDATE ... SET status='resolved'`` to resolve, one
  commit each.

Prints each ratio (ours / baseline, per cycle) and the growth of the per-pull
cost from 100k to 1M against log n. Run:

    .venv/bin/python benchmarks/queue_pull.py            # 100k and 1M
    .venv/bin/python benchmarks/queue_pull.py --quick    # 2k and 20k, for CI
"""

from __future__ import annotations

import argparse
import heapq
import math
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _verdict import finish

from spe_core import queue
from spe_core.engine import Engine
from spe_core.model import Member, Opportunity, OpportunityStatus
from spe_core.plugins import Plugins
from spe_core.queue import QueuePolicy
from spe_core.store.base import Store
from spe_core.store.memory import MemoryStore
from spe_core.store.sqlite import SQLiteStore
from spe_core.testing import FakeClock

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
POLICY = QueuePolicy(
    target=10, default_wip_limit=3, daily_pull_cap=None, lease=None, stale_age=None
)


def opportunities(n: int) -> Iterator[Opportunity]:
    """n queued opportunities with spread-out tiers, scores and times (deterministic)."""
    for i in range(n):
        yield Opportunity(
            id=f"o{i:08d}",
            account_id=f"a{i % 9973}",
            queued_at=T0 + timedelta(seconds=(i * 7919) % 86_400),
            tier=i % 3,
            score=float((i * 104_729) % 1000),
        )


def fill(engine: Engine, n: int) -> None:
    batch: list[Opportunity] = []
    for opp in opportunities(n):
        batch.append(opp)
        if len(batch) == 10_000:
            engine.enqueue(batch)
            batch = []
    if batch:
        engine.enqueue(batch)


def team(members: int) -> list[Member]:
    return [Member(f"m{i:04d}", f"Member {i}", "inside_sales") for i in range(members)]


def time_engine(store: Store, n: int, cycles: int, members: int) -> float:
    """Seconds per pull+resolve cycle through the engine."""
    clock = FakeClock(T0 + timedelta(days=1))
    engine = Engine(store, policy=POLICY, clock=clock, plugins=Plugins.create(entry_points=False))
    engine.upsert_members(team(members))
    fill(engine, n)
    ids = [f"m{i:04d}" for i in range(members)]
    start = time.perf_counter()
    for k in range(cycles):
        member = ids[k % members]
        result = engine.pull(member)
        opp = result.released[0]
        engine.resolve(opp.id, member, "won")
    elapsed = time.perf_counter() - start
    with store.transaction() as tx:
        assert tx.count(OpportunityStatus.RESOLVED) == cycles
    return elapsed / cycles


def time_heapq(n: int, cycles: int) -> float:
    """Seconds per claim+resolve with heapq and a dict, on the same (rank, id) tuples."""
    heap = [(queue.rank_key(o), o.id) for o in opportunities(n)]
    heapq.heapify(heap)
    status: dict[str, str] = {}
    start = time.perf_counter()
    for _ in range(cycles):
        _, oid = heapq.heappop(heap)
        status[oid] = "released"
        status[oid] = "resolved"
    return (time.perf_counter() - start) / cycles


def time_bare_sqlite(path: Path, n: int, cycles: int) -> float:
    """Seconds per claim+resolve with bare SQL on the same kind of file."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, status TEXT NOT NULL, rank BLOB NOT NULL)")
    conn.execute("CREATE INDEX t_ranked ON t (status, rank)")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO t VALUES (?, 'queued', ?)",
        ((o.id, queue.rank_key(o)) for o in opportunities(n)),
    )
    conn.execute("COMMIT")
    start = time.perf_counter()
    for _ in range(cycles):
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(
            "UPDATE t SET status = 'released' WHERE id = (SELECT id FROM t WHERE status = "
            "'queued' ORDER BY rank LIMIT 1) RETURNING id"
        ).fetchone()
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE t SET status = 'resolved' WHERE id = ?", (row[0],))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed / cycles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    sizes = (2_000, 20_000) if args.quick else (100_000, 1_000_000)
    cycles = 300 if args.quick else 5_000
    members = 100 if args.quick else 1_000
    figures: dict[str, float] = {}
    per_pull: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="spe-bench-") as tmp:
        for n in sizes:
            mem = time_engine(MemoryStore(), n, cycles, members)
            base_mem = time_heapq(n, cycles)
            sq = time_engine(SQLiteStore(Path(tmp) / f"spe-{n}.db"), n, cycles, members)
            base_sq = time_bare_sqlite(Path(tmp) / f"bare-{n}.db", n, cycles)
            per_pull[("memory", n)] = mem
            per_pull[("sqlite", n)] = sq
            label = f"{n // 1000}k"
            figures[f"memory_vs_heapq_{label}"] = round(mem / base_mem, 2)
            figures[f"sqlite_vs_bare_loop_{label}"] = round(sq / base_sq, 2)
            print(
                f"n={n:>9,}  memory {mem * 1e6:8.1f} us/cycle  heapq {base_mem * 1e6:6.2f} us"
                f"  ratio {mem / base_mem:6.2f}  |  sqlite {sq * 1e6:8.1f} us/cycle  bare "
                f"{base_sq * 1e6:7.1f} us  ratio {sq / base_sq:5.2f}",
                flush=True,
            )
    small, large = sizes
    log_growth = math.log(large) / math.log(small)
    for name in ("memory", "sqlite"):
        growth = per_pull[(name, large)] / per_pull[(name, small)]
        figures[f"{name}_growth_over_log_growth"] = round(growth / log_growth, 2)
        print(
            f"{name}: per-pull cost x{growth:.2f} from {small:,} to {large:,} "
            f"(log n grows x{log_growth:.2f})"
        )
    targets = {}
    for label in (f"{s // 1000}k" for s in sizes):
        targets[f"memory_vs_heapq_{label}"] = "<= 3.0"
        targets[f"sqlite_vs_bare_loop_{label}"] = "<= 2.0"
    targets["memory_growth_over_log_growth"] = "<= 1.0"
    targets["sqlite_growth_over_log_growth"] = "<= 1.0"
    return finish("queue_pull", figures, targets, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
