"""Benchmark: route 100k tasks over 500 members, on the memory and SQLite stores.

Beside it, in the same run, the baseline does the least a router can: a dict
lookup of the task kind's role, then ``min()`` over that role's members by
open-task load. Ours does the whole rule: availability (working hours, time
zone, absences, holidays), capacity, skills, no bouncing, the strategy, the
SLA deadlines in working time, fairness state, one event per task, all in
store transactions of 1,000 tasks. Run:

    .venv/bin/python benchmarks/route.py            # 100k tasks, 500 members
    .venv/bin/python benchmarks/route.py --quick    # 2k tasks, 100 members
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _verdict import finish

from spe_core.engine import Engine
from spe_core.model import Member, Task, TaskKind
from spe_core.plugins import Plugins
from spe_core.routing import RoutingTable
from spe_core.store.base import Store
from spe_core.store.memory import MemoryStore
from spe_core.store.sqlite import SQLiteStore
from spe_core.testing import FakeClock

NOW = datetime(2026, 1, 5, 10, tzinfo=UTC)
KINDS = (TaskKind.ADMIN, TaskKind.ORDER_ENTRY, TaskKind.SERVICE_REQUEST, TaskKind.QUOTE)
TABLE = RoutingTable(default_capacity=10**6)


def team(n: int) -> list[Member]:
    return [Member(f"cs{i:04d}", f"CSR {i}", "customer_service") for i in range(n)]


def tasks(n: int) -> list[Task]:
    return [Task(f"t{i:07d}", KINDS[i % len(KINDS)], f"acct{i % 5000}", NOW) for i in range(n)]


def time_engine(store: Store, members: int, n: int) -> float:
    engine = Engine(
        store, clock=FakeClock(NOW), routing_table=TABLE, plugins=Plugins.create(entry_points=False)
    )
    engine.upsert_members(team(members))
    work = tasks(n)
    start = time.perf_counter()
    for i in range(0, n, 1000):
        routed = engine.route_tasks(work[i : i + 1000])
        assert all(t.assignee_id for t in routed)
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed / n


def time_baseline(members: int, n: int) -> float:
    role_of = {k.value: "customer_service" for k in KINDS}
    by_role = {"customer_service": [m.id for m in team(members)]}
    loads = dict.fromkeys(by_role["customer_service"], 0)
    work = tasks(n)
    start = time.perf_counter()
    for task in work:
        candidates = by_role[role_of[task.kind]]
        chosen = min(candidates, key=loads.__getitem__)
        loads[chosen] += 1
    return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    members, n = (100, 2_000) if args.quick else (500, 100_000)
    base = time_baseline(members, n)
    mem = time_engine(MemoryStore(), members, n)
    with tempfile.TemporaryDirectory() as tmp:
        sq = time_engine(SQLiteStore(Path(tmp) / "route.db"), members, n)
    print(f"{n:,} tasks over {members} members")
    print(f"baseline (dict + min over loads): {base * 1e6:8.1f} us/task")
    print(f"memory store:                     {mem * 1e6:8.1f} us/task  ratio {mem / base:6.2f}")
    print(f"SQLite store:                     {sq * 1e6:8.1f} us/task  ratio {sq / base:6.2f}")
    figures = {
        "memory_vs_baseline": round(mem / base, 2),
        "sqlite_vs_baseline": round(sq / base, 2),
        "memory_tasks_per_s": round(1 / mem),
        "sqlite_tasks_per_s": round(1 / sq),
    }
    return finish("route", figures, {"memory_vs_baseline": "<= 3.0"}, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
