"""Stateful property tests of the pull queue, shipped for any store.

:func:`queue_machine` builds a hypothesis ``RuleBasedStateMachine`` that
drives enqueue / backlog / replenish / pull / resolve / give back / lease
expiry / staleness / time against an :class:`~spe_core.engine.Engine` on the
store your factory makes, and checks after every step:

- exclusivity: an opportunity is never released to two members at once;
- WIP limits and daily pull caps are never exceeded;
- conservation: every opportunity ever added is in exactly one state, none
  lost, none duplicated;
- the pulled opportunities are the best eligible ones, in order;
- replenishment never fills the queue above its target;
- replaying the event log rebuilds the store's state exactly.

:func:`differential_machine` runs one random sequence on the memory store
(the reference) and on your store side by side and requires identical answers.

Usage in a test module::

    TestMyStoreQueue = queue_machine(lambda: open_store("sqlite:///...")).TestCase
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from spe_core import queue
from spe_core.clock import FakeClock
from spe_core.engine import Engine, PullResult
from spe_core.errors import RoleMayNotPull, SpeError, WrongOwner, WrongState
from spe_core.events import replay
from spe_core.model import Member, Opportunity, OpportunityStatus, Outcome
from spe_core.plugins import Plugins
from spe_core.queue import QueuePolicy
from spe_core.store.base import Store
from spe_core.store.memory import MemoryStore

__all__ = ["TEAM", "differential_machine", "queue_machine"]

START = datetime(2026, 1, 5, 7, 30, tzinfo=UTC)
SKILLS = ("de", "fr")

#: The team every machine runs with: four inside salespeople with different
#: skills, WIP limits and time zones, and one promotions member (who may not pull).
TEAM = (
    Member("ann", "Ann", "inside_sales", skills={"de"}, wip_limit=1, time_zone="Europe/Berlin"),
    Member("bob", "Bob", "inside_sales", skills={"fr"}, wip_limit=2),
    Member("cy", "Cy", "inside_sales", skills={"de", "fr"}, time_zone="America/New_York"),
    Member("dee", "Dee", "inside_sales", wip_limit=3),
    Member("pat", "Pat", "promotions"),
)
PULLERS = tuple(m.id for m in TEAM if m.role.value == "inside_sales")

POLICY = QueuePolicy(
    target=6,
    lease=timedelta(hours=2),
    stale_age=timedelta(days=2),
    default_wip_limit=2,
    daily_pull_cap=4,
)

opportunity_specs = st.fixed_dictionaries(
    {
        "tier": st.integers(0, 2),
        "score": st.integers(0, 4).map(float),
        "skills": st.sets(st.sampled_from(SKILLS), max_size=2),
        "not_before": st.one_of(st.none(), st.integers(1, 300)),
        "expires": st.one_of(st.none(), st.integers(301, 5000)),
        "age": st.integers(0, 120),
    }
)


def _make(i: int, spec: dict[str, Any], now: datetime) -> Opportunity:
    return Opportunity(
        id=f"o{i:04d}",
        account_id=f"acct{i % 5}",
        queued_at=now - timedelta(minutes=spec["age"]),
        tier=spec["tier"],
        score=spec["score"],
        required_skills=spec["skills"],
        not_before=None
        if spec["not_before"] is None
        else now + timedelta(minutes=spec["not_before"]),
        expires_at=None if spec["expires"] is None else now + timedelta(minutes=spec["expires"]),
    )


class _QueueMachine(RuleBasedStateMachine):
    """Base machine; :func:`queue_machine` binds the store factory."""

    store_factory: Callable[[], Store]

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(START)
        self.store = self.store_factory()
        self.engine = Engine(
            self.store, policy=POLICY, clock=self.clock, plugins=Plugins.create(entry_points=False)
        )
        self.next_id = 0
        self.known: set[str] = set()
        self.holder: dict[str, str] = {}
        self.pulls: dict[tuple[str, object], int] = {}

    def teardown(self) -> None:
        self.store.close()

    @initialize()
    def team(self) -> None:
        self.engine.upsert_members(TEAM)

    def _new(self, specs: list[dict[str, Any]]) -> list[Opportunity]:
        out = []
        for spec in specs:
            out.append(_make(self.next_id, spec, self.clock.now()))
            self.next_id += 1
        self.known.update(o.id for o in out)
        return out

    def _state(self) -> dict[str, Opportunity]:
        return {o.id: o for o in self.store.opportunities()}

    # --- rules ------------------------------------------------------------------------

    @rule(specs=st.lists(opportunity_specs, min_size=1, max_size=4))
    def add_backlog(self, specs: list[dict[str, Any]]) -> None:
        self.engine.add_to_backlog(self._new(specs))

    @rule(specs=st.lists(opportunity_specs, min_size=1, max_size=3))
    def enqueue(self, specs: list[dict[str, Any]]) -> None:
        self.engine.enqueue(self._new(specs))

    @rule()
    def replenish(self) -> None:
        before = self.engine.queue_status().level
        result = self.engine.replenish()
        after = self.engine.queue_status().level
        assert result.plan.to_move == len(result.moved)
        assert len(result.moved) <= max(0, POLICY.target - before)
        assert after == before + len(result.moved)
        assert after <= max(POLICY.target, before)
        assert result.plan.shortfall == max(0, POLICY.target - after)

    @rule(member=st.sampled_from(PULLERS), count=st.integers(1, 3))
    def pull(self, member: str, count: int) -> None:
        now = self.clock.now()
        state = self._state()
        m = next(t for t in TEAM if t.id == member)
        eligible = sorted(
            (o for o in state.values() if queue.is_eligible(o, m, now)),
            key=lambda o: queue.rank_key(o, POLICY.order),
        )
        held = sum(
            1
            for o in state.values()
            if o.status is OpportunityStatus.RELEASED and o.owner_id == member
        )
        day = queue.pull_day(m, now)
        allowance = queue.pull_allowance(
            m, POLICY, held=held, pulled_today=self.pulls.get((member, day), 0), requested=count
        )
        result = self.engine.pull(member, count)
        expected = [o.id for o in eligible[: allowance.count]]
        assert [o.id for o in result.released] == expected, (result, expected)
        for o in result.released:
            assert o.id not in self.holder, f"{o.id} released twice"
            self.holder[o.id] = member
        if result.released:
            self.pulls[(member, day)] = self.pulls.get((member, day), 0) + len(result.released)
        if len(result.released) < count:
            assert result.reason

    @rule()
    def promotions_may_not_pull(self) -> None:
        try:
            self.engine.pull("pat")
        except RoleMayNotPull:
            return
        raise AssertionError("a promotions member pulled")

    @precondition(lambda self: bool(self.holder))
    @rule(data=st.data(), outcome=st.sampled_from(list(Outcome)))
    def resolve(self, data: st.DataObject, outcome: Outcome) -> None:
        oid = data.draw(st.sampled_from(sorted(self.holder)))
        member = self.holder.pop(oid)
        resolved = self.engine.resolve(oid, member, outcome)
        assert resolved.status is OpportunityStatus.RESOLVED
        assert resolved.outcome is outcome

    @precondition(lambda self: bool(self.holder))
    @rule(data=st.data())
    def give_back(self, data: st.DataObject) -> None:
        oid = data.draw(st.sampled_from(sorted(self.holder)))
        member = self.holder.pop(oid)
        back = self.engine.give_back(oid, member, "not a fit")
        assert back.status is OpportunityStatus.QUEUED
        assert member in back.excluded

    @precondition(lambda self: bool(self.holder))
    @rule(data=st.data())
    def stranger_may_not_resolve(self, data: st.DataObject) -> None:
        oid = data.draw(st.sampled_from(sorted(self.holder)))
        other = next(m for m in PULLERS if m != self.holder[oid])
        try:
            self.engine.resolve(oid, other, Outcome.WON)
        except WrongOwner:
            return
        raise AssertionError("a member resolved somebody else's opportunity")

    @rule()
    def resolve_unknown_state(self) -> None:
        queued = [o for o in self._state().values() if o.status is OpportunityStatus.QUEUED]
        if queued:
            try:
                self.engine.resolve(queued[0].id, "ann", Outcome.WON)
            except WrongState:
                return
            raise AssertionError("resolved a queued opportunity")

    @rule(minutes=st.integers(1, 3000))
    def advance_time(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule()
    def expire_leases(self) -> None:
        now = self.clock.now()
        due = {o.id for o in self._state().values() if queue.lease_has_expired(o, now)}
        expired = self.engine.expire_leases()
        assert set(expired) == due
        for oid in expired:
            self.holder.pop(oid)

    @rule()
    def retire_stale(self) -> None:
        result = self.engine.retire_stale()
        state = self._state()
        for oid in result.stale:
            assert state[oid].status is OpportunityStatus.NURTURE
        for oid in result.expired:
            assert state[oid].status is OpportunityStatus.EXPIRED

    # --- invariants --------------------------------------------------------------------

    @invariant()
    def conservation_and_exclusivity(self) -> None:
        state = self._state()
        assert set(state) == self.known, "an opportunity was lost or invented"
        released = {
            o.id: o.owner_id for o in state.values() if o.status is OpportunityStatus.RELEASED
        }
        assert released == self.holder
        status = self.engine.queue_status()
        assert status.level == sum(
            1 for o in state.values() if o.status is OpportunityStatus.QUEUED
        )
        assert status.backlog == sum(
            1 for o in state.values() if o.status is OpportunityStatus.BACKLOG
        )

    @invariant()
    def limits_hold(self) -> None:
        for m in TEAM:
            held = sum(1 for o in self.holder.values() if o == m.id)
            assert held <= POLICY.wip_limit(m)
        assert POLICY.daily_pull_cap is not None
        assert all(n <= POLICY.daily_pull_cap for n in self.pulls.values())

    @invariant()
    def replay_rebuilds_state(self) -> None:
        assert replay(self.store.events()) == self._state()


def queue_machine(store_factory: Callable[[], Store]) -> type[RuleBasedStateMachine]:
    """A stateful machine over stores made by ``store_factory`` (one per example)."""
    return type("QueueMachine", (_QueueMachine,), {"store_factory": staticmethod(store_factory)})


# --- differential ---------------------------------------------------------------------


def _outcome(call: Callable[[], Any]) -> Any:
    """The comparable answer of an engine call: its value, or its error's type."""
    try:
        value = call()
    except SpeError as exc:
        return ("error", type(exc).__name__)
    if isinstance(value, PullResult):
        return ("pulled", [o.id for o in value.released], value.reason)
    return ("ok", value)


class _DifferentialMachine(RuleBasedStateMachine):
    store_factory: Callable[[], Store]

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(START)
        plugins = Plugins.create(entry_points=False)
        self.stores: tuple[Store, Store] = (MemoryStore(), self.store_factory())
        self.engines = [
            Engine(s, policy=POLICY, clock=self.clock, plugins=plugins) for s in self.stores
        ]
        self.next_id = 0

    def teardown(self) -> None:
        for s in self.stores:
            s.close()

    def both(self, op: Callable[[Engine], Any]) -> None:
        reference, other = (_outcome(functools.partial(op, e)) for e in self.engines)
        assert reference == other, f"memory store answered {reference}, other store {other}"

    @initialize()
    def team(self) -> None:
        self.both(lambda e: e.upsert_members(TEAM))

    @rule(specs=st.lists(opportunity_specs, min_size=1, max_size=4), backlog=st.booleans())
    def add(self, specs: list[dict[str, Any]], backlog: bool) -> None:
        opps = [_make(self.next_id + i, s, self.clock.now()) for i, s in enumerate(specs)]
        self.next_id += len(specs)
        if backlog:
            self.both(lambda e: e.add_to_backlog(opps))
        else:
            self.both(lambda e: e.enqueue(opps))

    @rule()
    def replenish(self) -> None:
        self.both(lambda e: attrs.astuple(e.replenish().plan))

    @rule(member=st.sampled_from([m.id for m in TEAM]), count=st.integers(1, 3))
    def pull(self, member: str, count: int) -> None:
        self.both(lambda e: e.pull(member, count))

    @rule(data=st.data(), outcome=st.sampled_from(list(Outcome)), give_back=st.booleans())
    def close(self, data: st.DataObject, outcome: Outcome, give_back: bool) -> None:
        held = sorted(o.id for o in self.stores[0].opportunities(OpportunityStatus.RELEASED))
        oid = data.draw(st.sampled_from(held)) if held else "o9999"
        member = data.draw(st.sampled_from([m.id for m in TEAM]))
        if give_back:
            self.both(lambda e: e.give_back(oid, member))
        else:
            self.both(lambda e: e.resolve(oid, member, outcome))

    @rule(minutes=st.integers(1, 3000))
    def advance_time(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule()
    def sweep(self) -> None:
        self.both(lambda e: e.sweep())

    @rule()
    def status(self) -> None:
        self.both(lambda e: e.queue_status())

    @invariant()
    def same_state_and_log(self) -> None:
        a, b = self.stores
        assert list(a.opportunities()) == list(b.opportunities())
        assert list(a.events()) == list(b.events())


def differential_machine(store_factory: Callable[[], Store]) -> type[RuleBasedStateMachine]:
    """A machine running one random sequence on the memory store and on ``store_factory()``."""
    return type(
        "DifferentialMachine",
        (_DifferentialMachine,),
        {"store_factory": staticmethod(store_factory)},
    )
