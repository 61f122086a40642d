"""plan_week against OR-Tools' routing solver and a greedy earliest-slot baseline.

50 field members x one week (Mon-Fri, 08:00-18:00 Europe/Berlin, home bases
spread over a region of about 110 x 110 km) and 1,200 one-hour in-person
requests from a seeded generator over the same region (about 30 % with a
customer window of half a day). Demand exceeds the caps (50 x 5 x 4 = 1,000
meetings), so which requests are left out matters.

Three planners, side by side, with the same travel model
(``great_circle_travel``, whole minutes) and the same rules:

* **spe**: :func:`spe_core.calendar.plan_week`;
* **OR-Tools**: one vehicle per member-day from and to the home base, a time
  dimension with service time = meeting + buffer, vehicle windows = working
  hours, a count dimension capping meetings per day, a drop penalty per
  request (maximise booked, then minimise travel), PATH_CHEAPEST_ARC then
  guided local search under a time limit;
* **greedy**: each request in turn takes the earliest slot ``propose`` offers.

Run: ``python benchmarks/plan_week.py`` (``--quick`` for a small case). The
last line is one JSON object with the figures and the issue's targets.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

from spe_core import calendar as cal
from spe_core.model import (
    AppointmentRequest,
    Booking,
    Location,
    Member,
    TimeWindow,
    WorkingHours,
)

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2026, 12, 7, tzinfo=BERLIN)
NOW = MONDAY - timedelta(days=3)
DAY_START, DAY_END = 8, 18
LAT0, LON0, SPAN_LAT, SPAN_LON = 48.0, 11.0, 1.0, 1.5  # about 110 x 110 km around Munich


def scenario(
    members: int, requests: int, seed: int
) -> tuple[list[Member], list[AppointmentRequest]]:
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
        if rng.random() < 0.3:
            day = rng.randrange(5)
            half = rng.randrange(2)
            start = MONDAY + timedelta(days=day, hours=8 + 5 * half)
            windows = [TimeWindow(start, start + timedelta(hours=5))]
        reqs.append(
            AppointmentRequest(
                f"r{n:04d}",
                f"a{n:04d}",
                timedelta(hours=1),
                "in_person",
                MONDAY,
                MONDAY + timedelta(days=5),
                location=place(),
                windows=windows,
            )
        )
    return team, reqs


def travel_of(
    bookings: list[Booking], team: list[Member], travel: cal.TravelFn
) -> tuple[float, int]:
    """Total home-to-home travel minutes over member-days, and the member-days used."""
    by_day: dict[tuple[str, object], list[Booking]] = defaultdict(list)
    homes = {m.id: m.home_base for m in team}
    for b in bookings:
        by_day[(b.member_id, b.start.astimezone(BERLIN).date())].append(b)
    total = timedelta(0)
    for (mid, _), items in by_day.items():
        home = homes[mid]
        assert home is not None
        where, at = home, MONDAY
        for b in sorted(items, key=lambda b: b.start):
            assert b.location is not None
            total += travel(where, b.location, at)
            where, at = b.location, b.end
        total += travel(where, home, at)
    return total.total_seconds() / 60, len(by_day)


def violations(bookings: list[Booking], team: list[Member], rules: cal.CalendarRules) -> int:
    travel = cal.great_circle_travel(rules)
    return sum(
        len(
            cal.validate(
                cal.MemberCalendar(m, [b for b in bookings if b.member_id == m.id]), rules, travel
            )
        )
        for m in team
    )


def run_spe(
    team: list[Member], reqs: list[AppointmentRequest], rules: cal.CalendarRules
) -> tuple[list[Booking], float]:
    travel = cal.great_circle_travel(rules)
    t0 = time.perf_counter()
    plan = cal.plan_week(reqs, [cal.MemberCalendar(m) for m in team], rules, travel, NOW)
    return list(plan.bookings), time.perf_counter() - t0


def run_greedy(
    team: list[Member], reqs: list[AppointmentRequest], rules: cal.CalendarRules
) -> tuple[list[Booking], float]:
    travel = cal.great_circle_travel(rules)
    booked: dict[str, list[Booking]] = {m.id: [] for m in team}
    t0 = time.perf_counter()
    for r in reqs:
        calendars = [cal.MemberCalendar(m, booked[m.id]) for m in team]
        slots = cal.propose(r, calendars, rules, travel, NOW, limit=10_000).slots
        if not slots:
            continue
        slot = min(slots, key=lambda s: (s.start, s.member_id))
        booked[slot.member_id].append(Booking(r, slot.member_id, slot.start, "greedy", NOW))
    out = [b for items in booked.values() for b in items]
    return out, time.perf_counter() - t0


def run_ortools(
    team: list[Member], reqs: list[AppointmentRequest], rules: cal.CalendarRules, seconds: int
) -> tuple[list[Booking], float]:
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    travel = cal.great_circle_travel(rules)
    homes = [m.home_base for m in team]
    places = [*homes, *(r.location for r in reqs)]
    n_home = len(homes)
    minutes = [
        [int(travel(a, b, NOW).total_seconds() // 60) for b in places]  # type: ignore[arg-type]
        for a in places
    ]
    service = [0] * n_home + [int((r.duration + rules.buffer).total_seconds() // 60) for r in reqs]
    vehicles = [(m, d) for m in range(len(team)) for d in range(5)]
    starts = [m for m, _ in vehicles]
    manager = pywrapcp.RoutingIndexManager(len(places), len(vehicles), starts, starts)
    routing = pywrapcp.RoutingModel(manager)
    cost = routing.RegisterTransitMatrix(minutes)
    routing.SetArcCostEvaluatorOfAllVehicles(cost)
    timed = [[service[i] + minutes[i][j] for j in range(len(places))] for i in range(len(places))]
    time_cb = routing.RegisterTransitMatrix(timed)
    week = 5 * 24 * 60
    routing.AddDimension(time_cb, week, week, False, "time")
    dim = routing.GetDimensionOrDie("time")
    count_cb = routing.RegisterUnaryTransitVector([0] * n_home + [1] * len(reqs))
    routing.AddDimensionWithVehicleCapacity(
        count_cb, 0, [rules.meetings_per_day] * len(vehicles), True, "count"
    )
    for v, (_, d) in enumerate(vehicles):
        lo, hi = d * 1440 + DAY_START * 60, d * 1440 + DAY_END * 60
        dim.CumulVar(routing.Start(v)).SetRange(lo, hi)
        dim.CumulVar(routing.End(v)).SetRange(lo, hi)
    for k, r in enumerate(reqs):
        index = manager.NodeToIndex(n_home + k)
        if r.windows:
            w = r.windows[0]
            lo = int((w.start - MONDAY).total_seconds() // 60)
            hi = int((w.end - r.duration - MONDAY).total_seconds() // 60)
            dim.CumulVar(index).SetRange(lo, hi)
        routing.AddDisjunction([index], 100_000)
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    params.time_limit.seconds = seconds
    t0 = time.perf_counter()
    solution = routing.SolveWithParameters(params)
    elapsed = time.perf_counter() - t0
    out: list[Booking] = []
    if solution is None:
        return out, elapsed
    for v, (m, _) in enumerate(vehicles):
        index = solution.Value(routing.NextVar(routing.Start(v)))
        while not routing.IsEnd(index):
            node = manager.IndexToNode(index)
            start = MONDAY + timedelta(minutes=solution.Min(dim.CumulVar(index)))
            out.append(Booking(reqs[node - n_home], team[m].id, start, "ortools", NOW))
            index = solution.Value(routing.NextVar(index))
    return out, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 members, 100 requests")
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1200)
    parser.add_argument("--ortools-seconds", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.quick:
        args.members, args.requests, args.ortools_seconds = 5, 100, 3
    rules = cal.CalendarRules(busy_max_age=None, slot_step=timedelta(0))
    team, reqs = scenario(args.members, args.requests, args.seed)
    travel = cal.great_circle_travel(rules)
    print(f"plan_week: {args.members} field members x 1 week, {args.requests} requests")
    rows = {}
    for name, runner in (
        ("spe", lambda: run_spe(team, reqs, rules)),
        ("ortools", lambda: run_ortools(team, reqs, rules, args.ortools_seconds)),
        ("greedy", lambda: run_greedy(team, reqs, rules)),
    ):
        bookings, seconds = runner()
        minutes, _ = travel_of(bookings, team, travel)
        rows[name] = {
            "booked_pct": 100.0 * len(bookings) / len(reqs),
            "per_member_day": len(bookings) / (args.members * 5),
            "travel": minutes,
            "seconds": seconds,
            "violations": violations(bookings, team, rules) if name != "ortools" else 0,
        }
        print(
            f"  {name:8s} booked {rows[name]['booked_pct']:5.1f} %  "
            f"meetings/member-day {rows[name]['per_member_day']:.2f}  "
            f"travel {minutes:9.0f} min  time {seconds:6.2f} s  "
            f"violations {rows[name]['violations']}",
            flush=True,
        )
    spe, ort, greedy = rows["spe"], rows["ortools"], rows["greedy"]
    figures = {
        "booked_pct": round(spe["booked_pct"], 2),
        "ortools_booked_pct": round(ort["booked_pct"], 2),
        "greedy_booked_pct": round(greedy["booked_pct"], 2),
        "meetings_per_member_day": round(spe["per_member_day"], 3),
        "travel_minutes": round(spe["travel"]),
        "ortools_travel_minutes": round(ort["travel"]),
        "greedy_travel_minutes": round(greedy["travel"]),
        "travel_vs_ortools": round(spe["travel"] / ort["travel"], 3) if ort["travel"] else None,
        "booked_pct_gap": round(ort["booked_pct"] - spe["booked_pct"], 2),
        "plan_seconds": round(spe["seconds"], 2),
        "ortools_seconds": round(ort["seconds"], 2),
        "violations": spe["violations"] + greedy["violations"],
    }
    targets = {
        "travel_vs_ortools": "<= 1.15",
        "booked_pct_gap": "<= 2.0",
        "meetings_per_member_day": ">= 3.8",
        "plan_seconds": "<= 10.0",
        "violations": "<= 0",
    }
    print(json.dumps({"benchmark": "plan_week", "figures": figures, "targets": targets}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
