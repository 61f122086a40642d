"""Benchmark: pull + resolve throughput of the pull queue on each embedded store.

For 100k and 1M queued opportunities and 1,000 inside salespeople, time N
pull+resolve cycles through the Engine (``Engine.pull`` then
``Engine.resolve``, each its own unit of work: read, rules, write, one event,
commit), and beside it, in the same run, a baseline doing the same durable
work on the same data with nothing else:

- **memory store vs a minimal pure-Python queue of the same rule**: a heap of
  ``(rank, id)`` per eligibility class (opportunities needing the same skills
  share a class); per pull, the member's WIP counter and daily-cap counter
  (keyed by the member's local day) are checked, the best head among the
  classes the member may take is popped, its status, holder and release time
  are set, both counters go up and one event tuple is appended to a log; per
  resolve, the holder is checked, status, outcome and resolve time are set,
  the WIP counter goes down and one event tuple is appended.
- **SQLite store vs a bare loop doing the same durable work** on the same kind
  of file (WAL, ``synchronous=NORMAL``) with the same indexes as the store's
  opportunities table (the queue index ``(status, rank)``, and the holder,
  lease, queued-at and expiry indexes) and the same events table: per pull,
  ``BEGIN IMMEDIATE``, one claim ``UPDATE ... SET status, owner_id, released_at WHERE id =
  (SELECT id ... ORDER BY rank LIMIT 1) RETURNING id``, one event ``INSERT``
  (a small JSON document), ``COMMIT``; per resolve, ``BEGIN IMMEDIATE``, one
  ``UPDATE`` of status, outcome and resolve time, one event ``INSERT``,
  ``COMMIT``.

The stores are filled through their own transactions (the fill is not timed).
Each side runs in alternating rounds of 500 cycles (50 with ``--quick``) and
its figure is its best round, so a burst of load from other processes on a
shared machine hits both sides alike and does not decide a ratio.
Targets (the issue's, never loosened here): memory <= 3.0x its baseline,
SQLite <= 1.5x its baseline, and per-cycle cost growing from 100k to 1M no
more than log n does (``growth_over_log_growth <= 1.0``). A ``--quick`` run
(CI) uses small sizes and judges only the scale-free figures. Run:

    .venv/bin/python benchmarks/queue_pull.py            # 100k and 1M
    .venv/bin/python benchmarks/queue_pull.py --quick    # 2k and 20k, for CI
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import math
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from _verdict import finish

from spe_core import queue
from spe_core.engine import Engine
from spe_core.model import Member, Opportunity, OpportunityStatus
from spe_core.plugins import Plugins
from spe_core.queue import QueuePolicy
from spe_core.store.base import Store
from spe_core.store.memory import MemoryStore
from spe_core.store.sqlite import SQLiteStore, micros
from spe_core.testing import FakeClock

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
WIP = 3
CAP = 1_000_000  # a daily cap both sides count against, never reached
POLICY = QueuePolicy(
    target=10, default_wip_limit=WIP, daily_pull_cap=CAP, lease=None, stale_age=None
)
ZONE = ZoneInfo("Europe/Berlin")


def opportunities(n: int) -> Iterator[Opportunity]:
    """n queued opportunities with spread-out tiers, scores and times (deterministic)."""
    for i in range(n):
        yield Opportunity(
            id=f"o{i:08d}",
            account_id=f"a{i % 9973}",
            queued_at=T0 + timedelta(seconds=(i * 7919) % 86_400),
            tier=i % 3,
            score=float((i * 104_729) % 1000),
            status=OpportunityStatus.QUEUED,
        )


def team(members: int) -> list[Member]:
    return [
        Member(f"m{i:04d}", f"Member {i}", "inside_sales", time_zone="Europe/Berlin")
        for i in range(members)
    ]


def fill(store: Store, n: int) -> None:
    """Store n queued opportunities, 10,000 per transaction (not timed)."""
    order = POLICY.order
    batch: list[Opportunity] = []

    def flush() -> None:
        with store.transaction() as tx:
            for opp in batch:
                tx.put_opportunity(opp, queue.rank_key(opp, order))
        batch.clear()

    for opp in opportunities(n):
        batch.append(opp)
        if len(batch) == 10_000:
            flush()
    if batch:
        flush()


Cycles = Callable[[int, int], None]
"""Runs ``count`` pull+resolve cycles starting at cycle ``first``."""


def engine_cycles(store: Store, n: int, members: int) -> tuple[Cycles, Callable[[], None]]:
    """Pull+resolve cycles through the engine on ``store`` filled with n opportunities,
    and a check to run after them."""
    engine = Engine(
        store, policy=POLICY, clock=FakeClock(NOW), plugins=Plugins.create(entry_points=False)
    )
    engine.upsert_members(team(members))
    fill(store, n)
    ids = [f"m{i:04d}" for i in range(members)]
    done = [0]

    def run(first: int, count: int) -> None:
        for k in range(first, first + count):
            member = ids[k % members]
            result = engine.pull(member)
            engine.resolve(result.released[0].id, member, "won")
        done[0] += count

    def check() -> None:
        with store.transaction() as tx:
            assert tx.count(OpportunityStatus.RESOLVED) == done[0]
        store.close()

    return run, check


class MinimalQueue:
    """The same pull/resolve rule in the fewest lines of plain Python (the baseline)."""

    def __init__(self, items: Iterator[Opportunity]) -> None:
        self.heaps: dict[frozenset[str], list[tuple[bytes, str]]] = {}
        self.status: dict[str, str] = {}
        self.holder: dict[str, str] = {}
        self.times: dict[str, datetime] = {}
        self.outcome: dict[str, str] = {}
        self.held: dict[str, int] = {}
        self.pulled: dict[tuple[str, date], int] = {}
        self.log: list[tuple[object, ...]] = []
        for opp in items:
            heap = self.heaps.setdefault(opp.required_skills, [])
            heap.append((queue.rank_key(opp, POLICY.order), opp.id))
            self.status[opp.id] = "queued"
        for heap in self.heaps.values():
            heapq.heapify(heap)

    def pull(self, member: str, skills: frozenset[str], now: datetime) -> str | None:
        held = self.held.get(member, 0)
        if held >= WIP:
            return None
        day = (member, now.astimezone(ZONE).date())
        pulled = self.pulled.get(day, 0)
        if pulled >= CAP:
            return None
        best: list[tuple[bytes, str]] | None = None
        for needs, heap in self.heaps.items():
            if heap and needs <= skills and (best is None or heap[0] < best[0]):
                best = heap
        if best is None:
            return None
        _, oid = heapq.heappop(best)
        self.status[oid] = "released"
        self.holder[oid] = member
        self.times[oid] = now
        self.held[member] = held + 1
        self.pulled[day] = pulled + 1
        self.log.append(("opportunity.released", now, oid, member))
        return oid

    def resolve(self, oid: str, member: str, outcome: str, now: datetime) -> None:
        if self.status[oid] != "released" or self.holder[oid] != member:
            raise ValueError(oid)
        self.status[oid] = "resolved"
        self.outcome[oid] = outcome
        self.times[oid] = now
        self.held[member] -= 1
        self.log.append(("opportunity.resolved", now, oid, member, outcome))


def minimal_cycles(n: int, members: int) -> tuple[Cycles, Callable[[], None]]:
    """Pull+resolve cycles of :class:`MinimalQueue` on n opportunities."""
    q = MinimalQueue(opportunities(n))
    ids = [f"m{i:04d}" for i in range(members)]
    skills: frozenset[str] = frozenset()
    done = [0]

    def run(first: int, count: int) -> None:
        for k in range(first, first + count):
            member = ids[k % members]
            oid = q.pull(member, skills, NOW)
            assert oid is not None
            q.resolve(oid, member, "won", NOW)
        done[0] += count

    def check() -> None:
        assert len(q.log) == 2 * done[0]

    return run, check


def bare_sqlite_cycles(path: Path, n: int, members: int) -> tuple[Cycles, Callable[[], None]]:
    """Claim+event, resolve+event cycles with bare SQL on the same kind of file."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE t (id TEXT PRIMARY KEY, status TEXT NOT NULL, rank BLOB NOT NULL, "
        "owner_id TEXT, queued_at INTEGER NOT NULL, released_at INTEGER, "
        "lease_expires_at INTEGER, expires_at INTEGER, outcome TEXT, resolved_at INTEGER)"
    )
    # the same indexes as the SQLite store's opportunities table
    conn.execute("CREATE INDEX t_ranked ON t (status, rank)")
    conn.execute("CREATE INDEX t_owner ON t (owner_id) WHERE status = 'released'")
    conn.execute(
        "CREATE INDEX t_lease ON t (lease_expires_at, id) "
        "WHERE status = 'released' AND lease_expires_at IS NOT NULL"
    )
    conn.execute("CREATE INDEX t_queued_at ON t (queued_at, id) WHERE status = 'queued'")
    conn.execute("CREATE INDEX t_expires ON t (expires_at, id) WHERE expires_at IS NOT NULL")
    conn.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, "
        "kind TEXT NOT NULL, data TEXT NOT NULL)"
    )
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO t (id, status, rank, queued_at) VALUES (?, 'queued', ?, ?)",
        ((o.id, queue.rank_key(o, POLICY.order), micros(o.queued_at)) for o in opportunities(n)),
    )
    conn.execute("COMMIT")
    ids = [f"m{i:04d}" for i in range(members)]
    at = micros(NOW)

    def run(first: int, count: int) -> None:
        for k in range(first, first + count):
            member = ids[k % members]
            conn.execute("BEGIN IMMEDIATE")
            (oid,) = conn.execute(
                "UPDATE t SET status = 'released', owner_id = ?, released_at = ? WHERE id = "
                "(SELECT id FROM t WHERE status = 'queued' ORDER BY rank LIMIT 1) RETURNING id",
                (member, at),
            ).fetchone()
            conn.execute(
                "INSERT INTO events (at, kind, data) VALUES (?, 'opportunity.released', ?)",
                (at, json.dumps({"opportunity_id": oid, "member_id": member})),
            )
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "UPDATE t SET status = 'resolved', outcome = 'won', resolved_at = ? WHERE id = ?",
                (at, oid),
            )
            conn.execute(
                "INSERT INTO events (at, kind, data) VALUES (?, 'opportunity.resolved', ?)",
                (at, json.dumps({"opportunity_id": oid, "member_id": member, "outcome": "won"})),
            )
            conn.execute("COMMIT")

    return run, conn.close


def race(
    pair: dict[str, tuple[Cycles, Callable[[], None]]], cycles: int, rounds: int
) -> dict[str, float]:
    """Seconds per cycle of each side, run in alternating rounds of ``cycles / rounds``;
    each side's figure is its best round (the one least disturbed by other processes on
    a shared machine; both sides get the same chances)."""
    chunk = cycles // rounds
    best = dict.fromkeys(pair, math.inf)
    for r in range(rounds):
        for name, (run, _) in pair.items():
            gc.collect()
            start = time.perf_counter()
            run(r * chunk, chunk)
            best[name] = min(best[name], (time.perf_counter() - start) / chunk)
    for _, check in pair.values():
        check()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument(
        "--stores", default="memory,sqlite", help="comma-separated: memory, sqlite (default both)"
    )
    args = parser.parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    sizes = (2_000, 20_000) if args.quick else (100_000, 1_000_000)
    cycles, rounds = (300, 6) if args.quick else (5_000, 10)
    members = 100 if args.quick else 1_000
    figures: dict[str, float] = {}
    per_cycle: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="spe-bench-") as tmp:
        for n in sizes:
            label = f"{n // 1000}k"
            line = [f"n={n:>9,}"]
            if "memory" in stores:
                got = race(
                    {
                        "ours": engine_cycles(MemoryStore(), n, members),
                        "base": minimal_cycles(n, members),
                    },
                    cycles,
                    rounds,
                )
                mem, base_mem = got["ours"], got["base"]
                per_cycle[("memory", n)] = mem
                figures[f"memory_vs_minimal_{label}"] = round(mem / base_mem, 2)
                line.append(
                    f"memory {mem * 1e6:7.1f} us/cycle, minimal {base_mem * 1e6:6.2f} us, "
                    f"ratio {mem / base_mem:5.2f}"
                )
            if "sqlite" in stores:
                got = race(
                    {
                        "ours": engine_cycles(SQLiteStore(Path(tmp) / f"spe-{n}.db"), n, members),
                        "base": bare_sqlite_cycles(Path(tmp) / f"bare-{n}.db", n, members),
                    },
                    cycles,
                    rounds,
                )
                sq, base_sq = got["ours"], got["base"]
                per_cycle[("sqlite", n)] = sq
                figures[f"sqlite_vs_bare_loop_{label}"] = round(sq / base_sq, 2)
                line.append(
                    f"sqlite {sq * 1e6:7.1f} us/cycle, bare {base_sq * 1e6:6.1f} us, "
                    f"ratio {sq / base_sq:5.2f}"
                )
            print("  |  ".join(line), flush=True)
    small, large = sizes
    log_growth = math.log(large) / math.log(small)
    for name in stores:
        growth = per_cycle[(name, large)] / per_cycle[(name, small)]
        figures[f"{name}_growth_over_log_growth"] = round(growth / log_growth, 2)
        print(
            f"{name}: per-cycle cost x{growth:.2f} from {small:,} to {large:,} "
            f"(log n grows x{log_growth:.2f})"
        )
    targets = {}
    for label in (f"{s // 1000}k" for s in sizes):
        if "memory" in stores:
            targets[f"memory_vs_minimal_{label}"] = "<= 3.0"
        if "sqlite" in stores:
            targets[f"sqlite_vs_bare_loop_{label}"] = "<= 1.5"
    for name in stores:
        targets[f"{name}_growth_over_log_growth"] = "<= 1.0"
    return finish("queue_pull", figures, targets, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
