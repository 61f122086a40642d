"""Task routing: the rules, the complaints about today's routers, and the invariants."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spe_core import Engine, Member, Role
from spe_core.errors import ConfigError, RuleViolation, WrongOwner, WrongState
from spe_core.events import TaskEscalated, TaskQueued, TaskRouted, replay_tasks
from spe_core.hookspecs import hookimpl
from spe_core.model import Absence, Task, TaskKind, TaskStatus
from spe_core.plugins import Plugins
from spe_core.routing import Candidate, Fairness, Route, RoutingTable, Strategy, choose
from spe_core.store.base import Store
from spe_core.store.memory import MemoryStore
from spe_core.testing import FakeClock
from spe_core.worktime import add_working_time, is_working

MONDAY_10 = datetime(2026, 1, 5, 10, tzinfo=UTC)
CSRS = [Member(f"cs{i}", f"CSR {i}", "customer_service") for i in range(3)]
ENG = Member("eng", "Engineer", "engineering", skills={"sap"})
SALES = [Member("is1", "Inside", "inside_sales"), Member("fs1", "Field", "field_sales")]


def task(i: int, kind: str = TaskKind.ADMIN, **kw: object) -> Task:
    fields: dict[str, object] = {
        "id": f"t{i:04d}",
        "kind": kind,
        "account_id": f"a{i % 3}",
        "created_at": MONDAY_10,
    }
    fields.update(kw)
    return Task(**fields)  # type: ignore[arg-type]


@pytest.fixture
def routed(store: Store, clock: FakeClock) -> Engine:
    clock.set(MONDAY_10)
    engine = Engine(store, clock=clock, plugins=Plugins.create(entry_points=False))
    engine.upsert_members([*CSRS, ENG, *SALES])
    return engine


# --- the table ---------------------------------------------------------------------------


def test_default_table_follows_spe() -> None:
    table = RoutingTable()
    for kind in (
        TaskKind.QUOTE,
        TaskKind.ORDER_ENTRY,
        TaskKind.ADMIN,
        TaskKind.SERVICE_REQUEST,
        TaskKind.COMPLAINT,
    ):
        assert table.route_for(kind).roles == (Role.CUSTOMER_SERVICE,)
    assert table.route_for(TaskKind.SOLUTION_DESIGN).roles == (Role.ENGINEERING,)
    assert table.route_for(TaskKind.TECHNICAL_DEMO).roles == (Role.ENGINEERING,)
    assert table.route_for(TaskKind.IMPLEMENTATION_HANDOFF).roles == (Role.PROJECT_LEADER,)
    assert table.route_for(TaskKind.APPOINTMENT_REQUEST).roles == (Role.SALES_COORDINATOR,)
    assert table.route_for(TaskKind.RESEARCH).roles == (Role.PROMOTIONS,)
    assert table.warnings() == []


def test_transactional_work_never_goes_to_sales_without_the_unsafe_option() -> None:
    with pytest.raises(ConfigError, match="SPE keeps salespeople selling") as info:
        RoutingTable.from_config({"quote": {"roles": ["inside_sales"]}})
    assert "allow_sales_for_transactional_work_UNSAFE" in str(info.value)
    with pytest.raises(ConfigError, match="field_sales"):
        RoutingTable.from_config({"complaint": {"overflow_role": "field_sales"}})
    unsafe = RoutingTable.from_config(
        {"quote": {"roles": ["inside_sales"]}, "allow_sales_for_transactional_work_UNSAFE": True}
    )
    assert unsafe.warnings() == [
        "[routing.quote] sends transactional work to inside_sales "
        "(allow_sales_for_transactional_work_UNSAFE is set)."
    ]


def test_custom_kinds_and_bad_config() -> None:
    table = RoutingTable.from_config(
        {
            "warranty_claim": {
                "roles": ["customer_service"],
                "strategy": "round_robin",
                "sla_accept_minutes": {1: 5, 2: 10, 3: 20, 4: 40},
            }
        }
    )
    route = table.route_for("warranty_claim")
    assert route.strategy is Strategy.ROUND_ROBIN
    assert route.sla.accept[1] == timedelta(minutes=5)
    with pytest.raises(ConfigError, match="no route for task kind 'wishes'"):
        table.route_for("wishes")
    with pytest.raises(ConfigError, match="colour is not a known setting"):
        RoutingTable.from_config({"quote": {"colour": "red"}})
    with pytest.raises(ConfigError, match="no accept time for priority 4"):
        RoutingTable.from_config({"quote": {"sla_accept_minutes": {1: 5, 2: 10, 3: 20}}})


# --- strategies ------------------------------------------------------------------------------


def _cands(
    loads: list[float], served: list[float], weights: list[float] | None = None
) -> list[Candidate]:
    weights = weights or [1.0] * len(loads)
    return [
        Candidate(Member(f"m{i}", "M", "customer_service", weight=w), load, s)
        for i, (load, s, w) in enumerate(zip(loads, served, weights, strict=True))
    ]


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=12))
def test_least_loaded_never_picks_more_load_while_less_is_eligible(
    pairs: list[tuple[int, int]],
) -> None:
    cands = _cands([float(a) for a, _ in pairs], [float(b) for _, b in pairs])
    chosen = choose(Route("x", ["customer_service"]), cands, None)
    assert chosen.load == min(c.load for c in cands)


@given(n=st.integers(1, 8), k=st.integers(1, 12))
def test_round_robin_is_fair(n: int, k: int) -> None:
    route = Route("x", ["customer_service"], Strategy.ROUND_ROBIN)
    members = [Member(f"m{i}", "M", "customer_service") for i in range(n)]
    fairness = Fairness()
    got: Counter[str] = Counter()
    for _ in range(k * n):
        cands = [Candidate(m, 0.0, fairness.count(m.id)) for m in members]
        chosen = choose(route, cands, None).member
        fairness = fairness.after(chosen, cands)
        got[chosen.id] += 1
    assert max(got.values()) - min(got.values()) <= 1
    assert sum(got.values()) == k * n


def test_weights_share_round_robin_in_proportion() -> None:
    route = Route("x", ["customer_service"], Strategy.ROUND_ROBIN)
    members = [
        Member("full", "F", "customer_service", weight=2.0),
        Member("half", "H", "customer_service", weight=1.0),
    ]
    fairness, got = Fairness(), Counter[str]()
    for _ in range(300):
        cands = [Candidate(m, 0.0, fairness.count(m.id)) for m in members]
        chosen = choose(route, cands, None).member
        fairness = fairness.after(chosen, cands)
        got[chosen.id] += 1
    assert got["full"] == 200
    assert got["half"] == 100


def test_a_member_back_from_leave_is_calibrated_not_flooded() -> None:
    route = Route("x", ["customer_service"], Strategy.ROUND_ROBIN)
    a, b, c = (Member(x, x, "customer_service") for x in "abc")
    fairness = Fairness()
    for _ in range(30):  # c is away: a and b share 30 tasks
        cands = [Candidate(m, 0.0, fairness.count(m.id)) for m in (a, b)]
        fairness = fairness.after(choose(route, cands, None).member, cands)
    got: Counter[str] = Counter()
    for _ in range(9):  # c is back (and counts for a newly added member too)
        cands = [Candidate(m, 0.0, fairness.count(m.id)) for m in (a, b, c)]
        chosen = choose(route, cands, None).member
        fairness = fairness.after(chosen, cands)
        got[chosen.id] += 1
    assert got == {"a": 3, "b": 3, "c": 3}


def test_fairness_survives_a_restart_and_team_changes(routed: Engine) -> None:
    routed.routing = RoutingTable.from_config({"admin": {"strategy": "round_robin"}})
    routed.route_tasks([task(i) for i in range(6)])
    counts = Fairness.loads(
        routed.store.transaction().__enter__().get_meta("routing:fairness:customer_service")
    ).counts
    assert counts == {"cs0": 2.0, "cs1": 2.0, "cs2": 2.0}
    restarted = Engine(
        routed.store,
        clock=routed.clock,
        routing_table=routed.routing,
        plugins=Plugins.create(entry_points=False),
    )
    restarted.upsert_members([Member("cs3", "New CSR", "customer_service")])
    got = Counter(t.assignee_id for t in restarted.route_tasks([task(i) for i in range(6, 14)]))
    assert got == {"cs0": 2, "cs1": 2, "cs2": 2, "cs3": 2}


# --- availability and the SLA clock ----------------------------------------------------------


def test_partial_day_absence_blocks_only_its_hours() -> None:
    doctor = Absence(MONDAY_10, MONDAY_10 + timedelta(hours=2), "doctor")
    member = attrs.evolve(CSRS[0], absences=(doctor,))
    assert not is_working(member, MONDAY_10 + timedelta(hours=1))
    assert is_working(member, MONDAY_10 + timedelta(hours=2))
    assert is_working(member, MONDAY_10 - timedelta(minutes=30))


def test_sla_clock_runs_on_working_hours_and_holidays() -> None:
    friday_16 = datetime(2026, 1, 2, 16, tzinfo=UTC)  # Jan 1 is a holiday in Germany
    member = attrs.evolve(CSRS[0], holiday_country="DE", time_zone="Europe/Berlin")
    # 16:00 UTC is 17:00 in Berlin: already after hours; Monday 9:00 + 4h
    assert add_working_time(member, friday_16, timedelta(hours=4)) == datetime(
        2026, 1, 5, 12, tzinfo=UTC
    )
    new_year_eve = datetime(2025, 12, 31, 15, tzinfo=UTC)  # 16:00 Berlin, 1h left
    assert add_working_time(member, new_year_eve, timedelta(hours=2)) == datetime(
        2026, 1, 2, 9, tzinfo=UTC
    )  # skips Jan 1: 10:00 Berlin on Jan 2


def test_unavailable_members_get_nothing(routed: Engine, clock: FakeClock) -> None:
    away = Absence(MONDAY_10 - timedelta(hours=1), MONDAY_10 + timedelta(hours=3))
    routed.upsert_members(
        [attrs.evolve(CSRS[0], absences=(away,)), attrs.evolve(CSRS[1], active=False)]
    )
    got = {t.assignee_id for t in routed.route_tasks([task(i) for i in range(5)])}
    assert got == {"cs2"}
    clock.set(MONDAY_10.replace(hour=20))  # after hours for everyone
    queued = routed.route_task(task(99))
    assert queued.status is TaskStatus.UNASSIGNED
    assert queued.queue_role is Role.CUSTOMER_SERVICE
    assert "outside working hours" in (queued.unassigned_reason or "")


# --- engine operations -----------------------------------------------------------------------


def test_no_eligible_member_queues_with_a_reason_never_drops(routed: Engine) -> None:
    t = routed.route_task(task(1, TaskKind.SOLUTION_DESIGN, required_skills={"salesforce"}))
    assert t.status is TaskStatus.UNASSIGNED
    assert t.unassigned_reason == "no eligible engineering: 1 lacks skills"
    assert isinstance(list(routed.store.events())[-1].event, TaskQueued)
    routed.upsert_members([Member("eng2", "E2", "engineering", skills={"salesforce"})])
    (again,) = routed.route_queued()
    assert again.assignee_id == "eng2"


def test_overflow_role_takes_complaints_when_every_csr_is_full(routed: Engine) -> None:
    routed.routing = RoutingTable(default_capacity=1)
    routed.upsert_members([Member("pl", "Project leader", "project_leader")])
    got = [
        t.assignee_id
        for t in routed.route_tasks(
            [task(i, TaskKind.COMPLAINT, account_id=f"acc{i}") for i in range(4)]
        )
    ]
    assert sorted(got[:3]) == ["cs0", "cs1", "cs2"]
    assert got[3] == "pl"


def test_decline_reroutes_even_with_one_other_member_and_never_bounces(routed: Engine) -> None:
    routed.upsert_members([attrs.evolve(CSRS[2], active=False)])
    t = routed.route_task(task(1))
    first = t.assignee_id
    t = routed.decline_task(t.id, first or "", "on holiday tomorrow")
    second = t.assignee_id
    assert second not in (None, first)
    t = routed.decline_task(t.id, second or "", "not my area")
    assert t.status is TaskStatus.UNASSIGNED  # nobody left who has not had it
    assert t.prior_assignees == (first, second)
    assert "already had this task" in (t.unassigned_reason or "")


def test_accept_complete_and_wrong_hands(routed: Engine, clock: FakeClock) -> None:
    t = routed.route_task(task(1, priority=1))
    assert t.accept_by == MONDAY_10 + timedelta(minutes=30)
    assert t.complete_by == MONDAY_10 + timedelta(hours=4)
    other = next(m.id for m in CSRS if m.id != t.assignee_id)
    with pytest.raises(WrongOwner):
        routed.accept_task(t.id, other)
    routed.accept_task(t.id, t.assignee_id or "")
    with pytest.raises(WrongState):
        routed.accept_task(t.id, t.assignee_id or "")
    clock.advance(hours=1)
    done = routed.complete_task(t.id, t.assignee_id or "")
    assert done.status is TaskStatus.COMPLETED
    assert list(routed.store.events())[-1].event.within_sla is True  # type: ignore[attr-defined]


def test_escalation_of_unaccepted_and_late_tasks(routed: Engine, clock: FakeClock) -> None:
    t = routed.route_task(task(1, priority=2))
    clock.advance(hours=2)
    (escalated,) = routed.escalate_overdue()
    assert escalated.assignee_id not in (None, t.assignee_id)
    assert escalated.escalations == 1
    routed.accept_task(escalated.id, escalated.assignee_id or "")
    assert routed.escalate_overdue() == []
    clock.set(MONDAY_10 + timedelta(days=1, hours=2))  # 8 working hours after 12:00
    (late,) = routed.escalate_overdue()
    assert late.assignee_id not in (t.assignee_id, escalated.assignee_id)
    events = [r.event for r in routed.store.events() if isinstance(r.event, TaskEscalated)]
    assert [e.reason for e in events] == [
        "not accepted within its SLA",
        "not completed within its SLA",
    ]


def test_reassign_by_hand_respects_the_rules(routed: Engine) -> None:
    t = routed.route_task(task(1))
    target = next(m.id for m in CSRS if m.id != t.assignee_id)
    moved = routed.reassign_task(t.id, target, by="sc-lea")
    assert moved.assignee_id == target
    with pytest.raises(RuleViolation, match="does not take admin"):
        routed.reassign_task(t.id, "is1", by="sc-lea")


def test_account_continuity_prefers_the_last_handler(routed: Engine) -> None:
    first = routed.route_task(task(1, TaskKind.QUOTE, account_id="acme"))
    routed.route_tasks([task(i, TaskKind.QUOTE, account_id=f"other{i}") for i in range(2, 6)])
    again = routed.route_task(task(9, TaskKind.QUOTE, account_id="acme"))
    assert again.assignee_id == first.assignee_id


def test_spe_choose_assignee_plugin_overrides_and_is_checked(
    store: Store, clock: FakeClock
) -> None:
    class Senior:
        @hookimpl
        def spe_choose_assignee(
            self,
            task: Task,
            route: Route,
            candidates: list[Candidate],
            account_member_id: str | None,
            now: datetime,
        ) -> str | None:
            return "cs2" if task.priority == 1 else None

    class Rogue:
        @hookimpl
        def spe_choose_assignee(
            self,
            task: Task,
            route: Route,
            candidates: list[Candidate],
            account_member_id: str | None,
            now: datetime,
        ) -> str | None:
            return "is1"

    clock.set(MONDAY_10)
    engine = Engine(store, clock=clock, plugins=Plugins.create([Senior()], entry_points=False))
    engine.upsert_members([*CSRS, *SALES])
    assert engine.route_task(task(1, priority=1)).assignee_id == "cs2"
    assert engine.route_task(task(2, priority=3)).assignee_id == "cs0"
    rogue = Engine(
        MemoryStore(), clock=clock, plugins=Plugins.create([Rogue()], entry_points=False)
    )
    rogue.upsert_members([*CSRS, *SALES])
    with pytest.raises(ConfigError, match="not an eligible candidate"):
        rogue.route_task(task(3))


def test_replaying_task_events_rebuilds_tasks(routed: Engine, clock: FakeClock) -> None:
    tasks = routed.route_tasks([task(i) for i in range(5)])
    routed.accept_task(tasks[0].id, tasks[0].assignee_id or "")
    routed.decline_task(tasks[1].id, tasks[1].assignee_id or "")
    clock.advance(hours=5)
    routed.escalate_overdue()
    rebuilt = replay_tasks(routed.store.events())
    assert set(rebuilt) == {t.id for t in tasks}
    for tid, t in rebuilt.items():
        assert routed.task(tid) == t


@settings(max_examples=30)
@given(kinds=st.lists(st.sampled_from(list(TaskKind)), min_size=1, max_size=25))
def test_no_transactional_kind_ever_reaches_sales(kinds: list[TaskKind]) -> None:
    engine = Engine(
        MemoryStore(), clock=FakeClock(MONDAY_10), plugins=Plugins.create(entry_points=False)
    )
    engine.upsert_members(
        [
            *CSRS,
            ENG,
            *SALES,
            Member("sc", "SC", "sales_coordinator"),
            Member("pr", "PR", "promotions"),
            Member("pl", "PL", "project_leader"),
        ]
    )
    routed = engine.route_tasks([task(i, k) for i, k in enumerate(kinds)])
    sales = {m.id for m in SALES}
    assert all(t.assignee_id not in sales for t in routed)
    assert all(t.status in (TaskStatus.ASSIGNED, TaskStatus.UNASSIGNED) for t in routed)
    assert len(
        [r for r in engine.store.events() if isinstance(r.event, TaskRouted | TaskQueued)]
    ) == len(kinds)


# --- cancellation (task.cancelled) ------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    status=st.sampled_from(list(TaskStatus)),
    priority=st.integers(1, 4),
    prior=st.lists(st.sampled_from(["cs0", "cs1", "cs2"]), unique=True, max_size=3),
)
def test_cancel_rule_leaves_no_assignee_queue_or_deadline(
    status: TaskStatus, priority: int, prior: list[str]
) -> None:
    from spe_core.routing import CANCELLABLE, cancel

    holding = status in (TaskStatus.ASSIGNED, TaskStatus.ACCEPTED, TaskStatus.COMPLETED)
    shape: dict[str, object] = {"status": status, "priority": priority}
    if holding:
        shape |= {
            "assignee_id": "cs0",
            "assigned_at": MONDAY_10,
            "accept_by": MONDAY_10 + timedelta(hours=1),
            "complete_by": MONDAY_10 + timedelta(hours=4),
            "prior_assignees": tuple(dict.fromkeys(["cs0", *prior])),
        }
    elif status is TaskStatus.UNASSIGNED:
        shape |= {"queue_role": "customer_service", "unassigned_reason": "nobody free"}
    before = task(1, **shape)
    if status not in CANCELLABLE:
        with pytest.raises(WrongState, match="cannot cancel"):
            cancel(before)
        return
    after = cancel(before)
    assert after.status is TaskStatus.CANCELLED
    assert (after.assignee_id, after.queue_role, after.unassigned_reason) == (None, None, None)
    assert (after.accept_by, after.complete_by) == (None, None)
    assert after.prior_assignees == before.prior_assignees  # history kept: never bounces
    assert not after.is_open
    with pytest.raises(WrongState):
        cancel(after)


def test_cancel_task_frees_the_load_and_the_queue(routed: Engine) -> None:
    from spe_core.events import TaskCancelled

    first = routed.route_task(task(1))
    holder = first.assignee_id or ""
    cancelled = routed.cancel_task(first.id, "deleted in salesforce", crm="salesforce")
    assert cancelled.status is TaskStatus.CANCELLED
    assert routed.open_tasks(holder) == []
    event = list(routed.store.events())[-1].event
    assert isinstance(event, TaskCancelled)
    assert (event.kind, event.from_member_id, event.crm) == ("task.cancelled", holder, "salesforce")
    with pytest.raises(WrongState):
        routed.cancel_task(first.id, "again")
    done = routed.route_task(task(2))
    routed.complete_task(done.id, done.assignee_id or "")
    with pytest.raises(WrongState, match="completed"):
        routed.cancel_task(done.id, "too late")
    assert replay_tasks(routed.store.events())[first.id] == cancelled
    assert routed.escalate_overdue() == [] and routed.route_queued() == []


def test_task_cancelled_round_trips_through_the_codec() -> None:
    from spe_core import codec
    from spe_core.events import EVENT_TYPES, TaskCancelled

    event = TaskCancelled(
        at=MONDAY_10,
        task=task(1, status=TaskStatus.CANCELLED),
        from_member_id="cs0",
        reason="deleted in salesforce",
        crm="salesforce",
    )
    assert EVENT_TYPES["task.cancelled"] is TaskCancelled
    assert codec.schema_version(TaskCancelled) == 1
    assert codec.loads(codec.dumps(event)) == event
