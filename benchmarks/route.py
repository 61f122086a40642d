"""Benchmark: route tasks over a team, on the memory and SQLite stores.

Beside it, in the same run, the baseline is a heap per role doing the same
capacity and availability checks in plain Python: members who can work now
(active, in working hours) in a heap by load per unit of weight; per task, pop
until one is under capacity, assign, push back with the new load, compute the
SLA deadlines with the same working-time function, append the routed task and
an event as tuples. Ours does the whole rule: availability (working hours, time zone,
absences, holidays), capacity, skills, no bouncing, the strategy, account
continuity, the SLA deadlines in working time, fairness state, one event per
task, in store transactions of 1,000 tasks, with the ``spe_choose_assignee``
hook called per task.

Figures: our per-task cost against the baseline's (target <= 3.0), and our
per-task cost at 5,000 members against 50 members (target <= 1.5: a task must
not scan its role). Run:

    .venv/bin/python benchmarks/route.py            # 20k tasks; 50, 500, 5,000 members
    .venv/bin/python benchmarks/route.py --quick    # 2k tasks; 50 and 500 members
"""

from __future__ import annotations

import argparse
import heapq
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _verdict import finish

from spe_core import worktime
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
    """A heap per role with the same capacity and availability checks; one event tuple per
    task."""
    role_of = {k.value: "customer_service" for k in KINDS}
    team_members = team(members)
    capacity = TABLE.default_capacity
    heaps: dict[str, list[tuple[float, str]]] = {"customer_service": []}
    loads: dict[str, float] = {}
    weights: dict[str, float] = {}
    for m in team_members:
        if m.active and worktime.is_working(m, NOW):
            heaps[m.role.value].append((0.0, m.id))
            loads[m.id], weights[m.id] = 0.0, m.weight
    for heap in heaps.values():
        heapq.heapify(heap)
    open_tasks: dict[str, int] = dict.fromkeys(loads, 0)
    events: list[tuple[str, str, str]] = []
    routed: list[tuple[str, str, datetime, datetime]] = []
    by_id = {m.id: m for m in team_members}
    sla = TABLE.route_for(KINDS[0]).sla
    work = tasks(n)
    start = time.perf_counter()
    for task in work:
        heap = heaps[role_of[task.kind]]
        aside = []
        while heap:
            entry = heapq.heappop(heap)
            if open_tasks[entry[1]] < capacity:
                break
            aside.append(entry)
        else:
            raise AssertionError("nobody can take the task")
        chosen = entry[1]
        loads[chosen] += 1.0
        open_tasks[chosen] += 1
        heapq.heappush(heap, (loads[chosen] / weights[chosen], chosen))
        for e in aside:
            heapq.heappush(heap, e)
        member = by_id[chosen]
        accept_by = worktime.add_working_time(member, NOW, sla.accept[task.priority])
        complete_by = worktime.add_working_time(member, NOW, sla.complete[task.priority])
        routed.append((task.id, chosen, accept_by, complete_by))
        events.append(("task.routed", task.id, chosen))
    return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args(argv)
    n = 2_000 if args.quick else 20_000
    sizes = (50, 500) if args.quick else (50, 500, 5_000)
    figures: dict[str, float] = {}
    per_task: dict[int, float] = {}
    for members in sizes:
        base = time_baseline(members, n)
        mem = per_task[members] = time_engine(MemoryStore(), members, n)
        with tempfile.TemporaryDirectory() as tmp:
            sq = time_engine(SQLiteStore(Path(tmp) / "route.db"), members, n)
        print(
            f"{n:,} tasks over {members:>5} members: heap baseline {base * 1e6:6.1f} us/task, "
            f"memory {mem * 1e6:7.1f} us (x{mem / base:5.2f}), "
            f"SQLite {sq * 1e6:7.1f} us (x{sq / base:5.2f})",
            flush=True,
        )
        figures[f"memory_vs_heap_baseline_{members}"] = round(mem / base, 2)
        figures[f"sqlite_vs_heap_baseline_{members}"] = round(sq / base, 2)
        figures[f"memory_tasks_per_s_{members}"] = round(1 / mem)
    small, large = sizes[0], sizes[-1]
    figures[f"memory_cost_{large}_over_{small}"] = round(per_task[large] / per_task[small], 2)
    targets = {
        f"memory_vs_heap_baseline_{large}": "<= 3.0",
        f"memory_cost_{large}_over_{small}": "<= 1.5",
    }
    return finish("route", figures, targets, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
