"""The Pipedrive-like adapter proves itself with spe-sdk's adapter contract suite
(every case, optional capabilities included), and its own details."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from spe_pipedrive_like import (
    PipedriveLikeAdapter,
    PipedriveLikeCrm,
    status_from_label,
    status_to_label,
)

from spe_core import ConfigError, Engine, MappingError, Opportunity, SourceRecord, open_store
from spe_core.plugins import Plugins
from spe_core.sync import SyncEngine
from spe_core.testing import FakeClock
from spe_core.testing.adapter_contract import AdapterContract


class PipedriveLikeHarness:
    """Drives the CRM the way its users do; pages of 4 keep the paging cases small."""

    page_size = 4

    def __init__(self, path: Path | None = None) -> None:
        self.clock = FakeClock()
        self.crm = PipedriveLikeCrm(path, clock=self.clock.now)
        self.adapter = PipedriveLikeAdapter(self.crm, page_size=self.page_size)

    def add_user(self, name: str, role: str) -> str:
        return str(self.crm.add_user(name, spe_role=role))

    def add_queued(self, account: str, tier: int, score: float) -> str:
        return self.add_deal(account, spe_status="Queued", spe_tier=tier, spe_score=score)

    def add_deal(self, account: str | None, **custom: Any) -> str:
        return str(self.crm.add_deal(f"{account} deal", account, **custom))

    def add_malformed(self) -> str:
        return self.add_deal(None, spe_status="Queued")

    def read_back(self, crm_id: str) -> dict[str, Any]:
        deal = self.crm.deal(int(crm_id))
        owner = deal.get("user_id")
        return {
            "status": status_from_label(deal.get("spe_status")),
            "owner": None if owner is None else str(owner),
            "key": deal.get("spe_key"),
        }

    def edit_owner(self, crm_id: str, owner: str) -> None:
        self.crm.update_deal(int(crm_id), user_id=int(owner))

    def fail_next_writes(self, count: int) -> None:
        self.crm.rate_limit_next(count)

    def fail_record(self, crm_id: str) -> None:
        self.crm.lock_deal(int(crm_id))

    def record_count(self) -> int:
        return self.crm.deal_count()

    def delete_record(self, crm_id: str) -> None:
        self.crm.delete_deal(int(crm_id))

    def add_with_status(self, account: str, status: str) -> str:
        return self.add_deal(account, spe_status=status_to_label(status))


class TestPipedriveLikeContract(AdapterContract):
    @pytest.fixture
    def harness(self) -> PipedriveLikeHarness:
        return PipedriveLikeHarness()


class TestPipedriveLikeContractOnAJsonFile(AdapterContract):
    """The same CRM kept in a JSON file, as `spe sync` uses it."""

    @pytest.fixture
    def harness(self, tmp_path: Path) -> PipedriveLikeHarness:
        return PipedriveLikeHarness(tmp_path / "crm.json")


def test_the_installed_package_registers_the_adapter() -> None:
    assert Plugins.create().adapters()["pipedrive_like"] is PipedriveLikeAdapter


def test_config_errors_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs file"):
        PipedriveLikeAdapter.from_config({})
    with pytest.raises(ConfigError, match="token is not a known setting"):
        PipedriveLikeAdapter.from_config({"file": "x", "token": "t"})
    with pytest.raises(ConfigError, match="page_size = 0"):
        PipedriveLikeAdapter.from_config({"file": "x", "page_size": 0})
    adapter = PipedriveLikeAdapter.from_config({"file": str(tmp_path / "crm.json")})
    assert adapter.page_size == 100 and (tmp_path / "crm.json").exists()


def test_check_names_a_missing_custom_field() -> None:
    h = PipedriveLikeHarness()
    assert h.adapter.check() == []
    h.crm.drop_field("deals", "spe_key")
    assert h.adapter.check() == ["deals: the custom field spe_key does not exist"]


def test_a_bad_record_has_one_problem_and_one_fix() -> None:
    h = PipedriveLikeHarness()
    crm_id = h.add_deal("Acme", spe_status="Queued", spe_tier="high")
    (page,) = h.adapter.read("opportunities", None)
    with pytest.raises(MappingError) as caught:
        h.adapter.to_inbound(page[0])
    assert caught.value.problem == f"deal {crm_id}: spe_tier = 'high' is not a number."
    assert str(caught.value).count("Fix:") == 1
    user = h.add_user("Ana Ruiz", "astronaut")
    record = next(r for p in h.adapter.read("members", None) for r in p if r.crm_id == user)
    with pytest.raises(MappingError) as caught:
        h.adapter.to_inbound(record)
    assert caught.value.problem.startswith(f"members record {user}: ")
    assert str(caught.value).count("Fix:") == 1


def test_times_come_in_as_utc_and_shared_seconds_are_read_again() -> None:
    h = PipedriveLikeHarness()
    first = h.add_queued("Acme", 1, 5.0)
    h.clock.advance(seconds=0.4)
    second = h.add_queued("Globex", 1, 5.0)  # the same whole second as the first
    records = [r for p in h.adapter.read("opportunities", None) for r in p]
    assert {r.modified_at.utcoffset() for r in records} == {h.clock.now().utcoffset()}
    since = max(r.modified_at for r in records)
    again = [r.crm_id for p in h.adapter.read("opportunities", since) for r in p]
    assert again == [first, second]
    assert isinstance(records[0], SourceRecord)


def test_spe_sync_end_to_end_over_the_json_file(tmp_path: Path) -> None:
    h = PipedriveLikeHarness(tmp_path / "crm.json")
    ana = h.add_user("Ana Ruiz", "inside_sales")
    deal = h.add_queued("Acme", 2, 50.0)
    h.clock.advance(minutes=10)
    adapter = PipedriveLikeAdapter.from_config({"file": str(tmp_path / "crm.json")})
    adapter.crm.clock = h.clock.now
    engine = Engine(
        open_store("memory:"), clock=h.clock, plugins=Plugins.create(entry_points=False)
    )
    sync = SyncEngine(engine, adapter)
    sync.run()
    engine.replenish()
    (opp,) = engine.pull(f"pdl-user-{ana}").released
    sync.run()
    assert opp.external_id("pipedrive_like") == deal
    assert h.read_back(deal) == {"status": "released", "owner": ana, "key": opp.id}


def test_spe_check_and_spe_sync_run_the_installed_adapter(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from spe_core.cli import app

    crm = PipedriveLikeCrm(tmp_path / "crm.json")
    crm.add_user("Ana Ruiz", spe_role="inside_sales")
    deals = [crm.add_deal(f"Deal {i}", f"Org {i}", spe_status="Queued") for i in range(3)]
    config = tmp_path / "spe.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "spe.db"}"\n'
        '[adapter]\nname = "pipedrive_like"\n'
        f'[adapter.pipedrive_like]\nfile = "{tmp_path / "crm.json"}"\npage_size = 2\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    checked = runner.invoke(app, ["check", "--config", str(config), "--json"])
    assert checked.exit_code == 0, checked.output
    crm.drop_field("deals", "spe_score")
    checked = runner.invoke(app, ["check", "--config", str(config)])
    assert checked.exit_code == 2
    assert "deals: the custom field spe_score does not exist" in checked.output
    synced = runner.invoke(app, ["sync", "--config", str(config), "--json"])
    assert synced.exit_code == 0, synced.output
    report = json.loads(synced.stdout)
    assert (report["adapter"], report["read"], report["applied"]) == ("pipedrive_like", 4, 4)
    assert {o.external_id("pipedrive_like") for o in _stored(tmp_path)} == {str(d) for d in deals}


def _stored(tmp_path: Path) -> list[Opportunity]:
    store = open_store(f"sqlite:///{tmp_path / 'spe.db'}")
    try:
        return list(store.opportunities())
    finally:
        store.close()


@given(
    seconds=st.lists(st.integers(0, 3), max_size=12),
    page_size=st.integers(1, 4),
    edits=st.lists(st.integers(0, 11), max_size=4),
)
def test_paging_loses_no_record_even_when_records_change_between_pages(
    seconds: list[int], page_size: int, edits: list[int]
) -> None:
    """Every record comes once in the read, except those a person edits between two pages:
    each of those comes in the read or, in its new version, in the next read from the
    newest time the first one saw (the sync's next bookmark)."""
    h = PipedriveLikeHarness()
    start = h.clock.now()
    ids = []
    for i, second in enumerate(seconds):
        h.clock.set(start + timedelta(seconds=second))
        ids.append(h.add_queued(f"org-{i}", 0, 0.0))
    h.clock.set(start + timedelta(minutes=10))
    adapter = PipedriveLikeAdapter(h.crm, page_size=page_size)
    seen: list[SourceRecord] = []
    edited: set[str] = set()
    pending = list(edits)
    for page in adapter.read("opportunities", None):
        seen.extend(page)
        if pending and ids:
            crm_id = ids[pending.pop() % len(ids)]
            h.crm.update_deal(int(crm_id), title="renamed")
            edited.add(crm_id)
    first = [r.crm_id for r in seen]
    assert sorted(set(first) - edited) == sorted(set(ids) - edited)
    assert len(first) == len(set(first)) + len([i for i in edited if first.count(i) > 1])
    if seen:
        since = max(r.modified_at for r in seen)
        later = {r.crm_id for p in adapter.read("opportunities", since) for r in p}
        assert edited <= set(first) | later
