"""Working time is real time: worktime against a brute-force oracle, across every DST change.

The oracle knows nothing of worktime's conversions. It steps real time one UTC
minute at a time, reads the member's local clock with ``astimezone`` and
applies the documented rule literally: the member starts working the first
minute their clock shows a window's start time (or later) and stops the first
minute it shows the window's end time (or later), on that window's local date;
holidays (read from the ``holidays`` package) and absences are off.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holidays_lib
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spe_core import worktime
from spe_core.errors import InvalidValue
from spe_core.model import Absence, DayHours, Member, Role, WorkingHours

MINUTE = timedelta(minutes=1)
DST_ZONES = (
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "America/St_Johns",  # -03:30 / -02:30
    "Australia/Adelaide",  # +09:30 / +10:30
)
OTHER_ZONES = (
    "Asia/Kathmandu",  # +05:45, no DST
    "UTC",
    "Pacific/Chatham",  # +12:45 / +13:45
    "America/Santiago",  # changes at local midnight
    "America/Havana",  # skips midnight in spring
    "Asia/Beirut",  # turns the clock back over midnight
    "Europe/Dublin",  # "negative" DST in the tz database
)


# --- the oracle -------------------------------------------------------------------------------


@functools.cache
def transitions(
    zone_name: str, first_year: int = 2025, last_year: int = 2027
) -> tuple[datetime, ...]:
    """Every UTC offset change in the years, found by stepping days, then minutes."""
    zone = ZoneInfo(zone_name)
    out = []
    day = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    while day < end:
        nxt = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            u = day
            while u.astimezone(zone).utcoffset() == day.astimezone(zone).utcoffset():
                u += MINUTE
            out.append(u)
        day = nxt
    return tuple(out)


def _is_holiday(member: Member, day: date) -> bool:
    if not member.holiday_country:
        return False
    found = holidays_lib.country_holidays(
        member.holiday_country, subdiv=member.holiday_subdivision, years=day.year
    )
    return day in found


@functools.lru_cache(maxsize=64)
def _clock(zone_name: str, first: datetime, count: int) -> tuple[datetime, ...]:
    """The member's local clock (naive) at each of ``count`` minutes from ``first``."""
    zone = ZoneInfo(zone_name)
    return tuple((first + i * MINUTE).astimezone(zone).replace(tzinfo=None) for i in range(count))


class Oracle:
    """Which UTC minutes in ``lo``..``hi`` the member works, by reading their clock each minute."""

    def __init__(self, member: Member, lo: datetime, hi: datetime) -> None:
        self.lo, self.hi = lo, hi
        first = lo - timedelta(days=2)
        count = (hi + timedelta(days=3) - first) // MINUTE
        self.minutes = [first + i * MINUTE for i in range(count)]
        clock = _clock(member.time_zone, first, count)
        working = [False] * count
        zone = ZoneInfo(member.time_zone)
        d = lo.astimezone(zone).date() - timedelta(days=1)
        while d <= hi.astimezone(zone).date() + timedelta(days=1):
            if not _is_holiday(member, d):
                for h in member.working_hours.days:
                    if h.weekday != d.weekday():
                        continue
                    begin = datetime.combine(d, h.start)
                    end = (
                        datetime.combine(d + timedelta(days=1), time(0))
                        if h.end == time(0)
                        else datetime.combine(d, h.end)
                    )
                    start_at = next(i for i, w in enumerate(clock) if w >= begin)
                    stop_at = next(i for i, w in enumerate(clock) if w >= end)
                    for i in range(start_at, stop_at):
                        working[i] = True
            d += timedelta(days=1)
        for i, u in enumerate(self.minutes):
            if working[i] and any(a.start <= u < a.end for a in member.absences):
                working[i] = False
        self.working = working
        self.done = list(itertools.accumulate(working, initial=0))  # working minutes before i

    def works(self, u: datetime) -> bool:
        return self.working[(u - self.minutes[0]) // MINUTE]

    def span(self) -> list[datetime]:
        """The working minutes in lo..hi."""
        return [
            u
            for u, w in zip(self.minutes, self.working, strict=True)
            if w and self.lo <= u < self.hi
        ]

    def deadline(self, start: datetime, duration: timedelta) -> datetime | None:
        """When ``duration`` of working minutes has passed after ``start`` (None: not in range)."""
        if duration <= timedelta(0):
            return start
        i = (start - self.minutes[0]) // MINUTE
        # the first minute j after which ``duration`` of working minutes since i are done
        j = bisect.bisect_left(self.done, self.done[i] + duration // MINUTE)
        if j >= len(self.done) or self.minutes[j - 1] >= self.hi:
            return None
        return self.minutes[j - 1] + MINUTE


def _minutes_of(segments: Iterable[tuple[datetime, datetime]]) -> list[datetime]:
    out: list[datetime] = []
    previous_end: datetime | None = None
    for s, e in segments:
        assert s.tzinfo is UTC and e.tzinfo is UTC, (s, e)
        assert s < e and (previous_end is None or previous_end <= s), "ordered, disjoint"
        assert (s - datetime(2000, 1, 1, tzinfo=UTC)) % MINUTE == timedelta(0)
        previous_end = e
        u = s
        while u < e:
            out.append(u)
            u += MINUTE
    return out


def check_against_oracle(
    member: Member,
    lo: datetime,
    hi: datetime,
    starts: Sequence[datetime],
    durations: Sequence[timedelta],
) -> None:
    oracle = Oracle(member, lo, hi)
    expected = oracle.span()
    assert _minutes_of(worktime.working_segments(member, lo, hi)) == expected
    # is_working: around every change of state, and every 23rd minute in between
    changes = {
        u
        for prev, u, w0, w1 in zip(
            oracle.minutes, oracle.minutes[1:], oracle.working, oracle.working[1:], strict=False
        )
        if w0 != w1
    }
    probes = {u + k * MINUTE for u in changes for k in (-1, 0, 1)}
    probes |= {lo + k * 23 * MINUTE for k in range((hi - lo) // (23 * MINUTE))}
    for u in sorted(p for p in probes if lo <= p < hi):
        assert worktime.is_working(member, u) == oracle.works(u), u
        # the same instant given in the member's zone answers the same
        assert worktime.is_working(member, u.astimezone(member.zone)) == oracle.works(u), u
    for start in starts:
        for duration in durations:
            want = oracle.deadline(start, duration)
            if want is None:
                continue
            got = worktime.add_working_time(member, start, duration)
            assert got == want and got.tzinfo is UTC, (start, duration, got, want)
            zoned = worktime.add_working_time(member, start.astimezone(member.zone), duration)
            assert zoned == want, (start, duration, zoned, want)


def _member(zone: str, hours: Iterable[DayHours], **kw: object) -> Member:
    return Member(
        "m",
        "M",
        Role.CUSTOMER_SERVICE,
        time_zone=zone,
        working_hours=WorkingHours(hours),
        **kw,  # type: ignore[arg-type]
    )


def _daily(start: str, end: str) -> list[DayHours]:
    return [DayHours(d, time.fromisoformat(start), time.fromisoformat(end)) for d in range(7)]


# --- every change in 2025-2027, in five zones -------------------------------------------------

PATTERNS = (
    ("00:00", "08:00"),
    ("01:00", "03:00"),
    ("02:00", "02:30"),
    ("01:30", "05:00"),
    ("02:15", "02:45"),
    ("09:00", "17:00"),
    ("20:00", "00:00"),
    ("00:00", "00:00"),
)


def test_the_oracle_finds_two_changes_a_year() -> None:
    for zone in DST_ZONES:
        assert len(transitions(zone)) == 6, zone
    assert transitions("Asia/Kathmandu") == ()


@pytest.mark.parametrize("zone", [*DST_ZONES, "Asia/Kathmandu"])
def test_every_2025_2027_change_matches_the_oracle(zone: str) -> None:
    changes = transitions(zone) or (datetime(2026, 3, 29, 1, tzinfo=UTC),)
    for change in changes:
        lo, hi = change - timedelta(hours=26), change + timedelta(hours=26)
        starts = [change + timedelta(minutes=m) for m in (-600, -180, -60, -30, 0, 30, 90)]
        durations = [timedelta(minutes=30), timedelta(hours=2), timedelta(hours=7)]
        for start, end in PATTERNS:
            check_against_oracle(_member(zone, _daily(start, end)), lo, hi, starts, durations)


# --- random zones, dates and hours --------------------------------------------------------------


@st.composite
def members(draw: st.DrawFn) -> tuple[Member, datetime]:
    zone = draw(st.sampled_from(DST_ZONES + OTHER_ZONES))
    changes = transitions(zone)
    near_a_change: bool = draw(st.booleans())
    if changes and near_a_change:
        anchor = draw(st.sampled_from(changes)) + draw(st.integers(-36 * 60, 36 * 60)) * MINUTE
    else:
        anchor = datetime(2025, 1, 1, tzinfo=UTC) + draw(st.integers(0, 3 * 365 * 24 * 4)) * (
            15 * MINUTE
        )
    hours = []
    for weekday in range(7):
        if draw(st.integers(0, 6)) == 0:
            continue  # a day off
        for _ in range(draw(st.integers(1, 2))):
            a = draw(st.integers(0, 95))
            b = draw(st.integers(a + 1, 96))
            hours.append(DayHours(weekday, time(a // 4, a % 4 * 15), time(b // 4 % 24, b % 4 * 15)))
    absences = [
        Absence(anchor + s * 15 * MINUTE, anchor + (s + n) * 15 * MINUTE)
        for s, n in draw(
            st.lists(st.tuples(st.integers(-200, 200), st.integers(1, 40)), max_size=2)
        )
    ]
    holiday = draw(st.sampled_from([None, None, "US", "DE"]))
    member = _member(zone, hours, absences=absences, holiday_country=holiday)
    return member, anchor


@given(members(), st.lists(st.integers(-720, 720), min_size=1, max_size=3), st.data())
def test_worktime_matches_the_oracle(
    case: tuple[Member, datetime], offsets: list[int], data: st.DataObject
) -> None:
    member, anchor = case
    lo, hi = anchor - timedelta(hours=24), anchor + timedelta(hours=30)
    starts = [anchor + k * MINUTE for k in offsets]
    durations = [
        data.draw(st.integers(0, 16 * 60)) * MINUTE,
        data.draw(st.sampled_from([15, 60, 120, 480])) * MINUTE,
    ]
    check_against_oracle(member, lo, hi, starts, durations)


# --- the rules, spelled out ---------------------------------------------------------------------


def test_a_skipped_bound_is_the_jump_and_a_repeated_one_its_first_occurrence() -> None:
    ny = ZoneInfo("America/New_York")
    # 02:30 does not exist on 2026-03-08: the clock jumps from 02:00 EST to 03:00 EDT
    assert worktime.local_instant(ny, date(2026, 3, 8), time(2, 30)) == datetime(
        2026, 3, 8, 7, tzinfo=UTC
    )
    # 01:30 happens twice on 2026-11-01: first at -04:00
    assert worktime.local_instant(ny, date(2026, 11, 1), time(1, 30)) == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )
    # Lord Howe moves its clock by 30 minutes: 02:10 on 2026-10-04 is 02:30 (+11:00)
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    assert worktime.local_instant(lord_howe, date(2026, 10, 4), time(2, 10)) == datetime(
        2026, 10, 3, 15, 30, tzinfo=UTC
    )
    # Santiago skips midnight: the day starts at 01:00 (-03:00)
    assert worktime.local_instant(ZoneInfo("America/Santiago"), date(2026, 9, 6), time(0)) == (
        datetime(2026, 9, 6, 4, tzinfo=UTC)
    )


def test_a_window_in_the_skipped_hour_is_empty_and_one_across_the_change_is_real_time() -> None:
    member = _member("America/New_York", _daily("02:00", "02:45") + _daily("09:00", "17:00"))
    spring = worktime.day_segments(member, date(2026, 3, 8))
    assert spring == [(datetime(2026, 3, 8, 13, tzinfo=UTC), datetime(2026, 3, 8, 21, tzinfo=UTC))]
    night = _member("America/New_York", _daily("00:00", "08:00"))
    ((s, e),) = worktime.day_segments(night, date(2026, 3, 8))
    assert e - s == timedelta(hours=7)
    ((s, e),) = worktime.day_segments(night, date(2026, 11, 1))
    assert e - s == timedelta(hours=9)


def test_hours_may_end_at_midnight() -> None:
    member = _member("Europe/Berlin", _daily("18:00", "00:00"))
    ((s, e),) = worktime.day_segments(member, date(2026, 3, 28))  # the night before the change
    assert (s, e) == (
        datetime(2026, 3, 28, 17, tzinfo=UTC),
        datetime(2026, 3, 28, 23, tzinfo=UTC),
    )
    whole = _member("Europe/Berlin", _daily("00:00", "00:00"))
    ((s, e),) = worktime.day_segments(whole, date(2026, 3, 29))
    assert e - s == timedelta(hours=23)
    assert worktime.add_working_time(
        whole, datetime(2026, 3, 28, 12, tzinfo=UTC), timedelta(hours=48)
    ) == datetime(2026, 3, 30, 12, tzinfo=UTC)
    with pytest.raises(InvalidValue, match="end at 00:00"):
        DayHours(0, time(9), time(8))


# --- the cases ---------------------------------------------------------------------------


def test_sla_deadline_of_a_task_routed_at_0030_new_york_on_the_spring_change() -> None:
    from spe_core import Engine
    from spe_core.model import Task
    from spe_core.plugins import Plugins
    from spe_core.store import open_store
    from spe_core.testing import FakeClock

    ny = ZoneInfo("America/New_York")
    routed_at = datetime(2026, 3, 8, 0, 30, tzinfo=ny)  # 05:30 UTC, a Sunday
    night = Member(
        "csr",
        "Night CSR",
        Role.CUSTOMER_SERVICE,
        time_zone="America/New_York",
        working_hours=WorkingHours(_daily("00:00", "08:00")),
    )
    for clock in (routed_at, routed_at.astimezone(UTC)):  # a clock in New York time, or UTC
        engine = Engine(
            open_store("memory:"),
            clock=FakeClock(clock),
            plugins=Plugins.create(entry_points=False),
        )
        engine.upsert_members([night])
        task = engine.route_task(Task("t1", "admin", "acc", created_at=routed_at, priority=3))
        assert task.assignee_id == "csr"
        # 4 working hours to accept: 00:30 EST + 4 real hours = 05:30 EDT (09:30 UTC); the
        # clock jumping from 02:00 to 03:00 is no hour of work
        assert task.accept_by == datetime(2026, 3, 8, 9, 30, tzinfo=UTC), clock
        # 24 working hours to complete: 6.5 h left that night (the night has 7 real hours),
        # 8 h on the 9th and the 10th, 1.5 h on the 11th
        assert task.complete_by == datetime(2026, 3, 11, 5, 30, tzinfo=UTC), clock
        assert engine.task("t1").accept_by == task.accept_by


def test_add_working_time_on_the_autumn_change() -> None:
    ny = ZoneInfo("America/New_York")
    night = _member("America/New_York", _daily("00:00", "08:00"))
    # the night of 2026-11-01 has 9 real hours (01:00-02:00 happens twice)
    start = datetime(2026, 11, 1, 0, 30, tzinfo=ny)
    assert worktime.add_working_time(night, start, timedelta(hours=8)) == datetime(
        2026, 11, 1, 12, 30, tzinfo=UTC
    )  # 07:30 EST, 8 real hours after 00:30 EDT (wall-clock arithmetic said 00:30 next day)
    # a 01:00-02:00 shift on that night lasts two real hours (until the clock shows 02:00)
    short = _member("America/New_York", _daily("01:00", "02:00"))
    start = datetime(2026, 10, 31, 8, 0, tzinfo=ny)
    assert worktime.add_working_time(short, start, timedelta(hours=2)) == datetime(
        2026, 11, 1, 7, tzinfo=UTC
    )  # not a day later
