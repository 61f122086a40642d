"""A stateful property test of task routing, shipped for any store.

:func:`routing_machine` drives route / accept / decline / complete / cancel /
escalate / members going out of office and coming back / time against an engine on
the store your factory makes (each step also runs on a memory store, the
reference, which must answer identically), and checks after every step:

- a transactional task never reaches inside or field sales;
- nothing is dropped or duplicated: every routed task exists exactly once,
  assigned, accepted, completed or waiting in its role's queue with a reason;
- no member holds more open tasks than their capacity;
- a task is only ever assigned to a member working at that moment;
- re-routing never gives a task back to someone who had it;
- a cancelled task holds no assignee and no queue place, and stays cancelled
  (nothing routes, escalates or accepts it again); cancelling a completed or
  cancelled task is refused;
- replaying the event log rebuilds every task.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from spe_core import worktime
from spe_core.clock import FakeClock
from spe_core.engine import Engine
from spe_core.errors import SpeError
from spe_core.events import replay_tasks
from spe_core.model import Absence, Member, Task, TaskKind, TaskStatus
from spe_core.plugins import Plugins
from spe_core.routing import SALES_ROLES, RoutingTable
from spe_core.store.base import Store
from spe_core.store.memory import MemoryStore

__all__ = ["routing_machine"]

START = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
TEAM = (
    Member("cs-a", "A", "customer_service", task_capacity=3),
    Member("cs-b", "B", "customer_service", task_capacity=2, time_zone="Europe/Berlin"),
    Member("cs-c", "C", "customer_service", weight=2.0),
    Member("en-a", "E", "engineering", skills={"sap"}),
    Member("en-b", "F", "engineering"),
    Member("pl-a", "P", "project_leader"),
    Member("is-a", "I", "inside_sales"),
    Member("fs-a", "F", "field_sales"),
)
KINDS = (
    TaskKind.ADMIN,
    TaskKind.QUOTE,
    TaskKind.COMPLAINT,
    TaskKind.SOLUTION_DESIGN,
    TaskKind.ORDER_ENTRY,
    TaskKind.IMPLEMENTATION_HANDOFF,
)
TABLE = RoutingTable(default_capacity=4)


def _answer(call: Callable[[], Any]) -> Any:
    try:
        value = call()
    except SpeError as exc:
        return ("error", type(exc).__name__)
    if isinstance(value, list):
        return [(t.id, t.status.value, t.assignee_id) if isinstance(t, Task) else t for t in value]
    if isinstance(value, Task):
        return (value.id, value.status.value, value.assignee_id)
    return value


class _RoutingMachine(RuleBasedStateMachine):
    store_factory: Callable[[], Store]

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(START)
        plugins = Plugins.create(entry_points=False)
        self.stores = (MemoryStore(), self.store_factory())
        self.engines = [
            Engine(s, clock=self.clock, plugins=plugins, routing_table=TABLE) for s in self.stores
        ]
        self.team = {m.id: m for m in TEAM}
        self.ids: list[str] = []
        self.next_id = 0
        self.cancelled: set[str] = set()

    def teardown(self) -> None:
        for s in self.stores:
            s.close()

    def both(self, op: Callable[[Engine], Any]) -> Any:
        answers = [_answer(functools.partial(op, e)) for e in self.engines]
        assert answers[0] == answers[1], f"memory answered {answers[0]}, other {answers[1]}"
        return answers[0]

    def tasks(self) -> list[Task]:
        out = []
        for tid in self.ids:
            with self.stores[1].transaction() as tx:
                task = tx.get_task(tid)
            assert task is not None, f"task {tid} was dropped"
            out.append(task)
        return out

    @initialize()
    def hire(self) -> None:
        self.both(lambda e: e.upsert_members(TEAM))

    @rule(
        kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=4),
        priority=st.integers(1, 4),
        skills=st.booleans(),
    )
    def route(self, kinds: list[str], priority: int, skills: bool) -> None:
        new = []
        for kind in kinds:
            new.append(
                Task(
                    f"t{self.next_id:04d}",
                    kind,
                    f"acct{self.next_id % 3}",
                    self.clock.now(),
                    priority=priority,
                    required_skills={"sap"}
                    if skills and kind == TaskKind.SOLUTION_DESIGN
                    else set(),
                )
            )
            self.next_id += 1
        self.ids += [t.id for t in new]
        answer = self.both(lambda e: e.route_tasks(new))
        now = self.clock.now()
        for _, status, assignee in answer:
            if status == TaskStatus.ASSIGNED.value:
                assert worktime.is_working(self.team[assignee], now), "assigned to an absentee"

    def _open(self) -> list[Task]:
        return [t for t in self.tasks() if t.is_open]

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data(), action=st.sampled_from(["accept", "complete", "decline"]))
    def act(self, data: st.DataObject, action: str) -> None:
        open_tasks = self._open()
        if not open_tasks:
            return
        task = data.draw(st.sampled_from(open_tasks))
        member = task.assignee_id or ""
        if action == "accept":
            self.both(lambda e: e.accept_task(task.id, member))
        elif action == "complete":
            self.both(lambda e: e.complete_task(task.id, member))
        else:
            self.both(lambda e: e.decline_task(task.id, member, "busy"))

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(self.tasks()))
        answer = self.both(lambda e: e.cancel_task(task.id, "deleted in the CRM", crm="crm"))
        if task.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
            assert answer == ("error", "WrongState"), f"cancelled a {task.status.value} task"
        else:
            assert answer == (task.id, TaskStatus.CANCELLED.value, None)
            self.cancelled.add(task.id)

    @rule(
        member=st.sampled_from([m.id for m in TEAM if m.role not in SALES_ROLES]),
        hours=st.integers(1, 30),
    )
    def goes_out_of_office(self, member: str, hours: int) -> None:
        now = self.clock.now()
        away = Absence(now, now + timedelta(hours=hours), "out of office")
        self.team[member] = attrs.evolve(self.team[member], absences=(away,))
        self.both(lambda e: e.upsert_members([self.team[member]]))

    @rule(member=st.sampled_from([m.id for m in TEAM]))
    def comes_back(self, member: str) -> None:
        self.team[member] = attrs.evolve(self.team[member], absences=())
        self.both(lambda e: e.upsert_members([self.team[member]]))

    @rule(minutes=st.integers(5, 1500))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule()
    def escalate(self) -> None:
        self.both(lambda e: e.escalate_overdue())

    @rule()
    def retry_queues(self) -> None:
        self.both(lambda e: e.route_queued())

    @invariant()
    def rules_hold(self) -> None:
        tasks = self.tasks()
        held: dict[str, int] = {}
        for t in tasks:
            if t.assignee_id is not None:
                assert self.team[t.assignee_id].role not in SALES_ROLES, "sales got admin work"
            if t.is_open:
                held[t.assignee_id or ""] = held.get(t.assignee_id or "", 0) + 1
            if t.status is TaskStatus.UNASSIGNED:
                assert t.queue_role is not None
                assert t.unassigned_reason
            assert len(set(t.prior_assignees)) == len(t.prior_assignees), "a task bounced"
            if t.id in self.cancelled:
                assert t.status is TaskStatus.CANCELLED, f"cancelled task {t.id} came back"
                assert t.assignee_id is None and t.queue_role is None
        for member_id, count in held.items():
            assert count <= (self.team[member_id].task_capacity or TABLE.default_capacity)

    @invariant()
    def replay_rebuilds_tasks(self) -> None:
        for store in self.stores:
            rebuilt = replay_tasks(store.events())
            assert set(rebuilt) == set(self.ids)
        assert replay_tasks(self.stores[1].events()) == {t.id: t for t in self.tasks()}


def routing_machine(store_factory: Callable[[], Store]) -> type[RuleBasedStateMachine]:
    """A routing machine over ``store_factory()`` beside the memory reference."""
    return type(
        "RoutingMachine", (_RoutingMachine,), {"store_factory": staticmethod(store_factory)}
    )
