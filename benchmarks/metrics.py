"""Benchmark: flow metrics over an event log of 10 million events, streamed.

The same generated log (a steady flow: queued, released, resolved; a fifth
of them set an appointment and close later in the CRM) is read twice in the
same run: once by a baseline pass that only counts the events, once by
:class:`spe_core.flow.FlowMetrics`. Prints the time ratio, and the peak
memory of the metrics at two log lengths ten times apart (tracemalloc) to
show that memory does not grow with the log. Run:

    .venv/bin/python benchmarks/metrics.py            # 10M events
    .venv/bin/python benchmarks/metrics.py --quick    # 100k events
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from _verdict import finish

from spe_core.events import (
    Event,
    OpportunityQueued,
    OpportunityReleased,
    OpportunityResolved,
    OpportunityStageChanged,
    Recorded,
)
from spe_core.flow import FlowMetrics
from spe_core.model import Opportunity, OpportunityStatus, Outcome

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
OUTCOMES = (
    Outcome.APPOINTMENT_SET,
    Outcome.LOST,
    Outcome.DISQUALIFIED,
    Outcome.NURTURE,
    Outcome.LOST,
)


def log(n: int) -> Iterator[Recorded]:
    """``n`` events of a steady flow, generated on the fly (never held in memory)."""
    seq = 0
    i = 0
    pending: deque[tuple[str, datetime]] = deque()
    while True:
        at = T0 + timedelta(seconds=30 * i)
        oid = f"o{i:08d}"
        events: list[Event] = [
            OpportunityQueued(
                at=at, opportunity=Opportunity(oid, "acct", at, status=OpportunityStatus.QUEUED)
            ),
            OpportunityReleased(
                at=at + timedelta(minutes=5),
                opportunity_id=oid,
                member_id=f"m{i % 100}",
                lease_expires_at=None,
            ),
            OpportunityResolved(
                at=at + timedelta(minutes=25),
                opportunity_id=oid,
                member_id=f"m{i % 100}",
                outcome=OUTCOMES[i % 5],
            ),
        ]
        if OUTCOMES[i % 5] is Outcome.APPOINTMENT_SET:
            pending.append((oid, at + timedelta(days=3)))
        while pending and pending[0][1] <= at:
            done, _ = pending.popleft()
            events.append(
                OpportunityStageChanged(
                    at=at + timedelta(minutes=26),
                    opportunity_id=done,
                    stage="Closed Lost",
                    closed=True,
                )
            )
        for event in events:
            seq += 1
            yield Recorded(seq, event)
            if seq >= n:
                return
        i += 1


def count_pass(n: int) -> float:
    start = time.perf_counter()
    count = 0
    for _ in log(n):
        count += 1
    assert count == n
    return time.perf_counter() - start


def metrics_pass(n: int) -> float:
    start = time.perf_counter()
    report = FlowMetrics().feed_all(log(n)).report()
    assert report.events == n
    return time.perf_counter() - start


def peak_memory(n: int) -> int:
    tracemalloc.start()
    metrics = FlowMetrics()
    for recorded in log(n):
        metrics.feed(recorded)
    metrics.report()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k events, for CI")
    args = parser.parse_args(argv)
    n = 100_000 if args.quick else 10_000_000
    base = count_pass(n)
    ours = metrics_pass(n)
    small, large = (n // 10, n) if args.quick else (n // 100, n // 10)
    mem_small, mem_large = peak_memory(small), peak_memory(large)
    print(
        f"{n:,} events: counting pass {base:.1f} s, metrics {ours:.1f} s, ratio {ours / base:.2f}"
    )
    print(
        f"peak memory of the metrics: {mem_small / 1e6:.2f} MB at {small:,} events, "
        f"{mem_large / 1e6:.2f} MB at {large:,} events (x{mem_large / mem_small:.2f} for "
        "10x the log)"
    )
    figures = {
        "time_vs_counting_pass": round(ours / base, 2),
        "memory_growth_for_10x_log": round(mem_large / mem_small, 2),
        "events_per_s": round(n / ours),
    }
    targets = {"time_vs_counting_pass": "<= 5.0", "memory_growth_for_10x_log": "<= 3.0"}
    return finish("metrics", figures, targets, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
