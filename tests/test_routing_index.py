"""Routing through the per-role rankings chooses exactly what a scan of the role chooses.

The engine keeps each role's members in a heap by the route's strategy
(:mod:`spe_core.engine.ranking`) instead of judging every member for every
task. This differential test runs random teams, routing tables and sequences
of routing, declines, completions, escalations and absences on two engines:
the real one, and an oracle whose ``_route_one`` scans the whole role as the
rule is written (:func:`spe_core.routing.eligible`, :func:`choose`,
:meth:`Fairness.after`). Every answer, every task and the fairness state must
be the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from spe_core import routing
from spe_core.clock import FakeClock
from spe_core.engine import Engine
from spe_core.errors import SpeError
from spe_core.model import Absence, Member, Task, TaskKind
from spe_core.plugins import Plugins
from spe_core.routing import RoutingTable
from spe_core.store.base import Transaction
from spe_core.store.memory import MemoryStore

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
KINDS = (TaskKind.ADMIN, TaskKind.QUOTE, TaskKind.ORDER_ENTRY)


class ScanningEngine(Engine):
    """The oracle: the routing decision as the rule reads, over every member of the role."""

    def _route_one(  # type: ignore[override]
        self, tx: Transaction, state: Any, task: Task, now: datetime
    ) -> tuple[Task, str | None, int]:
        route = self.routing.route_for(task.kind)
        task = attrs.evolve(task, weight=route.weight)
        attempts = [route]
        if route.overflow_role is not None:
            attempts.append(attrs.evolve(route, roles=(route.overflow_role,), overflow_role=None))
        reasons = []
        for attempt in attempts:
            key = "routing:fairness:" + ",".join(sorted(r.value for r in attempt.roles))
            fairness = self._fairness(tx, state, key)
            candidates, why = routing.eligible(
                task,
                attempt,
                self.routing,
                state.team(attempt.roles),
                state.counts,
                state.weights,
                fairness,
                now,
                state.working,
            )
            if not candidates:
                roles = "/".join(r.value for r in attempt.roles)
                reasons.append(routing.no_candidate_reason(why, roles))
                continue
            account_key = f"routing:account:{task.account_id}:{task.kind}"
            last = tx.get_meta(account_key) if attempt.account_continuity else None
            chosen = routing.choose(attempt, candidates, last)
            state.fairness[key] = fairness.after(chosen.member, candidates)
            if attempt.account_continuity:
                tx.set_meta(account_key, chosen.member.id)
            state.add(chosen.member.id, 1, task.weight)
            return routing.assign(task, chosen.member, attempt, now), attempt.strategy.value, 1
        return routing.unassign(task, route.roles[0], "; ".join(reasons)), None, 0


members = st.builds(
    lambda i, role, weight, capacity, active, skills, zone: Member(
        f"m{i:02d}",
        f"M{i}",
        role,
        weight=weight,
        task_capacity=capacity,
        active=active,
        skills=skills,
        time_zone=zone,
    ),
    i=st.integers(0, 99),
    role=st.sampled_from(["customer_service", "engineering"]),
    weight=st.sampled_from([0.5, 1.0, 1.0, 2.0]),
    capacity=st.one_of(st.none(), st.integers(1, 4)),
    active=st.sampled_from([True, True, True, False]),
    skills=st.sets(st.sampled_from(["sap", "de"]), max_size=2),
    zone=st.sampled_from(["UTC", "UTC", "America/New_York", "Asia/Tokyo"]),
)
route_settings = st.fixed_dictionaries(
    {
        "roles": st.sampled_from([["customer_service"], ["customer_service", "engineering"]]),
        "strategy": st.sampled_from(["least_loaded", "round_robin"]),
        "account_continuity": st.booleans(),
        "overflow_role": st.sampled_from([None, "engineering"]),
        "weight": st.sampled_from([1.0, 2.0]),
    }
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("route"), st.integers(1, 12), st.sampled_from(KINDS), st.integers(0, 3)),
        st.tuples(st.just("decline"), st.integers(0, 50)),
        st.tuples(st.just("complete"), st.integers(0, 50)),
        st.tuples(st.just("away"), st.integers(0, 30)),
        st.tuples(st.just("time"), st.integers(1, 600)),
        st.tuples(st.just("escalate")),
        st.tuples(st.just("queued")),
    ),
    max_size=25,
)


def answer(call: Any) -> Any:
    try:
        value = call()
    except SpeError as exc:
        return ("error", type(exc).__name__, exc.problem)
    if isinstance(value, list):
        return [(t.id, t.status.value, t.assignee_id, t.unassigned_reason) for t in value]
    return (value.id, value.status.value, value.assignee_id, value.unassigned_reason)


@given(
    team=st.lists(members, min_size=1, max_size=14, unique_by=lambda m: m.id),
    table=st.fixed_dictionaries({k.value: route_settings for k in KINDS}),
    capacity=st.integers(1, 5),
    script=steps,
)
@settings(max_examples=150, deadline=None)
def test_rankings_choose_as_a_scan_of_the_role_does(
    team: list[Member], table: dict[str, Any], capacity: int, script: list[Any]
) -> None:
    config: dict[str, Any] = {kind: dict(route) for kind, route in table.items()}
    config["default_capacity"] = capacity
    engines = []
    clock = FakeClock(START)
    for cls in (Engine, ScanningEngine):
        engine = cls(
            MemoryStore(),
            clock=clock,
            routing_table=RoutingTable.from_config(config),
            plugins=Plugins.create(entry_points=False),
        )
        engine.upsert_members(team)
        engines.append(engine)
    ours, oracle = engines
    made = 0
    ids: list[str] = []
    for step in script:
        if step[0] == "route":
            _, n, kind, skill = step
            skills = [set(), {"sap"}, {"de"}, {"sap", "de"}][skill]
            batch = [
                Task(f"t{made + i:03d}", kind, f"acct{(made + i) % 3}", required_skills=skills)
                for i in range(n)
            ]
            made += n
            ids.extend(t.id for t in batch)
            results = [answer(lambda e=e, b=batch: e.route_tasks(b)) for e in engines]
        elif step[0] in ("decline", "complete"):
            open_ = [t for t in map(oracle.task, ids) if t.is_open and t.assignee_id]
            if not open_:
                continue
            task = sorted(open_, key=lambda t: t.id)[step[1] % len(open_)]
            action = "decline_task" if step[0] == "decline" else "complete_task"
            results = [
                answer(lambda e=e, a=action, t=task: getattr(e, a)(t.id, t.assignee_id))
                for e in engines
            ]
        elif step[0] == "away":
            member = team[step[1] % len(team)]
            away = attrs.evolve(
                member,
                absences=(Absence(clock.now(), clock.now() + timedelta(hours=3), "leave"),),
            )
            for e in engines:
                e.upsert_members([away])
            continue
        elif step[0] == "time":
            clock.advance(minutes=step[1])
            continue
        elif step[0] == "escalate":
            results = [answer(e.escalate_overdue) for e in engines]
        else:
            results = [answer(e.route_queued) for e in engines]
        assert results[0] == results[1], step
    assert [ours.task(i) for i in ids] == [oracle.task(i) for i in ids]
    with ours.store.transaction() as a, oracle.store.transaction() as b:
        for roles in ("customer_service", "customer_service,engineering", "engineering"):
            key = f"routing:fairness:{roles}"
            assert a.get_meta(key) == b.get_meta(key)
