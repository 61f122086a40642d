"""The demo: a morning replenishment, a day of pulls and next week's field visits.

Runs on a SQLite file (in a temporary folder unless ``--store`` names one)
with a fake clock, so a simulated working day takes a second::

    python -m spe_core.demo [--seed 7] [--store sqlite:///spe-demo.db]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import attrs

from spe_core.calendar import CalendarRules, WeekPlan
from spe_core.engine import Engine, QueueStatus
from spe_core.model import (
    AppointmentRequest,
    Location,
    Member,
    Opportunity,
    Outcome,
    Task,
    TaskKind,
    TaskStatus,
    TimeWindow,
    WorkingHours,
)
from spe_core.plugins import Plugins
from spe_core.queue import QueuePolicy, ReplenishmentPlan
from spe_core.store import open_store
from spe_core.testing.clock import FakeClock

__all__ = [
    "DayReport",
    "demo_team",
    "main",
    "plan_field_week",
    "promotions_backlog",
    "run_day",
]

MONDAY = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)
LANGUAGES = ("en", "de", "fr")
CAMPAIGNS = ("webinar", "trade-show", "content", "referral", "outbound")
OUTCOMES = (
    (Outcome.APPOINTMENT_SET, 0.22),
    (Outcome.NURTURE, 0.33),
    (Outcome.DISQUALIFIED, 0.25),
    (Outcome.LOST, 0.15),
    (Outcome.WON, 0.05),
)


def demo_team() -> list[Member]:
    """Promotions, six inside salespeople with language skills, field sales and support."""
    inside = [
        Member("is-ana", "Ana Ruiz", "inside_sales", skills={"en", "de"}),
        Member("is-ben", "Ben Okafor", "inside_sales", skills={"en"}),
        Member("is-chloe", "Chloé Martin", "inside_sales", skills={"en", "fr"}),
        Member("is-dan", "Dan Weber", "inside_sales", skills={"en", "de"}, wip_limit=2),
        Member("is-eva", "Eva Lind", "inside_sales", skills={"en"}),
        Member("is-farid", "Farid Haddad", "inside_sales", skills={"en", "fr"}),
    ]
    others = [
        Member("pr-gina", "Gina Rossi", "promotions"),
        Member("pr-hugo", "Hugo Blanc", "promotions"),
        Member(
            "fs-ivan",
            "Ivan Petrov",
            "field_sales",
            time_zone="Europe/Berlin",
            home_base=Location(48.137, 11.575, "Munich"),
            working_hours=WorkingHours.weekdays(time(8), time(18)),
            coordinator_id="sc-kai",
            holiday_country="DE",
            holiday_subdivision="BY",
        ),
        Member(
            "fs-jade",
            "Jade Chen",
            "field_sales",
            time_zone="Europe/Berlin",
            home_base=Location(48.401, 11.744, "Freising"),
            working_hours=WorkingHours.weekdays(time(8), time(18)),
            coordinator_id="sc-lea",
            holiday_country="DE",
            holiday_subdivision="BY",
        ),
        Member("sc-kai", "Kai Müller", "sales_coordinator"),
        Member("sc-lea", "Léa Dubois", "sales_coordinator"),
        Member("cs-max", "Max Olsen", "customer_service"),
        Member("cs-ines", "Inès Moreau", "customer_service"),
        Member("en-nora", "Nora Ali", "engineering"),
        Member("pl-olga", "Olga Novak", "project_leader"),
    ]
    return inside + others


def promotions_backlog(rng: random.Random, count: int, now: datetime) -> list[Opportunity]:
    """What Promotions produced overnight: tiered, scored, some needing a language."""
    out = []
    for i in range(count):
        language = rng.choices(LANGUAGES, weights=(70, 20, 10))[0]
        out.append(
            Opportunity(
                id=f"opp-{i + 1:04d}",
                account_id=f"acct-{rng.randrange(1, 400):03d}",
                queued_at=now - timedelta(minutes=rng.randrange(0, 600)),
                source_campaign=rng.choice(CAMPAIGNS),
                tier=rng.choices((0, 1, 2), weights=(60, 30, 10))[0],
                score=round(rng.uniform(0, 100), 1),
                required_skills=set() if language == "en" else {language},
                expires_at=now + timedelta(days=rng.randrange(3, 30)),
            )
        )
    return out


@attrs.frozen
class DayReport:
    """What happened in one simulated day."""

    morning: ReplenishmentPlan
    evening: QueueStatus
    replenished: int
    shortfall: int
    pulls: dict[str, int]
    outcomes: dict[str, Counter[str]]
    given_back: int
    lease_expired: int
    events: int
    tasks: Counter[str]
    task_holders: Counter[str]


def run_day(engine: Engine, clock: FakeClock, rng: random.Random) -> DayReport:
    """Replenish at 08:00, then inside sales pull and work until 17:00."""
    clock.set(clock.now().replace(hour=8, minute=0))
    morning = engine.replenish()
    inside = [m for m in engine.members() if m.role.value == "inside_sales"]
    pulls: dict[str, int] = defaultdict(int)
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    busy_until: dict[str, datetime] = {}
    given_back = 0
    lease_expired = 0
    routed: list[Task] = []
    end = clock.now().replace(hour=17)
    while clock.now() < end:
        now = clock.now()
        for member in inside:
            if busy_until.get(member.id, now) > now:
                continue
            for held in engine.held_by(member.id):
                if rng.random() < 0.06:
                    engine.give_back(held.id, member.id, "not a fit for me")
                    given_back += 1
                else:
                    outcome = rng.choices(
                        [o for o, _ in OUTCOMES], weights=[w for _, w in OUTCOMES]
                    )[0]
                    engine.resolve(held.id, member.id, outcome)
                    outcomes[member.id][outcome.value] += 1
                    for kind in _follow_up(outcome, rng):
                        routed.append(
                            engine.route_task(
                                Task(
                                    f"task-{len(routed) + 1:04d}",
                                    kind,
                                    held.account_id,
                                    now,
                                    opportunity_id=held.id,
                                    priority=rng.choice((2, 3, 3, 4)),
                                )
                            )
                        )
            result = engine.pull(member.id)
            if result.released:
                pulls[member.id] += 1
                busy_until[member.id] = now + timedelta(minutes=rng.randrange(8, 25))
        lease_expired += len(engine.expire_leases())
        _specialists_work(engine, rng)
        engine.escalate_overdue()
        clock.advance(minutes=5)
    evening = engine.queue_status()
    events = sum(1 for _ in engine.store.events())
    return DayReport(
        morning=morning.plan,
        evening=evening,
        replenished=len(morning.moved),
        shortfall=morning.plan.shortfall,
        pulls=dict(pulls),
        outcomes=dict(outcomes),
        given_back=given_back,
        lease_expired=lease_expired,
        events=events,
        tasks=Counter(t.kind for t in routed),
        task_holders=Counter(engine.task(t.id).assignee_id or "queued" for t in routed),
    )


def plan_field_week(engine: Engine, rng: random.Random) -> tuple[WeekPlan, int]:
    """The coordinators book next week's visits for the appointments inside sales set.

    One request per opportunity resolved with ``appointment_set``, at a customer
    site within about 60 km of Munich, an hour long, any time next week (a third
    of them with a half-day window the customer gave).
    """
    resolved = [o for o in engine.store.opportunities() if o.outcome is Outcome.APPOINTMENT_SET]
    now = engine.clock.now()
    monday = (now + timedelta(days=7 - now.weekday())).replace(hour=0, minute=0)
    requests = []
    for opp in resolved:
        windows = []
        if rng.random() < 0.33:
            start = monday + timedelta(days=rng.randrange(5), hours=rng.choice((7, 11)))
            windows = [TimeWindow(start, start + timedelta(hours=5))]
        requests.append(
            AppointmentRequest(
                f"visit-{opp.id}",
                opp.account_id,
                timedelta(hours=1),
                "in_person",
                monday,
                monday + timedelta(days=5),
                location=Location(48.14 + rng.uniform(-0.45, 0.45), 11.58 + rng.uniform(-0.6, 0.6)),
                windows=windows,
                opportunity_id=opp.id,
            )
        )
    return engine.plan_week(requests), len(requests)


def _follow_up(outcome: Outcome, rng: random.Random) -> list[str]:
    """The transactional work an outcome creates (never for the salesperson)."""
    if outcome is Outcome.APPOINTMENT_SET:
        return [TaskKind.APPOINTMENT_REQUEST]
    if outcome is Outcome.WON:
        return [TaskKind.IMPLEMENTATION_HANDOFF, TaskKind.ORDER_ENTRY]
    if rng.random() < 0.15:
        return [rng.choice((TaskKind.QUOTE, TaskKind.ADMIN, TaskKind.SOLUTION_DESIGN))]
    return []


def _specialists_work(engine: Engine, rng: random.Random) -> None:
    """Specialists accept what they were given and finish some of it."""
    for member in engine.members():
        if member.role.value in ("inside_sales", "field_sales", "promotions"):
            continue
        for task in engine.open_tasks(member.id):
            if task.status is TaskStatus.ASSIGNED and rng.random() < 0.5:
                engine.accept_task(task.id, member.id)
            elif task.status is TaskStatus.ACCEPTED and rng.random() < 0.2:
                engine.complete_task(task.id, member.id)


def _print(report: DayReport, engine: Engine, store_url: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    plan = report.morning
    console.rule("[bold]SPE demo: one day of the pull queue")
    console.print(f"Store: [cyan]{store_url}[/]")
    console.print(
        f"08:00 replenishment: queue {plan.level_before} -> {plan.level_after} of target "
        f"{plan.target} ({plan.zone_after.value}); moved {report.replenished} from the "
        f"backlog; Promotions must still produce {report.shortfall}."
    )
    table = Table(title="Inside sales, pulls and outcomes")
    table.add_column("member")
    table.add_column("pulls", justify="right")
    for outcome in Outcome:
        table.add_column(outcome.value, justify="right")
    names = {m.id: m.name for m in engine.members()}
    for member_id in sorted(report.pulls):
        row = report.outcomes.get(member_id, Counter())
        table.add_row(
            names[member_id],
            str(report.pulls[member_id]),
            *(str(row.get(o.value, 0)) for o in Outcome),
        )
    console.print(table)
    evening = report.evening
    console.print(
        f"17:00 queue: {evening.level} of {evening.target} "
        f"([bold]{evening.zone.value}[/]), backlog {evening.backlog}, "
        f"still held {evening.released}; {report.given_back} given back, "
        f"{report.lease_expired} leases expired; {report.events} events recorded."
    )
    names = {m.id: m.name for m in engine.members()}
    work = ", ".join(f"{n} {k}" for k, n in sorted(report.tasks.items()))
    holders = ", ".join(f"{names.get(h, h)} {n}" for h, n in sorted(report.task_holders.items()))
    console.print(f"Transactional work routed to specialists (never to sales): {work or 'none'}.")
    console.print(f"Handled by: {holders or 'nobody'} ('queued': waiting in a role queue).")


def _print_week(plan: WeekPlan, asked: int, engine: Engine) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    names = {m.id: m.name for m in engine.members()}
    days: dict[str, Counter[str]] = defaultdict(Counter)
    for b in plan.bookings:
        days[b.member_id][b.start.strftime("%a")] += 1
    table = Table(title="Next week's field visits, planned by the sales coordinators")
    table.add_column("field member")
    for day in ("Mon", "Tue", "Wed", "Thu", "Fri"):
        table.add_column(day, justify="right")
    for member_id in sorted(days):
        table.add_row(
            names.get(member_id, member_id),
            *(str(days[member_id].get(d, 0)) for d in ("Mon", "Tue", "Wed", "Thu", "Fri")),
        )
    console.print(table)
    console.print(
        f"Booked {len(plan.bookings)} of {asked} appointments (cap 4 a day, 20 a week); "
        f"{plan.travel.total_seconds() / 3600:.1f} h of driving in all; "
        f"{len(plan.unplanned)} wait for the week after."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="spe demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--store", help="store URL (default: a SQLite file in a temp folder)")
    parser.add_argument(
        "--report",
        default="spe-report.html",
        help="where to write the HTML report (default spe-report.html)",
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="spe-demo-") as tmp:
        url = args.store or f"sqlite:///{Path(tmp) / 'spe.db'}"
        store = open_store(url)
        clock = FakeClock(MONDAY)
        engine = Engine(
            store,
            policy=QueuePolicy(target=150, lease=timedelta(hours=2)),
            clock=clock,
            plugins=Plugins.create(),
            calendar_rules=CalendarRules(busy_max_age=None),  # no CRM calendar in the demo
        )
        engine.upsert_members(demo_team())
        engine.add_to_backlog(promotions_backlog(rng, 260, clock.now()))
        report = run_day(engine, clock, rng)
        _print(report, engine, url)
        week, asked = plan_field_week(engine, rng)
        _print_week(week, asked, engine)
        from spe_core.report import write_report

        path = write_report(store.events(), args.report, engine.policy)
        print(f"HTML report: {path.resolve()}")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
