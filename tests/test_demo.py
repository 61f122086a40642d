"""The README's main job: the demo on the embedded store, synced with each CRM emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

import spe_demo


@pytest.mark.parametrize(("crm", "days"), [("salesforce", 2), ("hubspot", 1), ("none", 2)])
def test_the_demo_runs_a_week_and_the_crm_agrees(
    crm: str, days: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.html"
    assert spe_demo.main(["--crm", crm, "--days", str(days), "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "Day by day" in out and "Field visits booked" in out
    if crm != "none":
        assert "agree on every record" in out
        assert "disagree" not in out
    assert report.stat().st_size > 10_000
