"""The engine against every embedded store: operations, events, hooks, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from spe_core import Engine, Member, Opportunity, OpportunityStatus, Outcome, QueuePolicy, Zone
from spe_core.errors import (
    InvalidValue,
    RoleMayNotPull,
    UnknownMember,
    UnknownOpportunity,
    WrongOwner,
)
from spe_core.events import (
    OpportunityQueued,
    OpportunityReleased,
    QueueReplenished,
    Recorded,
    replay,
)
from spe_core.hookspecs import hookimpl
from spe_core.plugins import Plugins
from spe_core.store.base import Store
from spe_core.testing import FakeClock

TEAM = [
    Member("ann", "Ann", "inside_sales", skills={"de"}),
    Member("bob", "Bob", "inside_sales", wip_limit=1),
    Member("fay", "Fay", "field_sales"),
]


def opps(n: int, clock: FakeClock, **kw: object) -> list[Opportunity]:
    return [
        Opportunity(
            f"o{i}", f"a{i}", clock.now() - timedelta(minutes=i), tier=i % 2, score=float(i), **kw
        )  # type: ignore[arg-type]
        for i in range(n)
    ]


@pytest.fixture
def team_engine(engine: Engine) -> Engine:
    engine.upsert_members(TEAM)
    return engine


def test_a_day_in_the_queue(team_engine: Engine, clock: FakeClock) -> None:
    e = team_engine
    e.policy = QueuePolicy(target=4)
    e.add_to_backlog(opps(6, clock))
    status = e.queue_status()
    assert (status.level, status.backlog, status.zone) == (0, 6, Zone.RED)
    result = e.replenish()
    assert result.plan.to_move == 4
    assert [o.id for o in result.moved] == ["o5", "o3", "o1", "o4"]  # tier desc, score desc
    assert all(o.queued_at == clock.now() for o in result.moved)
    assert e.queue_status().zone is Zone.GREEN
    pulled = e.pull("ann", 2)
    assert [o.id for o in pulled.released] == ["o5", "o3"]
    assert pulled.opportunity is not None
    e.resolve("o5", "ann", Outcome.APPOINTMENT_SET)
    e.give_back("o3", "ann", "no German speaker at the account")
    assert e.opportunity("o3").status is OpportunityStatus.QUEUED
    assert [o.id for o in e.pull("ann", 3).released] == ["o1", "o4"]  # o3 excluded for ann
    assert [o.id for o in e.pull("bob", 3).released] == ["o3"]  # WIP limit 1
    assert e.pull("bob").reason == "at WIP limit: holds 1 of 1"
    assert [o.id for o in e.held_by("ann")] == ["o1", "o4"]
    assert replay(e.store.events()) == {o.id: o for o in e.store.opportunities()}


def test_pull_errors_and_reasons(team_engine: Engine, clock: FakeClock) -> None:
    e = team_engine
    with pytest.raises(UnknownMember, match="'zed'"):
        e.pull("zed")
    with pytest.raises(RoleMayNotPull):
        e.pull("fay")
    assert e.pull("ann").reason == "no more eligible opportunities in the queue"
    e.enqueue(opps(1, clock, required_skills={"fr"}))
    empty = e.pull("ann")
    assert empty.released == ()
    assert empty.reason == "no more eligible opportunities in the queue"


def test_resolve_and_give_back_check_the_holder(team_engine: Engine, clock: FakeClock) -> None:
    e = team_engine
    e.enqueue(opps(2, clock))
    e.pull("ann")
    with pytest.raises(WrongOwner):
        e.resolve("o1", "bob", "won")
    with pytest.raises(UnknownOpportunity):
        e.resolve("nope", "ann", "won")
    with pytest.raises(InvalidValue, match="not an outcome"):
        e.resolve("o1", "ann", "maybe")
    assert e.opportunity("o1").status is OpportunityStatus.RELEASED


def test_duplicate_ids_are_refused_and_nothing_is_half_written(
    team_engine: Engine, clock: FakeClock
) -> None:
    e = team_engine
    e.enqueue(opps(1, clock))
    before = list(e.store.events())
    with pytest.raises(InvalidValue, match="already known"):
        e.enqueue([*opps(3, clock)[1:], opps(1, clock)[0]])
    assert list(e.store.events()) == before
    assert [o.id for o in e.store.opportunities()] == ["o0"]


def test_sweeps_leases_staleness_and_expiry(team_engine: Engine, clock: FakeClock) -> None:
    e = team_engine
    e.policy = QueuePolicy(lease=timedelta(hours=1), stale_age=timedelta(days=1))
    e.enqueue(opps(3, clock))
    e.enqueue([Opportunity("x", "a", clock.now(), expires_at=clock.now() + timedelta(hours=2))])
    e.pull("ann")
    clock.advance(hours=1)
    result = e.sweep()
    assert result.lease_expired == ("o1",)
    clock.advance(hours=1)
    assert e.sweep().expired == ("x",)
    clock.advance(days=1)
    assert set(e.sweep().stale) == {"o0", "o1", "o2"}
    assert e.queue_status().level == 0


def test_replenish_skips_expired_backlog(team_engine: Engine, clock: FakeClock) -> None:
    e = team_engine
    e.policy = QueuePolicy(target=3)
    e.add_to_backlog(
        [
            Opportunity(
                "old", "a", clock.now(), tier=9, expires_at=clock.now() + timedelta(hours=1)
            ),
            *opps(1, clock),
        ]
    )
    clock.advance(hours=2)
    result = e.replenish()
    assert [o.id for o in result.moved] == ["o0"]
    assert result.plan.shortfall == 2
    log = [r.event for r in e.store.events()]
    assert isinstance(log[-1], QueueReplenished)
    assert log[-1].moved == 1


def test_scoring_plugin_ranks_at_enqueue_and_listeners_see_commits(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    class _Scorer:
        @hookimpl
        def spe_score_opportunity(self, opportunity: Opportunity, now: datetime) -> float | None:
            return 100.0 if opportunity.source_campaign == "webinar" else None

    class _Listener:
        def __init__(self) -> None:
            self.seen: list[Recorded] = []

        @hookimpl
        def spe_event(self, recorded: Recorded) -> None:
            self.seen.append(recorded)

    class _Broken:
        @hookimpl
        def spe_event(self, recorded: Recorded) -> None:
            raise RuntimeError("listener bug")

    listener = _Listener()
    plugins = Plugins.create([_Scorer(), _Broken(), listener], entry_points=False)
    e = Engine(store, clock=clock, plugins=plugins)
    e.upsert_members(TEAM)
    e.enqueue(
        [
            Opportunity("plain", "a", clock.now(), score=50),
            Opportunity("hot", "a", clock.now(), score=1, source_campaign="webinar"),
        ]
    )
    assert e.opportunity("hot").score == 100.0
    assert e.pull("ann").released[0].id == "hot"
    kinds = [type(r.event) for r in listener.seen]
    assert kinds[-3:] == [OpportunityQueued, OpportunityQueued, OpportunityReleased]
    assert [r.seq for r in listener.seen] == list(range(1, len(listener.seen) + 1))
    assert "listener bug" in caplog.text or "failed" in caplog.text


def test_nothing_reaches_listeners_from_a_failed_transaction(
    store: Store, clock: FakeClock
) -> None:
    class _Listener:
        def __init__(self) -> None:
            self.seen: list[Recorded] = []

        @hookimpl
        def spe_event(self, recorded: Recorded) -> None:
            self.seen.append(recorded)

    listener = _Listener()
    e = Engine(store, clock=clock, plugins=Plugins.create([listener], entry_points=False))
    with pytest.raises(InvalidValue):
        e.enqueue([Opportunity("a", "a", clock.now()), Opportunity("a", "a", clock.now())])
    assert listener.seen == []


def test_a_naive_clock_is_refused(store: Store) -> None:
    class Naive:
        def now(self) -> datetime:
            return datetime(2026, 1, 5, 8)

    e = Engine(store, clock=Naive(), plugins=Plugins.create(entry_points=False))
    with pytest.raises(InvalidValue, match="naive"):
        e.upsert_members(TEAM)


def test_members_round_trip(team_engine: Engine) -> None:
    assert [m.id for m in team_engine.members()] == ["ann", "bob", "fay"]
    assert team_engine.member("fay").role.value == "field_sales"
    assert team_engine.upsert_members(TEAM) == []  # unchanged members record nothing
    with pytest.raises(UnknownMember):
        team_engine.member("zed")


def test_daily_cap_resets_on_the_members_next_local_day(
    team_engine: Engine, clock: FakeClock
) -> None:
    e = team_engine
    e.policy = QueuePolicy(daily_pull_cap=2, default_wip_limit=10)
    e.enqueue(opps(5, clock))
    assert len(e.pull("ann", 5).released) == 2
    assert e.pull("ann").reason == "daily pull cap reached: 2 of 2 today"
    clock.set(datetime(2026, 1, 6, 0, 1, tzinfo=UTC))
    assert len(e.pull("ann").released) == 1


def test_an_id_given_twice_in_one_call_is_refused_and_nothing_is_kept(
    store: Store, clock: FakeClock
) -> None:
    e = Engine(store, clock=clock, plugins=Plugins.create(entry_points=False))
    twice = [Opportunity("d", "a", clock.now()), Opportunity("d", "b", clock.now())]
    for add in (e.add_to_backlog, e.enqueue):
        with pytest.raises(InvalidValue, match="given twice"):
            add(twice)
    assert list(store.opportunities()) == []
