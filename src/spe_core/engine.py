"""The engine: the one place where rules, store and hooks meet.

Every operation reads what it needs through one store transaction, asks the
pure rules in :mod:`spe_core.queue` what to do, writes the new state, appends
the events in the same transaction and, once it has committed, hands the
events to the listeners. The clock is injected; rules are handed ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, time, timedelta

import attrs

from spe_core import calendar, model, queue, routing, worktime
from spe_core.clock import Clock, SystemClock
from spe_core.errors import (
    InvalidValue,
    NotFound,
    RuleViolation,
    UnknownMember,
    UnknownOpportunity,
    WrongState,
)
from spe_core.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    BusyTimeRead,
    Event,
    MemberUpserted,
    OpportunityBacklogged,
    QueueReplenished,
    QueueTargetChanged,
    Recorded,
    TaskAccepted,
    TaskCompleted,
    TaskDeclined,
    TaskEscalated,
    TaskQueued,
    TaskReassigned,
    TaskRouted,
)
from spe_core.model import (
    AppointmentRequest,
    Booking,
    BookingStatus,
    Busy,
    Member,
    Opportunity,
    OpportunityStatus,
    Outcome,
    Role,
    Task,
    TaskStatus,
    aware,
)
from spe_core.plugins import Plugins
from spe_core.queue import QueuePolicy, Zone
from spe_core.store.base import Store, Transaction
from spe_core.team import MemberSettings, merge_member

__all__ = ["Engine", "PullResult", "QueueStatus", "ReplenishResult", "SweepResult"]

_BUSY_READ = "calendar:busy_read:"


@attrs.frozen
class PullResult:
    """What a pull released, and why it released fewer than asked (if it did)."""

    member_id: str
    requested: int
    released: tuple[Opportunity, ...]
    reason: str | None = None

    @property
    def opportunity(self) -> Opportunity | None:
        """The first released opportunity, or None."""
        return self.released[0] if self.released else None


@attrs.frozen
class ReplenishResult:
    """The morning top-up: the plan and the opportunities it moved."""

    plan: queue.ReplenishmentPlan
    moved: tuple[Opportunity, ...]


@attrs.frozen
class QueueStatus:
    """The buffer at a glance: level against target, zone, oldest item."""

    level: int
    target: int
    zone: Zone
    backlog: int
    released: int
    oldest_queued_at: datetime | None
    shortfall: int


@attrs.define
class _RoutingState:
    """What one routing transaction reads once: the team by role, open-task counts and
    weights, fairness, and who is working at this moment."""

    members: list[Member]
    loads: dict[str, tuple[int, float]]
    fairness: dict[str, routing.Fairness]
    now: datetime
    counts: dict[str, int] = attrs.Factory(dict)
    weights: dict[str, float] = attrs.Factory(dict)
    working: dict[str, bool] = attrs.Factory(dict)
    by_roles: dict[tuple[Role, ...], list[Member]] = attrs.Factory(dict)

    def __attrs_post_init__(self) -> None:
        for member_id, (count, weight) in self.loads.items():
            self.counts[member_id] = count
            self.weights[member_id] = weight

    def team(self, roles: tuple[Role, ...]) -> list[Member]:
        if roles not in self.by_roles:
            team = [m for m in self.members if m.role in roles]
            self.by_roles[roles] = team
            for m in team:
                if m.id not in self.working:
                    self.working[m.id] = m.active and worktime.is_working(m, self.now)
        return self.by_roles[roles]

    def save(self, tx: Transaction) -> None:
        """Write the fairness counts this transaction changed."""
        for key, fairness in self.fairness.items():
            tx.set_meta(key, fairness.dumps())

    def add(self, member_id: str, count: int, weight: float) -> None:
        self.counts[member_id] = self.counts.get(member_id, 0) + count
        self.weights[member_id] = self.weights.get(member_id, 0.0) + weight


@attrs.frozen
class SweepResult:
    """What a sweep changed: leases expired, stale and expired opportunities."""

    lease_expired: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    expired: tuple[str, ...] = ()


class Engine:
    """Runs SPE against a store.

    >>> from spe_core.store import open_store
    >>> engine = Engine(open_store("memory:"))
    """

    def __init__(
        self,
        store: Store,
        *,
        policy: QueuePolicy | None = None,
        clock: Clock | None = None,
        plugins: Plugins | None = None,
        routing_table: routing.RoutingTable | None = None,
        calendar_rules: calendar.CalendarRules | None = None,
        member_settings: Iterable[MemberSettings] = (),
    ) -> None:
        model.check_instance(store, Store, "store")  # type: ignore[type-abstract]
        model.check_optional(clock, Clock, "clock")  # type: ignore[type-abstract]
        model.check_optional(policy, QueuePolicy, "policy")
        model.check_optional(plugins, Plugins, "plugins")
        model.check_optional(routing_table, routing.RoutingTable, "routing_table")
        model.check_optional(calendar_rules, calendar.CalendarRules, "calendar_rules")
        member_settings = model.check_items(member_settings, MemberSettings, "member_settings")
        self.store = store
        self.member_settings: dict[str, MemberSettings] = {s.member_id: s for s in member_settings}
        self.calendar_rules = calendar_rules or calendar.CalendarRules()
        self.routing = routing_table or routing.RoutingTable()
        self.policy = policy or QueuePolicy()
        self.clock: Clock = clock or SystemClock()
        self.plugins = plugins or Plugins.create()

    # --- plumbing ---------------------------------------------------------------------

    def _record(self, tx: Transaction, events: Iterable[Event], out: list[Recorded]) -> None:
        out.extend(tx.append(e) for e in events)

    def _notify(self, recorded: Sequence[Recorded]) -> None:
        if recorded:
            self.plugins.notify(recorded)

    def _now(self) -> datetime:
        now = self.clock.now()
        if now.tzinfo is None:
            raise InvalidValue(
                f"the engine's clock returned a naive time {now.isoformat()}.",
                "give the engine a clock whose now() is timezone-aware.",
            )
        return now

    @staticmethod
    def _member(tx: Transaction, member_id: str) -> Member:
        member = tx.get_member(member_id)
        if member is None:
            raise UnknownMember(member_id)
        return member

    @staticmethod
    def _opportunity(tx: Transaction, opportunity_id: str) -> Opportunity:
        opp = tx.get_opportunity(opportunity_id)
        if opp is None:
            raise UnknownOpportunity(opportunity_id)
        return opp

    # --- team -------------------------------------------------------------------------

    def upsert_members(
        self,
        members: Iterable[Member],
        *,
        supplies: Mapping[str, frozenset[str] | None] | None = None,
    ) -> int:
        """Add or update members; returns how many changed.

        ``supplies`` (member id -> attribute names) says which attributes a
        member's values hold (a CRM record holds some); the others keep their
        stored values. Members without an entry replace the stored ones whole.
        The engine's ``member_settings`` (an admin's) are applied last
        (:func:`spe_core.team.merge_member`).
        """
        members = model.check_items(members, Member, "members")
        model.check_supplies(supplies)
        now = self._now()
        recorded: list[Recorded] = []
        supplies = supplies or {}
        with self.store.transaction() as tx:
            for incoming in members:
                stored = tx.get_member(incoming.id)
                member = merge_member(
                    stored,
                    incoming,
                    supplies.get(incoming.id),
                    self.member_settings.get(incoming.id),
                )
                if stored != member:
                    tx.put_member(member)
                    self._record(tx, [MemberUpserted(at=now, member=member)], recorded)
        self._notify(recorded)
        return len(recorded)

    def apply_member_settings(self) -> int:
        """Apply ``member_settings`` to the stored members they name (e.g. members a
        CRM sync brought in before the settings were written); returns how many
        changed. Settings for members not stored yet wait for them."""
        with self.store.transaction() as tx:
            known = [m for m in tx.members() if m.id in self.member_settings]
        return self.upsert_members(known, supplies={m.id: frozenset() for m in known})

    def members(self) -> list[Member]:
        """Every member, by id."""
        with self.store.transaction() as tx:
            return tx.members()

    def member(self, member_id: str) -> Member:
        """The member with ``member_id`` (:class:`UnknownMember` if none)."""
        model.check_id(member_id, "member_id")
        with self.store.transaction() as tx:
            return self._member(tx, member_id)

    # --- filling the queue ------------------------------------------------------------

    def _check_new(self, tx: Transaction, opp: Opportunity) -> None:
        existing = tx.get_opportunity(opp.id)
        if existing is not None:
            raise InvalidValue(
                f"opportunity {opp.id!r} is already known ({existing.status.value}).",
                "use a new id; the queue never holds an opportunity twice.",
            )

    def add_to_backlog(self, opportunities: Iterable[Opportunity]) -> int:
        """Promotions' produced opportunities wait in the backlog for replenishment."""
        opportunities = model.check_items(opportunities, Opportunity, "opportunities")
        now = self._now()
        recorded: list[Recorded] = []
        order = self.policy.order
        with self.store.transaction() as tx:
            for opp in opportunities:
                self._check_new(tx, opp)
                backlog = attrs.evolve(opp, status=OpportunityStatus.BACKLOG)
                tx.put_opportunity(backlog, queue.rank_key(backlog, order))
                self._record(tx, [OpportunityBacklogged(at=now, opportunity=backlog)], recorded)
        self._notify(recorded)
        return len(recorded)

    def enqueue(self, opportunities: Iterable[Opportunity]) -> list[Opportunity]:
        """Put opportunities straight into the queue (scored by the plugins now)."""
        opportunities = model.check_items(opportunities, Opportunity, "opportunities")
        now = self._now()
        recorded: list[Recorded] = []
        queued: list[Opportunity] = []
        order = self.policy.order
        with self.store.transaction() as tx:
            for opp in opportunities:
                self._check_new(tx, opp)
                step = queue.enter_queue(opp, now, self.plugins.score(opp, now), from_backlog=False)
                tx.put_opportunity(step.opportunity, queue.rank_key(step.opportunity, order))
                self._record(tx, [step.event], recorded)
                queued.append(step.opportunity)
        self._notify(recorded)
        return queued

    def replenish(self) -> ReplenishResult:
        """The morning top-up: move the best backlog items into the queue, up to target."""
        now = self._now()
        recorded: list[Recorded] = []
        moved: list[Opportunity] = []
        order = self.policy.order
        with self.store.transaction() as tx:
            level = tx.count(OpportunityStatus.QUEUED)
            available = tx.count(OpportunityStatus.BACKLOG)
            plan = queue.plan_replenishment(level, available, self.policy)
            if plan.to_move:
                picked = []
                for opp in tx.iter_ranked(OpportunityStatus.BACKLOG):
                    if queue.is_expired(opp, now):
                        continue
                    picked.append(opp)
                    if len(picked) == plan.to_move:
                        break
                for opp in picked:
                    step = queue.enter_queue(
                        opp, now, self.plugins.score(opp, now), from_backlog=True
                    )
                    tx.put_opportunity(step.opportunity, queue.rank_key(step.opportunity, order))
                    self._record(tx, [step.event], recorded)
                    moved.append(step.opportunity)
                if len(picked) < plan.to_move:  # expired backlog items could not move
                    plan = queue.plan_replenishment(level, len(picked), self.policy)
            self._record(
                tx,
                [
                    QueueReplenished(
                        at=now,
                        moved=len(moved),
                        level_before=plan.level_before,
                        level_after=plan.level_after,
                        target=plan.target,
                        zone=plan.zone_after.value,
                        shortfall=plan.shortfall,
                    )
                ],
                recorded,
            )
        self._notify(recorded)
        return ReplenishResult(plan, tuple(moved))

    TARGET_KEY = "queue:target"

    def stored_target(self) -> int | None:
        """The target buffer management last set (None: the configured one stands)."""
        with self.store.transaction() as tx:
            value = tx.get_meta(self.TARGET_KEY)
        return None if value is None else int(value)

    def use_stored_target(self) -> None:
        """Adopt the target buffer management last set, if any."""
        target = self.stored_target()
        if target is not None and target != self.policy.target:
            self.policy = attrs.evolve(self.policy, target=target)

    def set_target(self, target: int, reason: str) -> None:
        """Change the queue's target (buffer management), recorded with its reason."""
        model.check_text(reason, "reason")
        now = self._now()
        recorded: list[Recorded] = []
        previous = self.policy.target
        new_policy = attrs.evolve(self.policy, target=target)
        with self.store.transaction() as tx:
            tx.set_meta(self.TARGET_KEY, str(target))
            self._record(
                tx,
                [QueueTargetChanged(at=now, previous=previous, target=target, reason=reason)],
                recorded,
            )
        self.policy = new_policy
        self._notify(recorded)

    # --- pulling and resolving --------------------------------------------------------

    def pull(self, member_id: str, count: int = 1) -> PullResult:
        """Release up to ``count`` of the best eligible opportunities to the member.

        Raises :class:`~spe_core.errors.RoleMayNotPull` for a role that may not
        pull; returns an empty result with the reason when the member is at
        their WIP limit or daily cap, or nothing eligible is queued.
        """
        model.check_id(member_id, "member_id")
        model.check_int(count, "count", minimum=1, maximum=10_000)
        now = self._now()
        policy = self.policy
        recorded: list[Recorded] = []
        released: list[Opportunity] = []
        with self.store.transaction() as tx:
            member = self._member(tx, member_id)
            day = queue.pull_day(member, now)
            allowance = queue.pull_allowance(
                member,
                policy,
                held=tx.held_by(member_id),
                pulled_today=tx.pulls_on(member_id, day),
                requested=count,
            )
            reason = allowance.reason
            if allowance.count:
                for opp in tx.iter_ranked(OpportunityStatus.QUEUED):
                    if not queue.is_eligible(opp, member, now):
                        continue
                    step = queue.release(opp, member, now, policy)
                    tx.put_opportunity(step.opportunity)
                    self._record(tx, [step.event], recorded)
                    released.append(step.opportunity)
                    if len(released) == allowance.count:
                        break
                if released:
                    tx.add_pulls(member_id, day, len(released))
                if len(released) < allowance.count:
                    reason = "no more eligible opportunities in the queue"
        self._notify(recorded)
        return PullResult(member_id, count, tuple(released), reason)

    def _transition(
        self, opportunity_id: str, decide: Callable[[Opportunity, datetime], queue.Transition]
    ) -> Opportunity:
        """Apply one rule to one opportunity: read, decide, write, record, notify."""
        now = self._now()
        recorded: list[Recorded] = []
        with self.store.transaction() as tx:
            step = decide(self._opportunity(tx, opportunity_id), now)
            tx.put_opportunity(step.opportunity)
            self._record(tx, [step.event], recorded)
        self._notify(recorded)
        return step.opportunity

    def resolve(self, opportunity_id: str, member_id: str, outcome: Outcome | str) -> Opportunity:
        """The holder closes an opportunity with an outcome."""
        model.check_id(opportunity_id, "opportunity_id")
        model.check_id(member_id, "member_id")
        outcome = model.to_outcome(outcome)
        return self._transition(
            opportunity_id, lambda opp, now: queue.resolve(opp, member_id, outcome, now)
        )

    def give_back(self, opportunity_id: str, member_id: str, reason: str = "") -> Opportunity:
        """The holder gives an opportunity back; it is queued again, never to them."""
        model.check_id(opportunity_id, "opportunity_id")
        model.check_id(member_id, "member_id")
        model.check_text(reason, "reason")
        return self._transition(
            opportunity_id, lambda opp, now: queue.give_back(opp, member_id, now, reason)
        )

    def withdraw(self, opportunity_id: str, reason: str) -> Opportunity:
        """Take an opportunity out of SPE's flow (a person changed it in the CRM)."""
        model.check_id(opportunity_id, "opportunity_id")
        model.check_text(reason, "reason")
        return self._transition(opportunity_id, lambda opp, now: queue.withdraw(opp, now, reason))

    # --- sweeps -----------------------------------------------------------------------

    def expire_leases(self) -> tuple[str, ...]:
        """Send every opportunity whose lease ran out back to the queue."""
        now = self._now()
        recorded: list[Recorded] = []
        ids: list[str] = []
        with self.store.transaction() as tx:
            for opp in list(tx.iter_lease_expired(now)):
                step = queue.expire_lease(opp, now)
                tx.put_opportunity(step.opportunity)
                self._record(tx, [step.event], recorded)
                ids.append(opp.id)
        self._notify(recorded)
        return tuple(ids)

    def retire_stale(self) -> SweepResult:
        """Expire opportunities past ``expires_at`` and send stale ones to nurture."""
        now = self._now()
        policy = self.policy
        recorded: list[Recorded] = []
        expired: list[str] = []
        stale: list[str] = []
        with self.store.transaction() as tx:
            for opp in list(tx.iter_expiring(now)):
                step = queue.expire(opp, now)
                tx.put_opportunity(step.opportunity)
                self._record(tx, [step.event], recorded)
                expired.append(opp.id)
            if policy.stale_age is not None:
                for opp in list(tx.iter_queued_before(now - policy.stale_age)):
                    step = queue.retire_stale(opp, now, policy)
                    tx.put_opportunity(step.opportunity)
                    self._record(tx, [step.event], recorded)
                    stale.append(opp.id)
        self._notify(recorded)
        return SweepResult(stale=tuple(stale), expired=tuple(expired))

    def sweep(self) -> SweepResult:
        """Run every time-based rule once: leases, expiry, staleness."""
        leases = self.expire_leases()
        rest = self.retire_stale()
        return attrs.evolve(rest, lease_expired=leases)

    # === routing (issue 3): routing code goes between these markers ===

    def _routing_state(self, tx: Transaction, now: datetime) -> _RoutingState:
        return _RoutingState(tx.members(), tx.open_task_loads(), {}, now)

    def _fairness(self, tx: Transaction, state: _RoutingState, key: str) -> routing.Fairness:
        if key not in state.fairness:
            state.fairness[key] = routing.Fairness.loads(tx.get_meta(key))
        return state.fairness[key]

    def _route_one(
        self, tx: Transaction, state: _RoutingState, task: Task, now: datetime
    ) -> tuple[Task, str | None, int]:
        """Assign ``task`` (or queue it); returns (task, strategy or None, candidates)."""
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
                reasons.append(
                    routing.no_candidate_reason(why, "/".join(r.value for r in attempt.roles))
                )
                continue
            account_key = f"routing:account:{task.account_id}:{task.kind}"
            last = tx.get_meta(account_key) if attempt.account_continuity else None
            chosen = self.plugins.choose_assignee(task, attempt, candidates, last, now)
            member = next(c.member for c in candidates if c.member.id == chosen)
            state.fairness[key] = fairness.after(member, candidates)
            if attempt.account_continuity:
                tx.set_meta(account_key, member.id)
            state.add(member.id, 1, task.weight)
            return (
                routing.assign(task, member, attempt, now),
                attempt.strategy.value,
                len(candidates),
            )
        return routing.unassign(task, route.roles[0], "; ".join(reasons)), None, 0

    def _release_load(self, state: _RoutingState, task: Task) -> None:
        if task.is_open and task.assignee_id is not None:
            state.add(task.assignee_id, -1, -task.weight)

    def route_tasks(self, tasks: Iterable[Task]) -> list[Task]:
        """Route new tasks (one transaction): assigned, or queued in their role with the reason."""
        tasks = model.check_items(tasks, Task, "tasks")
        now = self._now()
        recorded: list[Recorded] = []
        out: list[Task] = []
        with self.store.transaction() as tx:
            state = self._routing_state(tx, now)
            for task in tasks:
                if tx.get_task(task.id) is not None:
                    raise InvalidValue(
                        f"task {task.id!r} is already known.", "give every task a new id."
                    )
                routed, strategy, count = self._route_one(tx, state, task, now)
                tx.put_task(routed)
                event: Event = (
                    TaskRouted(at=now, task=routed, strategy=strategy, candidates=count)
                    if strategy
                    else TaskQueued(at=now, task=routed, reason=routed.unassigned_reason or "")
                )
                self._record(tx, [event], recorded)
                out.append(routed)
            state.save(tx)
        self._notify(recorded)
        return out

    def route_task(self, task: Task) -> Task:
        """Route one new task; see :meth:`route_tasks`."""
        model.check_instance(task, Task, "task")
        return self.route_tasks([task])[0]

    def task(self, task_id: str) -> Task:
        """The task with ``task_id``."""
        model.check_id(task_id, "task_id")
        with self.store.transaction() as tx:
            task = tx.get_task(task_id)
        if task is None:
            raise NotFound(
                f"No task with id {task_id!r} is known to this store.",
                "route it first, or check the id.",
            )
        return task

    def open_tasks(self, member_id: str) -> list[Task]:
        """The tasks ``member_id`` holds (assigned or accepted), by id."""
        model.check_id(member_id, "member_id")
        with self.store.transaction() as tx:
            return list(tx.iter_open_tasks(member_id))

    def _task_op(
        self, task_id: str, op: Callable[[Transaction, Task, datetime], tuple[Task, Event]]
    ) -> Task:
        now = self._now()
        recorded: list[Recorded] = []
        with self.store.transaction() as tx:
            task = tx.get_task(task_id)
            if task is None:
                raise NotFound(
                    f"No task with id {task_id!r} is known to this store.",
                    "route it first, or check the id.",
                )
            new, event = op(tx, task, now)
            tx.put_task(new)
            self._record(tx, [event], recorded)
        self._notify(recorded)
        return new

    def accept_task(self, task_id: str, member_id: str) -> Task:
        """The assignee accepts the task."""
        model.check_id(task_id, "task_id")
        model.check_id(member_id, "member_id")

        def op(tx: Transaction, task: Task, now: datetime) -> tuple[Task, Event]:
            new = routing.accept(task, member_id, now)
            return new, TaskAccepted(at=now, task=new)

        return self._task_op(task_id, op)

    def complete_task(self, task_id: str, member_id: str) -> Task:
        """The assignee completes the task (the event says whether it met its SLA)."""
        model.check_id(task_id, "task_id")
        model.check_id(member_id, "member_id")

        def op(tx: Transaction, task: Task, now: datetime) -> tuple[Task, Event]:
            new, within = routing.complete(task, member_id, now)
            return new, TaskCompleted(at=now, task=new, within_sla=within)

        return self._task_op(task_id, op)

    def decline_task(self, task_id: str, member_id: str, reason: str = "") -> Task:
        """The assignee declines: the task goes to the next eligible member (never back)."""
        model.check_id(task_id, "task_id")
        model.check_id(member_id, "member_id")
        model.check_text(reason, "reason")

        def op(tx: Transaction, task: Task, now: datetime) -> tuple[Task, Event]:
            routing.accept(task, member_id, now)  # checks that it is theirs and assigned
            state = self._routing_state(tx, now)
            self._release_load(state, task)
            new, _, _ = self._route_one(tx, state, task, now)
            state.save(tx)
            return new, TaskDeclined(at=now, task=new, member_id=member_id, reason=reason)

        return self._task_op(task_id, op)

    def reassign_task(self, task_id: str, to_member_id: str, by: str) -> Task:
        """Move a task to a named member by hand (``by``: who did it); SPE's rules still hold."""
        model.check_id(task_id, "task_id")
        model.check_id(to_member_id, "to_member_id")
        model.check_id(by, "by")

        def op(tx: Transaction, task: Task, now: datetime) -> tuple[Task, Event]:
            if task.status not in (TaskStatus.UNASSIGNED, TaskStatus.ASSIGNED, TaskStatus.ACCEPTED):
                raise WrongState(
                    f"task {task.id!r} is {task.status.value}.",
                    "only open or queued tasks can be reassigned.",
                )
            member = self._member(tx, to_member_id)
            route = self.routing.route_for(task.kind)
            state = self._routing_state(tx, now)
            count = state.loads.get(member.id, (0, 0.0))[0]
            fresh = attrs.evolve(
                task, prior_assignees=tuple(p for p in task.prior_assignees if p != member.id)
            )
            why = routing.unavailability(member, fresh, route, self.routing, now, count)
            if why is not None:
                raise RuleViolation(
                    f"task {task.id!r} cannot go to {member.id!r}: {why}.",
                    "choose an available member of the route's roles.",
                )
            new = routing.assign(attrs.evolve(fresh, weight=route.weight), member, route, now)
            return new, TaskReassigned(at=now, task=new, from_member_id=task.assignee_id, by=by)

        return self._task_op(task_id, op)

    def escalate_overdue(self) -> list[Task]:
        """Re-route every task past its accept-by or complete-by (or queue it), with events."""
        now = self._now()
        recorded: list[Recorded] = []
        out: list[Task] = []
        with self.store.transaction() as tx:
            state = self._routing_state(tx, now)
            for task in list(tx.iter_overdue_tasks(now)):
                reason = routing.overdue_reason(task, now)
                if reason is None:
                    continue
                self._release_load(state, task)
                base = attrs.evolve(task, escalations=task.escalations + 1)
                new, _, _ = self._route_one(tx, state, base, now)
                tx.put_task(new)
                self._record(
                    tx,
                    [
                        TaskEscalated(
                            at=now, task=new, from_member_id=task.assignee_id, reason=reason
                        )
                    ],
                    recorded,
                )
                out.append(new)
            state.save(tx)
        self._notify(recorded)
        return out

    def route_queued(self) -> list[Task]:
        """Try again to assign the tasks waiting in every role's queue."""
        now = self._now()
        recorded: list[Recorded] = []
        out: list[Task] = []
        with self.store.transaction() as tx:
            state = self._routing_state(tx, now)
            for role in Role:
                for task in list(tx.iter_queued_tasks(role.value)):
                    new, strategy, count = self._route_one(tx, state, task, now)
                    if strategy is None:
                        continue
                    tx.put_task(new)
                    self._record(
                        tx,
                        [TaskRouted(at=now, task=new, strategy=strategy, candidates=count)],
                        recorded,
                    )
                    out.append(new)
            state.save(tx)
        self._notify(recorded)
        return out

    # === end routing ===

    # === calendar (issue 4): calendar code goes between these markers ===

    def _travel(self) -> calendar.TravelFn:
        return self.plugins.travel(self.calendar_rules)

    @staticmethod
    def _weeks(member: Member, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        """The member's whole local ISO weeks covering ``start``..``end`` (for the weekly cap)."""
        zone = member.zone
        first = start.astimezone(zone).date()
        last = end.astimezone(zone).date()
        monday = first - timedelta(days=first.weekday())
        after = last + timedelta(days=7 - last.weekday())
        return (
            datetime.combine(monday, time(0), tzinfo=zone),
            datetime.combine(after, time(0), tzinfo=zone),
        )

    def _calendar(
        self, tx: Transaction, member: Member, start: datetime, end: datetime
    ) -> calendar.MemberCalendar:
        lo, hi = self._weeks(member, start, end)
        read = tx.get_meta(_BUSY_READ + member.id)
        return calendar.MemberCalendar(
            member,
            tuple(tx.iter_bookings(member.id, lo, hi)),
            tuple(tx.iter_busy(member.id, lo, hi)),
            None if read is None else datetime.fromisoformat(read),
        )

    def record_busy(
        self,
        member_id: str,
        busy: Iterable[Busy],
        start: datetime,
        end: datetime,
        *,
        read_at: datetime | None = None,
    ) -> int:
        """Replace the member's busy time in ``start``..``end`` with ``busy`` (a calendar read).

        Marks the member's busy time as read at ``read_at`` (default now), which
        the freshness rule (:attr:`~spe_core.calendar.CalendarRules.busy_max_age`)
        checks before offering the member as free. Returns how many entries were stored.
        """
        model.check_id(member_id, "member_id")
        busy = model.check_items(busy, Busy, "busy")
        model.check_time(start, "start")
        model.check_time(end, "end")
        model.check_optional_time(read_at, "read_at")
        now = self._now()
        items = list(busy)
        for item in items:
            if item.member_id != member_id:
                raise InvalidValue(
                    f"busy time {item.id!r} belongs to {item.member_id!r}, not {member_id!r}.",
                    "record each member's busy time separately.",
                )
        recorded: list[Recorded] = []
        with self.store.transaction() as tx:
            self._member(tx, member_id)
            tx.replace_busy(member_id, start, end, items)
            tx.set_meta(_BUSY_READ + member_id, (read_at or now).isoformat())
            self._record(
                tx,
                [BusyTimeRead(at=now, member_id=member_id, start=start, end=end, count=len(items))],
                recorded,
            )
        self._notify(recorded)
        return len(items)

    def sync_busy(
        self,
        busy: Iterable[Busy] = (),
        *,
        gone: Iterable[tuple[str, str]] = (),
        read_for: Iterable[str] = (),
        read_at: datetime | None = None,
    ) -> int:
        """Apply busy time read incrementally from the CRM's calendars (the sync's way).

        ``busy`` entries are stored or replaced by (member, id); ``gone`` names
        (member id, busy id) pairs removed from a calendar (deleted, or shown as
        free); ``read_for`` members are marked as read at ``read_at`` (default
        now), once their whole calendar stream has been read. Unknown members'
        entries are skipped. Returns how many entries changed.
        """
        busy = model.check_items(busy, Busy, "busy")
        gone = model.check_id_pairs(gone, "gone")
        read_for = model.check_ids(read_for, "read_for")
        model.check_optional_time(read_at, "read_at")
        now = self._now()
        recorded: list[Recorded] = []
        changed = 0
        with self.store.transaction() as tx:
            known = {m.id for m in tx.members()}
            per_member: dict[str, list[Busy]] = {}
            for item in busy:
                if item.member_id in known:
                    per_member.setdefault(item.member_id, []).append(item)
            for member_id, items in sorted(per_member.items()):
                for item in items:
                    tx.replace_busy(member_id, item.start, item.start, [item])  # an upsert
                changed += len(items)
                self._record(
                    tx,
                    [
                        BusyTimeRead(
                            at=now,
                            member_id=member_id,
                            start=min(i.start for i in items),
                            end=max(i.end for i in items),
                            count=len(items),
                        )
                    ],
                    recorded,
                )
            for member_id, busy_id in gone:
                tx.delete_busy(member_id, busy_id)
                changed += 1
            for member_id in sorted(set(read_for) & known):
                tx.set_meta(_BUSY_READ + member_id, (read_at or now).isoformat())
        self._notify(recorded)
        return changed

    def _sales_members(self, tx: Transaction, only: Iterable[str] | None) -> list[Member]:
        if only is not None:
            return [self._member(tx, m) for m in sorted(set(only))]
        return [
            m for m in tx.members() if m.role in (Role.FIELD_SALES, Role.INSIDE_SALES) and m.active
        ]

    def propose(
        self,
        request: AppointmentRequest,
        *,
        members: Iterable[str] | None = None,
        limit: int = 10,
    ) -> calendar.Proposal:
        """Ranked slots for ``request`` across active field and inside members (or ``members``).

        See :func:`spe_core.calendar.propose` for the ranking and the reasons
        members are left out. Nothing is written; book a slot with :meth:`book`.
        """
        model.check_instance(request, AppointmentRequest, "request")
        members = None if members is None else model.check_ids(members, "members")
        model.check_int(limit, "limit", minimum=1, maximum=10_000)
        now = self._now()
        rules = self.calendar_rules
        with self.store.transaction() as tx:
            team = self._sales_members(tx, members)
            end = min(request.deadline, max(request.earliest, now) + timedelta(rules.horizon_days))
            calendars = [self._calendar(tx, m, max(request.earliest, now), end) for m in team]
        return calendar.propose(request, calendars, rules, self._travel(), now, limit=limit)

    def _check_fits(
        self,
        cal: calendar.MemberCalendar,
        booking: Booking,
        now: datetime,
        without: str | None = None,
    ) -> None:
        """Raise :class:`RuleViolation` unless ``booking`` adds no violation to ``cal``."""
        rules, travel = self.calendar_rules, self._travel()
        if booking.start < now:
            raise RuleViolation(
                f"cannot book {booking.id!r} at {booking.start.isoformat()}: that is in the past.",
                "choose a start after now.",
            )
        stale = calendar.stale_reason(cal, rules, now)
        if stale is not None:
            raise RuleViolation(
                f"cannot book {booking.id!r}: {stale}", "refresh the member's busy time first."
            )
        base = [b for b in cal.bookings if b.id != without]
        before = {
            (v.rule, v.booking_id)
            for v in calendar.validate(attrs.evolve(cal, bookings=base), rules, travel)
        }
        after = calendar.validate(attrs.evolve(cal, bookings=[*base, booking]), rules, travel)
        new = [v for v in after if (v.rule, v.booking_id) not in before]
        if new:
            raise RuleViolation(
                f"cannot book {booking.id!r} for {booking.member_id} at "
                f"{booking.start.isoformat()}: " + " ".join(v.reason for v in new),
                "ask propose() for a slot that fits, or choose another time or member.",
            )

    def book(
        self, request: AppointmentRequest, member_id: str, start: datetime, *, by: str
    ) -> Booking:
        """Book ``request`` in ``member_id``'s calendar at ``start``, on behalf of ``by``.

        Re-validated inside the store transaction that writes it, with the
        member's row locked (PostgreSQL) or the writer lock held (SQLite), so
        two coordinators can never double-book a slot: the second one gets a
        :class:`~spe_core.errors.RuleViolation` naming the clash.
        """
        model.check_instance(request, AppointmentRequest, "request")
        model.check_id(member_id, "member_id")
        model.check_id(by, "by")
        model.check_time(start, "start")
        now = self._now()
        aware(start, "start")
        recorded: list[Recorded] = []
        with self.store.transaction() as tx:
            member = self._member(tx, member_id)
            existing = tx.get_booking(request.id)
            if existing is not None and existing.active:
                raise WrongState(
                    f"request {request.id!r} is already booked for {existing.member_id} at "
                    f"{existing.start.isoformat()}.",
                    "reschedule or cancel that booking instead of booking it again.",
                )
            booking = Booking(request, member.id, start, by, now)
            self._check_fits(self._calendar(tx, member, start, booking.end), booking, now)
            tx.put_booking(booking)
            self._record(tx, [AppointmentBooked(at=now, booking=booking, by=by)], recorded)
        self._notify(recorded)
        return booking

    def _active_booking(self, tx: Transaction, booking_id: str) -> Booking:
        booking = tx.get_booking(booking_id)
        if booking is None:
            raise NotFound(
                f"No booking with id {booking_id!r} is known to this store.",
                "check the id (a booking's id is its appointment request's id).",
            )
        if not booking.active:
            raise WrongState(
                f"booking {booking_id!r} is {booking.status.value}.",
                "book the request again instead.",
            )
        return booking

    def cancel_booking(self, booking_id: str, *, by: str, reason: str = "") -> Booking:
        """Cancel a booking, freeing its slot (``by``: who cancelled it)."""
        model.check_id(booking_id, "booking_id")
        model.check_id(by, "by")
        model.check_text(reason, "reason")
        now = self._now()
        recorded: list[Recorded] = []
        with self.store.transaction() as tx:
            booking = self._active_booking(tx, booking_id)
            self._member(tx, booking.member_id)
            cancelled = attrs.evolve(booking, status=BookingStatus.CANCELLED)
            tx.put_booking(cancelled)
            self._record(
                tx,
                [AppointmentCancelled(at=now, booking=cancelled, by=by, reason=reason)],
                recorded,
            )
        self._notify(recorded)
        return cancelled

    def reschedule(
        self, booking_id: str, start: datetime, *, by: str, member_id: str | None = None
    ) -> Booking:
        """Move a booking to ``start`` (and to ``member_id``, if given), re-validated atomically."""
        model.check_id(booking_id, "booking_id")
        model.check_id(by, "by")
        model.check_optional_id(member_id, "member_id")
        model.check_time(start, "start")
        now = self._now()
        aware(start, "start")
        recorded: list[Recorded] = []
        with self.store.transaction() as tx:
            booking = self._active_booking(tx, booking_id)
            target = member_id or booking.member_id
            for mid in sorted({booking.member_id, target}):  # lock order: by id
                self._member(tx, mid)
            member = self._member(tx, target)
            moved = attrs.evolve(booking, member_id=target, start=start, by=by, booked_at=now)
            self._check_fits(
                self._calendar(tx, member, start, moved.end), moved, now, without=booking.id
            )
            tx.put_booking(moved)
            event = AppointmentRescheduled(
                at=now,
                booking=moved,
                by=by,
                from_member_id=booking.member_id,
                from_start=booking.start,
            )
            self._record(tx, [event], recorded)
        self._notify(recorded)
        return moved

    def booking(self, booking_id: str) -> Booking:
        """The booking with ``booking_id`` (cancelled ones too)."""
        model.check_id(booking_id, "booking_id")
        with self.store.transaction() as tx:
            found = tx.get_booking(booking_id)
        if found is None:
            raise NotFound(
                f"No booking with id {booking_id!r} is known to this store.",
                "check the id (a booking's id is its appointment request's id).",
            )
        return found

    def bookings(
        self, start: datetime, end: datetime, member_id: str | None = None
    ) -> list[Booking]:
        """Active bookings overlapping ``start``..``end`` (one member's, or everyone's)."""
        model.check_time(start, "start")
        model.check_time(end, "end")
        model.check_optional_id(member_id, "member_id")
        with self.store.transaction() as tx:
            return list(tx.iter_bookings(member_id, start, end))

    def validate_calendar(
        self, member_id: str, start: datetime, end: datetime
    ) -> list[calendar.Violation]:
        """The rules the member's calendar breaks in ``start``..``end`` (e.g. after a hand edit
        in the CRM), each with a readable reason; empty when it is valid."""
        model.check_id(member_id, "member_id")
        model.check_time(start, "start")
        model.check_time(end, "end")
        with self.store.transaction() as tx:
            member = self._member(tx, member_id)
            cal = self._calendar(tx, member, start, end)
        found = calendar.validate(cal, self.calendar_rules, self._travel())
        in_span = {b.id for b in cal.bookings if b.start < end and b.end > start}
        return [v for v in found if v.booking_id is None or v.booking_id in in_span]

    def plan_week(
        self,
        requests: Iterable[AppointmentRequest],
        *,
        by: str | Mapping[str, str] | None = None,
        members: Iterable[str] | None = None,
    ) -> calendar.WeekPlan:
        """Book a batch of requests at once: as many as fit, then least travel.

        Runs :func:`spe_core.calendar.plan_week` over the active field and
        inside members (or ``members``) inside one store transaction, and books
        every placed request with an :class:`~spe_core.events.AppointmentBooked`
        event naming the member's sales coordinator (``by``: one name, or a mapping from
        field member to coordinator; default each member's ``coordinator_id``).
        """
        requests = model.check_items(requests, AppointmentRequest, "requests")
        model.check_by(by)
        members = None if members is None else model.check_ids(members, "members")
        now = self._now()
        batch = list(requests)
        recorded: list[Recorded] = []
        if not batch:
            return calendar.WeekPlan((), (), timedelta(0))
        lo = max(min(r.earliest for r in batch), now)
        hi = max(lo, max(r.deadline for r in batch))
        with self.store.transaction() as tx:
            team = self._sales_members(tx, members)
            calendars = [self._calendar(tx, m, lo, hi) for m in team]
            plan = calendar.plan_week(
                batch,
                calendars,
                self.calendar_rules,
                self._travel(),
                now,
                by=by
                if isinstance(by, str)
                else {m.id: (by or {}).get(m.id) or m.coordinator_id or "planner" for m in team},
            )
            for booking in plan.bookings:
                existing = tx.get_booking(booking.id)
                if existing is not None and existing.active:
                    raise WrongState(
                        f"request {booking.id!r} is already booked.",
                        "leave booked requests out of the batch.",
                    )
                tx.put_booking(booking)
                self._record(
                    tx, [AppointmentBooked(at=now, booking=booking, by=booking.by)], recorded
                )
        self._notify(recorded)
        return plan

    def coordinator_problems(self) -> list[str]:
        """Where the team drifts from one sales coordinator per field salesperson."""
        with self.store.transaction() as tx:
            return calendar.coordinator_problems(tx.members())

    # === end calendar ===

    # --- reading ----------------------------------------------------------------------

    def queue_status(self) -> QueueStatus:
        """Level, target, zone, backlog and the oldest queued item."""
        with self.store.transaction() as tx:
            level = tx.count(OpportunityStatus.QUEUED)
            oldest = tx.oldest(OpportunityStatus.QUEUED)
            backlog = tx.count(OpportunityStatus.BACKLOG)
            released = tx.count(OpportunityStatus.RELEASED)
        target = self.policy.target
        return QueueStatus(
            level=level,
            target=target,
            zone=queue.buffer_zone(level, target, self.policy),
            backlog=backlog,
            released=released,
            oldest_queued_at=None if oldest is None else oldest.queued_at,
            shortfall=max(0, target - level),
        )

    def opportunity(self, opportunity_id: str) -> Opportunity:
        """The opportunity with ``opportunity_id`` (:class:`UnknownOpportunity` if none)."""
        model.check_id(opportunity_id, "opportunity_id")
        with self.store.transaction() as tx:
            return self._opportunity(tx, opportunity_id)

    def held_by(self, member_id: str) -> list[Opportunity]:
        """The opportunities ``member_id`` holds, by id."""
        model.check_id(member_id, "member_id")
        return [
            o
            for o in self.store.opportunities(OpportunityStatus.RELEASED)
            if o.owner_id == member_id
        ]
