"""The calendar on real time: meetings across DST changes, the same on every store.

Slots and plans are checked against the brute-force oracle of
``test_worktime_dst`` (a meeting's every real minute is working time); the
differential test runs the same calendars, written as a CRM would (start times
in the member's own zone), through memory, SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spe_core import calendar as cal
from spe_core.calendar.propose import _ceil_step
from spe_core.engine import Engine
from spe_core.model import (
    AppointmentRequest,
    Booking,
    DayHours,
    Location,
    Member,
    Role,
    WorkingHours,
)
from spe_core.plugins import Plugins
from spe_core.store import open_store
from spe_core.store.base import Store
from spe_core.testing import FakeClock
from tests.pg import URL, drop_test_schemas, schema_url
from tests.test_worktime_dst import DST_ZONES, MINUTE, OTHER_ZONES, Oracle, transitions

BERLIN = ZoneInfo("Europe/Berlin")
RULES = cal.CalendarRules(busy_max_age=None, call_notice=timedelta(hours=1))
HOME = Location(52.52, 13.40)


def travel(a: Location, b: Location, at: datetime) -> timedelta:
    return cal.great_circle_travel(RULES)(a, b, at)


def _hours(start: str, end: str) -> WorkingHours:
    return WorkingHours(
        DayHours(d, time.fromisoformat(start), time.fromisoformat(end)) for d in range(7)
    )


def _call(rid: str, minutes: int, earliest: datetime, deadline: datetime) -> AppointmentRequest:
    return AppointmentRequest(
        rid, "acc", timedelta(minutes=minutes), "conference_call", earliest, deadline
    )


def _minutes(start: datetime, end: datetime) -> Iterator[datetime]:
    u = start
    while u < end:
        yield u
        u += MINUTE


# --- the case -------------------------------------------------------------------------


def _night_caller(zone: str = "Europe/Berlin", member_id: str = "is1") -> Member:
    return Member(
        member_id,
        "Night caller",
        Role.INSIDE_SALES,
        time_zone=zone,
        working_hours=_hours("00:00", "08:00"),
    )


def _berlin_requests() -> list[AppointmentRequest]:
    earliest = datetime(2026, 3, 29, 1, 0, tzinfo=BERLIN)  # 00:00 UTC, the night of the change
    deadline = datetime(2026, 3, 29, 8, 0, tzinfo=BERLIN)  # 06:00 UTC
    return [_call("r1", 120, earliest, deadline), _call("r2", 60, earliest, deadline)]


def test_a_two_hour_meeting_on_the_spring_change_lasts_two_real_hours() -> None:
    now = datetime(2026, 3, 27, tzinfo=UTC)
    member = _night_caller()
    first, second = _berlin_requests()
    proposal = cal.propose(first, [cal.MemberCalendar(member)], RULES, travel, now)
    best = proposal.best
    assert best is not None
    assert best.start == datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # 01:00 CET
    assert best.end - best.start == timedelta(hours=2)
    assert best.end.astimezone(BERLIN).time() == time(4, 0)  # 04:00 CEST, not 03:00
    booked = Booking(first, member.id, best.start, "c", now)
    assert booked.end == best.end
    plan = cal.plan_week([first, second], [cal.MemberCalendar(member)], RULES, travel, now)
    assert len(plan.bookings) == 2
    a, b = sorted(plan.bookings, key=lambda x: x.start)
    assert b.start >= a.end + RULES.buffer, (a.start, a.end, b.start)
    after = cal.MemberCalendar(member, plan.bookings)
    assert cal.validate(after, RULES, travel) == []


def _engine(store: Store, now: datetime) -> Engine:
    return Engine(
        store,
        clock=FakeClock(now),
        plugins=Plugins.create(entry_points=False),
        calendar_rules=RULES,
    )


_opened: list[Store] = []


@pytest.fixture(scope="module", autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    for store in _opened:
        store.close()
    if URL:
        drop_test_schemas()


def _stores(tmp: Path) -> list[tuple[str, Callable[[], Store]]]:
    count = itertools.count()

    def sqlite() -> Store:
        return open_store(f"sqlite:///{tmp / f'spe-{next(count)}.db'}")

    out: list[tuple[str, Callable[[], Store]]] = [
        ("memory", lambda: open_store("memory:")),
        ("sqlite", sqlite),
    ]
    if URL:
        from spe_core.store.postgres import PostgresStore

        out.append(("postgres", lambda: PostgresStore(schema_url(), max_size=2)))
    return out


def test_plan_week_on_the_spring_change_gives_one_answer_on_every_store(tmp_path: Path) -> None:
    now = datetime(2026, 3, 27, tzinfo=UTC)
    answers = {}
    for name, make in _stores(tmp_path):
        store = make()
        _opened.append(store)
        engine = _engine(store, now)
        engine.upsert_members([_night_caller()])
        plan = engine.plan_week(_berlin_requests())
        lo, hi = datetime(2026, 3, 29, tzinfo=BERLIN), datetime(2026, 3, 30, tzinfo=BERLIN)
        booked = engine.bookings(lo, hi)
        assert len(booked) == 2
        a, b = booked
        assert b.start >= a.end + RULES.buffer, (name, a.start, a.end, b.start)
        answers[name] = (
            [(x.id, x.start, x.end) for x in plan.bookings],
            [(x.id, x.start, x.end) for x in booked],
            engine.validate_calendar("is1", lo, hi),
        )
        assert answers[name][2] == [], name
    assert len({repr(v) for v in answers.values()}) == 1, answers


# --- hand-made calendars across every 2026 change, on every store -----------------------------


_VALID = ((1, 0, 120), (4, 20, 45))  # (hour, minute, length): fine in real time
_CLASHING = ((0, 30, 60), (3, 10, 60), (5, 0, 30), (7, 0, 60))  # hand edits that overlap


def _hand_bookings(
    member: Member, change: datetime, entries: tuple[tuple[int, int, int], ...]
) -> list[Booking]:
    """Bookings as a CRM writes them (local wall times in the member's zone) around a change."""
    zone = member.zone
    day = change.astimezone(zone).date()
    out = []
    for hh, mm, minutes in entries:
        n = f"{hh:02d}{mm:02d}"
        start = datetime.combine(day, time(hh, mm), tzinfo=zone)
        earliest = datetime.combine(day - timedelta(days=1), time(0), tzinfo=zone)
        request = _call(
            f"{member.id}-{day.isoformat()}-{n}",
            minutes,
            earliest,
            earliest + timedelta(days=3),
        )
        out.append(Booking(request, member.id, start, "crm", datetime(2025, 1, 1, tzinfo=UTC)))
    return out


def _team() -> list[Member]:
    return [_night_caller(zone, f"m{i}") for i, zone in enumerate([*DST_ZONES, "Asia/Kathmandu"])]


def _answers(store: Store, now: datetime) -> dict[str, Any]:
    engine = _engine(store, now)
    team = _team()
    engine.upsert_members(team)
    changes = {
        m.id: [c for c in transitions(m.time_zone) if c.year == 2026]
        or [datetime(2026, 3, 29, tzinfo=UTC)]
        for m in team
    }
    out: dict[str, Any] = {}
    for phase, entries in (("valid", _VALID), ("clashing", _CLASHING)):
        with store.transaction() as tx:
            for m in team:
                for change in changes[m.id]:
                    for booking in _hand_bookings(m, change, entries):
                        tx.put_booking(booking)
        for key, value in _ask(engine, team, changes).items():
            out[f"{phase} {key}"] = value
    return out


def _ask(engine: Engine, team: list[Member], changes: dict[str, list[datetime]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in team:
        zone = m.zone
        for change in changes[m.id]:
            day = change.astimezone(zone).date()
            bounds = [
                (
                    datetime.combine(day, time(h0), tzinfo=zone),
                    datetime.combine(day, time(h1), tzinfo=zone),
                )
                for h0, h1 in ((0, 8), (1, 3), (2, 4), (3, 5))
            ] + [(change - timedelta(minutes=30), change + timedelta(minutes=30))]
            for lo, hi in bounds:
                key = f"{m.id} {lo.isoformat()}..{hi.isoformat()}"
                out["bookings " + key] = [(b.id, b.start, b.end) for b in engine.bookings(lo, hi)]
                out["mine " + key] = [b.id for b in engine.bookings(lo, hi, m.id)]
            lo = datetime.combine(day, time(0), tzinfo=zone)
            hi = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
            out[f"validate {m.id} {day}"] = [
                (v.rule, v.booking_id, v.reason) for v in engine.validate_calendar(m.id, lo, hi)
            ]
            request = _call(
                f"new-{m.id}-{day}",
                40,
                datetime.combine(day, time(0), tzinfo=zone),
                datetime.combine(day, time(8), tzinfo=zone),
            )
            proposal = engine.propose(request, members=[m.id])
            out[f"propose {m.id} {day}"] = [(s.start, s.end) for s in proposal.slots]
    return out


def test_validate_propose_and_bookings_agree_on_every_store(tmp_path: Path) -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    answers = {}
    for name, make in _stores(tmp_path):
        store = make()
        _opened.append(store)
        answers[name] = _answers(store, now)
    reference = answers.pop("memory")
    for name, found in answers.items():
        for key, value in reference.items():
            assert found[key] == value, (name, key, value, found[key])
    # and the answer is the real-time one: the 2-hour call from 01:00 overlaps the call at
    # 03:10 on the spring night in Berlin (01:00 CET + 2 h = 04:00 CEST)
    spring = f"clashing validate m1 {date(2026, 3, 29)}"
    assert ("overlap", "m1-2026-03-29-0310") in {(r, b) for r, b, _ in reference[spring]}
    # the valid calendars are valid, and every offered slot keeps clear of them in real time
    offered = 0
    for key, slots in reference.items():
        if key.startswith("valid validate"):
            assert slots == [], key
        if key.startswith("valid propose"):
            offered += len(slots)
            for start, end in slots:
                assert end - start == timedelta(minutes=40)
    assert offered > 0


# --- slots and plans against the oracle -------------------------------------------------------


@st.composite
def nights(draw: st.DrawFn) -> tuple[Member, datetime]:
    zone = draw(st.sampled_from(DST_ZONES + OTHER_ZONES))
    changes = transitions(zone)
    if changes:
        anchor = draw(st.sampled_from(changes))
    else:
        anchor = datetime(2026, 3, 29, tzinfo=UTC) + draw(st.integers(0, 700)) * timedelta(days=1)
    a = draw(st.integers(0, 40))  # quarter hours
    b = draw(st.integers(a + 4, 96))
    hours = WorkingHours(
        DayHours(d, time(a // 4, a % 4 * 15), time(b // 4 % 24, b % 4 * 15)) for d in range(7)
    )
    member = Member("m", "M", Role.INSIDE_SALES, time_zone=zone, working_hours=hours)
    return member, anchor


@given(
    nights(),
    st.lists(st.integers(15, 240), min_size=1, max_size=5),
    st.sampled_from([timedelta(0), timedelta(minutes=15), timedelta(minutes=30)]),
    st.integers(-12 * 60, 6 * 60),
)
def test_slots_and_plans_are_working_real_time(
    case: tuple[Member, datetime], durations: list[int], step: timedelta, shift: int
) -> None:
    member, anchor = case
    rules = cal.CalendarRules(
        busy_max_age=None, call_notice=timedelta(0), slot_step=step, buffer=timedelta(minutes=10)
    )
    earliest = anchor + shift * MINUTE
    deadline = earliest + timedelta(hours=30)
    now = earliest - timedelta(days=1)
    oracle = Oracle(member, earliest - timedelta(hours=2), deadline + timedelta(hours=2))
    requests = [_call(f"r{i}", d, earliest, deadline) for i, d in enumerate(durations)]
    calendars = [cal.MemberCalendar(member)]
    proposal = cal.propose(requests[0], calendars, rules, travel, now, limit=50)
    for slot in proposal.slots:
        assert slot.end - slot.start == requests[0].duration
        assert earliest <= slot.start and slot.end <= deadline
        assert all(oracle.works(u) for u in _minutes(slot.start, slot.end)), slot
        local = slot.start.astimezone(member.zone)
        if step:
            since = local - local.replace(hour=0, minute=0)
            assert since % step == timedelta(0), local  # steps on the member's clock
    plan = cal.plan_week(requests, calendars, rules, travel, now)
    ordered = sorted(plan.bookings, key=lambda x: x.start)
    for x in ordered:
        assert x.end - x.start == x.request.duration
        assert all(oracle.works(u) for u in _minutes(x.start, x.end)), x.start
    for x, y in itertools.pairwise(ordered):
        assert y.start >= x.end + rules.buffer, (x.start, x.end, y.start)
    # validate's working-hours rule agrees with the oracle for any start in the night
    for minutes, request in zip(durations, requests, strict=True):
        start = earliest + ((shift * 7 + minutes * 13) % (20 * 60)) * MINUTE
        booking = Booking(request, member.id, start, "c", now)
        rules_broken = {
            v.rule for v in cal.validate(cal.MemberCalendar(member, [booking]), rules, travel)
        }
        working = all(oracle.works(u) for u in _minutes(booking.start, booking.end))
        if "hours" not in rules_broken:
            assert working, (start, booking.end)
        last = (booking.end - timedelta(microseconds=1)).astimezone(member.zone).date()
        if working and last == start.astimezone(member.zone).date():
            assert "hours" not in rules_broken, (start, booking.end)


def test_slot_steps_follow_the_local_clock_in_half_hour_zones() -> None:
    for zone in ("Asia/Kathmandu", "America/St_Johns", "Australia/Lord_Howe"):
        member = Member(
            "m", "M", Role.INSIDE_SALES, time_zone=zone, working_hours=_hours("09:07", "17:00")
        )
        rules = cal.CalendarRules(
            busy_max_age=None, call_notice=timedelta(0), slot_step=timedelta(hours=1)
        )
        z = ZoneInfo(zone)
        day = date(2026, 6, 2)
        request = _call(
            "r",
            30,
            datetime.combine(day, time(0), tzinfo=z),
            datetime.combine(day, time(23), tzinfo=z),
        )
        proposal = cal.propose(
            request, [cal.MemberCalendar(member)], rules, travel, datetime(2026, 5, 1, tzinfo=UTC)
        )
        assert proposal.best is not None
        assert proposal.best.start.astimezone(z).time() == time(10, 0), zone


@given(
    st.sampled_from(DST_ZONES + OTHER_ZONES),
    st.data(),
    st.sampled_from([15, 30, 45, 60, 25]),
)
def test_slot_steps_against_a_minute_by_minute_search(
    zone_name: str, data: st.DataObject, step_minutes: int
) -> None:
    zone = ZoneInfo(zone_name)
    changes = transitions(zone_name) or (datetime(2026, 3, 29, tzinfo=UTC),)
    at = data.draw(st.sampled_from(changes)) + data.draw(st.integers(-180, 180)) * MINUTE
    step = timedelta(minutes=step_minutes)
    want = at
    while True:  # the first minute whose local clock time is a whole number of steps
        local = want.astimezone(zone)
        if (local.hour * 60 + local.minute) % step_minutes == 0:
            break
        want += MINUTE
    assert _ceil_step(at, step, zone) == want
    known = at.astimezone(zone).utcoffset()
    if want.astimezone(zone).utcoffset() == known:
        assert _ceil_step(at, step, zone, known) == want


def test_slot_steps_restart_at_local_midnight() -> None:
    """A 25-minute step that does not divide the day: after 23:45 comes 00:00 of the next
    day, not 00:10 (found by the property above, in Havana the night its clocks go back)."""
    zone = ZoneInfo("America/Havana")
    at = datetime(2025, 11, 2, 3, 59, tzinfo=UTC)  # 23:59 local on 1 November
    step = timedelta(minutes=25)
    assert _ceil_step(at, step, zone) == datetime(2025, 11, 2, 4, 0, tzinfo=UTC)
    known = at.astimezone(zone).utcoffset()
    assert _ceil_step(at, step, zone, known) == datetime(2025, 11, 2, 4, 0, tzinfo=UTC)
