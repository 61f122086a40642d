"""Task routing: transactional work goes to customer service, engineering or project
leaders by the routing table's rules, never to salespeople; SLAs escalate."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

import attrs

from spe_core import model, routing, worktime
from spe_core.engine.base import EngineBase, once
from spe_core.engine.ranking import Key, Ranking
from spe_core.errors import InvalidValue, NotFound, RuleViolation, WrongState
from spe_core.events import (
    Event,
    TaskAccepted,
    TaskCancelled,
    TaskCompleted,
    TaskDeclined,
    TaskEscalated,
    TaskQueued,
    TaskReassigned,
    TaskRouted,
)
from spe_core.model import Member, Role, Task, TaskStatus
from spe_core.store.base import Transaction

__all__ = ["TOP_K", "RoutingPart"]

TOP_K = 8
"""How many of the best eligible members (by the route's strategy) a routing decision
offers to ``spe_choose_assignee``, besides the account's last member when eligible."""


_NEVER = datetime.min.replace(tzinfo=UTC)
_ALWAYS = datetime.max.replace(tzinfo=UTC)
_DAY = timedelta(days=1)


class _Availability:
    """Whether a member can take work at ``at`` (active and in working hours; and not
    away), and, worked out only when asked, how long that answer stays true.

    The answer changes only at a boundary of one of the member's working segments
    (:func:`worktime.day_segments`, holidays and absences cut out) or of an
    absence. Within the nearest boundaries around ``at`` of the segments of the
    local days ``at``'s date -2 .. +2, and while the local date stays within one
    day of ``at``'s (so :func:`worktime.is_working` reads days inside that
    range), both answers are the same as at ``at``.
    """

    __slots__ = ("able", "at", "first_day", "last_day", "member", "since", "until", "working")

    def __init__(self, member: Member, at: datetime) -> None:
        self.member = member
        self.at = at
        self.working = member.active and worktime.is_working(member, at)
        self.able = self.working and not any(a.covers(at) for a in member.absences)
        self.since: datetime | None = None
        self.until = _NEVER
        self.first_day = self.last_day = date.min

    def holds(self, member: Member, now: datetime) -> bool:
        """True if the answers at ``at`` are the answers for ``member`` at ``now``."""
        if member is not self.member and member != self.member:
            return False
        if now == self.at:
            return True
        if self.since is None:
            self._window()
        assert self.since is not None
        if not self.since <= now < self.until:
            return False
        return self.first_day <= now.astimezone(member.zone).date() <= self.last_day

    def _window(self) -> None:
        member, at = self.member, self.at
        day = at.astimezone(member.zone).date()
        bounds = [
            b
            for d in range(-2, 3)
            for segment in worktime.day_segments(member, day + d * _DAY)
            for b in segment
        ]
        bounds += [b for a in member.absences for b in (a.start, a.end)]
        self.since = max((b for b in bounds if b <= at), default=_NEVER)
        self.until = min((b for b in bounds if b > at), default=_ALWAYS)
        self.first_day, self.last_day = day - _DAY, day + _DAY


@attrs.define
class _RoutingState:
    """What one routing transaction reads once: the team by role, open-task counts and
    weights, fairness, and who is working at this moment.

    The state one :meth:`RoutingPart.route_tasks` leaves is kept for the next
    (see :meth:`RoutingPart._routing_state`): it is used again only once the
    members, open-task loads and fairness counts read from the store in the new
    transaction are found to be what it holds (loads are brought up to date),
    and each member's availability still holds at the new ``now``.
    """

    members: list[Member]
    loads: dict[str, tuple[int, float]]
    fairness: dict[str, routing.Fairness]
    now: datetime
    counts: dict[str, int] = attrs.Factory(dict)
    weights: dict[str, float] = attrs.Factory(dict)
    working: dict[str, bool] = attrs.Factory(dict)
    by_roles: dict[tuple[Role, ...], list[Member]] = attrs.Factory(dict)
    by_ids: dict[tuple[Role, ...], dict[str, Member]] = attrs.Factory(dict)
    rankings: dict[tuple[tuple[Role, ...], str], Ranking] = attrs.Factory(dict)
    availability: dict[str, _Availability] = attrs.Factory(dict)
    segments: dict[tuple[str, date], list[tuple[datetime, datetime]]] = attrs.Factory(dict)
    """Members' working segments by (member id, local day): pure functions of the
    member, which is the same for the state's life."""
    saved: dict[str, str] = attrs.Factory(dict)
    """The fairness metadata as this state last wrote (or read) it."""
    table: routing.RoutingTable | None = None
    default_choice: bool = False
    """True when only the built-in ``spe_choose_assignee`` is registered."""

    def __attrs_post_init__(self) -> None:
        for member_id, (count, weight) in self.loads.items():
            self.counts[member_id] = count
            self.weights[member_id] = weight

    def available(self, member: Member) -> _Availability:
        found = self.availability.get(member.id)
        if found is None or not found.holds(member, self.now):
            found = self.availability[member.id] = _Availability(member, self.now)
        return found

    def day_segments(self, member: Member, day: date) -> list[tuple[datetime, datetime]]:
        """:func:`worktime.day_segments`, kept (for members of :attr:`members`)."""
        key = (member.id, day)
        found = self.segments.get(key)
        if found is None:
            if len(self.segments) > 8 * len(self.members) + 1024:
                self.segments.clear()
            found = self.segments[key] = worktime.day_segments(member, day)
        return found

    def team(self, roles: tuple[Role, ...]) -> list[Member]:
        if roles not in self.by_roles:
            team = [m for m in self.members if m.role in roles]
            self.by_roles[roles] = team
            self.by_ids[roles] = {m.id: m for m in team}
            for m in team:
                if m.id not in self.working:
                    self.working[m.id] = self.available(m).working
        return self.by_roles[roles]

    def team_member(self, roles: tuple[Role, ...], member_id: str) -> Member | None:
        self.team(roles)
        return self.by_ids[roles].get(member_id)

    def save(self, tx: Transaction) -> None:
        """Write the fairness counts this transaction changed."""
        for key, fairness in self.fairness.items():
            text = fairness.dumps()
            if self.saved.get(key) != text:
                tx.set_meta(key, text)
                self.saved[key] = text

    def add(self, member_id: str, count: int, weight: float) -> None:
        self.counts[member_id] = self.counts.get(member_id, 0) + count
        self.weights[member_id] = self.weights.get(member_id, 0.0) + weight
        self.touch(member_id)

    def touch(self, member_id: str) -> None:
        for ranking in self.rankings.values():
            ranking.touch(member_id)

    def reusable(
        self,
        tx: Transaction,
        members: list[Member],
        table: routing.RoutingTable,
        now: datetime,
    ) -> bool:
        """True if this state can serve a new transaction reading ``members`` at ``now``
        (fairness as saved, everyone's availability unchanged); its loads are then
        brought up to date with the store's."""
        if table is not self.table or members != self.members:
            return False
        for key in self.fairness:
            if tx.get_meta(key) != self.saved.get(key):
                return False
        if now != self.now:
            for member in members:
                found = self.availability.get(member.id)
                if found is not None and not found.holds(member, now):
                    return False
            self.now = now
        loads = tx.open_task_loads()
        counts, weights = self.counts, self.weights
        for member_id in [m for m in counts if m not in loads]:
            count, weight = counts.pop(member_id), weights.pop(member_id, 0.0)
            if count or weight:
                self.touch(member_id)  # rank afresh
        for member_id, (count, weight) in loads.items():
            if counts.get(member_id) != count or weights.get(member_id) != weight:
                counts[member_id], weights[member_id] = count, weight
                self.touch(member_id)
        self.loads = loads
        return True

    def ranking(self, route: routing.Route, order: str, fairness_key: str) -> Ranking:
        """The members of ``route``'s roles who can take work at all now (active, not
        away, working), ranked by ``order``: the route's strategy, or ``served``."""
        index = (route.roles, order)
        if index not in self.rankings:
            weights, fairness = self.weights, self.fairness

            def served(member_id: str) -> float:  # Fairness.count, inlined
                found = fairness[fairness_key]
                floor = found.floor
                return max(found.counts.get(member_id, floor), floor)

            if order == routing.Strategy.LEAST_LOADED:

                def key(member: Member) -> Key:
                    member_id = member.id
                    load = weights.get(member_id, 0.0) / member.weight
                    return (load, served(member_id), member_id)

            elif order == routing.Strategy.ROUND_ROBIN:

                def key(member: Member) -> Key:
                    member_id = member.id
                    load = weights.get(member_id, 0.0) / member.weight
                    return (served(member_id), load, member_id)

            else:

                def key(member: Member) -> Key:
                    return (served(member.id), 0.0, member.id)

            counts, known = self.counts, self.table
            assert known is not None

            def full(member: Member, table: routing.RoutingTable = known) -> bool:
                return counts.get(member.id, 0) >= routing.capacity(member, table)

            able = [m for m in self.team(route.roles) if self.available(m).able]
            self.rankings[index] = Ranking(able, key, full)
        return self.rankings[index]


class RoutingPart(EngineBase):
    """Routing tasks, and the assignee's accept, decline and complete."""

    _routing_kept: _RoutingState | None = None
    _routing_lock = threading.Lock()

    def _routing_state(
        self, tx: Transaction, now: datetime, *, keep: bool = False
    ) -> _RoutingState:
        """The routing state of ``tx`` at ``now``. With ``keep``, the state the last
        :meth:`route_tasks` left is used again when it is still exact (see
        :meth:`_RoutingState.reusable`); hand it back with :meth:`_keep_routing_state`."""
        members = tx.members()
        kept: _RoutingState | None = None
        if keep:
            with self._routing_lock:
                kept, self._routing_kept = self._routing_kept, None
        if kept is not None and kept.reusable(tx, members, self.routing, now):
            state = kept
        else:
            state = _RoutingState(members, tx.open_task_loads(), {}, now, table=self.routing)
            if kept is not None:  # availability still holding is reused
                state.availability = kept.availability
        state.default_choice = self.plugins.default_choice()
        return state

    def _keep_routing_state(self, state: _RoutingState) -> None:
        with self._routing_lock:
            self._routing_kept = state

    def _fairness(self, tx: Transaction, state: _RoutingState, key: str) -> routing.Fairness:
        if key not in state.fairness:
            text = tx.get_meta(key)
            state.fairness[key] = routing.Fairness.loads(text)
            if text is not None:
                state.saved[key] = text
        return state.fairness[key]

    def _route_one(
        self, tx: Transaction, state: _RoutingState, task: Task, now: datetime
    ) -> tuple[Task, str | None, int]:
        """Assign ``task`` (or queue it); returns (task, strategy or None, candidates)."""
        route = self.routing.route_for(task.kind)
        if task.weight != route.weight:
            task = attrs.evolve(task, weight=route.weight)
        attempts = [route]
        if route.overflow_role is not None:
            attempts.append(attrs.evolve(route, roles=(route.overflow_role,), overflow_role=None))
        reasons = []
        table = self.routing
        for attempt in attempts:
            key = "routing:fairness:" + ",".join(sorted(r.value for r in attempt.roles))
            fairness = self._fairness(tx, state, key)

            def may_take(member: Member, attempt: routing.Route = attempt) -> bool:
                count = state.counts.get(member.id, 0)
                working = state.working.get(member.id, False)
                why = routing.unavailability(member, task, attempt, table, now, count, working)
                return why is None

            def resting(member: Member) -> bool:
                return state.counts.get(member.id, 0) >= routing.capacity(member, table)

            account_key = f"routing:account:{task.account_id}:{task.kind}"
            last = tx.get_meta(account_key) if attempt.account_continuity else None
            ranking = state.ranking(attempt, attempt.strategy.value, key)
            # A task nobody had, needing no skill the route checks, may go to every
            # ranked member below capacity: the candidates would be the first
            # min(TOP_K, free) of them, and with the built-in choice and no account
            # member the first is chosen; so only the first is looked up.
            simple = (
                state.default_choice
                and last is None
                and not task.prior_assignees
                and not (attempt.skills_match and task.required_skills)
            )
            best = ranking.best(1 if simple else TOP_K, may_take, resting)
            if not best:  # say why, member by member (a full scan, only when nobody can)
                _, why = routing.eligible(
                    task,
                    attempt,
                    table,
                    state.team(attempt.roles),
                    state.counts,
                    state.weights,
                    fairness,
                    now,
                    state.working,
                )
                reasons.append(
                    routing.no_candidate_reason(why, "/".join(r.value for r in attempt.roles))
                )
                continue
            member = best[0]  # the strategy's choice: the ranking's smallest key
            if last is not None:
                if any(m.id == last for m in best):
                    member = next(m for m in best if m.id == last)
                else:
                    account_member = state.team_member(attempt.roles, last)
                    if account_member is not None and may_take(account_member):
                        best.append(account_member)
                        member = account_member
            if simple:
                count = min(TOP_K, ranking.free())
            elif state.default_choice:
                # only the built-in spe_choose_assignee is registered: it applies
                # routing.choose, whose answer is the one above (account continuity
                # first, then the smallest key by the route's strategy)
                count = len(best)
            else:
                candidates = sorted(
                    (
                        routing.Candidate(m, state.weights.get(m.id, 0.0), fairness.count(m.id))
                        for m in best
                    ),
                    key=lambda c: c.member.id,
                )
                chosen = self.plugins.choose_assignee(task, attempt, candidates, last, now)
                member = next(c.member for c in candidates if c.member.id == chosen)
                count = len(candidates)
            # the round-robin floor: the smallest count among the other eligible members
            others = state.ranking(attempt, "served", key).best(
                1, may_take, resting, skip=member.id
            )
            lowest = fairness.count(others[0].id) if others else None
            # Fairness.lifted without copying the role's counts: this state's Fairness
            # values are its own (read from the store by _fairness), and the old one
            # is dropped here
            counts = fairness.counts
            mine = counts[member.id] = fairness.count(member.id) + 1.0 / member.weight
            floor = max(fairness.floor, min(mine if lowest is None else lowest, mine))
            state.fairness[key] = routing.Fairness(counts, floor)
            if attempt.account_continuity:
                tx.set_meta(account_key, member.id)
            state.add(member.id, 1, task.weight)
            assigned = routing.assign(task, member, attempt, now, state.day_segments)
            return assigned, attempt.strategy.value, count
        return routing.unassign(task, route.roles[0], "; ".join(reasons)), None, 0

    def _release_load(self, state: _RoutingState, task: Task) -> None:
        if task.is_open and task.assignee_id is not None:
            state.add(task.assignee_id, -1, -task.weight)

    @once
    def route_tasks(self, tasks: Iterable[Task]) -> list[Task]:
        """Route new tasks (one transaction): assigned, or queued in their role with the reason.

        Returns the tasks as stored. A task without ``created_at`` is stamped
        with the engine clock's ``now``.
        """
        tasks = model.check_items(tasks, Task, "tasks")
        out: list[Task] = []
        with self.unit() as u:
            tx, now = u.tx, u.now
            state = self._routing_state(tx, now, keep=True)
            for task in tasks:
                if u.get_or_lock("task", task.id, tx.get_task) is not None:
                    raise InvalidValue(
                        f"task {task.id!r} is already known.", "give every task a new id."
                    )
                if task.created_at is None:  # the engine's clock stamps new work
                    task = attrs.evolve(task, created_at=now)
                routed, strategy, count = self._route_one(tx, state, task, now)
                tx.put_task(routed)
                event: Event = (
                    TaskRouted(at=now, task=routed, strategy=strategy, candidates=count)
                    if strategy
                    else TaskQueued(at=now, task=routed, reason=routed.unassigned_reason or "")
                )
                u.record(event)
                out.append(routed)
            state.save(tx)
        self._keep_routing_state(state)
        return out

    def route_task(self, task: Task) -> Task:
        """Route one new task; see :meth:`route_tasks`."""
        model.check_instance(task, Task, "task")
        return self.route_tasks([task])[0]

    def task(self, task_id: str) -> Task:
        """The task with ``task_id``."""
        model.check_id(task_id, "task_id")
        with self.unit() as u:
            tx = u.tx
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
        with self.unit() as u:
            tx = u.tx
            return list(tx.iter_open_tasks(member_id))

    def _task_op(
        self, task_id: str, op: Callable[[Transaction, Task, datetime], tuple[Task, Event]]
    ) -> Task:
        with self.unit() as u:
            tx, now = u.tx, u.now
            task = tx.get_task(task_id)
            if task is None:
                raise NotFound(
                    f"No task with id {task_id!r} is known to this store.",
                    "route it first, or check the id.",
                )
            new, event = op(tx, task, now)
            tx.put_task(new)
            u.record(event)
        return new

    @once
    def accept_task(self, task_id: str, member_id: str) -> Task:
        """The assignee accepts the task."""
        model.check_id(task_id, "task_id")
        model.check_id(member_id, "member_id")

        def op(tx: Transaction, task: Task, now: datetime) -> tuple[Task, Event]:
            new = routing.accept(task, member_id, now)
            return new, TaskAccepted(at=now, task=new)

        return self._task_op(task_id, op)

    @once
    def complete_task(self, task_id: str, member_id: str) -> Task:
        """The assignee completes the task (the event says whether it met its SLA)."""
        model.check_id(task_id, "task_id")
        model.check_id(member_id, "member_id")

        def op(tx: Transaction, task: Task, now: datetime) -> tuple[Task, Event]:
            new, within = routing.complete(task, member_id, now)
            return new, TaskCompleted(at=now, task=new, within_sla=within)

        return self._task_op(task_id, op)

    @once
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

    @once
    def cancel_task(self, task_id: str, reason: str, *, crm: str | None = None) -> Task:
        """Cancel a queued, assigned or accepted task whose work was withdrawn (event
        ``task.cancelled``): it leaves its assignee's load and its role's queue.

        ``crm``: the CRM whose record of the task was deleted (the sync passes it;
        None when the task is cancelled in SPE, so the CRM is told). A completed or
        already cancelled task raises :class:`~spe_core.errors.WrongState`.
        """
        model.check_id(task_id, "task_id")
        model.check_text(reason, "reason")
        if crm is not None:
            model.check_id(crm, "crm")

        def op(tx: Transaction, task: Task, now: datetime) -> tuple[Task, Event]:
            new = routing.cancel(task)
            return new, TaskCancelled(
                at=now, task=new, from_member_id=task.assignee_id, reason=reason, crm=crm
            )

        return self._task_op(task_id, op)

    @once
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

    @once
    def escalate_overdue(self) -> list[Task]:
        """Re-route every task past its accept-by or complete-by (or queue it), with events."""
        out: list[Task] = []
        with self.unit() as u:
            tx, now = u.tx, u.now
            state = self._routing_state(tx, now)
            for task in list(tx.iter_overdue_tasks(now)):
                reason = routing.overdue_reason(task, now)
                if reason is None:
                    continue
                self._release_load(state, task)
                base = attrs.evolve(task, escalations=task.escalations + 1)
                new, _, _ = self._route_one(tx, state, base, now)
                tx.put_task(new)
                u.record(
                    TaskEscalated(at=now, task=new, from_member_id=task.assignee_id, reason=reason)
                )
                out.append(new)
            state.save(tx)
        return out

    @once
    def route_queued(self) -> list[Task]:
        """Try again to assign the tasks waiting in every role's queue."""
        out: list[Task] = []
        with self.unit() as u:
            tx, now = u.tx, u.now
            state = self._routing_state(tx, now)
            for role in Role:
                for task in list(tx.iter_queued_tasks(role.value)):
                    new, strategy, count = self._route_one(tx, state, task, now)
                    if strategy is None:
                        continue
                    tx.put_task(new)
                    u.record(TaskRouted(at=now, task=new, strategy=strategy, candidates=count))
                    out.append(new)
            state.save(tx)
        return out
