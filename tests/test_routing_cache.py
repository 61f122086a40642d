"""Differential: the engine that keeps its routing state between calls (team, rankings,
availability, fairness) against one that rebuilds it every call and always calls the
``spe_choose_assignee`` hook (a pass-through plugin). Every answer, task, event and
fairness entry must agree, through time jumps, absences, declines, completions,
escalations, a second engine on the same store ("another process") and a rolled-back
unit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pluggy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spe_core import hookspecs
from spe_core.clock import FakeClock
from spe_core.engine import Engine
from spe_core.errors import SpeError
from spe_core.model import Absence, Member, Task, TaskKind
from spe_core.plugins import Plugins
from spe_core.routing import RoutingTable
from spe_core.store.memory import MemoryStore
from tests.test_routing_index import members, route_settings  # the same team and routes

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
KINDS = (TaskKind.ADMIN, TaskKind.QUOTE, TaskKind.ORDER_ENTRY)


class Fresh(Engine):
    """Never keeps its routing state, and calls the hook (a pass-through plugin)."""

    def _keep_routing_state(self, state: Any) -> None:
        pass


class PassThrough:
    @pluggy.HookimplMarker(hookspecs.PROJECT)
    def spe_choose_assignee(
        self, task: Any, route: Any, candidates: Any, account_member_id: Any, now: Any
    ) -> None:
        return None


steps = st.lists(
    st.one_of(
        st.tuples(st.just("route"), st.integers(1, 12), st.sampled_from(KINDS), st.integers(0, 3)),
        st.tuples(st.just("decline"), st.integers(0, 50)),
        st.tuples(st.just("complete"), st.integers(0, 50)),
        st.tuples(st.just("away"), st.integers(0, 30)),
        st.tuples(st.just("time"), st.sampled_from([1, 7, 60, 240, 600, 1440, 3000])),
        st.tuples(st.just("escalate")),
        st.tuples(st.just("queued")),
        st.tuples(st.just("other"), st.integers(0, 50)),
        st.tuples(st.just("rollback"), st.integers(1, 5), st.sampled_from(KINDS)),
    ),
    max_size=40,
)


def answer(call: Any) -> Any:
    try:
        value = call()
    except SpeError as exc:
        return ("error", type(exc).__name__, exc.problem)
    if isinstance(value, list):
        return [attrs.asdict(t) for t in value]
    return attrs.asdict(value)


@given(
    team=st.lists(members, min_size=1, max_size=14, unique_by=lambda m: m.id),
    table=st.fixed_dictionaries({k.value: route_settings for k in KINDS}),
    capacity=st.integers(1, 5),
    script=steps,
)
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_kept_routing_state_decides_as_a_fresh_one(
    team: list[Member], table: dict[str, Any], capacity: int, script: list[Any]
) -> None:
    config = {kind: dict(route) for kind, route in table.items()}
    config["default_capacity"] = capacity
    clock = FakeClock(START)
    ours = Engine(
        MemoryStore(),
        clock=clock,
        routing_table=RoutingTable.from_config(config),
        plugins=Plugins.create(entry_points=False),
    )
    oracle = Fresh(
        MemoryStore(),
        clock=clock,
        routing_table=RoutingTable.from_config(config),
        plugins=Plugins.create([PassThrough()], entry_points=False),
    )
    # "another process": a second engine on our store (and on the oracle's)
    ours2 = Engine(
        ours.store,
        clock=clock,
        routing_table=RoutingTable.from_config(config),
        plugins=Plugins.create(entry_points=False),
    )
    oracle2 = Fresh(
        oracle.store,
        clock=clock,
        routing_table=RoutingTable.from_config(config),
        plugins=Plugins.create(entry_points=False),
    )
    engines = [ours, oracle]
    for e in engines:
        e.upsert_members(team)
    made = 0
    ids = []
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
        elif step[0] == "other":
            batch = [Task(f"t{made:03d}", KINDS[step[1] % 3], f"acct{made % 3}")]
            made += 1
            ids.append(batch[0].id)
            results = [answer(lambda e=e, b=batch: e.route_tasks(b)) for e in (ours2, oracle2)]
            done = []
            for e in (ours2, oracle2):
                open_ = [t for t in map(e.task, ids) if t.is_open and t.assignee_id]
                if open_:
                    task = sorted(open_, key=lambda t: t.id)[step[1] % len(open_)]
                    done.append(answer(lambda e=e, t=task: e.complete_task(t.id, t.assignee_id)))
            assert results[0] == results[1], step
            results = done + [None] * (2 - len(done))
        elif step[0] == "rollback":
            _, n, kind = step
            batch = [Task(f"t{made + i:03d}", kind, f"acct{(made + i) % 3}") for i in range(n)]
            made += n
            for e in engines:
                try:
                    with e.unit():
                        e.route_tasks(batch)
                        raise KeyError("roll back")
                except KeyError:
                    pass
            continue
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
                absences=(
                    Absence(
                        clock.now() + timedelta(minutes=30),
                        clock.now() + timedelta(hours=3),
                        "leave",
                    ),
                ),
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
    assert [r.event for r in ours.store.events()] == [r.event for r in oracle.store.events()]
    with ours.store.transaction() as a, oracle.store.transaction() as b:
        for roles in ("customer_service", "customer_service,engineering", "engineering"):
            key = f"routing:fairness:{roles}"
            assert a.get_meta(key) == b.get_meta(key)
