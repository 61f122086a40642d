"""Task-routing rules: transactional work goes to specialists, never to salespeople.

Pure: values and ``now`` in, decisions out. A :class:`RoutingTable` maps each
task kind to its role(s), a strategy, a weight and an SLA. Routing a task:

1. **Candidates**: active members of the route's roles who work right now
   (working hours in their time zone, off holidays and absences), are below
   their capacity of open tasks, have the skills the task needs, and were
   never assigned this task before (re-routing never bounces).
2. **Choice**: ``least_loaded`` picks the smallest open-task load per unit of
   weight; ``round_robin`` the smallest fairness count per unit of weight
   (a persistent, weighted round robin). Account continuity, when the route
   asks for it, prefers the member who last handled the account. A plugin may
   override the choice through ``spe_choose_assignee``.
3. **Fairness** counts survive restarts and team changes; a member back from
   leave or newly added starts at the floor of the active members' counts
   (calibrated, not flooded with catch-up work).
4. **No candidate**: the task waits in its role's queue with the reason (or
   goes to the route's overflow role), never dropped.
5. **SLA**: accept-by and complete-by deadlines from the priority, counted in
   the assignee's working time; an overdue task is escalated: re-routed to
   the next eligible member, or back to its role's queue.
6. **Cancellation**: a task whose work was withdrawn (its CRM record deleted)
   is cancelled from any open or queued state: it leaves its assignee's load
   and its role's queue, keeps its history, and never becomes open again.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import attrs

from spe_core import worktime
from spe_core.errors import ConfigError, InvalidValue, WrongOwner, WrongState
from spe_core.model import (
    Member,
    Role,
    Task,
    TaskKind,
    TaskStatus,
    check_duration,
    check_enum,
    check_id,
    check_instance,
    check_int,
    check_number,
    check_roles,
    shown,
)

__all__ = [
    "DEFAULT_SLA",
    "SALES_ROLES",
    "Candidate",
    "Fairness",
    "Route",
    "RoutingTable",
    "Sla",
    "Strategy",
    "cancel",
    "choose",
    "default_table",
    "eligible",
    "overdue_reason",
    "unavailability",
]

SALES_ROLES = frozenset({Role.INSIDE_SALES, Role.FIELD_SALES})


class Strategy(enum.StrEnum):
    """How a route picks among eligible members."""

    LEAST_LOADED = "least_loaded"
    ROUND_ROBIN = "round_robin"


def _accept(value: Mapping[Any, Any]) -> dict[int, timedelta]:
    return _deltas(value, "Sla.accept")


def _complete(value: Mapping[Any, Any]) -> dict[int, timedelta]:
    return _deltas(value, "Sla.complete")


def _deltas(value: Mapping[Any, Any], name: str) -> dict[int, timedelta]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"the routing SLA ({name}) must map priorities 1-4 to times, got {shown(value)}.",
            "give minutes per priority, e.g. {1: 30, 2: 120, 3: 240, 4: 480}.",
        )
    out = {}
    for k, v in value.items():
        if isinstance(k, str) and k.strip().isdigit():
            k = int(k)
        priority = check_int(
            k,
            f"routing SLA priority ({name})",
            minimum=1,
            maximum=4,
            error=ConfigError,
            fix="key the SLA by priority 1 (urgent) to 4 (low).",
        )
        if not isinstance(v, timedelta):
            minutes = check_number(
                v,
                f"routing SLA time ({name}) for priority {priority}",
                positive=True,
                error=ConfigError,
                fix="give a number of minutes above 0.",
            )
            if minutes > _MAX_SLA_MINUTES:
                raise ConfigError(
                    f"routing SLA time ({name}) for priority {priority} ({minutes} minutes) is "
                    "longer than ten years.",
                    "give a shorter time.",
                )
            v = timedelta(minutes=minutes)
        out[priority] = check_duration(
            v,
            f"routing SLA time ({name}) for priority {priority}",
            error=ConfigError,
            fix="give a positive time of at most ten years.",
        )
    return out


_MAX_SLA_MINUTES = 3650 * 24 * 60


@attrs.frozen
class Sla:
    """Working time allowed to accept and to complete a task, by priority (1 urgent .. 4 low)."""

    accept: dict[int, timedelta] = attrs.field(converter=_accept)
    complete: dict[int, timedelta] = attrs.field(converter=_complete)

    def __attrs_post_init__(self) -> None:
        for name in ("accept", "complete"):
            missing = {1, 2, 3, 4} - set(getattr(self, name))
            if missing:
                raise ConfigError(
                    f"the routing SLA has no {name} time for priority {min(missing)}.",
                    "give minutes for every priority 1 to 4.",
                )


DEFAULT_SLA = Sla(
    accept={
        1: timedelta(minutes=30),
        2: timedelta(hours=2),
        3: timedelta(hours=4),
        4: timedelta(hours=8),
    },
    complete={
        1: timedelta(hours=4),
        2: timedelta(hours=8),
        3: timedelta(hours=24),
        4: timedelta(hours=40),
    },
)


def _role(value: object, name: str) -> Role:
    if isinstance(value, Role):
        return value
    if isinstance(value, str):
        try:
            return Role.parse(value)
        except InvalidValue as exc:
            raise ConfigError(f"{name}: {exc.problem}", exc.fix) from None
    raise ConfigError(
        f"{name} {shown(value)} is not an SPE role.",
        f"use one of: {', '.join(r.value for r in Role)}.",
    )


def _roles(values: Iterable[str | Role]) -> tuple[Role, ...]:
    return check_roles(values, "Route.roles", fix="write roles = ['customer_service'].")


def _optional_role(value: str | Role | None) -> Role | None:
    return None if value is None else _role(value, "Route.overflow_role")


def _strategy(value: object) -> Strategy:
    return check_enum(Strategy, value, "Route.strategy", error=ConfigError)


def _route_weight(value: object) -> float:
    return check_number(
        value,
        "Route.weight",
        positive=True,
        error=ConfigError,
        fix="use a positive weight (1 for an ordinary task).",
    )


def _flag(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not bool:
        raise ConfigError(
            f"{type(instance).__name__}.{attribute.name} must be true or false, got "
            f"{shown(value)}.",
            f"set {attribute.name} = true or false.",
        )


def _sla(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_instance(value, Sla, "Route.sla", error=ConfigError)


def _kind(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_id(value, f"{type(instance).__name__}.kind", error=ConfigError)


@attrs.frozen
class Route:
    """Where one kind of task goes and how it is chosen and timed."""

    kind: str = attrs.field(validator=_kind)
    roles: tuple[Role, ...] = attrs.field(converter=_roles)
    strategy: Strategy = attrs.field(default=Strategy.LEAST_LOADED, converter=_strategy)
    weight: float = attrs.field(default=1.0, converter=_route_weight)
    skills_match: bool = attrs.field(default=True, validator=_flag)
    account_continuity: bool = attrs.field(default=False, validator=_flag)
    overflow_role: Role | None = attrs.field(default=None, converter=_optional_role)
    sla: Sla = attrs.field(default=DEFAULT_SLA, validator=_sla)

    def __attrs_post_init__(self) -> None:
        if not self.roles:
            raise ConfigError(
                f"route {self.kind!r} names no role (Route.roles is empty).",
                "give at least one role, e.g. roles = ['customer_service'].",
            )


def default_table() -> dict[str, Route]:
    """The default routes, following SPE's division of labour."""
    cs, eng, pl = Role.CUSTOMER_SERVICE, Role.ENGINEERING, Role.PROJECT_LEADER
    k = TaskKind
    return {
        k.QUOTE: Route(k.QUOTE, [cs], account_continuity=True),
        k.ORDER_ENTRY: Route(k.ORDER_ENTRY, [cs], Strategy.ROUND_ROBIN),
        k.ADMIN: Route(k.ADMIN, [cs], Strategy.ROUND_ROBIN),
        k.SERVICE_REQUEST: Route(k.SERVICE_REQUEST, [cs], account_continuity=True),
        k.COMPLAINT: Route(
            k.COMPLAINT, [cs], weight=2.0, overflow_role=pl, account_continuity=True
        ),
        k.SOLUTION_DESIGN: Route(k.SOLUTION_DESIGN, [eng], weight=3.0, account_continuity=True),
        k.TECHNICAL_DEMO: Route(k.TECHNICAL_DEMO, [eng], weight=2.0),
        k.IMPLEMENTATION_HANDOFF: Route(
            k.IMPLEMENTATION_HANDOFF, [pl], weight=2.0, account_continuity=True
        ),
        k.APPOINTMENT_REQUEST: Route(
            k.APPOINTMENT_REQUEST, [Role.SALES_COORDINATOR], Strategy.ROUND_ROBIN
        ),
        k.RESEARCH: Route(k.RESEARCH, [Role.PROMOTIONS], Strategy.ROUND_ROBIN),
    }


@attrs.frozen
class RoutingTable:
    """Every task kind's route, with the team-wide capacity default.

    Routing transactional work to inside or field sales breaks SPE's division
    of labour: it is refused unless ``allow_sales_for_transactional_work_UNSAFE``
    is set, and even then ``warnings()`` reports it (``spe check`` prints it).
    """

    routes: dict[str, Route] = attrs.field(factory=default_table)
    default_capacity: int = 8
    allow_sales_for_transactional_work_UNSAFE: bool = attrs.field(default=False, validator=_flag)

    def __attrs_post_init__(self) -> None:
        check_int(
            self.default_capacity,
            "RoutingTable.default_capacity (routing default_capacity)",
            minimum=1,
            maximum=2**31 - 1,
            error=ConfigError,
            fix="let each member hold at least one open task (a whole number).",
        )
        if not isinstance(self.routes, Mapping):
            raise ConfigError(
                f"RoutingTable.routes must map task kinds to routes, got {shown(self.routes)}.",
                "pass a dict such as {'quote': Route('quote', ['customer_service'])}.",
            )
        for kind, route in self.routes.items():
            check_id(kind, "RoutingTable.routes key", error=ConfigError)
            check_instance(route, Route, f"RoutingTable.routes[{kind!r}]", error=ConfigError)
            if route.kind != kind:
                raise ConfigError(
                    f"RoutingTable.routes[{kind!r}] is the route of {route.kind!r}.",
                    "key each route by its own kind.",
                )
        for route in self.routes.values():
            sales = set(route.roles) & SALES_ROLES
            if route.overflow_role in SALES_ROLES:
                sales.add(route.overflow_role)
            if sales and not self.allow_sales_for_transactional_work_UNSAFE:
                raise ConfigError(
                    f"[routing.{route.kind}] routes transactional work to "
                    f"{', '.join(sorted(r.value for r in sales))}: SPE keeps salespeople "
                    "selling.",
                    "route it to customer_service, engineering or project_leader; only if "
                    "you must, set allow_sales_for_transactional_work_UNSAFE = true.",
                )

    def route_for(self, kind: str) -> Route:
        """The route of ``kind`` (:class:`ConfigError` naming the known kinds if none)."""
        route = self.routes.get(kind)
        if route is None:
            raise ConfigError(
                f"no route for task kind {kind!r}.",
                f"use one of: {', '.join(sorted(self.routes))}, or add [routing.{kind}] "
                "with its roles to spe.toml.",
            )
        return route

    def warnings(self) -> list[str]:
        """Problems worth a CRM admin's attention (shown by ``spe check``)."""
        out = []
        for route in self.routes.values():
            sales = (set(route.roles) | {route.overflow_role}) & SALES_ROLES
            if sales:
                out.append(
                    f"[routing.{route.kind}] sends transactional work to "
                    f"{', '.join(sorted(r.value for r in sales if r))} "
                    "(allow_sales_for_transactional_work_UNSAFE is set)."
                )
        return out

    @classmethod
    def from_config(cls, data: Mapping[str, Any] | None) -> RoutingTable:
        """The table from spe.toml's ``[routing]``: defaults, overridden or extended per kind."""
        data = dict(data or {})
        unsafe = bool(data.pop("allow_sales_for_transactional_work_UNSAFE", False))
        capacity = data.pop("default_capacity", 8)
        routes = default_table()
        fields = {a.name for a in attrs.fields(Route)} - {"kind", "sla"}
        for kind, table in data.items():
            if not isinstance(table, Mapping):
                raise ConfigError(
                    f"[routing] {kind} = {table!r} is not a table.",
                    f"write [routing.{kind}] with roles = [...].",
                )
            table = dict(table)
            unknown = sorted(set(table) - fields - {"sla_accept_minutes", "sla_complete_minutes"})
            if unknown:
                raise ConfigError(
                    f"[routing.{kind}] {unknown[0]} is not a known setting.",
                    f"known: {', '.join(sorted(fields))}, sla_accept_minutes, "
                    "sla_complete_minutes.",
                )
            base = routes.get(kind)
            sla = base.sla if base else DEFAULT_SLA
            if "sla_accept_minutes" in table or "sla_complete_minutes" in table:
                sla = Sla(
                    table.pop("sla_accept_minutes", sla.accept),
                    table.pop("sla_complete_minutes", sla.complete),
                )
            try:
                routes[kind] = (
                    attrs.evolve(base, sla=sla, **table)
                    if base
                    else Route(kind=kind, sla=sla, **table)
                )
            except ConfigError as exc:
                raise ConfigError(f"[routing.{kind}]: {exc.problem}", exc.fix) from None
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"[routing.{kind}]: {exc}.", "check the setting's type and value."
                ) from None
        return cls(routes, capacity, unsafe)


# --- candidates ------------------------------------------------------------------------


@attrs.frozen
class Candidate:
    """An eligible member, with what the strategies compare."""

    member: Member
    load: float
    served: float


def capacity(member: Member, table: RoutingTable) -> int:
    """Open tasks the member may hold."""
    return member.task_capacity or table.default_capacity


def unavailability(
    member: Member,
    task: Task,
    route: Route,
    table: RoutingTable,
    now: datetime,
    open_tasks: int,
    working: bool | None = None,
) -> str | None:
    """Why ``member`` may not take ``task`` now; None if they may.

    ``working`` may pass :func:`spe_core.worktime.is_working` at ``now`` when the
    caller already knows it (routing many tasks at one moment).
    """
    if member.role not in route.roles:
        return f"role {member.role.value} does not take {task.kind}"
    if not member.active:
        return "inactive"
    if member.id in task.prior_assignees:
        return "already had this task"
    if route.skills_match and not task.required_skills <= member.skills:
        return "lacks skills: " + ", ".join(sorted(task.required_skills - member.skills))
    if open_tasks >= capacity(member, table):
        return f"at capacity ({open_tasks} open tasks)"
    for absence in member.absences:
        if absence.covers(now):
            return f"away ({absence.reason})"
    if not (worktime.is_working(member, now) if working is None else working):
        return "outside working hours"
    return None


def eligible(
    task: Task,
    route: Route,
    table: RoutingTable,
    members: Sequence[Member],
    open_tasks: Mapping[str, int],
    loads: Mapping[str, float],
    fairness: Fairness,
    now: datetime,
    working: Mapping[str, bool] | None = None,
) -> tuple[list[Candidate], dict[str, str]]:
    """The candidates for ``task`` (by id) and, for everyone else in its roles, why not.

    ``working`` optionally maps member ids to :func:`worktime.is_working` at ``now``.
    """
    out: list[Candidate] = []
    why: dict[str, str] = {}
    for member in members:
        if member.role not in route.roles:
            continue
        reason = unavailability(
            member,
            task,
            route,
            table,
            now,
            open_tasks.get(member.id, 0),
            None if working is None else working.get(member.id, False),
        )
        if reason is None:
            out.append(Candidate(member, loads.get(member.id, 0.0), fairness.count(member.id)))
        else:
            why[member.id] = reason
    out.sort(key=lambda c: c.member.id)
    return out, why


# --- fairness ----------------------------------------------------------------------------


@attrs.frozen
class Fairness:
    """Weighted round-robin counts of one role, persisted between restarts.

    ``floor`` only rises: it is the smallest count among the members chosen
    from at the last decision. A member whose count is below it (back from
    leave, or new) is lifted to it, so they take their share from now on
    instead of every task until they catch up.
    """

    counts: dict[str, float] = attrs.field(factory=dict)
    floor: float = 0.0

    def count(self, member_id: str) -> float:
        """The member's count, lifted to the floor."""
        return max(self.counts.get(member_id, self.floor), self.floor)

    def after(self, chosen: Member, candidates: Sequence[Candidate]) -> Fairness:
        """The counts once ``chosen`` took a task among ``candidates``."""
        others = (c.served for c in candidates if c.member.id != chosen.id)
        return self.lifted(chosen, min(others, default=None))

    def lifted(self, chosen: Member, lowest_other: float | None) -> Fairness:
        """The counts once ``chosen`` took a task, ``lowest_other`` being the smallest
        count among the other members it was chosen from (None: nobody else)."""
        counts = dict(self.counts)
        mine = counts[chosen.id] = self.count(chosen.id) + 1.0 / chosen.weight
        # counts below the floor read as the floor (count()), so only the floor moves
        others = mine if lowest_other is None else lowest_other
        return Fairness(counts, max(self.floor, min(others, mine)))

    def dumps(self) -> str:
        """As JSON, for the store's metadata."""
        return json.dumps({"counts": self.counts, "floor": self.floor}, sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> Fairness:
        """From :meth:`dumps`' JSON (empty when None)."""
        if not text:
            return cls()
        data = json.loads(text)
        return cls({str(k): float(v) for k, v in data["counts"].items()}, float(data["floor"]))


def choose(route: Route, candidates: Sequence[Candidate], account_member: str | None) -> Candidate:
    """The default choice among (non-empty) ``candidates``.

    Account continuity first (when the route asks for it and the member who
    last handled the account is a candidate), then the strategy: smallest
    load per unit of weight (least_loaded) or smallest fairness count per unit
    of weight (round_robin); ties go to the smaller count, then the id.
    """
    if not candidates:
        raise WrongState("choose() needs at least one candidate.", "route to the role queue.")
    if route.account_continuity and account_member is not None:
        for c in candidates:
            if c.member.id == account_member:
                return c
    if route.strategy is Strategy.LEAST_LOADED:
        return min(candidates, key=lambda c: (c.load / c.member.weight, c.served, c.member.id))
    return min(candidates, key=lambda c: (c.served, c.load / c.member.weight, c.member.id))


# --- transitions ---------------------------------------------------------------------------


def assign(
    task: Task,
    member: Member,
    route: Route,
    now: datetime,
    segments: Callable[[Member, date], list[tuple[datetime, datetime]]] | None = None,
) -> Task:
    """``task`` assigned to ``member``, with SLA deadlines in their working time.

    ``segments``: as :func:`spe_core.worktime.add_working_time` takes it (a
    caller's store of the member's working segments per day)."""
    return attrs.evolve(
        task,
        status=TaskStatus.ASSIGNED,
        assignee_id=member.id,
        assigned_at=now,
        queue_role=None,
        unassigned_reason=None,
        accepted_at=None,
        accept_by=worktime.add_working_time(member, now, route.sla.accept[task.priority], segments),
        complete_by=task.due_at
        or worktime.add_working_time(member, now, route.sla.complete[task.priority], segments),
        prior_assignees=(*task.prior_assignees, member.id),
    )


def unassign(task: Task, role: Role, reason: str) -> Task:
    """``task`` waiting in ``role``'s queue, with the reason."""
    return attrs.evolve(
        task,
        status=TaskStatus.UNASSIGNED,
        assignee_id=None,
        assigned_at=None,
        accept_by=None,
        accepted_at=None,
        queue_role=role,
        unassigned_reason=reason,
    )


def no_candidate_reason(why: Mapping[str, str], role_names: str) -> str:
    """A readable reason for an empty candidate list."""
    if not why:
        return f"no member has the role {role_names}"
    counts: dict[str, int] = {}
    for reason in why.values():
        key = reason.split(" (")[0].split(":")[0]
        counts[key] = counts.get(key, 0) + 1
    parts = [f"{n} {key}" for key, n in sorted(counts.items())]
    return f"no eligible {role_names}: " + ", ".join(parts)


def accept(task: Task, member_id: str, now: datetime) -> Task:
    """The assignee accepts the task."""
    _check_assignee(task, member_id, "accept", {TaskStatus.ASSIGNED})
    return attrs.evolve(task, status=TaskStatus.ACCEPTED, accepted_at=now)


def complete(task: Task, member_id: str, now: datetime) -> tuple[Task, bool]:
    """The assignee completes the task; also whether it met its SLA."""
    _check_assignee(task, member_id, "complete", {TaskStatus.ASSIGNED, TaskStatus.ACCEPTED})
    within = task.complete_by is None or now <= task.complete_by
    return attrs.evolve(task, status=TaskStatus.COMPLETED, completed_at=now), within


def _check_assignee(task: Task, member_id: str, action: str, states: set[TaskStatus]) -> None:
    if task.status not in states:
        raise WrongState(
            f"cannot {action} task {task.id!r}: it is {task.status.value}.",
            "only an assigned (or accepted) task can be accepted, declined or completed.",
        )
    if task.assignee_id != member_id:
        raise WrongOwner(
            f"cannot {action} task {task.id!r} as {member_id!r}: it is assigned to "
            f"{task.assignee_id!r}.",
            "act as the assignee, or reassign the task first.",
        )


CANCELLABLE = frozenset({TaskStatus.UNASSIGNED, TaskStatus.ASSIGNED, TaskStatus.ACCEPTED})
"""The states a task can be cancelled from (not completed, not already cancelled)."""


def cancel(task: Task) -> Task:
    """``task`` cancelled (transition ``task.cancelled``): no assignee, no queue, no
    deadlines; ``prior_assignees``, ``assigned_at`` and ``accepted_at`` keep its history.

    Raises :class:`~spe_core.errors.WrongState` for a completed or cancelled task.
    """
    if task.status not in CANCELLABLE:
        raise WrongState(
            f"cannot cancel task {task.id!r}: it is {task.status.value}.",
            "only a queued, assigned or accepted task can be cancelled.",
        )
    return attrs.evolve(
        task,
        status=TaskStatus.CANCELLED,
        assignee_id=None,
        queue_role=None,
        unassigned_reason=None,
        accept_by=None,
        complete_by=None,
    )


def overdue_reason(task: Task, now: datetime) -> str | None:
    """Why an open task must be escalated at ``now``; None if it need not be."""
    if task.status is TaskStatus.ASSIGNED and task.accept_by is not None and now >= task.accept_by:
        return "not accepted within its SLA"
    if task.is_open and task.complete_by is not None and now >= task.complete_by:
        return "not completed within its SLA"
    return None
