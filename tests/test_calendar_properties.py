"""Calendar properties: whatever book and plan_week produce passes validate.

The stateful machine (``spe_core.testing.calendar_stateful``) runs on the
memory and SQLite stores here and on PostgreSQL in ``test_postgres.py``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from spe_core import calendar as cal
from spe_core.model import (
    AppointmentRequest,
    Booking,
    Busy,
    Location,
    Member,
    TimeWindow,
    WorkingHours,
)
from spe_core.store import open_store
from spe_core.testing.calendar_stateful import calendar_machine

MONDAY = datetime(2026, 12, 7, tzinfo=UTC)
NOW = MONDAY - timedelta(days=3)

TestMemoryCalendar = calendar_machine(lambda: open_store("memory:")).TestCase


def _sqlite() -> Any:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="spe-cal-"))
    return open_store(f"sqlite:///{folder / 'spe.db'}")


TestSQLiteCalendar = calendar_machine(_sqlite).TestCase

places = st.builds(Location, st.floats(47.5, 48.5), st.floats(10.5, 12.0))
zones = st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"])


@st.composite
def teams(draw: st.DrawFn) -> list[cal.MemberCalendar]:
    n = draw(st.integers(1, 4))
    out = []
    for i in range(n):
        start = draw(st.integers(6, 10))
        m = Member(
            f"f{i}",
            f"F{i}",
            draw(st.sampled_from(["field_sales", "field_sales", "inside_sales"])),
            time_zone=draw(zones),
            home_base=draw(places),
            working_hours=WorkingHours.weekdays(
                time(start), time(start + draw(st.integers(6, 10)))
            ),
            holiday_country=draw(st.sampled_from([None, "DE", "US"])),
        )
        busy = [
            Busy(f"b{i}-{j}", m.id, MONDAY + timedelta(hours=h), MONDAY + timedelta(hours=h + d))
            for j, (h, d) in enumerate(
                draw(st.lists(st.tuples(st.integers(0, 120), st.integers(1, 3)), max_size=4))
            )
        ]
        out.append(cal.MemberCalendar(m, (), busy, NOW))
    return out


@st.composite
def requests(draw: st.DrawFn) -> list[AppointmentRequest]:
    out = []
    for i in range(draw(st.integers(1, 30))):
        in_person = draw(st.booleans())
        day = draw(st.integers(0, 4))
        length = draw(st.integers(1, 5))
        window = draw(st.none() | st.integers(0, 20))
        out.append(
            AppointmentRequest(
                f"r{i}",
                f"a{i}",
                timedelta(minutes=draw(st.sampled_from([30, 60, 90]))),
                "in_person" if in_person else "conference_call",
                MONDAY + timedelta(days=day),
                MONDAY + timedelta(days=day + length),
                location=draw(places) if in_person else None,
                windows=[
                    TimeWindow(
                        MONDAY + timedelta(days=day, hours=window),
                        MONDAY + timedelta(days=day, hours=window + 6),
                    )
                ]
                if window is not None
                else [],
            )
        )
    return out


RULES = cal.CalendarRules(meetings_per_day=3, meetings_per_week=9, busy_max_age=timedelta(days=7))
TRAVEL = cal.great_circle_travel(RULES)


@settings(max_examples=60)
@given(team=teams(), reqs=requests())
@example(  # a request whose deadline lies in the next week: two weekly caps, not one
    team=[
        cal.MemberCalendar(
            Member(
                "f0", "F0", "field_sales", time_zone="Europe/Berlin", home_base=Location(48.0, 11.5)
            ),
            busy_read_at=NOW,
        )
    ],
    reqs=[
        AppointmentRequest(
            f"r{i}",
            "a",
            timedelta(minutes=30),
            "in_person",
            MONDAY,
            MONDAY + timedelta(days=8),
            location=Location(48.0, 11.0),
        )
        for i in range(12)
    ],
)
def test_every_plan_passes_validate_and_respects_caps(
    team: list[cal.MemberCalendar], reqs: list[AppointmentRequest]
) -> None:
    plan = cal.plan_week(reqs, team, RULES, TRAVEL, NOW)
    assert len(plan.bookings) + len(plan.unplanned) == len(reqs)  # nothing lost or doubled
    assert len({b.id for b in plan.bookings}) == len(plan.bookings)
    for c in team:
        mine = [b for b in plan.bookings if b.member_id == c.member.id]
        assert cal.validate(cal.MemberCalendar(c.member, mine, c.busy, NOW), RULES, TRAVEL) == []
        _travel_fits(c.member, [b for b in mine if b.in_person])
        per_day = Counter(cal.local_day(c.member, b.start) for b in mine if b.in_person)
        assert all(n <= RULES.meetings_per_day for n in per_day.values())
        per_week = Counter(
            cal.local_day(c.member, b.start).isocalendar()[:2] for b in mine if b.in_person
        )
        assert all(n <= RULES.meetings_per_week for n in per_week.values())


@settings(max_examples=60)
@given(team=teams(), reqs=requests())
def test_every_proposed_slot_passes_validate_when_booked(
    team: list[cal.MemberCalendar], reqs: list[AppointmentRequest]
) -> None:
    plan = cal.plan_week(reqs[1:], team, RULES, TRAVEL, NOW)
    calendars = [
        cal.MemberCalendar(
            c.member, [b for b in plan.bookings if b.member_id == c.member.id], c.busy, NOW
        )
        for c in team
    ]
    proposal = cal.propose(reqs[0], calendars, RULES, TRAVEL, NOW, limit=50)
    by_member = {c.member.id: c for c in calendars}
    for slot in proposal.slots:
        c = by_member[slot.member_id]
        booked = Booking(reqs[0], slot.member_id, slot.start, "c", NOW)
        after = cal.MemberCalendar(c.member, [*c.bookings, booked], c.busy, NOW)
        assert cal.validate(after, RULES, TRAVEL) == []
    keys = [(s.start, s.member_id) for s in proposal.slots]
    assert len(set(keys)) == len(keys)


def _travel_fits(member: Member, meetings: list[Booking]) -> None:
    """An oracle independent of validate: each day, home -> meetings -> home is drivable."""
    from spe_core import worktime

    by_day: dict[object, list[Booking]] = {}
    for b in sorted(meetings, key=lambda b: b.start):
        by_day.setdefault(cal.local_day(member, b.start), []).append(b)
    for day, items in by_day.items():
        segments = worktime.day_segments(member, day)  # type: ignore[arg-type]
        assert member.home_base is not None and segments
        places = [(segments[0][0], member.home_base)]
        places += [(b.start, b.location) for b in items]
        ends = [segments[0][0]] + [b.end for b in items]
        for (at, where), (_, before), left in zip(places[1:], places[:-1], ends, strict=False):
            assert where is not None and before is not None
            assert at - left >= TRAVEL(before, where, left), (member.id, day, at)
        assert (
            items[-1].end + TRAVEL(items[-1].location, member.home_base, items[-1].end)
            <= (  # type: ignore[arg-type]
                segments[-1][1]
            )
        )
