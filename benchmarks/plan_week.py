"""Benchmark: plan_week against OR-Tools' routing solver and a greedy earliest-slot baseline.

50 field members x one week (Mon-Fri, 08:00-18:00 Europe/Berlin, home bases
spread over a region of about 110 x 110 km) and 1,200 one-hour in-person
requests from a seeded generator over the same region, each open for the
whole week; about 30 % carry a customer time window (half of them a half day,
half of them a single day), so time windows matter. Demand exceeds the caps
(50 x 5 x 4 = 1,000 meetings), so which requests are left out matters too.

Three planners, side by side, with the same rules and the same travel model
(``great_circle_travel``, whole minutes):

* **spe**: :func:`spe_core.calendar.plan_week`;
* **OR-Tools**: one vehicle per member-day from and to the home base, a time
  dimension (service time = meeting, plus the rules' buffer between two
  meetings), vehicle windows = that day's working hours, a count dimension
  capping meetings per day, a drop penalty per request (maximise booked, then
  minimise travel), PATH_CHEAPEST_ARC then guided local search under a time
  limit;
* **greedy**: each request in turn takes the earliest slot ``propose`` offers
  over all members.

Travel is home -> meetings -> home summed over member-days, the same way for
all three (``WeekPlan.travel`` for spe, cross-checked). Every planner's
calendars are run through :func:`spe_core.calendar.validate`.

A second batch mixes in conference calls: the same field members and visits,
plus one inside salesperson per five field members and one 30-minute call per
four visits (each open for the week, about 30 % with a one-day customer
window), interleaved with the visits. ``plan_week`` should give the calls to
the inside salespeople and keep the field members' time for visits: the
in-person meetings it books must not drop below the visits-only run
(``in_person_lost_to_calls``). Run:

    .venv/bin/python benchmarks/plan_week.py                        # 50 members, 1,200 requests
    .venv/bin/python benchmarks/plan_week.py --quick                # 5 members, 100 requests
    .venv/bin/python benchmarks/plan_week.py --ortools-seconds 120  # give OR-Tools longer

The last line is one JSON object with the figures and the issue's targets.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from _verdict import finish

from spe_core import calendar as cal
from spe_core.model import AppointmentRequest, Booking, Location, Member, TimeWindow, WorkingHours

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2026, 12, 7, tzinfo=BERLIN)  # no DST change and no public holiday that week
NOW = MONDAY - timedelta(days=3)
DAYS = 5
DAY_START, DAY_END = 8, 18
LAT0, LON0, SPAN_LAT, SPAN_LON = 48.0, 11.0, 1.0, 1.5  # about 110 x 110 km around Munich
DROP_PENALTY = 1_000_000  # OR-Tools: dropping a request costs more than any travel it saves

TARGETS = {
    "travel_vs_ortools": "<= 1.15",
    "booked_pct_gap": "<= 2.0",
    "meetings_per_member_day": ">= 3.8",
    "plan_seconds": "<= 10.0",
    "violations": "<= 0",
    "in_person_lost_to_calls": "<= 0",
}


class Result(NamedTuple):
    bookings: list[Booking]
    seconds: float
    detail: str = ""


def scenario(
    members: int, requests: int, seed: int
) -> tuple[list[Member], list[AppointmentRequest]]:
    """The seeded team and the week's requests."""
    rng = random.Random(seed)

    def place() -> Location:
        return Location(LAT0 + rng.random() * SPAN_LAT, LON0 + rng.random() * SPAN_LON)

    team = [
        Member(
            f"f{i:02d}",
            f"Field {i}",
            "field_sales",
            time_zone="Europe/Berlin",
            home_base=place(),
            working_hours=WorkingHours.weekdays(dtime(DAY_START), dtime(DAY_END)),
            coordinator_id=f"c{i:02d}",
        )
        for i in range(members)
    ]
    reqs = []
    for n in range(requests):
        windows: list[TimeWindow] = []
        kind = rng.random()
        if kind < 0.3:
            day = MONDAY + timedelta(days=rng.randrange(DAYS))
            if kind < 0.15:  # a half day: morning or afternoon
                half = (DAY_END - DAY_START) // 2
                start = day + timedelta(hours=DAY_START + half * rng.randrange(2))
                windows = [TimeWindow(start, start + timedelta(hours=half))]
            else:  # a single day
                start = day + timedelta(hours=DAY_START)
                windows = [TimeWindow(start, day + timedelta(hours=DAY_END))]
        reqs.append(
            AppointmentRequest(
                f"r{n:04d}",
                f"a{n:04d}",
                timedelta(hours=1),
                "in_person",
                MONDAY,
                MONDAY + timedelta(days=DAYS),
                location=place(),
                windows=windows,
            )
        )
    return team, reqs


def with_calls(
    team: list[Member], reqs: list[AppointmentRequest], seed: int
) -> tuple[list[Member], list[AppointmentRequest]]:
    """The mixed batch: inside salespeople and conference calls added, interleaved."""
    rng = random.Random(seed + 1)
    inside = [
        Member(
            f"i{i:02d}",
            f"Inside {i}",
            "inside_sales",
            time_zone="Europe/Berlin",
            working_hours=WorkingHours.weekdays(dtime(DAY_START), dtime(DAY_END)),
        )
        for i in range(max(1, len(team) // 5))
    ]
    mixed = list(reqs)
    for n in range(max(1, len(reqs) // 4)):
        windows: list[TimeWindow] = []
        if rng.random() < 0.3:
            day = MONDAY + timedelta(days=rng.randrange(DAYS))
            windows = [TimeWindow(day + timedelta(hours=DAY_START), day + timedelta(hours=DAY_END))]
        call = AppointmentRequest(
            f"c{n:04d}",
            f"b{n:04d}",
            timedelta(minutes=30),
            "conference_call",
            MONDAY,
            MONDAY + timedelta(days=DAYS),
            windows=windows,
        )
        mixed.insert(rng.randrange(len(mixed) + 1), call)
    return [*team, *inside], mixed


def travel_minutes(bookings: list[Booking], team: list[Member], travel: cal.TravelFn) -> float:
    """Home -> meetings -> home travel, summed over the member-days that have meetings."""
    by_day: dict[tuple[str, date], list[Booking]] = defaultdict(list)
    homes = {m.id: m.home_base for m in team}
    for b in bookings:
        by_day[(b.member_id, b.start.astimezone(BERLIN).date())].append(b)
    total = timedelta(0)
    for (member_id, _), items in by_day.items():
        home = homes[member_id]
        assert home is not None
        where, at = home, MONDAY
        for b in sorted(items, key=lambda b: b.start):
            assert b.location is not None
            total += travel(where, b.location, at)
            where, at = b.location, b.end
        total += travel(where, home, at)
    return total.total_seconds() / 60


def violations(
    bookings: list[Booking], team: list[Member], rules: cal.CalendarRules
) -> list[cal.Violation]:
    """Every rule the planned calendars break, member by member."""
    travel = cal.great_circle_travel(rules)
    mine: dict[str, list[Booking]] = defaultdict(list)
    for b in bookings:
        mine[b.member_id].append(b)
    out: list[cal.Violation] = []
    for m in team:
        out.extend(cal.validate(cal.MemberCalendar(m, mine[m.id]), rules, travel))
    return out


def run_spe(
    team: list[Member], reqs: list[AppointmentRequest], rules: cal.CalendarRules
) -> tuple[Result, float]:
    """plan_week, and the travel minutes it reports (``WeekPlan.travel``)."""
    travel = cal.great_circle_travel(rules)
    t0 = time.perf_counter()
    plan = cal.plan_week(reqs, [cal.MemberCalendar(m) for m in team], rules, travel, NOW)
    elapsed = time.perf_counter() - t0
    return Result(list(plan.bookings), elapsed), plan.travel.total_seconds() / 60


def run_greedy(
    team: list[Member], reqs: list[AppointmentRequest], rules: cal.CalendarRules
) -> Result:
    """Each request in order takes the earliest slot any member has (ties: member id)."""
    travel = cal.great_circle_travel(rules)
    booked: dict[str, list[Booking]] = {m.id: [] for m in team}
    # propose offers the earliest start of every gap of every member-day: ask for them all
    every = len(team) * DAYS * (rules.meetings_per_day + 1) * 4
    t0 = time.perf_counter()
    for r in reqs:
        calendars = [cal.MemberCalendar(m, booked[m.id]) for m in team]
        slots = cal.propose(r, calendars, rules, travel, NOW, by="greedy", limit=every).slots
        if slots:
            slot = min(slots, key=lambda s: (s.start, s.member_id))
            booked[slot.member_id].append(Booking(r, slot.member_id, slot.start, "greedy", NOW))
    elapsed = time.perf_counter() - t0
    return Result([b for items in booked.values() for b in items], elapsed)


def run_ortools(
    team: list[Member], reqs: list[AppointmentRequest], rules: cal.CalendarRules, seconds: int
) -> Result:
    """OR-Tools' routing solver with time windows; the time includes building the model."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    t0 = time.perf_counter()
    travel = cal.great_circle_travel(rules)
    places: list[Location] = []
    for member in team:
        assert member.home_base is not None
        places.append(member.home_base)
    for r in reqs:
        assert r.location is not None
        places.append(r.location)
    n_home, size = len(team), len(places)
    # whole minutes, exactly as great_circle_travel rounds them (it ignores departure time)
    minutes = [[int(travel(a, b, NOW).total_seconds()) // 60 for b in places] for a in places]
    duration = [0] * n_home + [int(r.duration.total_seconds()) // 60 for r in reqs]
    buffer = int(rules.buffer.total_seconds()) // 60
    # leaving node i for node j: i's meeting, the buffer between two meetings, the trip
    timed = [
        [
            duration[i] + (buffer if i >= n_home and j >= n_home else 0) + minutes[i][j]
            for j in range(size)
        ]
        for i in range(size)
    ]
    vehicles = [(m, d) for m in range(len(team)) for d in range(DAYS)]
    depots = [m for m, _ in vehicles]
    manager = pywrapcp.RoutingIndexManager(size, len(vehicles), depots, depots)
    routing = pywrapcp.RoutingModel(manager)
    routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitMatrix(minutes))
    week = DAYS * 24 * 60
    routing.AddDimension(routing.RegisterTransitMatrix(timed), week, week, False, "time")
    clock = routing.GetDimensionOrDie("time")
    count = routing.RegisterUnaryTransitVector([0] * n_home + [1] * len(reqs))
    routing.AddDimensionWithVehicleCapacity(
        count, 0, [rules.meetings_per_day] * len(vehicles), True, "count"
    )
    for v, (_, d) in enumerate(vehicles):
        lo, hi = d * 1440 + DAY_START * 60, d * 1440 + DAY_END * 60
        clock.CumulVar(routing.Start(v)).SetRange(lo, hi)
        clock.CumulVar(routing.End(v)).SetRange(lo, hi)
    for k, r in enumerate(reqs):
        index = manager.NodeToIndex(n_home + k)
        if r.windows:
            (w,) = r.windows
            lo = int((w.start - MONDAY).total_seconds()) // 60
            hi = int((w.end - r.duration - MONDAY).total_seconds()) // 60
            clock.CumulVar(index).SetRange(lo, hi)
        routing.AddDisjunction([index], DROP_PENALTY)
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    params.time_limit.FromSeconds(seconds)
    built = time.perf_counter()
    solution = routing.SolveWithParameters(params)
    solved = time.perf_counter()
    out: list[Booking] = []
    if solution is not None:
        for v, (m, _) in enumerate(vehicles):
            index = solution.Value(routing.NextVar(routing.Start(v)))
            while not routing.IsEnd(index):
                node = manager.IndexToNode(index)
                start = MONDAY + timedelta(minutes=solution.Min(clock.CumulVar(index)))
                out.append(Booking(reqs[node - n_home], team[m].id, start, "ortools", NOW))
                index = solution.Value(routing.NextVar(index))
    detail = f"model {built - t0:.2f} s + solve {solved - built:.2f} s"
    return Result(out, time.perf_counter() - t0, detail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 members, 100 requests, 3 s")
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1200)
    parser.add_argument("--ortools-seconds", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.quick:
        args.members, args.requests, args.ortools_seconds = 5, 100, 3
    # busy time is kept in SPE (there is none); any start minute, as OR-Tools may pick
    rules = cal.CalendarRules(busy_max_age=None, slot_step=timedelta(0))
    team, reqs = scenario(args.members, args.requests, args.seed)
    travel = cal.great_circle_travel(rules)
    windowed = sum(1 for r in reqs if r.windows)
    print(
        f"plan_week: {args.members} field members x {DAYS} days, {args.requests:,} one-hour "
        f"in-person requests ({windowed} with a customer window), seed {args.seed}, "
        f"OR-Tools limit {args.ortools_seconds} s"
    )

    spe, spe_travel = run_spe(team, reqs, rules)
    print(f"  spe done in {spe.seconds:.2f} s", flush=True)
    ortools = run_ortools(team, reqs, rules, args.ortools_seconds)
    print(f"  OR-Tools done in {ortools.seconds:.2f} s ({ortools.detail})", flush=True)
    greedy = run_greedy(team, reqs, rules)
    print(f"  greedy done in {greedy.seconds:.2f} s", flush=True)
    mixed_team, mixed_reqs = with_calls(team, reqs, args.seed)
    n_calls = len(mixed_reqs) - len(reqs)
    mixed, _ = run_spe(mixed_team, mixed_reqs, rules)
    mixed_in_person = sum(1 for b in mixed.bookings if b.in_person)
    field_ids = {m.id for m in team}
    calls_on_field = sum(1 for b in mixed.bookings if not b.in_person and b.member_id in field_ids)
    print(
        f"  spe with {n_calls} calls and {len(mixed_team) - len(team)} inside salespeople "
        f"done in {mixed.seconds:.2f} s: {mixed_in_person:,} in-person meetings "
        f"(visits only: {len(spe.bookings):,}), "
        f"{len(mixed.bookings) - mixed_in_person} calls ({calls_on_field} on field members)",
        flush=True,
    )

    # spe's own travel figure and the common computation must agree
    assert abs(spe_travel - travel_minutes(spe.bookings, team, travel)) < 1e-6
    runs = {"spe": spe, "OR-Tools": ortools, "greedy": greedy}
    member_days = args.members * DAYS
    booked = {k: 100.0 * len(r.bookings) / len(reqs) for k, r in runs.items()}
    per_day = {k: len(r.bookings) / member_days for k, r in runs.items()}
    minutes = {k: travel_minutes(r.bookings, team, travel) for k, r in runs.items()}
    broken = {k: violations(r.bookings, team, rules) for k, r in runs.items()}
    broken["spe with calls"] = violations(mixed.bookings, mixed_team, rules)
    for name, found in broken.items():
        for v in found[:3]:
            print(f"  {name} violation: {v.rule}: {v.reason}")

    rows: list[tuple[str, Callable[[str], str]]] = [
        ("booked %", lambda k: f"{booked[k]:.1f}"),
        ("booked requests", lambda k: f"{len(runs[k].bookings):,}"),
        ("meetings / member-day", lambda k: f"{per_day[k]:.2f}"),
        ("travel min (home to home)", lambda k: f"{minutes[k]:,.0f}"),
        ("travel min / meeting", lambda k: f"{minutes[k] / max(1, len(runs[k].bookings)):.1f}"),
        ("planning time s", lambda k: f"{runs[k].seconds:.2f}"),
        ("validate violations", lambda k: f"{len(broken[k])}"),
    ]
    print(f"{'':27s}{'spe':>12s}{'OR-Tools':>12s}{'greedy':>12s}")
    for label, cell in rows:
        print(f"{label:27s}" + "".join(f"{cell(k):>12s}" for k in runs))

    ort_travel = minutes["OR-Tools"]
    ratio = spe_travel / ort_travel if ort_travel else (1.0 if spe_travel == 0 else 99.0)
    figures = {
        "booked_pct": round(booked["spe"], 2),
        "ortools_booked_pct": round(booked["OR-Tools"], 2),
        "greedy_booked_pct": round(booked["greedy"], 2),
        "meetings_per_member_day": round(per_day["spe"], 3),
        "travel_minutes": round(spe_travel),
        "ortools_travel_minutes": round(ort_travel),
        "greedy_travel_minutes": round(minutes["greedy"]),
        "travel_vs_ortools": round(ratio, 3),
        "booked_pct_gap": round(booked["OR-Tools"] - booked["spe"], 2),
        "plan_seconds": round(spe.seconds, 2),
        "ortools_seconds": round(ortools.seconds, 2),
        "violations": len(broken["spe"]) + len(broken["greedy"]) + len(broken["spe with calls"]),
        "in_person_booked": mixed_in_person,
        "in_person_booked_without_calls": len(spe.bookings),
        "in_person_lost_to_calls": len(spe.bookings) - mixed_in_person,
        "calls_booked_pct": round(100.0 * (len(mixed.bookings) - mixed_in_person) / n_calls, 2),
        "calls_on_field_members": calls_on_field,
        "mixed_plan_seconds": round(mixed.seconds, 2),
        "ortools_violations": len(broken["OR-Tools"]),
    }
    return finish(
        "plan_week",
        figures,
        TARGETS,
        quick=args.quick,
        scale_free=["violations", "in_person_lost_to_calls"],
    )


if __name__ == "__main__":
    sys.exit(main())
