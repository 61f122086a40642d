"""Calendar rules: unit tests for each rule and each way schedulers fail users."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from spe_core import calendar as cal
from spe_core.engine import Engine
from spe_core.errors import InvalidValue, RuleViolation, WrongState
from spe_core.events import AppointmentBooked, AppointmentCancelled, replay_bookings
from spe_core.model import (
    Absence,
    AppointmentRequest,
    Booking,
    Busy,
    DayHours,
    Location,
    Member,
    TimeWindow,
    WorkingHours,
)
from spe_core.testing import FakeClock

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MUNICH = Location(48.137, 11.575, "Munich")
AUGSBURG = Location(48.371, 10.898, "Augsburg")  # ~55 km from Munich
HAMBURG = Location(53.551, 9.994, "Hamburg")  # ~610 km from Munich
RULES = cal.CalendarRules(busy_max_age=None)
TRAVEL = cal.great_circle_travel(RULES)


def field(mid: str = "f1", **kw: object) -> Member:
    args: dict[str, object] = {
        "name": mid.upper(),
        "role": "field_sales",
        "time_zone": "Europe/Berlin",
        "home_base": MUNICH,
        "working_hours": WorkingHours.weekdays(time(8), time(18)),
        "coordinator_id": f"c-{mid}",
    }
    args.update(kw)
    return Member(mid, **args)  # type: ignore[arg-type]


def local(y: int, mo: int, d: int, h: int, mi: int = 0, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=zone)


WEEK_START = local(2026, 12, 7, 0)  # Monday
WEEK_END = local(2026, 12, 12, 0)


def request(
    rid: str,
    where: Location | None = MUNICH,
    *,
    minutes: int = 60,
    earliest: datetime = WEEK_START,
    deadline: datetime = WEEK_END,
    **kw: object,
) -> AppointmentRequest:
    mode = "in_person" if where is not None else "conference_call"
    return AppointmentRequest(
        rid,
        f"acct-{rid}",
        timedelta(minutes=minutes),
        mode,
        earliest,
        deadline,
        location=where,
        **kw,  # type: ignore[arg-type]
    )


BOOKED_AT = local(2026, 11, 30, 9)


def booking(req: AppointmentRequest, start: datetime, member: str = "f1") -> Booking:
    return Booking(req, member, start, "c-f1", BOOKED_AT)


def rules_broken(
    member: Member, bookings: Sequence[Booking], busy: Sequence[Busy] = ()
) -> set[str]:
    return {v.rule for v in cal.validate(cal.MemberCalendar(member, bookings, busy), RULES, TRAVEL)}


# --- values -------------------------------------------------------------------------------


def test_requests_are_validated_with_a_fix() -> None:
    with pytest.raises(InvalidValue, match="in person but has no location"):
        AppointmentRequest(
            "r", "a", timedelta(hours=1), "in_person", local(2026, 12, 7, 8), local(2026, 12, 8, 8)
        )
    with pytest.raises(InvalidValue, match="range"):
        request("r", earliest=local(2026, 12, 7, 8), deadline=local(2026, 12, 7, 8, 30))
    with pytest.raises(InvalidValue, match="12 hours"):
        request("r", minutes=0)


def test_travel_model_is_great_circle_times_road_factor_over_speed_plus_overhead() -> None:
    km = cal.great_circle_km(MUNICH, AUGSBURG)
    assert 50 < km < 60
    minutes = TRAVEL(MUNICH, AUGSBURG, BOOKED_AT).total_seconds() / 60
    assert minutes == pytest.approx(-(-km * 1.3 / 50 * 60 // 1) + 10)
    assert TRAVEL(MUNICH, MUNICH, BOOKED_AT) == timedelta(0)


# --- the rules, one by one ---------------------------------------------------------------


def test_a_valid_day_of_four_meetings() -> None:
    m = field()
    day = [
        booking(request(f"r{i}"), local(2026, 12, 7, 8 + 2 * i)) for i in range(4)
    ]  # 08:00, 10:00, 12:00, 14:00 in Munich, home base in Munich
    assert rules_broken(m, day) == set()


def test_daily_cap_is_per_member_not_per_event_type() -> None:
    m = field()
    kinds = [request(f"r{i}", minutes=30 + 15 * i) for i in range(5)]  # five different "types"
    day = [booking(r, local(2026, 12, 7, 8 + 2 * i)) for i, r in enumerate(kinds)]
    broken = cal.validate(cal.MemberCalendar(m, day), RULES, TRAVEL)
    assert [(v.rule, v.booking_id) for v in broken] == [("day_cap", "r4")]
    assert "cap is 4 a day" in broken[0].reason


def test_weekly_cap() -> None:
    m = field(working_hours=WorkingHours(DayHours(d, time(7), time(20)) for d in range(7)))
    week = [
        booking(
            request(f"r{d}-{i}", deadline=local(2026, 12, 14, 0)), local(2026, 12, 7 + d, 8 + 2 * i)
        )
        for d in range(6)
        for i in range(4)
    ]
    broken = cal.validate(cal.MemberCalendar(m, week), RULES, TRAVEL)
    assert {v.rule for v in broken} == {"week_cap"}
    assert len(broken) == 4  # 24 meetings, cap 20


def test_working_hours_follow_the_members_time_zone_across_dst() -> None:
    # every day 09:00-17:00 local; DST ends in Berlin on Sunday 2026-10-25
    m = field(working_hours=WorkingHours(DayHours(d, time(9), time(17)) for d in range(7)))
    sat = request("sat", earliest=local(2026, 10, 24, 0), deadline=local(2026, 10, 27, 0))
    before = booking(sat, datetime(2026, 10, 24, 7, tzinfo=UTC))  # 09:00 CEST
    after = booking(sat, datetime(2026, 10, 25, 8, tzinfo=UTC))  # 09:00 CET
    early = booking(sat, datetime(2026, 10, 25, 7, tzinfo=UTC))  # 08:00 CET: too early
    assert rules_broken(m, [before]) == set()
    assert rules_broken(m, [after]) == set()
    assert rules_broken(m, [early]) == {"hours"}
    # and propose offers 09:00 local on the change day, i.e. 08:00 UTC
    slots = cal.propose(
        request("dst", earliest=local(2026, 10, 25, 0), deadline=local(2026, 10, 26, 0)),
        [cal.MemberCalendar(m)],
        RULES,
        TRAVEL,
        local(2026, 10, 20, 9),
    ).slots
    assert slots[0].start == datetime(2026, 10, 25, 8, tzinfo=UTC)


def test_spring_forward_day() -> None:
    m = field(working_hours=WorkingHours(DayHours(d, time(1), time(12)) for d in range(7)))
    r = request("spring", earliest=local(2026, 3, 29, 0), deadline=local(2026, 3, 30, 0))
    # 01:00 CET = 00:00 UTC; 02:00-03:00 does not exist that night
    assert rules_broken(m, [booking(r, datetime(2026, 3, 29, 0, tzinfo=UTC))]) == set()
    assert rules_broken(m, [booking(r, datetime(2026, 3, 28, 23, tzinfo=UTC))]) == {"hours"}


def test_members_in_different_time_zones_get_slots_in_their_own_hours() -> None:
    berlin = field("f1")
    ny = field("f2", time_zone="America/New_York", home_base=Location(40.71, -74.0))
    call = request("call", None, earliest=local(2026, 12, 8, 0), deadline=local(2026, 12, 9, 0))
    proposal = cal.propose(
        call,
        [cal.MemberCalendar(berlin), cal.MemberCalendar(ny)],
        RULES,
        TRAVEL,
        local(2026, 12, 1, 9),
        limit=50,
    )
    by_member = {s.member_id: s for s in reversed(proposal.slots)}
    assert by_member["f1"].start.astimezone(BERLIN).time() == time(8)
    assert by_member["f2"].start.astimezone(NEW_YORK).time() == time(8)


def test_public_holidays_per_member_country_and_subdivision() -> None:
    # 2026-12-08 (Immaculate Conception) is not a German holiday; 2026-12-25 is everywhere in DE
    m = field(holiday_country="DE", holiday_subdivision="BY")
    xmas = request("x", earliest=local(2026, 12, 24, 0), deadline=local(2026, 12, 26, 0))
    assert rules_broken(m, [booking(xmas, local(2026, 12, 25, 9))]) == {"holiday"}
    slots = cal.propose(xmas, [cal.MemberCalendar(m)], RULES, TRAVEL, BOOKED_AT, limit=50).slots
    assert slots and all(s.start.date() == datetime(2026, 12, 24).date() for s in slots)
    # Epiphany (6 Jan) is a holiday in Bavaria but not in Hamburg
    jan6 = request("e", earliest=local(2027, 1, 6, 0), deadline=local(2027, 1, 7, 0))
    assert rules_broken(m, [booking(jan6, local(2027, 1, 6, 9))]) == {"holiday"}
    hh = field(holiday_country="DE", holiday_subdivision="HH")
    assert rules_broken(hh, [booking(jan6, local(2027, 1, 6, 9))]) == set()


def test_partial_day_absence_blocks_only_its_hours() -> None:
    away = Absence(local(2026, 12, 7, 8), local(2026, 12, 7, 12), "dentist")
    m = field(absences=[away])
    r = request("r", earliest=local(2026, 12, 7, 0), deadline=local(2026, 12, 8, 0))
    assert rules_broken(m, [booking(r, local(2026, 12, 7, 10))]) == {"absence"}
    assert rules_broken(m, [booking(r, local(2026, 12, 7, 12))]) == set()
    slots = cal.propose(r, [cal.MemberCalendar(m)], RULES, TRAVEL, BOOKED_AT).slots
    assert slots[0].start == local(2026, 12, 7, 12)


def test_minimum_notice_for_calls() -> None:
    m = field()
    now = local(2026, 12, 7, 9)
    call = request("c", None, earliest=now, deadline=local(2026, 12, 9, 0))
    late = Booking(call, "f1", local(2026, 12, 7, 15), "c-f1", now)
    assert rules_broken(m, [late]) == {"notice"}
    slots = cal.propose(call, [cal.MemberCalendar(m)], RULES, TRAVEL, now).slots
    assert slots and min(s.start for s in slots) >= now + timedelta(hours=24)
    # in-person meetings need no notice
    meeting = request("m", earliest=now, deadline=local(2026, 12, 8, 0))
    assert cal.propose(meeting, [cal.MemberCalendar(m)], RULES, TRAVEL, now).slots[0].start == (
        local(2026, 12, 7, 9)
    )


def test_meetings_spanning_a_buffer() -> None:
    m = field()
    first = booking(request("a"), local(2026, 12, 7, 9))
    assert rules_broken(m, [first, booking(request("b"), local(2026, 12, 7, 10, 5))]) == {"buffer"}
    assert rules_broken(m, [first, booking(request("b"), local(2026, 12, 7, 10, 10))]) == set()
    assert rules_broken(m, [first, booking(request("b"), local(2026, 12, 7, 9, 30))]) == {"overlap"}


def test_busy_time_blocks_and_is_travelled_around() -> None:
    m = field()
    lunch = Busy("lunch", "f1", local(2026, 12, 7, 12), local(2026, 12, 7, 13))
    a = booking(request("a"), local(2026, 12, 7, 10))
    # Augsburg needs ~95 minutes from Munich: 11:00 + lunch hour + buffers leaves too little
    b = booking(request("b", AUGSBURG), local(2026, 12, 7, 13, 15))
    assert "travel" in rules_broken(m, [a, b], [lunch])
    b_later = booking(request("b", AUGSBURG), local(2026, 12, 7, 14, 0))
    assert rules_broken(m, [a, b_later], [lunch]) == set()
    assert rules_broken(m, [booking(request("c"), local(2026, 12, 7, 12, 30))], [lunch]) == {
        "overlap"
    }


def test_calls_sit_before_the_first_or_after_the_last_meeting() -> None:
    m = field()
    call = request("call", None)
    a = booking(request("a"), local(2026, 12, 7, 9))
    b = booking(request("b"), local(2026, 12, 7, 14))
    assert rules_broken(m, [a, booking(call, local(2026, 12, 7, 11)), b]) == {"call_between"}
    assert rules_broken(m, [a, b, booking(call, local(2026, 12, 7, 16))]) == set()
    short = request("short", None, minutes=30)
    assert rules_broken(m, [booking(short, local(2026, 12, 7, 8)), a, b]) == set()


def test_unreachable_slots_are_never_offered() -> None:
    m = field()
    far = request("far", HAMBURG, earliest=local(2026, 12, 7, 0), deadline=local(2026, 12, 8, 0))
    # ~16 hours there and back: no day is long enough
    proposal = cal.propose(far, [cal.MemberCalendar(m)], RULES, TRAVEL, BOOKED_AT)
    assert proposal.slots == ()
    assert "no room" in dict(proposal.excluded)["f1"]
    assert rules_broken(m, [booking(far, local(2026, 12, 7, 12))]) == {"travel"}
    # the day starts at home: a meeting in Augsburg cannot be at 08:00
    aug = request("aug", AUGSBURG)
    assert rules_broken(m, [booking(aug, local(2026, 12, 7, 8))]) == {"travel"}
    first = cal.propose(aug, [cal.MemberCalendar(m)], RULES, TRAVEL, BOOKED_AT).slots[0]
    assert first.start >= local(2026, 12, 7, 8) + TRAVEL(MUNICH, AUGSBURG, first.start)


def test_roles_skills_and_home_base() -> None:
    inside = Member("i1", "Ina", "inside_sales", time_zone="Europe/Berlin")
    r = request("r", required_skills={"robots"})
    assert "role" in rules_broken(inside, [booking(r, local(2026, 12, 7, 9), "i1")])
    assert "skills" in rules_broken(field(), [booking(r, local(2026, 12, 7, 9))])
    call = request("c", None)
    assert rules_broken(inside, [Booking(call, "i1", local(2026, 12, 7, 9), "c", BOOKED_AT)]) == (
        set()
    )
    nobase = field(home_base=None)
    proposal = cal.propose(request("x"), [cal.MemberCalendar(nobase)], RULES, TRAVEL, BOOKED_AT)
    assert "no home base" in dict(proposal.excluded)["f1"]


def test_customer_windows_and_request_range() -> None:
    window = TimeWindow(local(2026, 12, 9, 13), local(2026, 12, 9, 16))
    r = request("w", windows=[window])
    assert rules_broken(field(), [booking(r, local(2026, 12, 9, 9))]) == {"window"}
    slots = cal.propose(r, [cal.MemberCalendar(field())], RULES, TRAVEL, BOOKED_AT).slots
    assert [s.start for s in slots] == [local(2026, 12, 9, 13)]
    assert rules_broken(field(), [booking(r, local(2026, 12, 14, 13))]) >= {"range"}


def test_members_whose_busy_time_is_unknown_or_stale_are_left_out_with_a_reason() -> None:
    strict = cal.CalendarRules()  # busy time must have been read within 24 h
    now = local(2026, 12, 4, 9)
    never = cal.MemberCalendar(field("f1"))
    stale = cal.MemberCalendar(field("f2"), busy_read_at=now - timedelta(hours=25))
    fresh = cal.MemberCalendar(field("f3"), busy_read_at=now - timedelta(hours=1))
    proposal = cal.propose(request("r"), [never, stale, fresh], strict, TRAVEL, now)
    excluded = dict(proposal.excluded)
    assert "never read" in excluded["f1"]
    assert "25" in excluded["f2"] or "1500 min" in excluded["f2"]
    assert {s.member_id for s in proposal.slots} == {"f3"}


def test_ranking_least_added_travel_then_earliest_then_even_load() -> None:
    near = field("f1")
    far_home = field("f2", home_base=AUGSBURG)
    r = request("r", MUNICH)
    proposal = cal.propose(
        r, [cal.MemberCalendar(near), cal.MemberCalendar(far_home)], RULES, TRAVEL, BOOKED_AT
    )
    assert proposal.best is not None and proposal.best.member_id == "f1"
    assert proposal.best.added_travel == timedelta(0)
    # two equally placed members: the one with fewer meetings that day comes first
    busy_day = [booking(request(f"b{i}"), local(2026, 12, 7, 14 + i * 2), "f1") for i in range(2)]
    twin = field("f3")
    proposal = cal.propose(
        request("r2", earliest=local(2026, 12, 7, 8), deadline=local(2026, 12, 7, 10)),
        [cal.MemberCalendar(near, busy_day), cal.MemberCalendar(twin)],
        RULES,
        TRAVEL,
        BOOKED_AT,
    )
    assert [s.member_id for s in proposal.slots[:2]] == ["f3", "f1"]


def test_coordinator_ratio() -> None:
    team = [
        field("f1", coordinator_id="c1"),
        field("f2", coordinator_id="c1"),
        field("f3", coordinator_id=None),
        Member("c1", "Cora", "sales_coordinator"),
    ]
    problems = cal.coordinator_problems(team)
    assert any("f3 has no sales coordinator" in p for p in problems)
    assert any("c1 fills 2 calendars" in p for p in problems)
    assert any("3 field salespeople and 1 sales coordinators" in p for p in problems)
    ok = [field("f1", coordinator_id="c1"), Member("c1", "Cora", "sales_coordinator")]
    assert cal.coordinator_problems(ok) == []


# --- the engine: atomic booking, events, persistence --------------------------------------


@pytest.fixture
def cal_engine(engine: Engine, clock: FakeClock) -> Engine:
    clock.set(local(2026, 12, 4, 9))
    engine.calendar_rules = cal.CalendarRules()
    engine.upsert_members(
        [field("f1"), field("f2", home_base=AUGSBURG), Member("c-f1", "Cy", "sales_coordinator")]
    )
    for mid in ("f1", "f2"):
        engine.record_busy(mid, [], local(2026, 12, 1, 0), local(2027, 1, 1, 0))
    return engine


def test_propose_then_book_then_cancel_and_reschedule(cal_engine: Engine) -> None:
    e = cal_engine
    r = request("r1", AUGSBURG)
    slot = e.propose(r).best
    assert slot is not None and slot.member_id == "f2"
    b = e.book(r, slot.member_id, slot.start, by="c-f2")
    assert e.bookings(local(2026, 12, 7, 0), local(2026, 12, 12, 0)) == [b]
    with pytest.raises(WrongState, match="already booked"):
        e.book(r, "f1", local(2026, 12, 8, 9), by="c-f1")
    with pytest.raises(RuleViolation, match="overlaps"):
        e.book(request("r2", AUGSBURG), "f2", slot.start, by="c-f2")
    moved = e.reschedule("r1", local(2026, 12, 9, 10), by="c-f1", member_id="f1")
    assert (moved.member_id, moved.start) == ("f1", local(2026, 12, 9, 10))
    cancelled = e.cancel_booking("r1", by="c-f1", reason="customer ill")
    assert not cancelled.active
    assert e.bookings(local(2026, 12, 7, 0), local(2026, 12, 12, 0)) == []
    log = list(e.store.events())
    kinds = [r.event.kind for r in log if r.event.kind.startswith("appointment")]
    assert kinds == ["appointment.booked", "appointment.rescheduled", "appointment.cancelled"]
    assert all(getattr(r.event, "by", None) for r in log if r.event.kind.startswith("appoint"))
    assert replay_bookings(log)["r1"] == e.booking("r1")
    booked = next(r.event for r in log if isinstance(r.event, AppointmentBooked))
    assert booked.by == "c-f2" and booked.member_id == "f2" and booked.in_person
    assert isinstance(log[-1].event, AppointmentCancelled)


def test_book_refuses_a_member_whose_busy_time_is_stale(
    cal_engine: Engine, clock: FakeClock
) -> None:
    clock.advance(timedelta(hours=30))
    r = request("r1", earliest=local(2026, 12, 7, 0))
    with pytest.raises(RuleViolation, match="run a sync"):
        cal_engine.book(r, "f1", local(2026, 12, 7, 9), by="c-f1")


def test_busy_time_read_from_the_calendar_blocks_slots(cal_engine: Engine) -> None:
    e = cal_engine
    day = local(2026, 12, 7, 0)
    e.record_busy(
        "f1",
        [Busy("evt1", "f1", local(2026, 12, 7, 8), local(2026, 12, 7, 18), "trade fair")],
        day,
        day + timedelta(days=1),
    )
    r = request("r1", earliest=day, deadline=day + timedelta(days=1))
    proposal = e.propose(r, members=["f1"])
    assert proposal.slots == ()
    with pytest.raises(RuleViolation, match="overlaps busy time"):
        e.book(r, "f1", local(2026, 12, 7, 9), by="c-f1")


def test_validate_a_calendar_edited_by_hand(cal_engine: Engine) -> None:
    e = cal_engine
    r = request("r1")
    e.book(r, "f1", local(2026, 12, 7, 9), by="c-f1")
    # someone moved a meeting by hand in the CRM so that it overlaps: the store takes it as is
    with e.store.transaction() as tx:
        tx.put_booking(booking(request("r2"), local(2026, 12, 7, 9, 30)))
    problems = e.validate_calendar("f1", local(2026, 12, 7, 0), local(2026, 12, 8, 0))
    assert [p.rule for p in problems] == ["overlap"]
    assert "overlaps meeting 'r1'" in problems[0].reason


def test_plan_week_books_through_the_engine_with_coordinator_events(cal_engine: Engine) -> None:
    e = cal_engine
    reqs = [request(f"r{i}", AUGSBURG if i % 2 else MUNICH) for i in range(12)]
    plan = e.plan_week(reqs)
    assert len(plan.bookings) == 12 and plan.unplanned == ()
    for mid in ("f1", "f2"):
        assert e.validate_calendar(mid, local(2026, 12, 7, 0), local(2026, 12, 12, 0)) == []
    events = [r.event for r in e.store.events() if isinstance(r.event, AppointmentBooked)]
    assert {ev.by for ev in events} == {"c-f1", "c-f2"}
    assert all(ev.by == f"c-{ev.member_id}" for ev in events)
    again = e.plan_week([reqs[0]])
    assert again.bookings == () and "already booked" in dict(again.unplanned)["r0"]


def test_plan_week_reports_what_it_could_not_place() -> None:
    m = field()
    reqs = [
        request(f"r{i}", earliest=local(2026, 12, 7, 0), deadline=local(2026, 12, 8, 0))
        for i in range(6)
    ]
    plan = cal.plan_week(reqs, [cal.MemberCalendar(m)], RULES, TRAVEL, BOOKED_AT)
    assert len(plan.bookings) == 4  # the daily cap
    assert len(plan.unplanned) == 2
    assert all("no member has room" in why for _, why in plan.unplanned)
    with pytest.raises(InvalidValue, match="twice"):
        cal.plan_week([reqs[0], reqs[0]], [cal.MemberCalendar(m)], RULES, TRAVEL, BOOKED_AT)


def test_spe_travel_minutes_hook_replaces_the_travel_model(clock: FakeClock) -> None:
    from spe_core import hookimpl
    from spe_core.errors import ConfigError
    from spe_core.plugins import Plugins
    from spe_core.store import open_store

    class Ferry:
        """Everything to Augsburg takes three hours; everything else is the default."""

        @hookimpl
        def spe_travel_minutes(
            self, origin: Location, destination: Location, departure: datetime, rules: object
        ) -> float | None:
            return 180.0 if AUGSBURG in (origin, destination) and origin != destination else None

    plugins = Plugins.create([Ferry()], entry_points=False)
    travel = plugins.travel(RULES)
    assert travel(MUNICH, AUGSBURG, BOOKED_AT) == timedelta(hours=3)
    assert travel(MUNICH, MUNICH, BOOKED_AT) == timedelta(0)
    clock.set(local(2026, 12, 4, 9))
    e = Engine(open_store("memory:"), clock=clock, plugins=plugins, calendar_rules=RULES)
    e.upsert_members([field()])
    slot = e.propose(request("aug", AUGSBURG)).best
    assert slot is not None
    assert slot.start >= local(2026, 12, 7, 11) and slot.added_travel == timedelta(hours=6)

    class Broken:
        @hookimpl
        def spe_travel_minutes(
            self, origin: Location, destination: Location, departure: datetime, rules: object
        ) -> float | None:
            return -1.0

    bad = Plugins.create([Broken()], entry_points=False).travel(RULES)
    with pytest.raises(ConfigError, match="finite number of minutes"):
        bad(MUNICH, AUGSBURG, BOOKED_AT)
