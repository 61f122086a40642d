"""Nothing dropped in silence (issue 20): a record the sync cannot apply (a stream it has
no applier for, an SPE status that is not one) is a warning and a quarantined record
with a reason an admin can act on; ignored records carry their reason; `spe check`
finds the configuration problems before a sync; `spe sync` shows every count."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from spe_core import Engine, OpportunityStatus, QueuePolicy
from spe_core import cli as cli_module
from spe_core.adapter import Inbound, SourceRecord, StreamSpec
from spe_core.hookspecs import hookimpl
from spe_core.inbound import KNOWN_STATUSES, status_mapping_problems
from spe_core.plugins import Plugins
from spe_core.store.base import Store
from spe_core.sync import StreamReport, SyncEngine, stream_problems
from spe_core.testing import FakeClock
from spe_core.testing.dictcrm import DictCrm, DictCrmAdapter


class DealsAdapter(DictCrmAdapter):
    """The reference adapter, declaring a stream the sync has no applier for."""

    def streams(self) -> Sequence[StreamSpec]:
        return (*super().streams(), StreamSpec("deals", "Modified"))


class InReviewAdapter(DictCrmAdapter):
    """The reference adapter, with an admin's mapping of the CRM value "In Review"."""

    in_review: ClassVar[str] = "in_review"

    def to_inbound(self, record: SourceRecord) -> Inbound:
        inbound = super().to_inbound(record)
        if inbound.crm_status == "In Review":
            return Inbound(inbound.value, inbound.crm_owner, self.in_review)
        return inbound


def _crm(clock: FakeClock) -> DictCrm:
    crm = DictCrm(clock)
    crm.add_user("U1", "Ana", "inside_sales")
    return crm


def _sync(store: Store, clock: FakeClock, adapter: DictCrmAdapter) -> tuple[Engine, SyncEngine]:
    engine = Engine(
        store,
        clock=clock,
        policy=QueuePolicy(target=10),
        plugins=Plugins.create(entry_points=False),
    )
    return engine, SyncEngine(engine, adapter, sleep=lambda s: None)


def _counted(report: StreamReport) -> int:
    return (
        report.applied + report.unchanged + report.ignored + report.quarantined + report.conflicts
    )


def test_records_of_a_stream_the_sync_cannot_apply_are_quarantined_with_a_warning(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    crm = _crm(clock)
    first = crm.add_record(Account="A1", Status="queued")
    crm.add_record(Account="A2", Status="queued")
    clock.advance(minutes=10)
    engine, sync = _sync(store, clock, DealsAdapter(crm))
    with caplog.at_level(logging.WARNING, logger="spe_core.sync"):
        report = sync.run()
    deals = report.streams["deals"]
    assert (deals.read, deals.quarantined, deals.ignored, deals.applied) == (2, 2, 0, 0)
    assert report.streams["opportunities"].applied == 2  # the known streams go on
    held = {q.key: q for q in sync.quarantined() if q.stream == "deals"}
    assert set(held) == set(crm.records)
    reason = held[first].reason
    assert "'deals'" in reason and "busy, members, opportunities, tasks" in reason
    assert "Fix:" in reason
    assert any("'deals'" in r.getMessage() for r in caplog.records)
    assert sum(1 for r in engine.store.events() if r.event.kind == "sync.quarantined") == 2
    # records a webhook names are held to the same rule
    again = sync.apply_records("deals", [SourceRecord("deals", first, clock.now(), {})])
    assert (again.read, again.quarantined) == (1, 1)


def test_a_status_that_is_not_an_spe_status_is_quarantined_with_the_value_named(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    crm = _crm(clock)
    odd = crm.add_record(Account="A1", Status="In Review")
    crm.add_record(Account="A2", Status="queued")
    clock.advance(minutes=10)
    engine, sync = _sync(store, clock, DictCrmAdapter(crm))
    with caplog.at_level(logging.WARNING, logger="spe_core.sync"):
        report = sync.run()
    opps = report.streams["opportunities"]
    assert (opps.read, opps.applied, opps.quarantined, opps.ignored) == (2, 1, 1, 0)
    (held,) = [q for q in sync.quarantined() if q.key == odd]
    assert "'In Review'" in held.reason  # the value
    assert "queued" in held.reason and "backlog" in held.reason  # what is allowed
    assert "status_values under [adapter.dictcrm.fields]" in held.reason  # where to fix it
    assert any("In Review" in r.getMessage() for r in caplog.records)
    assert all(o.external_id("dictcrm") != odd for o in engine.store.opportunities())
    # a person's unknown value on a record SPE holds changes nothing in SPE either
    crm.edit(next(r for r in crm.records if r != odd), Status="Parked")
    clock.advance(minutes=10)
    report = sync.run()
    assert report.streams["opportunities"].quarantined >= 1
    assert all(o.status is OpportunityStatus.BACKLOG for o in engine.store.opportunities())


def test_a_quarantined_status_is_judged_again_once_the_mapping_is_fixed(
    store: Store, clock: FakeClock
) -> None:
    crm = _crm(clock)
    crm.add_record(Account="A1", Status="In Review")
    clock.advance(minutes=1)  # still inside the clock-skew window: the next run reads it again
    adapter = InReviewAdapter(crm)
    engine, sync = _sync(store, clock, adapter)
    assert sync.run().streams["opportunities"].quarantined == 1
    adapter.in_review = "queued"  # the admin maps the value; the record is unchanged
    report = sync.run()
    assert report.streams["opportunities"].applied == 1
    assert len(list(engine.store.opportunities())) == 1


def test_a_new_record_without_status_is_ignored_with_its_reason_not_quarantined(
    store: Store, clock: FakeClock
) -> None:
    crm = _crm(clock)
    crm.add_record(Account="A1")
    crm.add_record(Account="A2", Status="")
    crm.add_record(Account="A3", Status="won")
    clock.advance(minutes=10)
    _, sync = _sync(store, clock, DictCrmAdapter(crm))
    report = sync.run()
    opps = report.streams["opportunities"]
    assert (opps.read, opps.ignored, opps.quarantined) == (3, 3, 0)
    assert opps.ignored_reasons == {
        "new, no SPE status": 2,
        "new, SPE status 'won' (not queued or backlog)": 1,
    }
    assert sync.quarantined() == []
    data = report.as_dict()
    assert data["ignored"] == 3 and data["ignored_reasons"]["new, no SPE status"] == 2
    assert data["streams"]["opportunities"]["ignored_reasons"] == opps.ignored_reasons


@given(
    statuses=st.lists(
        st.none() | st.sampled_from(["queued", "backlog", "won", "released", "", "Parked"]),
        max_size=8,
    ),
    dry_runs=st.lists(st.booleans(), min_size=1, max_size=3),
)
def test_every_record_read_lands_in_exactly_one_count(
    statuses: list[str | None], dry_runs: list[bool]
) -> None:
    from spe_core.store import open_store

    clock = FakeClock()
    store = open_store("memory:")
    try:
        crm = _crm(clock)
        for i, status in enumerate(statuses):
            fields: dict[str, Any] = {"Account": f"A{i}"}
            if i % 3 == 2:
                fields["Account"] = ""  # cannot be mapped: quarantined by the mapping
            if status is not None:
                fields["Status"] = status
            crm.add_record(**fields)
        clock.advance(minutes=1)
        _, sync = _sync(store, clock, DealsAdapter(crm))
        for dry_run in dry_runs:
            report = sync.run(dry_run=dry_run)
            for stream in report.streams.values():
                assert stream.read == _counted(stream)
                assert stream.ignored == sum(stream.ignored_reasons.values())
                assert all(stream.ignored_reasons)  # every ignored record has a reason
                assert stream.quarantined == len(stream.quarantined_records)
            clock.advance(minutes=1)
    finally:
        store.close()


def test_a_dry_run_judges_records_and_writes_nothing(store: Store, clock: FakeClock) -> None:
    crm = _crm(clock)
    crm.add_record(Account="A1", Status="queued")
    odd = crm.add_record(Account="A2", Status="Parked")
    crm.add_record(Account="A3")
    clock.advance(minutes=10)
    engine, sync = _sync(store, clock, DealsAdapter(crm))
    report = sync.run(dry_run=True)
    opps, deals = report.streams["opportunities"], report.streams["deals"]
    assert (opps.applied, opps.quarantined, opps.ignored) == (1, 1, 1)
    assert "'Parked'" in opps.quarantined_records[odd]
    assert deals.quarantined == 3
    assert sync.quarantined() == [] and list(engine.store.opportunities()) == []


def test_the_pure_checks_name_what_is_wrong() -> None:
    specs = [StreamSpec("members", "M"), StreamSpec("deals", "M"), StreamSpec("tasks", "M")]
    (problem,) = stream_problems("acme", specs)
    assert "acme" in problem and "'deals'" in problem
    mapping = {s: s.title() for s in KNOWN_STATUSES} | {"in_review": "In Review"}
    (problem,) = status_mapping_problems(mapping, "[adapter.acme.fields] status_values")
    assert "'in_review'" in problem and "'In Review'" in problem
    assert status_mapping_problems({"queued": "Q"}, "x") == []


# --- the spe command --------------------------------------------------------------------


class CliAdapter(DictCrmAdapter):
    """The reference adapter as `spe` builds it from spe.toml (over the test's CRM)."""

    crm_for_cli: ClassVar[DictCrm]
    extra_streams: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_config(cls, options: Mapping[str, Any]) -> CliAdapter:
        return cls(cls.crm_for_cli)

    def streams(self) -> Sequence[StreamSpec]:
        return (*super().streams(), *(StreamSpec(s, "Modified") for s in self.extra_streams))


class _Registers:
    @hookimpl
    def spe_register_adapters(self, register: Any) -> None:
        register("dictcrm", CliAdapter)


class _TestPlugins(Plugins):
    @classmethod
    def create(
        cls, plugins: Any = (), *, entry_points: bool = True, blocked: Any = None
    ) -> Plugins:
        return Plugins.create([*plugins, _Registers()], entry_points=False, blocked=blocked)


@pytest.fixture
def cli_crm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DictCrm:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_module, "Plugins", _TestPlugins)
    monkeypatch.setattr(CliAdapter, "extra_streams", ())
    clock = FakeClock()
    crm = _crm(clock)
    crm.add_record(Account="A1", Status="queued")
    crm.add_record(Account="A2", Status="In Review")
    crm.add_record(Account="A3")
    crm.add_record(Account="")  # cannot be mapped
    clock.advance(minutes=10)
    monkeypatch.setattr(CliAdapter, "crm_for_cli", crm, raising=False)
    (tmp_path / "spe.toml").write_text(
        '[store]\nurl = "sqlite:///spe.db"\n[adapter]\nname = "dictcrm"\n'
    )
    return crm


def _spe(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_module.app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("dry_run", [False, True])
def test_spe_sync_shows_every_count(cli_crm: DictCrm, dry_run: bool) -> None:
    args = ["sync", "--dry-run"] if dry_run else ["sync"]
    code, out, _ = _spe(*args)
    assert code == 0, out
    flat = " ".join(out.split())
    for column in ("read", "applied", "unchanged", "ignored", "quarantined", "conflicts"):
        assert column in flat
    assert "written" in flat and "pending" in flat
    assert "ignored 1: new, no SPE status" in flat  # a dry run judges records too
    assert "quarantined opportunities R000002: its SPE status 'In Review'" in flat
    assert "R000004 has no Account" in flat
    Path("spe.db").unlink()  # a first sync again
    code, out, _ = _spe(*args, "--json")
    data = json.loads(out)
    for key in ("read", "applied", "unchanged", "ignored", "ignored_reasons", "quarantined"):
        assert key in data
    assert data["dry_run"] is dry_run
    opps = data["streams"]["opportunities"]
    assert opps["ignored_reasons"] == {"new, no SPE status": 1}
    assert set(opps["quarantined_records"]) == {"R000002", "R000004"}


def test_spe_check_finds_streams_and_statuses_the_sync_cannot_apply(
    cli_crm: DictCrm, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = _spe("check", "--json")
    rows = {r["check"]: r for r in json.loads(out)}
    assert code == 0 and rows["streams"]["ok"]
    monkeypatch.setattr(CliAdapter, "extra_streams", ("deals",))
    Path("spe.toml").write_text(
        '[store]\nurl = "sqlite:///spe.db"\n[adapter]\nname = "dictcrm"\n'
        '[adapter.dictcrm.fields.status_values]\nqueued = "Queued"\nin_review = "In Review"\n'
    )
    code, out, _ = _spe("check", "--json")
    assert code == 2
    rows = {r["check"]: r for r in json.loads(out)}
    assert not rows["streams"]["ok"] and "'deals'" in rows["streams"]["detail"]
    assert rows["streams"]["fix"]
    status = rows["status mapping"]
    assert not status["ok"] and "'in_review'" in status["detail"] and status["fix"]
    code, out, _ = _spe("check")
    flat = " ".join(out.split())
    assert "problem streams:" in flat and "problem status mapping:" in flat


def test_spe_check_flags_a_salesforce_status_mapping_that_is_not_an_spe_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    from spe_adapters.salesforce.settings import DEFAULT_STATUS_VALUES

    values = "\n".join(f'{k} = "{v}"' for k, v in DEFAULT_STATUS_VALUES.items())
    (tmp_path / "spe.toml").write_text(
        '[adapter]\nname = "salesforce"\n[adapter.salesforce.fields.status_values]\n'
        f'{values}\nin_review = "In Review"\n'
    )
    code, out, _ = _spe("check", "--json")
    rows = [r for r in json.loads(out) if r["check"] == "status mapping"]
    assert code == 2 and rows and not rows[0]["ok"]
    assert "[adapter.salesforce.fields] status_values maps 'in_review'" in rows[0]["detail"]
