"""Flow metrics, the process map, buffer management and the capacity planner."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spe_core import Engine, OpportunityStatus, QueuePolicy, charts
from spe_core.errors import ConfigError
from spe_core.events import (
    OpportunityQueued,
    OpportunityReleased,
    OpportunityResolved,
    OpportunityStale,
    QueueReplenished,
)
from spe_core.flow import (
    DELIVERING,
    DEMAND,
    PROPOSING,
    QUALIFYING,
    FlowMetrics,
    Histogram,
    ProcessMap,
    recommend_buffer,
)
from spe_core.model import Opportunity, Outcome
from spe_core.planner import TeamRates, plan_capacity
from spe_core.plugins import Plugins
from spe_core.simulation import simulate
from spe_core.store.memory import MemoryStore
from spe_core.testing import FakeClock
from spe_demo import MONDAY, demo_team, promotions_backlog, run_day

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)


def _queued(oid: str, at: datetime) -> OpportunityQueued:
    opp = Opportunity(oid, "a", at, status=OpportunityStatus.QUEUED)
    return OpportunityQueued(at=at, opportunity=opp)


def test_metrics_on_a_hand_built_log() -> None:
    h = timedelta(hours=1)
    log = [
        QueueReplenished(
            at=T0, moved=0, level_before=0, level_after=0, target=4, zone="red", shortfall=4
        ),
        _queued("a", T0),
        _queued("b", T0),
        _queued("c", T0),
        OpportunityReleased(at=T0 + h, opportunity_id="a", member_id="ana", lease_expires_at=None),
        OpportunityReleased(
            at=T0 + 2 * h, opportunity_id="b", member_id="ana", lease_expires_at=None
        ),
        OpportunityResolved(
            at=T0 + 3 * h, opportunity_id="a", member_id="ana", outcome=Outcome.APPOINTMENT_SET
        ),
        OpportunityResolved(
            at=T0 + 4 * h, opportunity_id="b", member_id="ana", outcome=Outcome.LOST
        ),
        OpportunityStale(at=T0 + 8 * h, opportunity_id="c", queued_at=T0),
    ]
    report = FlowMetrics(policy=QueuePolicy(target=4)).feed_all(log).report()
    demand, qualifying = report.phases[DEMAND], report.phases[QUALIFYING]
    assert (demand.arrivals, demand.departures, demand.wip) == (3, 3, 0)
    assert demand.conversion == pytest.approx(2 / 3)  # a and b moved on, c went stale
    assert (qualifying.arrivals, qualifying.departures, qualifying.wip) == (2, 2, 0)
    assert qualifying.conversion == pytest.approx(0.5)  # a to proposing, b lost
    assert qualifying.cycle_p50 == pytest.approx(7200, rel=0.02)  # both took 2 h
    assert report.phases[PROPOSING].wip == 1
    assert report.end_to_end_p50 == pytest.approx(4 * 3600, rel=0.02)  # b: 4 h; c: 8 h
    assert report.pulls_per_member_day == {"ana": 2.0}
    assert report.outcomes == {"appointment_set": 1, "lost": 1}
    assert report.hit_rate == 0.0
    # queue level 3 of 4 (green) for 1 h, 2 (yellow) for 1 h, 1 (red) for 6 h
    assert report.zone_share["green"] == pytest.approx(1 / 8)
    assert report.zone_share["yellow"] == pytest.approx(1 / 8)
    assert report.zone_share["red"] == pytest.approx(6 / 8)


@pytest.fixture(scope="module", params=[1, 2, 3])
def demo_engine(request: pytest.FixtureRequest) -> Engine:
    clock = FakeClock(MONDAY)
    engine = Engine(
        MemoryStore(),
        policy=QueuePolicy(target=90, lease=timedelta(hours=2)),
        clock=clock,
        plugins=Plugins.create(entry_points=False),
    )
    engine.upsert_members(demo_team())
    rng = random.Random(request.param)
    engine.add_to_backlog(promotions_backlog(rng, 160, clock.now()))
    run_day(engine, clock, rng)
    clock.advance(days=20)
    engine.sweep()
    return engine


def test_metrics_from_the_log_equal_those_from_the_final_state(demo_engine: Engine) -> None:
    report = FlowMetrics().feed_all(demo_engine.store.events()).report()
    phase_of = {
        OpportunityStatus.BACKLOG: DEMAND,
        OpportunityStatus.QUEUED: DEMAND,
        OpportunityStatus.RELEASED: QUALIFYING,
    }
    expected = {DEMAND: 0, QUALIFYING: 0, PROPOSING: 0, DELIVERING: 0}
    outcomes: dict[str, int] = {}
    for opp in demo_engine.store.opportunities():
        if opp.status in phase_of:
            expected[phase_of[opp.status]] += 1
        if opp.outcome is Outcome.APPOINTMENT_SET:
            expected[PROPOSING] += 1
        if opp.outcome is Outcome.WON:
            expected[DELIVERING] += 1
        if opp.outcome is not None:
            outcomes[opp.outcome.value] = outcomes.get(opp.outcome.value, 0) + 1
    assert {k: v.wip for k, v in report.phases.items()} == expected
    assert report.outcomes == outcomes


def test_conservation_across_phases(demo_engine: Engine) -> None:
    report = FlowMetrics().feed_all(demo_engine.store.events()).report()
    for name, f in report.phases.items():
        assert f.arrivals == f.departures + f.wip, name
    assert sum(report.zone_share.values()) == pytest.approx(1.0)


@given(st.lists(st.floats(1, 10**7), min_size=1, max_size=300), st.sampled_from([0.5, 0.85, 0.95]))
def test_histogram_quantiles_are_within_two_percent(values: list[float], q: float) -> None:
    hist = Histogram()
    for v in values:
        hist.add(v)
    exact = sorted(values)[int(q * (len(values) - 1))]
    got = hist.quantile(q)
    assert got is not None
    assert got == pytest.approx(exact, rel=0.021)


@given(red=st.floats(0, 1), green=st.floats(0, 1), target=st.integers(3, 500))
def test_buffer_recommendations_move_the_right_way(red: float, green: float, target: int) -> None:
    if red + green > 1:
        red, green = red / (red + green), green / (red + green)
    policy = QueuePolicy(target=target)
    rec = recommend_buffer({"red": red, "green": green, "yellow": 1 - red - green}, policy)
    if red > 0.25:
        assert rec.action == "raise"
        assert rec.recommended_target > target
        assert rec.recommended_target == pytest.approx(target * 4 / 3, abs=1)
    elif green > 0.75:
        assert rec.action == "lower"
        assert rec.recommended_target < target
    else:
        assert rec.recommended_target == target
    assert rec.apply(policy).target == rec.recommended_target
    assert "% of the time" in rec.evidence


def test_process_map_pictures_and_checks() -> None:
    pmap = ProcessMap.from_config(
        {
            "stages": {
                "qualifying": ["Working - Contacted"],
                "proposing": ["Proposal/Price Quote"],
                "delivering": ["Closed Won"],
            }
        }
    )
    assert pmap.phase_of_stage("Closed Won") == DELIVERING
    assert pmap.problems(["Closed Won", "Negotiation"]) == [
        "CRM stage 'Negotiation' is not mapped to any phase"
    ]
    report = FlowMetrics(pmap).feed_all([_queued("a", T0)]).report(T0 + timedelta(hours=1))
    text = pmap.mermaid(report)
    assert text.startswith("flowchart LR")
    assert "owner: inside_sales" in text
    assert "P0 --> P1" in text
    svg = charts.process_map(pmap, report)
    assert svg.startswith("<svg")
    assert 'data-chart="process-map"' in svg
    assert "Proposal/Price Quote" in svg
    with pytest.raises(ConfigError, match="not on the map"):
        ProcessMap.from_config({"stages": {"closing": ["x"]}})
    with pytest.raises(ConfigError, match="mapped to both"):
        ProcessMap.from_config({"stages": {"qualifying": ["x"], "proposing": ["x"]}})


def test_stage_changes_from_the_crm_move_opportunities() -> None:
    import attrs

    from spe_core.events import Event

    @attrs.frozen(kw_only=True)
    class StageChanged(Event):
        kind = "opportunity.stage_changed"
        opportunity_id: str
        stage: str

    pmap = ProcessMap.from_config({"stages": {"delivering": ["Closed Won"]}})
    metrics = FlowMetrics(pmap)
    metrics.feed(_queued("a", T0))
    metrics.feed(StageChanged(at=T0 + timedelta(hours=2), opportunity_id="a", stage="Closed Won"))
    report = metrics.report()
    assert report.phases[DELIVERING].wip == 1
    assert report.phases[DEMAND].departures == 1


# --- capacity planner -------------------------------------------------------------------------


def test_planner_finds_the_constraint() -> None:
    field_bound = plan_capacity(TeamRates(inside_reps=10, field_reps=3))
    assert field_bound.constraint == "field_sales"
    assert field_bound.pulls_per_day == pytest.approx(60)  # 3 x 4 meetings / 0.2
    assert field_bound.meetings_per_day == pytest.approx(12)
    assert field_bound.promotions_per_day == pytest.approx(60 / 0.9)
    assert field_bound.coordinators == 3
    inside_bound = plan_capacity(TeamRates(inside_reps=2, field_reps=5))
    assert inside_bound.constraint == "inside_sales"
    assert inside_bound.pulls_per_day == 50
    assert inside_bound.field_utilisation < 1
    with pytest.raises(ConfigError, match="appointment_rate"):
        TeamRates(inside_reps=2, field_reps=1, appointment_rate=1.5)


@settings(max_examples=8, deadline=None)
@given(
    inside=st.integers(2, 12),
    field=st.integers(1, 6),
    conversations=st.integers(15, 30),
    rate=st.sampled_from([0.1, 0.15, 0.2, 0.3]),
)
def test_a_simulated_month_agrees_with_the_plan_within_five_percent(
    inside: int, field: int, conversations: int, rate: float
) -> None:
    rates = TeamRates(
        inside_reps=inside,
        field_reps=field,
        conversations_per_day=conversations,
        appointment_rate=rate,
    )
    plan = plan_capacity(rates)
    sim = simulate(rates, plan)
    assert sim.pulls_per_day == pytest.approx(plan.pulls_per_day, rel=0.05)
    assert sim.meetings_per_day == pytest.approx(plan.meetings_per_day, rel=0.05)


def test_the_simulation_catches_an_undersized_buffer() -> None:
    rates = TeamRates(inside_reps=6, field_reps=10, buffer_days=0.5)
    plan = plan_capacity(rates)
    sim = simulate(rates, plan)
    assert sim.pulls_per_day < 0.95 * plan.pulls_per_day
