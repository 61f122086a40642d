"""Benchmark: claims per second and claim latency on PostgreSQL, 1 / 4 / 16 workers.

Side by side in the same run, on the same database, each worker a separate
process looping for a fixed time over a queue that never runs dry:

- **spe**: ``Engine.pull`` (the claim: WIP check, ``FOR UPDATE SKIP LOCKED``
  walk of the queue index, event appended) then ``Engine.resolve``;
- **pgqueuer**: ``Queries.dequeue(batch_size=1)`` then ``log_jobs`` (done);
- **bare**: the least durable work SPE must do: the claim is one statement,
  ``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1)`` with an
  ``INSERT`` of one event row in a CTE, committed; the resolve is an ``UPDATE``
  to done with its event row, committed (two commits per job, as SPE and
  pgqueuer make).

Durability is the server's (fsync and synchronous_commit as configured).
Claim latency is the time of the claim call alone. SPE's events get their log
positions when a reader first reads them (one numbering step for all the events
committed since): the run reports what numbering every event of the 16-worker
run cost afterwards (``spe_numbering_us_per_event``, not a target).

Targets (issue 17): at 16 workers SPE's rate >= 1.0x pgqueuer's with p99 <= 2x,
and >= 0.5x the bare loop's; SPE's rate at 16 workers >= its rate at 4. Every
target depends on the machine and the run's size, so ``--quick`` judges none.
Run:

    SPE_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python benchmarks/pg_claims.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from _verdict import finish

from spe_core import codec, queue
from spe_core.model import Member, Opportunity, OpportunityStatus
from spe_core.queue import QueuePolicy

URL = os.environ.get("SPE_BENCH_POSTGRES_URL") or os.environ.get(
    "SPE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
POLICY = QueuePolicy(
    target=10**9, daily_pull_cap=None, default_wip_limit=1, lease=None, stale_age=None
)


def _schema_url(schema: str) -> str:
    sep = "&" if "?" in URL else "?"
    return f"{URL}{sep}schema={schema}"


def _plain(schema: str) -> str:
    sep = "&" if "?" in URL else "?"
    return f"{URL}{sep}options=-csearch_path%3D{schema}"


# --- seeding ---------------------------------------------------------------------------


def seed_spe(schema: str, n: int, workers: int) -> None:
    from spe_core.store.postgres import PostgresStore, micros

    # the bulk load is one long statement: no statement timeout
    store = PostgresStore(_schema_url(schema) + "&statement_timeout=0", max_size=1)
    with store.transaction() as tx:
        for w in range(workers):
            tx.put_member(Member(f"w{w:02d}", f"Worker {w}", "inside_sales"))
        cur = tx.conn.cursor()
        with cur.copy(
            "COPY opportunities (id, status, rank, owner_id, queued_at, "
            "lease_expires_at, expires_at, data) FROM STDIN"
        ) as copy:
            for i in range(n):
                o = Opportunity(
                    f"o{i:07d}",
                    f"a{i % 997}",
                    T0 - timedelta(seconds=i % 9000),
                    tier=i % 3,
                    score=float(i % 101),
                    status=OpportunityStatus.QUEUED,
                )
                copy.write_row(
                    (
                        o.id,
                        "queued",
                        queue.rank_key(o),
                        None,
                        micros(o.queued_at),
                        None,
                        None,
                        codec.dumps(o),
                    )
                )
    store.close()


def seed_bare(schema: str, n: int) -> None:
    with psycopg.connect(URL.split("?")[0], autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'.encode())
        conn.execute(f'SET search_path TO "{schema}"'.encode())
        conn.execute(
            "CREATE TABLE jobs (id BIGINT PRIMARY KEY, status TEXT NOT NULL, rank BYTEA NOT NULL)"
        )
        conn.execute("CREATE INDEX jobs_ranked ON jobs (status, rank)")
        conn.execute(
            "CREATE TABLE events (id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, "
            "kind TEXT NOT NULL, data TEXT NOT NULL)"
        )
        with conn.cursor().copy("COPY jobs (id, status, rank) FROM STDIN") as copy:
            for i in range(n):
                o = Opportunity(
                    f"o{i:07d}",
                    "a",
                    T0 - timedelta(seconds=i % 9000),
                    tier=i % 3,
                    score=float(i % 101),
                )
                copy.write_row((i, "queued", queue.rank_key(o)))


async def _seed_pgqueuer(schema: str, n: int) -> None:
    from pgqueuer.queries import Queries

    async with await psycopg.AsyncConnection.connect(_plain(schema), autocommit=True) as conn:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'.encode())
        q = Queries.from_psycopg_connection(conn)
        await q.install(create_schema=False)
        for start in range(0, n, 5000):
            size = min(5000, n - start)
            await q.enqueue(["claim"] * size, [None] * size, [0] * size)


# --- workers ---------------------------------------------------------------------------


def _spe_worker(schema: str, index: int, seconds: float, start: Any, out: Any) -> None:
    from spe_core.engine import Engine
    from spe_core.plugins import Plugins
    from spe_core.store.postgres import PostgresStore
    from spe_core.testing import FakeClock

    engine = Engine(
        PostgresStore(_schema_url(schema), max_size=1),
        policy=POLICY,
        clock=FakeClock(T0),
        plugins=Plugins.create(entry_points=False),
    )
    member = f"w{index:02d}"
    latencies: list[float] = []
    start.wait()
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        t = time.perf_counter()
        result = engine.pull(member)
        latencies.append(time.perf_counter() - t)
        engine.resolve(result.released[0].id, member, "won")
    engine.store.close()
    out.put(latencies)


def _bare_worker(schema: str, index: int, seconds: float, start: Any, out: Any) -> None:
    latencies: list[float] = []
    with psycopg.connect(_plain(schema), autocommit=True) as conn:
        start.wait()
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            t = time.perf_counter()
            row = conn.execute(
                "WITH c AS (UPDATE jobs SET status = 'picked' WHERE id = (SELECT id FROM jobs "
                "WHERE status = 'queued' ORDER BY rank LIMIT 1 FOR UPDATE SKIP LOCKED) "
                "RETURNING id) INSERT INTO events (at, kind, data) "
                "SELECT %s, 'released', c.id::text FROM c RETURNING data",
                (index,),
            ).fetchone()
            latencies.append(time.perf_counter() - t)
            assert row is not None
            conn.execute(
                "WITH d AS (UPDATE jobs SET status = 'done' WHERE id = %s RETURNING id) "
                "INSERT INTO events (at, kind, data) SELECT %s, 'resolved', d.id::text FROM d",
                (int(row[0]), index),
            )
    out.put(latencies)


async def _pgqueuer_loop(schema: str, seconds: float, start: Any) -> list[float]:
    from pgqueuer.queries import EntrypointExecutionParameter, Queries

    latencies: list[float] = []
    async with await psycopg.AsyncConnection.connect(_plain(schema), autocommit=True) as conn:
        q = Queries.from_psycopg_connection(conn)
        entry = {"claim": EntrypointExecutionParameter(concurrency_limit=0)}
        manager = uuid.uuid4()
        await asyncio.get_running_loop().run_in_executor(None, start.wait)
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            t = time.perf_counter()
            jobs = await q.dequeue(
                batch_size=1,
                entrypoints=entry,  # type: ignore[arg-type]
                queue_manager_id=manager,  # type: ignore[arg-type]
                global_concurrency_limit=None,
                heartbeat_timeout=timedelta(seconds=30),
            )
            latencies.append(time.perf_counter() - t)
            assert jobs
            await q.log_jobs([(jobs[0], "successful", None)])
    return latencies


def _pgqueuer_worker(schema: str, index: int, seconds: float, start: Any, out: Any) -> None:
    out.put(asyncio.run(_pgqueuer_loop(schema, seconds, start)))


WORKER = {"spe": _spe_worker, "pgqueuer": _pgqueuer_worker, "bare": _bare_worker}


def run(kind: str, workers: int, seconds: float, jobs: int) -> dict[str, float]:
    schema = f"spe_bench_{kind}_{workers}_{uuid.uuid4().hex[:6]}"
    if kind == "spe":
        seed_spe(schema, jobs, workers)
    elif kind == "bare":
        seed_bare(schema, jobs)
    else:
        asyncio.run(_seed_pgqueuer(schema, jobs))
    with psycopg.connect(_plain(schema), autocommit=True) as conn:
        conn.execute("ANALYZE")  # fresh statistics for every engine after the bulk load
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    out = ctx.Queue()
    procs = [
        ctx.Process(target=WORKER[kind], args=(schema, i, seconds, start, out))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0 + 0.3 * workers)  # let every process import and connect
    start.set()
    latencies = [x for _ in procs for x in out.get(timeout=seconds + 120)]
    for p in procs:
        p.join(30)
    numbering = float("nan")
    if kind == "spe":
        from spe_core.store.postgres import PostgresStore

        store = PostgresStore(_schema_url(schema) + "&statement_timeout=0", max_size=1)
        t = time.perf_counter()
        store.settle()
        numbering = (time.perf_counter() - t) / max(1, 2 * len(latencies))
        store.close()
    with psycopg.connect(URL.split("?")[0], autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())
    latencies.sort()
    return {
        "numbering_us": 1e6 * numbering,
        "rate": len(latencies) / seconds,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, for CI")
    args = parser.parse_args(argv)
    counts = (1, 4) if args.quick else (1, 4, 16)
    seconds = 2.0 if args.quick else 10.0
    jobs = 20_000 if args.quick else 120_000
    results: dict[tuple[str, int], dict[str, float]] = {}
    print(f"{'workers':>7} {'engine':>9} {'claims/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for workers in counts:
        for kind in ("spe", "pgqueuer", "bare"):
            r = results[(kind, workers)] = run(kind, workers, seconds, jobs)
            print(
                f"{workers:>7} {kind:>9} {r['rate']:>10.0f} {r['p50_ms']:>8.2f} "
                f"{r['p99_ms']:>8.2f}",
                flush=True,
            )
    top = counts[-1]
    figures: dict[str, float] = {}
    for workers in counts:
        for kind in ("spe", "pgqueuer", "bare"):
            r = results[(kind, workers)]
            figures[f"{kind}_claims_per_s_{workers}w"] = round(r["rate"], 1)
            figures[f"{kind}_p99_ms_{workers}w"] = round(r["p99_ms"], 2)
    spe, pgq, bare = (results[(k, top)] for k in ("spe", "pgqueuer", "bare"))
    figures[f"spe_vs_pgqueuer_rate_{top}w"] = round(spe["rate"] / pgq["rate"], 3)
    figures[f"spe_vs_bare_rate_{top}w"] = round(spe["rate"] / bare["rate"], 3)
    figures[f"spe_vs_pgqueuer_p99_{top}w"] = round(spe["p99_ms"] / pgq["p99_ms"], 3)
    figures[f"spe_numbering_us_per_event_{top}w"] = round(spe["numbering_us"], 1)
    targets = {
        f"spe_vs_pgqueuer_rate_{top}w": ">= 1.0",
        f"spe_vs_bare_rate_{top}w": ">= 0.5",
        f"spe_vs_pgqueuer_p99_{top}w": "<= 2.0",
    }
    if 16 in counts:  # the scaling target needs both sizes (a --quick run stops at 4)
        figures["spe_rate_16w_vs_4w"] = round(
            results[("spe", 16)]["rate"] / results[("spe", 4)]["rate"], 3
        )
        targets["spe_rate_16w_vs_4w"] = ">= 1.0"
    return finish("pg_claims", figures, targets, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
