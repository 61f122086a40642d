"""One path for every change: the unit of work, listeners after commit, and the sync
applying records through the engine (exactly once, also under concurrency)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from spe_core import Engine, Opportunity, OpportunityStatus, QueuePolicy, hookimpl
from spe_core.errors import (
    AdapterError,
    CrmError,
    SpeError,
    StoreError,
    TransientError,
    UnknownOpportunity,
)
from spe_core.events import OpportunityBacklogged, Recorded, replay
from spe_core.plugins import Plugins
from spe_core.store import open_store
from spe_core.store.base import Store
from spe_core.sync import SyncEngine
from spe_core.testing import FakeClock
from spe_core.testing.dictcrm import DictCrm, DictCrmAdapter
from tests.pg import URL as POSTGRES_URL
from tests.pg import schema_url


class Listener:
    """An spe_event listener that notes what it heard and checks it was committed."""

    def __init__(self, committed: Callable[[int], bool]) -> None:
        self.heard: list[Recorded] = []
        self.uncommitted: list[int] = []
        self._committed = committed

    @hookimpl
    def spe_event(self, recorded: Recorded) -> None:
        self.heard.append(recorded)
        if not self._committed(recorded.seq):
            self.uncommitted.append(recorded.seq)


def _engine(store: Store, clock: FakeClock, *plugins: object, target: int = 100) -> Engine:
    manager = Plugins.create(entry_points=False)
    for plugin in plugins:
        manager.register(plugin)
    return Engine(store, clock=clock, policy=QueuePolicy(target=target), plugins=manager)


def _committed_check(store: Store, tmp_path: Path) -> Callable[[int], bool]:
    """Whether event ``seq`` is visible to another connection (SQLite), or in the log."""
    if store.url.startswith("sqlite"):
        other = open_store(f"sqlite:///{tmp_path / 'spe.db'}")
        return lambda seq: any(r.seq == seq for r in other.events(after=seq - 1, limit=1))
    return lambda seq: any(r.seq == seq for r in store.events(after=seq - 1, limit=1))


def test_listeners_hear_every_logged_event_once_after_commit(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    """Over a sync with a quarantined record, a conflict and a link, what listeners
    heard is the log, event for event, each after its commit."""
    crm = DictCrm(clock)
    crm.add_user("U1", "Ana", "inside_sales")
    crm.add_user("U2", "Ben", "inside_sales")
    for i in range(4):
        crm.add_record(Account=f"A{i}", Tier=1, Score=i, Status="queued")
    crm.add_record(Account="", Status="queued")  # malformed: quarantined
    clock.advance(minutes=10)
    listener = Listener(_committed_check(store, tmp_path))
    engine = _engine(store, clock, listener)
    sync = SyncEngine(engine, DictCrmAdapter(crm), sleep=lambda s: None)
    sync.run()
    engine.replenish()
    (opp,) = engine.pull("u-U1").released
    engine.enqueue([Opportunity("spe-1", "acct-spe", clock.now())])  # created in SPE: linked
    sync.run()
    clock.advance(minutes=20)
    crm.edit(opp.external_id("dictcrm") or "", Owner="U2")  # a person: a conflict
    clock.advance(minutes=10)
    assert sync.run().conflicts == 1
    log = list(store.events())
    assert [r.seq for r in listener.heard] == [r.seq for r in log]
    assert [r.event for r in listener.heard] == [r.event for r in log]
    assert listener.uncommitted == []
    kinds = {r.event.kind for r in log}
    assert {"sync.completed", "sync.quarantined", "sync.conflict", "opportunity.linked"} <= kinds
    assert replay(log) == {o.id: o for o in store.opportunities()}


def test_a_unit_commits_together_and_notifies_after(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    listener = Listener(_committed_check(store, tmp_path))
    engine = _engine(store, clock, listener)
    with engine.unit() as unit:
        engine.add_to_backlog([Opportunity("o1", "a1", clock.now())])
        engine.add_to_backlog([Opportunity("o2", "a2", clock.now())])
        assert listener.heard == []  # nothing before the commit
        assert len(unit.recorded) == 2
    assert [r.event.kind for r in listener.heard] == ["opportunity.backlogged"] * 2
    assert listener.uncommitted == []


def test_a_failed_nested_operation_rolls_the_whole_unit_back(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    """Catching an engine error inside a unit does not commit half of it."""
    listener = Listener(_committed_check(store, tmp_path))
    engine = _engine(store, clock, listener)
    engine.add_to_backlog([Opportunity("o1", "a1", clock.now())])
    before = list(store.events())
    with pytest.raises(StoreError, match="none of the unit's changes were kept"), engine.unit():
        engine.withdraw("o1", "closed in the CRM")
        with contextlib.suppress(UnknownOpportunity):
            engine.withdraw("nope", "no such opportunity")
    assert list(store.events()) == before
    assert engine.opportunity("o1").status is OpportunityStatus.BACKLOG
    assert [r.seq for r in listener.heard] == [r.seq for r in before]


def test_an_error_leaving_a_unit_rolls_it_back_and_notifies_nobody(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    listener = Listener(_committed_check(store, tmp_path))
    engine = _engine(store, clock, listener)
    with pytest.raises(RuntimeError), engine.unit():
        engine.add_to_backlog([Opportunity("o1", "a1", clock.now())])
        raise RuntimeError("boom")
    assert list(store.events()) == []
    assert listener.heard == []


def test_crm_errors_transient_and_permanent_are_siblings() -> None:
    assert issubclass(TransientError, CrmError) and issubclass(AdapterError, CrmError)
    assert not issubclass(TransientError, AdapterError)
    assert not issubclass(AdapterError, TransientError)
    assert issubclass(CrmError, SpeError)


class _MiscountingAdapter(DictCrmAdapter):
    """An adapter with a bug: one result too few."""

    def write(self, changes):  # type: ignore[no-untyped-def]
        return list(super().write(changes))[:-1]


def test_an_adapter_bug_is_a_permanent_error_and_is_not_retried(
    store: Store, clock: FakeClock
) -> None:
    crm = DictCrm(clock)
    engine = _engine(store, clock)
    engine.enqueue([Opportunity("o1", "a1", clock.now()), Opportunity("o2", "a2", clock.now())])
    slept: list[float] = []
    sync = SyncEngine(engine, _MiscountingAdapter(crm), sleep=slept.append)
    with pytest.raises(AdapterError, match="bug in the adapter") as info:
        sync.run()
    assert not isinstance(info.value, TransientError)
    assert slept == []


# --- concurrency: a webhook and the scheduled sync apply the same new record at once -----


def _stores(tmp_path: Path, kind: str) -> Iterator[tuple[Store, Store]]:
    url = f"sqlite:///{tmp_path / 'spe.db'}" if kind == "sqlite" else schema_url()
    a = open_store(url)
    b = open_store(url)
    yield a, b
    drop = getattr(a, "drop", None)
    if drop is not None:  # PostgreSQL: the test's schema
        drop()
    b.close()
    a.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_processes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two stores on one database, as a webhook worker and the sync's process have."""
    if request.param == "postgres" and not POSTGRES_URL:
        pytest.skip("set SPE_TEST_POSTGRES_URL to run the PostgreSQL tests")
    yield from _stores(tmp_path, request.param)


def test_webhook_and_sync_applying_the_same_new_records_at_once_both_succeed(
    two_processes: tuple[Store, Store], clock: FakeClock
) -> None:
    """Both succeed; every record enters SPE once, once applied and once unchanged."""
    crm = DictCrm(clock)
    for i in range(40):
        crm.add_record(Account=f"A{i}", Tier=i % 3, Score=i, Status="queued")
    clock.advance(minutes=10)
    records = [r for page in DictCrmAdapter(crm).read("opportunities", None) for r in page]
    for round_ in range(3):
        barrier = threading.Barrier(2)
        reports: dict[str, int] = {}
        errors: list[BaseException] = []

        def apply(
            name: str,
            store: Store,
            ids: list[str],
            barrier: threading.Barrier = barrier,
            reports: dict[str, int] = reports,
            errors: list[BaseException] = errors,
        ) -> None:
            engine = _engine(store, clock)
            sync = SyncEngine(engine, DictCrmAdapter(crm), sleep=lambda s: None)
            chosen = [r for r in records if r.crm_id in ids]
            barrier.wait()
            try:
                reports[name] = sync.apply_records("opportunities", chosen).applied
            except BaseException as exc:  # the test reports it below
                errors.append(exc)

        ids = [r.crm_id for r in records][round_ * 12 : round_ * 12 + 12]
        webhook = threading.Thread(target=apply, args=("webhook", two_processes[0], ids))
        scheduled = threading.Thread(target=apply, args=("sync", two_processes[1], ids))
        webhook.start()
        scheduled.start()
        webhook.join(60)
        scheduled.join(60)
        assert errors == []
        assert reports["webhook"] + reports["sync"] == len(ids)
    events = [r.event for r in two_processes[0].events()]
    backlogged = [e.opportunity.id for e in events if isinstance(e, OpportunityBacklogged)]
    assert len(backlogged) == len(set(backlogged)) == 36
    assert sum(1 for _ in two_processes[0].opportunities()) == 36


def test_the_same_task_routed_by_two_processes_at_once_is_routed_once(
    two_processes: tuple[Store, Store], clock: FakeClock
) -> None:
    from spe_core.model import Member, Role, Task
    from spe_core.sync import INBOUND

    for store in two_processes[:1]:
        _engine(store, clock).upsert_members([Member("cs", "Cy", Role.CUSTOMER_SERVICE)])
    tasks = [Task(f"t{i}", "quote", f"acct-{i}", clock.now()) for i in range(20)]
    barrier = threading.Barrier(2)
    routed: list[int] = []
    errors: list[BaseException] = []

    def route(store: Store) -> None:
        engine = _engine(store, clock)
        sync = SyncEngine(engine, DictCrmAdapter(DictCrm(clock)), sleep=lambda s: None)
        from spe_core.adapter import Inbound

        barrier.wait()
        try:
            routed.append(sum(INBOUND["tasks"](sync, Inbound(t)) for t in tasks))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=route, args=(s,)) for s in two_processes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sum(routed) == 20
    kinds = [r.event.kind for r in two_processes[0].events() if r.event.kind.startswith("task.")]
    assert len(kinds) == 20


def test_clock_time_is_read_once_per_unit(store: Store, clock: FakeClock) -> None:
    """Every event of a unit carries the unit's time."""
    engine = _engine(store, clock)
    with engine.unit():
        engine.add_to_backlog([Opportunity("o1", "a1", clock.now())])
        clock.advance(timedelta(minutes=5))
        engine.add_to_backlog([Opportunity("o2", "a2", clock.now())])
    first, second = (r.event.at for r in store.events())
    assert first == second
