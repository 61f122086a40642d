"""plan_week's member choice: calls go to spare call capacity, visits keep field time.

Conference calls go to inside salespeople before field salespeople, and to a
field salesperson only after the visits are placed; ties between members are
broken by load, never by member id (issue 14, "Planner quality").
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import attrs
from hypothesis import given
from hypothesis import strategies as st

from spe_core import calendar as cal
from spe_core.model import AppointmentRequest, Location, Member, TimeWindow, WorkingHours

MONDAY = datetime(2026, 12, 7, tzinfo=UTC)  # no public holiday that week
NOW = MONDAY - timedelta(days=3)
RULES = cal.CalendarRules(meetings_per_day=3, meetings_per_week=9, busy_max_age=None)
TRAVEL = cal.great_circle_travel(RULES)
HOME = Location(48.137, 11.575, "Munich")

places = st.builds(Location, st.floats(47.8, 48.4), st.floats(11.0, 12.0))


def _field(mid: str, home: Location, start: int = 8, hours: int = 10) -> Member:
    return Member(
        mid,
        mid.upper(),
        "field_sales",
        time_zone="UTC",
        home_base=home,
        working_hours=WorkingHours.weekdays(time(start), time(start + hours)),
    )


def _inside(mid: str, start: int = 8, hours: int = 10) -> Member:
    return Member(
        mid,
        mid.upper(),
        "inside_sales",
        time_zone="UTC",
        working_hours=WorkingHours.weekdays(time(start), time(start + hours)),
    )


def _call(rid: str, day: int, length: int, minutes: int = 30) -> AppointmentRequest:
    return AppointmentRequest(
        rid,
        f"a-{rid}",
        timedelta(minutes=minutes),
        "conference_call",
        MONDAY + timedelta(days=day),
        MONDAY + timedelta(days=day + length),
    )


def _visit(
    rid: str, where: Location, day: int, length: int, window: int | None = None
) -> AppointmentRequest:
    windows = []
    if window is not None:
        lo = MONDAY + timedelta(days=day, hours=window)
        windows = [TimeWindow(lo, lo + timedelta(hours=6))]
    return AppointmentRequest(
        rid,
        f"a-{rid}",
        timedelta(hours=1),
        "in_person",
        MONDAY + timedelta(days=day),
        MONDAY + timedelta(days=day + length),
        location=where,
        windows=windows,
    )


@st.composite
def field_teams(draw: st.DrawFn, prefix: str = "f") -> list[Member]:
    return [
        _field(f"{prefix}{i}", draw(places), draw(st.integers(7, 9)), draw(st.integers(6, 10)))
        for i in range(draw(st.integers(1, 3)))
    ]


@st.composite
def visits(draw: st.DrawFn) -> list[AppointmentRequest]:
    out = []
    for i in range(draw(st.integers(1, 18))):
        day = draw(st.integers(0, 4))
        out.append(
            _visit(
                f"v{i:02d}",
                draw(places),
                day,
                draw(st.integers(1, 5 - day)),
                draw(st.none() | st.integers(6, 12)),
            )
        )
    return out


@st.composite
def calls(draw: st.DrawFn, most: int = 8) -> list[AppointmentRequest]:
    out = []
    for i in range(draw(st.integers(1, most))):
        day = draw(st.integers(0, 4))
        out.append(_call(f"c{i:02d}", day, draw(st.integers(1, 5 - day))))
    return out


def _plan(requests: list[AppointmentRequest], team: list[Member], **kw: object) -> cal.WeekPlan:
    return cal.plan_week(
        requests,
        [cal.MemberCalendar(m) for m in team],
        RULES,
        TRAVEL,
        NOW,
        **kw,  # type: ignore[arg-type]
    )


def _in_person(plan: cal.WeekPlan) -> int:
    return sum(1 for b in plan.bookings if b.in_person)


def _placed(plan: cal.WeekPlan) -> list[tuple[str, str, datetime]]:
    return [(b.id, b.member_id, b.start) for b in plan.bookings]


# --- the shape ---------------------------------------------------------------


def test_calls_go_to_an_idle_inside_salesperson_and_the_field_keeps_its_visits() -> None:
    """Calls first in the batch, field and inside members: the field morning stays for visits.

    The field salesperson's day (08:00-11:30) holds exactly three one-hour visits
    at home with the 10-minute buffers on the 15-minute grid. The old planner broke the tie between
    the field and the inside salesperson by member id ("ana" < "zoe") and put
    the call on the field salesperson at 08:00, leaving room for two visits.
    """
    ana = Member(
        "ana",
        "Ana",
        "field_sales",
        time_zone="UTC",
        home_base=HOME,
        working_hours=WorkingHours.weekdays(time(8), time(11, 30)),
    )
    zoe = _inside("zoe")
    reqs = [
        _call("call-1", 0, 1),
        *(_visit(f"visit-{i}", HOME, 0, 1) for i in range(3)),
    ]
    plan = _plan(reqs, [ana, zoe])
    assert plan.unplanned == ()
    assert _in_person(plan) == 3
    (call,) = [b for b in plan.bookings if not b.in_person]
    assert call.member_id == "zoe"


def test_a_call_only_the_field_can_take_waits_for_the_visits() -> None:
    """With no inside salesperson free, the call takes the field time the visits leave."""
    ana = Member(
        "ana",
        "Ana",
        "field_sales",
        time_zone="UTC",
        home_base=HOME,
        working_hours=WorkingHours.weekdays(time(8), time(12, 30)),
    )
    reqs = [_call("call-1", 0, 1), *(_visit(f"visit-{i}", HOME, 0, 1) for i in range(3))]
    plan = _plan(reqs, [ana])
    assert plan.unplanned == ()
    by_id = {b.id: b for b in plan.bookings}
    assert by_id["call-1"].start == MONDAY.replace(hour=11, minute=45)  # after the visits
    assert sorted(by_id[f"visit-{i}"].start.hour for i in range(3)) == [8, 9, 10]


def test_propose_offers_a_call_to_inside_sales_before_field_sales_at_the_same_time() -> None:
    ana, zoe = _field("ana", HOME), _inside("zoe")
    slots = cal.propose(
        _call("c", 0, 1), [cal.MemberCalendar(ana), cal.MemberCalendar(zoe)], RULES, TRAVEL, NOW
    ).slots
    assert [(s.member_id, s.start.hour) for s in slots[:2]] == [("zoe", 8), ("ana", 8)]


# --- properties ------------------------------------------------------------------------


@given(
    field=field_teams(),
    inside_hours=st.lists(
        st.tuples(st.integers(6, 10), st.integers(4, 10)), min_size=1, max_size=2
    ),
    visit_batch=visits(),
    call_batch=calls(),
    calls_first=st.booleans(),
)
def test_a_call_an_idle_inside_salesperson_can_take_never_goes_to_the_field(
    field: list[Member],
    inside_hours: list[tuple[int, int]],
    visit_batch: list[AppointmentRequest],
    call_batch: list[AppointmentRequest],
    calls_first: bool,
) -> None:
    inside = [_inside(f"i{k}", s, h) for k, (s, h) in enumerate(inside_hours)]
    reqs = [*call_batch, *visit_batch] if calls_first else [*visit_batch, *call_batch]
    plan = _plan(reqs, [*field, *inside])
    busy = {b.member_id for b in plan.bookings}
    idle = [m for m in inside if m.id not in busy]
    field_ids = {m.id for m in field}
    for b in plan.bookings:
        if b.in_person or b.member_id not in field_ids:
            continue
        for m in idle:
            offered = cal.propose(b.request, [cal.MemberCalendar(m)], RULES, TRAVEL, NOW).slots
            assert offered == (), (b.id, b.member_id, m.id, offered[0])


@given(field=field_teams(), visit_batch=visits(), call_batch=calls(6), calls_first=st.booleans())
def test_calls_inside_sales_can_absorb_all_go_to_inside_sales(
    field: list[Member],
    visit_batch: list[AppointmentRequest],
    call_batch: list[AppointmentRequest],
    calls_first: bool,
) -> None:
    """Two idle inside salespeople have room for every call: no call goes to the field."""
    team = [*field, _inside("i0"), _inside("i1")]
    reqs = [*call_batch, *visit_batch] if calls_first else [*visit_batch, *call_batch]
    plan = _plan(reqs, team)
    assert {b.id for b in plan.bookings if not b.in_person} == {r.id for r in call_batch}
    assert all(b.member_id in ("i0", "i1") for b in plan.bookings if not b.in_person)


@given(
    field=field_teams(),
    inside_hours=st.lists(
        st.tuples(st.integers(6, 10), st.integers(4, 10)), min_size=0, max_size=2
    ),
    visit_batch=visits(),
    call_batch=calls(12),
    calls_first=st.booleans(),
    improve=st.booleans(),
)
def test_calls_never_cost_an_in_person_meeting(
    field: list[Member],
    inside_hours: list[tuple[int, int]],
    visit_batch: list[AppointmentRequest],
    call_batch: list[AppointmentRequest],
    calls_first: bool,
    improve: bool,
) -> None:
    """With calls in the batch, plan_week books the very visits it books without them.

    Calls go to inside sales, or to field sales only in the time the visits
    leave, so the in-person meetings are never fewer than without the calls
    (the old planner put calls on field salespeople first and lost visits).
    """
    inside = [_inside(f"i{k}", s, h) for k, (s, h) in enumerate(inside_hours)]
    team = [*field, *inside]
    reqs = [*call_batch, *visit_batch] if calls_first else [*visit_batch, *call_batch]
    mixed = _plan(reqs, team, improve=improve)
    alone = _plan(visit_batch, team, improve=improve)
    assert _in_person(mixed) == _in_person(alone)
    assert [p for p in _placed(mixed) if p[0].startswith("v")] == _placed(alone)


@given(
    field=field_teams(),
    inside_hours=st.lists(
        st.tuples(st.integers(6, 10), st.integers(4, 10)), min_size=1, max_size=2
    ),
    visit_batch=visits(),
    call_batch=calls(),
)
def test_the_plan_is_deterministic_and_member_ids_only_break_exact_ties(
    field: list[Member],
    inside_hours: list[tuple[int, int]],
    visit_batch: list[AppointmentRequest],
    call_batch: list[AppointmentRequest],
) -> None:
    """Same input, same plan; renaming members so field ids sort after inside ids (instead
    of before) renames the plan and changes nothing else."""
    reqs = [*call_batch, *visit_batch]

    def team(field_prefix: str, inside_prefix: str) -> list[Member]:
        fs = [attrs.evolve(m, id=f"{field_prefix}{m.id}") for m in field]  # same order
        ins = [_inside(f"{inside_prefix}i{k}", s, h) for k, (s, h) in enumerate(inside_hours)]
        return [*fs, *ins]

    first = _plan(reqs, team("a", "z"))
    assert _placed(_plan(reqs, team("a", "z"))) == _placed(first)
    assert [b.by for b in first.bookings] == [b.by for b in _plan(reqs, team("a", "z")).bookings]
    swapped = _plan(reqs, team("z", "a"))

    def strip(plan: cal.WeekPlan) -> list[tuple[str, str, datetime]]:
        return [(rid, mid[1:], start) for rid, mid, start in _placed(plan)]

    assert strip(swapped) == strip(first)
    assert swapped.unplanned == first.unplanned
