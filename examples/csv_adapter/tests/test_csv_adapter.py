"""The CSV adapter proves itself with spe-sdk's adapter contract suite."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from spe_csv_adapter import OPPORTUNITY_COLUMNS, USER_COLUMNS, CsvAdapter, read_rows, write_rows

from spe_core.plugins import Plugins
from spe_core.testing import FakeClock
from spe_core.testing.adapter_contract import AdapterContract


class CsvHarness:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.clock = FakeClock()
        self.adapter = CsvAdapter(folder, clock=self.clock.now)
        self._ids = itertools.count(1)

    def _append(self, name: str, columns: tuple[str, ...], row: dict[str, str]) -> None:
        path = self.folder / name
        rows = read_rows(path)
        rows.append({c: row.get(c, "") for c in columns})
        write_rows(path, columns, rows)

    def add_user(self, name: str, role: str) -> str:
        uid = f"u{next(self._ids)}"
        self._append(
            "users.csv",
            USER_COLUMNS,
            {"id": uid, "name": name, "role": role, "modified": self.clock.now().isoformat()},
        )
        return uid

    def add_queued(self, account: str, tier: int, score: float) -> str:
        rid = f"r{next(self._ids)}"
        self._append(
            "opportunities.csv",
            OPPORTUNITY_COLUMNS,
            {
                "id": rid,
                "account": account,
                "tier": str(tier),
                "score": str(score),
                "status": "queued",
                "modified": self.clock.now().isoformat(),
            },
        )
        return rid

    def add_malformed(self) -> str:
        rid = f"r{next(self._ids)}"
        self._append(
            "opportunities.csv",
            OPPORTUNITY_COLUMNS,
            {
                "id": rid,
                "account": "",
                "status": "queued",
                "modified": self.clock.now().isoformat(),
            },
        )
        return rid

    def _edit(self, crm_id: str, **fields: str) -> None:
        path = self.folder / "opportunities.csv"
        rows = read_rows(path)
        for row in rows:
            if row["id"] == crm_id:
                row.update(fields)
        write_rows(path, OPPORTUNITY_COLUMNS, rows)

    def read_back(self, crm_id: str) -> dict[str, Any]:
        row = next(r for r in read_rows(self.folder / "opportunities.csv") if r["id"] == crm_id)
        return {"status": row["status"], "owner": row["owner"] or None, "key": row["key"]}

    def edit_owner(self, crm_id: str, owner: str) -> None:
        self._edit(crm_id, owner=owner, modified=self.clock.now().isoformat())

    def fail_next_writes(self, count: int) -> None:
        (self.folder / "busy").write_text(str(count))

    def fail_record(self, crm_id: str) -> None:
        self._edit(crm_id, locked="yes")

    def record_count(self) -> int:
        return len(read_rows(self.folder / "opportunities.csv"))


class TestCsvAdapterContract(AdapterContract):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> CsvHarness:
        return CsvHarness(tmp_path)


def test_the_installed_package_registers_the_adapter() -> None:
    assert Plugins.create().adapters()["csv"] is CsvAdapter


def test_config_errors_name_the_setting(tmp_path: Path) -> None:
    from spe_core.errors import ConfigError

    with pytest.raises(ConfigError, match="needs folder"):
        CsvAdapter.from_config({})
    with pytest.raises(ConfigError, match="does not exist"):
        CsvAdapter.from_config({"folder": str(tmp_path / "missing")})
    assert CsvAdapter.from_config({"folder": str(tmp_path)}).folder == tmp_path


@pytest.mark.parametrize(
    ("row", "problem", "fix"),
    [
        ({"account": ""}, "has no account", "fill the account column"),
        ({"tier": "high"}, "invalid literal for int()", "correct the row in the CSV file"),
        ({"score": "nan"}, "score", "Fix:"),  # refused by Opportunity itself: its fix, once
    ],
)
def test_a_quarantined_row_says_its_problem_and_one_fix(
    tmp_path: Path, row: dict[str, str], problem: str, fix: str
) -> None:
    from spe_core import Engine, SyncEngine, open_store

    harness = CsvHarness(tmp_path)
    rid = harness.add_queued("acme", 1, 10.0)
    harness._edit(rid, **row)
    engine = Engine(
        open_store("memory:"), clock=harness.clock, plugins=Plugins.create(entry_points=False)
    )
    sync = SyncEngine(engine, harness.adapter)
    assert sync.run().quarantined == 1
    (reason,) = [q.reason for q in sync.quarantined()]
    assert problem in reason and fix in reason, reason
    assert reason.count("Fix:") == 1, reason
