"""Every benchmark runs in its --quick form and ends with its JSON summary line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_quick(name: str, *extra: str) -> dict[str, object]:
    """Run ``benchmarks/<name>.py --quick`` and return its last-line JSON."""
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick", *extra],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    summary = json.loads(last)
    assert summary["benchmark"] == name
    assert summary["missed"] == [], f"{name} missed {summary['missed']}"
    figures, targets = summary["figures"], summary["targets"]
    assert targets, "a benchmark names its targets"
    for key, target in targets.items():
        assert key in figures, f"target {key} has no figure"
        assert isinstance(figures[key], int | float)
        op, number = target.split()
        assert op in ("<=", ">=")
        float(number)
    return summary  # type: ignore[no-any-return]


@pytest.mark.slow
def test_queue_pull_quick() -> None:
    summary = run_quick("queue_pull")
    assert set(summary["targets"]) >= {  # type: ignore[call-overload]
        "memory_growth_over_log_growth",
        "sqlite_growth_over_log_growth",
    }


@pytest.mark.slow
@pytest.mark.postgres
def test_pg_claims_quick() -> None:
    from tests.pg import URL

    if not URL:
        pytest.skip("set SPE_TEST_POSTGRES_URL to run the PostgreSQL benchmark")
    summary = run_quick("pg_claims")
    assert "spe_vs_pgqueuer_rate_4w" in summary["targets"]  # type: ignore[operator]


@pytest.mark.slow
def test_route_quick() -> None:
    targets = run_quick("route")["targets"]
    assert {"memory_vs_heap_baseline_500", "memory_cost_500_over_50"} <= set(targets)  # type: ignore[call-overload]


@pytest.mark.slow
def test_metrics_quick() -> None:
    assert "time_vs_counting_pass" in run_quick("metrics")["targets"]  # type: ignore[operator]


@pytest.mark.slow
def test_sync_salesforce_quick() -> None:
    assert "writes_vs_minimum" in run_quick("sync_salesforce")["targets"]  # type: ignore[operator]


@pytest.mark.slow
def test_plan_week_quick() -> None:
    result = run_quick("plan_week")
    assert result["figures"]["violations"] == 0  # type: ignore[index]
    assert "travel_vs_ortools" in result["targets"]  # type: ignore[operator]
    assert result["figures"]["in_person_lost_to_calls"] <= 0  # type: ignore[index]


@pytest.mark.slow
def test_sync_hubspot_quick() -> None:
    assert "writes_vs_minimum" in run_quick("sync_hubspot")["targets"]  # type: ignore[operator]
