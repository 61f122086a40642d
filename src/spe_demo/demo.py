"""The demo: a morning replenishment, a day of pulls and next week's field visits.

Runs on a SQLite file (in a temporary folder unless ``--store`` names one)
with a fake clock, so a simulated working day takes a second::

    python -m spe_demo [--seed 7] [--store sqlite:///spe-demo.db]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import attrs

from spe_core.calendar import CalendarRules, WeekPlan
from spe_core.clock import FakeClock
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
from spe_core.team import MemberSettings
from spe_demo.crm import DemoCrm, disagreements, random_campaign, start_crm

__all__ = [
    "MONDAY",
    "DayReport",
    "demo_team",
    "main",
    "plan_visits",
    "promotions_backlog",
    "run_day",
]

MONDAY = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)
PRODUCED_PER_DAY = 170
"""Opportunities Promotions produces overnight (inside sales pull about 165 a day)."""
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
                                    f"task-{now:%m%d}-{len(routed) + 1:03d}",
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


def plan_visits(
    engine: Engine,
    rng: random.Random,
    opportunities: Sequence[Opportunity],
    by: Mapping[str, str] | None = None,
) -> tuple[WeekPlan, int]:
    """The sales coordinators book visits for the appointments inside sales set.

    One request per opportunity, at a customer site within about 60 km of
    Munich, an hour long, from tomorrow for a week (a third of them with a
    half-day window the customer gave). ``by``: field member -> coordinator.
    """
    now = engine.clock.now()
    first = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    requests = []
    for opp in opportunities:
        windows = []
        if rng.random() < 0.33:
            start = first + timedelta(days=rng.randrange(5), hours=rng.choice((7, 11)))
            windows = [TimeWindow(start, start + timedelta(hours=5))]
        requests.append(
            AppointmentRequest(
                f"visit-{opp.id}",
                opp.account_id,
                timedelta(hours=1),
                "in_person",
                first,
                first + timedelta(days=7),
                location=Location(48.14 + rng.uniform(-0.45, 0.45), 11.58 + rng.uniform(-0.6, 0.6)),
                windows=windows,
                opportunity_id=opp.id,
            )
        )
    return engine.plan_week(requests, by=by), len(requests)


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


@attrs.frozen
class DaySummary:
    """One day of the demo week, for the summary table."""

    day: datetime
    report: DayReport
    visits_asked: int
    visits_booked: int
    read: int = 0
    written: int = 0


def _print_week(
    days: Sequence[DaySummary], engine: Engine, store_url: str, crm: DemoCrm | None
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    where = f"{crm.name} emulator on 127.0.0.1" if crm else "no CRM"
    console.rule(f"[bold]SPE demo: {len(days)} days of Sales Process Engineering ({where})")
    console.print(f"Store: [cyan]{store_url}[/]")
    table = Table(title="Day by day")
    for col in ("day", "queue am->pm", "zone", "pulls", "appts set"):
        table.add_column(col, justify="right" if col != "day" else "left")
    for col in ("tasks", "visits"):
        table.add_column(col, justify="right")
    if crm:
        table.add_column("CRM in/out", justify="right")
    for d in days:
        r = d.report
        row = [
            d.day.strftime("%a %d"),
            f"{r.morning.level_after} -> {r.evening.level}",
            r.evening.zone.value,
            str(sum(r.pulls.values())),
            str(sum(o.get("appointment_set", 0) for o in r.outcomes.values())),
            str(sum(r.tasks.values())),
            f"{d.visits_booked} of {d.visits_asked}",
        ]
        if crm:
            row.append(f"{d.read}/{d.written}")
        table.add_row(*row)
    console.print(table)
    names = {m.id: m.name for m in engine.members()}
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    for d in days:
        for member_id, pulls in d.report.pulls.items():
            totals[member_id]["pulls"] += pulls
        for member_id, outcomes in d.report.outcomes.items():
            totals[member_id].update(outcomes)
    inside = Table(title="Inside sales over the week: pulls and outcomes")
    inside.add_column("member")
    inside.add_column("pulls", justify="right")
    for outcome in Outcome:
        inside.add_column(outcome.value, justify="right")
    for member_id in sorted(totals, key=lambda m: names.get(m, m)):
        counts = totals[member_id]
        inside.add_row(
            names.get(member_id, member_id),
            str(counts["pulls"]),
            *(str(counts.get(o.value, 0)) for o in Outcome),
        )
    console.print(inside)
    bookings = engine.bookings(days[0].day, days[-1].day + timedelta(days=14))
    dates = sorted({b.start.date() for b in bookings})
    visits = Table(title="Field visits booked by the sales coordinators (cap 4 a day)")
    visits.add_column("field")
    for when in dates:
        visits.add_column(when.strftime("%a %d"), justify="right")
    per: dict[str, Counter[object]] = defaultdict(Counter)
    for b in bookings:
        per[b.member_id][b.start.date()] += 1
    for member_id in sorted(per, key=lambda m: names.get(m, m)):
        visits.add_row(names.get(member_id, member_id), *(str(per[member_id][w]) for w in dates))
    console.print(visits)
    waiting = sum(d.visits_asked - d.visits_booked for d in days)
    console.print(
        f"{len(bookings)} visits booked (each day starts and ends at home, travel between "
        f"customers always fits); {waiting} appointment requests wait for a free slot: "
        "the field team is the constraint, as SPE expects."
    )
    if crm:
        counts = crm.counts()
        agree = disagreements(crm, engine)
        console.print(
            f"{crm.name.capitalize()} now holds "
            + ", ".join(f"{n} {k}" for k, n in counts.items())
            + "; SPE and the CRM "
            + (
                "[green]agree on every record[/]."
                if not agree
                else f"[red]disagree on {len(agree)} records[/]: {'; '.join(agree[:3])}"
            )
        )


def _demo_crm_team(crm: DemoCrm, clock: FakeClock, engine: Engine) -> dict[str, str]:
    """Put the demo team and some calendar entries into the CRM, and give the engine
    the attributes the CRM does not hold (skills, WIP limits, coordinators) as an
    admin's ``[[team]]`` tables would; returns field id -> coordinator id."""
    ids = {m.id: crm.add_member(m) for m in demo_team()}
    coordinators = {
        ids[m.id]: ids[m.coordinator_id]
        for m in demo_team()
        if m.coordinator_id is not None and m.coordinator_id in ids
    }
    for m in demo_team():
        values: dict[str, object] = {"skills": m.skills} if m.skills else {}
        if m.wip_limit is not None:
            values["wip_limit"] = m.wip_limit
        if ids[m.id] in coordinators:
            values["coordinator_id"] = coordinators[ids[m.id]]
        if values:
            engine.member_settings[ids[m.id]] = MemberSettings(ids[m.id], values)
    monday = clock.now().replace(hour=0, minute=0)
    for n, field in enumerate(sorted(coordinators)):
        day = monday + timedelta(days=1 + 2 * n)
        crm.add_busy(field, "Trade fair", day.replace(hour=8), day.replace(hour=12))
        day = monday + timedelta(days=3 + n)
        crm.add_busy(field, "Product training", day.replace(hour=13), day.replace(hour=16))
    return coordinators


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="spe demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--store", help="store URL (default: a SQLite file in a temp folder)")
    parser.add_argument(
        "--crm",
        choices=("salesforce", "hubspot", "none"),
        default="salesforce",
        help="the CRM emulator to sync with (default salesforce; none: SPE alone)",
    )
    parser.add_argument("--days", type=int, default=5, help="working days to simulate (default 5)")
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
        crm = None if args.crm == "none" else start_crm(args.crm, clock.now)
        engine = Engine(
            store,
            policy=QueuePolicy(target=180, lease=timedelta(hours=2)),
            clock=clock,
            plugins=Plugins.create(),
            # with a CRM, busy time is read from the calendars and must be fresh
            calendar_rules=CalendarRules(busy_max_age=None if crm is None else timedelta(hours=24)),
        )
        try:
            summaries = _run_week(engine, clock, rng, crm, args.days)
            _print_week(summaries, engine, url, crm)
        finally:
            if crm is not None:
                crm.stop()
        from spe_core.report import write_report

        path = write_report(store.events(), args.report, engine.policy)
        print(f"HTML report: {path.resolve()}")
        store.close()
    return 0


def _run_week(
    engine: Engine, clock: FakeClock, rng: random.Random, crm: DemoCrm | None, days: int
) -> list[DaySummary]:
    from spe_core.sync import SyncEngine

    sync = None
    coordinators: dict[str, str] = {}
    if crm is None:
        engine.upsert_members(demo_team())
        coordinators = {m.id: m.coordinator_id for m in demo_team() if m.coordinator_id}
        engine.add_to_backlog(promotions_backlog(rng, 360, clock.now()))
    else:
        coordinators = _demo_crm_team(crm, clock, engine)
        for _ in range(360):
            crm.add_backlog(*_lead(rng, crm.name))
        sync = SyncEngine(engine, crm.adapter())
    summaries = []
    day = clock.now()
    for n in range(days):
        while day.weekday() >= 5:
            day += timedelta(days=1)
        clock.set(day.replace(hour=7, minute=0))
        read = written = 0
        if n:  # Promotions produced more overnight
            if crm is None:
                fresh = promotions_backlog(rng, PRODUCED_PER_DAY, clock.now())
                engine.add_to_backlog(attrs.evolve(o, id=f"{o.id}-d{n}") for o in fresh)
            else:
                for _ in range(PRODUCED_PER_DAY):
                    crm.add_backlog(*_lead(rng, crm.name))
        if sync is not None:
            clock.advance(minutes=10)
            morning = sync.run()
            read, written = morning.read, morning.written
        before = {
            o.id for o in engine.store.opportunities() if o.outcome is Outcome.APPOINTMENT_SET
        }
        report = run_day(engine, clock, rng)
        appointments = [
            o
            for o in engine.store.opportunities()
            if o.outcome is Outcome.APPOINTMENT_SET and o.id not in before
        ]
        plan, asked = plan_visits(engine, rng, appointments, coordinators)
        if sync is not None:
            evening = sync.run()
            read, written = read + evening.read, written + evening.written
        summaries.append(DaySummary(day, report, asked, len(plan.bookings), read, written))
        day += timedelta(days=1)
    return summaries


def _lead(rng: random.Random, crm: str) -> tuple[str, int, float, str]:
    return (
        f"Account {rng.randrange(1, 400):03d}",
        rng.choices((0, 1, 2), weights=(60, 30, 10))[0],
        round(rng.uniform(0, 100), 1),
        random_campaign(rng, crm),
    )

