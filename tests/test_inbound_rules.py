"""CRM edits to work SPE holds (spe_core.inbound): the pure rules, and the sync applying
them against the reference CRM, by property and by example."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from spe_core import Engine, Opportunity, OpportunityStatus, QueuePolicy, hookimpl
from spe_core.adapter import Inbound
from spe_core.inbound import (
    CLOSED_STATUSES,
    KNOWN_STATUSES,
    OPEN,
    Action,
    decide_opportunity,
)
from spe_core.plugins import Plugins
from spe_core.store import open_store
from spe_core.store.base import Store
from spe_core.sync import SyncEngine
from spe_core.testing import FakeClock
from spe_core.testing.dictcrm import DictCrm, DictCrmAdapter

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
UNKNOWN = ["something-else", "Queued", "in_review"]
STATUSES = sorted(CLOSED_STATUSES | {"queued", "backlog", "released", "", *UNKNOWN})


@st.composite
def known_opportunities(draw: st.DrawFn) -> Opportunity | None:
    status = draw(st.none() | st.sampled_from(OpportunityStatus))
    if status is None:
        return None
    fields: dict[str, Any] = {}
    if status is OpportunityStatus.RELEASED:
        fields["owner_id"] = draw(st.sampled_from(["m1", "m2"]))
    if status is OpportunityStatus.RESOLVED:
        fields["outcome"] = "won"
    return Opportunity("o1", "a1", T0, status=status, **fields)


@given(
    known=known_opportunities(),
    crm_status=st.none() | st.sampled_from(STATUSES),
    crm_owner=st.none() | st.sampled_from(["U1", "U2"]),
    owner_crm_id=st.none() | st.sampled_from(["U1", "U2"]),
    deleted=st.booleans(),
    pending=st.booleans(),
)
def test_the_inbound_rules(
    known: Opportunity | None,
    crm_status: str | None,
    crm_owner: str | None,
    owner_crm_id: str | None,
    deleted: bool,
    pending: bool,
) -> None:
    inbound = Inbound(
        Opportunity("o1", "a1", T0), crm_owner=crm_owner, crm_status=crm_status, deleted=deleted
    )
    decision = decide_opportunity(
        known, inbound, crm="crm", owner_crm_id=owner_crm_id, spe_write_pending=pending
    )
    is_open = known is not None and known.status in OPEN
    if decision.action is Action.IGNORE:  # never without its reason
        assert decision.reason
    if deleted:
        assert decision.action is (Action.WITHDRAW if is_open else Action.IGNORE)
        return
    if crm_status and crm_status not in KNOWN_STATUSES:  # a configuration problem, never
        assert decision.action is Action.QUARANTINE  # guessed at, never dropped in silence
        assert repr(crm_status) in decision.reason and "status_values" in decision.reason
        return
    if known is None:  # new records enter the backlog, whatever their status says
        expected = Action.ADD if crm_status in ("queued", "backlog") else Action.IGNORE
        assert decision.action is expected
        return
    assert decision.action is not Action.ADD  # never twice
    if not is_open:
        assert decision.action is Action.UNCHANGED
    elif crm_status in CLOSED_STATUSES:
        assert decision.action is Action.WITHDRAW and crm_status in decision.reason
    elif known.status is OpportunityStatus.RELEASED:
        conflict = not pending and crm_owner is not None and crm_owner != owner_crm_id
        assert decision.action is (Action.CONFLICT if conflict else Action.UNCHANGED)
    else:
        assert decision.action is Action.RERANK


# --- against the reference CRM ---------------------------------------------------------


def _rig(store: Store, clock: FakeClock, target: int) -> tuple[DictCrm, Engine, SyncEngine]:
    crm = DictCrm(clock)
    crm.add_user("U1", "Ana", "inside_sales")
    engine = Engine(
        store,
        clock=clock,
        policy=QueuePolicy(target=target, daily_pull_cap=None, default_wip_limit=1000),
        plugins=Plugins.create(entry_points=False),
    )
    return crm, engine, SyncEngine(engine, DictCrmAdapter(crm), sleep=lambda s: None)


def test_records_marked_queued_never_push_the_queue_past_its_target(
    store: Store, clock: FakeClock
) -> None:
    crm, engine, sync = _rig(store, clock, target=10)
    for i in range(40):
        crm.add_record(Account=f"A{i}", Score=i, Status="queued")
    clock.advance(minutes=10)
    assert sync.run().streams["opportunities"].applied == 40
    status = engine.queue_status()
    assert (status.level, status.backlog) == (0, 40)
    engine.replenish()
    status = engine.queue_status()
    assert (status.level, status.backlog) == (10, 30)
    moved = sorted(o.score for o in store.opportunities(OpportunityStatus.QUEUED))
    assert moved == [float(s) for s in range(30, 40)]  # the best ten


def test_a_score_or_tier_changed_in_the_crm_reranks_queued_work(
    store: Store, clock: FakeClock
) -> None:
    crm, engine, sync = _rig(store, clock, target=10)
    first = crm.add_record(Account="first", Score=10, Status="queued")
    second = crm.add_record(Account="second", Score=5, Status="queued")
    third = crm.add_record(Account="third", Score=1, Status="queued")
    clock.advance(minutes=10)
    sync.run()
    engine.replenish()
    clock.advance(minutes=10)
    crm.edit(second, Score=50)
    crm.edit(third, Tier=1)  # a better tier beats any score
    clock.advance(minutes=10)
    report = sync.run()
    assert report.streams["opportunities"].applied >= 2
    order = [o.account_id for o in engine.pull("u-U1", 3).released]
    assert order == ["third", "second", "first"]
    assert crm.records[first]["Score"] == 10
    kinds = [r.event.kind for r in store.events()]
    assert kinds.count("opportunity.reranked") == 2


def test_a_page_of_reranks_is_scored_in_one_call_of_spe_score_opportunities(
    store: Store, clock: FakeClock
) -> None:
    pages: list[list[str]] = []

    class Batch:
        @hookimpl
        def spe_score_opportunities(
            self, opportunities: list[Opportunity], now: datetime
        ) -> list[float]:
            pages.append(sorted(o.account_id for o in opportunities))
            return [o.score + 1000 for o in opportunities]

    crm = DictCrm(clock)
    crm.add_user("U1", "Ana", "inside_sales")
    engine = Engine(
        store,
        clock=clock,
        policy=QueuePolicy(target=10, daily_pull_cap=None, default_wip_limit=1000),
        plugins=Plugins.create([Batch()], entry_points=False),
    )
    sync = SyncEngine(engine, DictCrmAdapter(crm), sleep=lambda s: None)
    ids = [crm.add_record(Account=f"A{i}", Score=i, Status="queued") for i in range(4)]
    clock.advance(minutes=10)
    sync.run()
    backlog = {o.account_id: o for o in store.opportunities(OpportunityStatus.BACKLOG)}
    assert sorted(backlog) == ["A0", "A1", "A2", "A3"]  # as mapped: base scores
    assert [backlog[f"A{i}"].score for i in range(4)] == [0.0, 1.0, 2.0, 3.0]
    engine.replenish()
    assert pages == [["A0", "A1", "A2", "A3"]]  # the top-up: one call for the four
    clock.advance(minutes=10)
    for i, crm_id in enumerate(ids):
        crm.edit(crm_id, Score=10 + i)
    clock.advance(minutes=10)
    report = sync.run()
    assert report.streams["opportunities"].applied == 4
    # the reference CRM's pages hold three records: one call per page, not per record
    assert pages[1:] == [["A0", "A1", "A2"], ["A3"]]
    scores = {o.account_id: o.score for o in store.opportunities(OpportunityStatus.QUEUED)}
    assert scores == {"A0": 1010.0, "A1": 1011.0, "A2": 1012.0, "A3": 1013.0}


def test_a_status_closed_by_a_person_withdraws_and_is_not_overwritten(
    store: Store, clock: FakeClock
) -> None:
    crm, engine, sync = _rig(store, clock, target=10)
    queued = crm.add_record(Account="queued", Score=2, Status="queued")
    held = crm.add_record(Account="held", Score=9, Status="queued")
    clock.advance(minutes=10)
    sync.run()
    engine.replenish()
    (pulled,) = engine.pull("u-U1").released  # its write has not gone out yet
    assert pulled.account_id == "held"
    clock.advance(minutes=10)
    crm.edit(queued, Status="lost")
    crm.edit(held, Status="won")
    clock.advance(minutes=10)
    sync.run()
    statuses = {o.account_id: o.status for o in store.opportunities()}
    assert statuses == {"queued": OpportunityStatus.WITHDRAWN, "held": OpportunityStatus.WITHDRAWN}
    assert (crm.records[queued]["Status"], crm.records[held]["Status"]) == ("lost", "won")
    assert sync.run().written == 0


class CrmEditsMachine(RuleBasedStateMachine):
    """Random arrivals, CRM edits by people, syncs, replenishments and pulls: after every
    sync SPE agrees with the CRM about what people changed, and the queue never
    passes its target."""

    TARGET = 6

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.store = open_store("memory:")
        self.crm, self.engine, self.sync = _rig(self.store, self.clock, self.TARGET)
        self.sync.run()  # the team
        self.closed: dict[str, str] = {}  # CRM id -> status a person set while SPE held it

    def teardown(self) -> None:
        self.store.close()

    def _spe(self, crm_id: str) -> Opportunity | None:
        return next(
            (o for o in self.store.opportunities() if o.external_id("dictcrm") == crm_id), None
        )

    @rule(
        status=st.sampled_from(["queued", "backlog", "won", None, "Parked"]),
        tier=st.integers(0, 2),
        score=st.integers(0, 9),
    )
    def arrive(self, status: str | None, tier: int, score: int) -> None:
        fields: dict[str, Any] = {"Account": "acct", "Tier": tier, "Score": score}
        if status is not None:
            fields["Status"] = status
        self.crm.add_record(**fields)
        self.clock.advance(minutes=1)

    @precondition(lambda self: bool(self.crm.records))
    @rule(data=st.data(), tier=st.integers(0, 2), score=st.integers(0, 9))
    def person_edits_rank(self, data: st.DataObject, tier: int, score: int) -> None:
        crm_id = data.draw(st.sampled_from(sorted(self.crm.records)))
        self.crm.edit(crm_id, Tier=tier, Score=score)
        self.clock.advance(minutes=1)

    @precondition(lambda self: bool(self.crm.records))
    @rule(data=st.data(), status=st.sampled_from(["won", "lost", "nurture"]))
    def person_closes(self, data: st.DataObject, status: str) -> None:
        crm_id = data.draw(st.sampled_from(sorted(self.crm.records)))
        held = self._spe(crm_id)
        if crm_id in self.closed or (held is not None and held.status in OPEN):
            self.closed[crm_id] = status
        self.crm.edit(crm_id, Status=status)
        self.clock.advance(minutes=1)

    @rule()
    def replenish(self) -> None:
        self.engine.replenish()

    @rule(count=st.integers(1, 3))
    def pull(self, count: int) -> None:
        self.engine.pull("u-U1", count)

    @rule(minutes=st.integers(1, 20))
    def sync_run(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)
        reports = [self.sync.run()]
        self.clock.advance(minutes=10)  # past the skew window: the next run reads anew
        reports.append(self.sync.run())
        for report in reports:  # every record read is in one count, none in silence
            for stream in report.streams.values():
                counted = stream.applied + stream.unchanged + stream.ignored + stream.quarantined
                assert stream.read == counted + stream.conflicts
                assert stream.ignored == sum(stream.ignored_reasons.values())
        parked = {k for k, r in self.crm.records.items() if r.get("Status") == "Parked"}
        assert parked <= {q.key for q in self.sync.quarantined()}  # an unknown status
        assert not parked & {o.external_id("dictcrm") for o in self.store.opportunities()}
        for crm_id, status in self.closed.items():
            spe = self._spe(crm_id)
            assert spe is not None and spe.status is OpportunityStatus.WITHDRAWN
            assert self.crm.records[crm_id]["Status"] == status  # never overwritten
        for opp in self.store.opportunities():
            crm_id = opp.external_id("dictcrm")
            assert crm_id is not None
            if opp.status in (OpportunityStatus.BACKLOG, OpportunityStatus.QUEUED):
                record = self.crm.records[crm_id]
                assert (opp.tier, opp.score) == (record["Tier"], record["Score"])

    @invariant()
    def the_queue_never_passes_its_target(self) -> None:
        assert self.engine.queue_status().level <= self.TARGET

    @invariant()
    def every_record_is_held_once(self) -> None:
        ids = [o.external_id("dictcrm") for o in self.store.opportunities()]
        assert len(ids) == len(set(ids))


TestCrmEdits = CrmEditsMachine.TestCase


@pytest.mark.parametrize("status", ["released", "queued"])
def test_an_owner_edit_while_spe_writes_is_not_a_conflict(status: str) -> None:
    """The CRM's owner is older than SPE's write on its way: not a person's edit."""
    known = Opportunity(
        "o1",
        "a1",
        T0,
        status=OpportunityStatus(status),
        owner_id="m1" if status == "released" else None,
    )
    inbound = Inbound(known, crm_owner="U9", crm_status="queued")
    decision = decide_opportunity(
        known, inbound, crm="crm", owner_crm_id="U1", spe_write_pending=True
    )
    assert decision.action in (Action.UNCHANGED, Action.RERANK)
