"""Working time: when a member works, and clocks that run only while they do.

Pure functions of a :class:`~spe_core.model.Member` and times passed in: the
member's weekly :class:`~spe_core.model.WorkingHours` in their own time zone,
their :class:`~spe_core.model.Absence` periods (partial days included) and the
public holidays of their country and subdivision (the ``holidays`` package).
Routing's SLA clock and the calendar rules both use them.

Time is real time. Every result is an aware datetime in UTC and every duration
is measured between absolute instants. A member's working windows are built per
*local* date in their zone and then turned into instants by one rule (see
:func:`local_instant`): a window runs from the first moment the member's clock
shows its start time (or later) to the first moment it shows its end time (or
later). So across a DST change:

* a bound the clock skips (spring forward, e.g. 02:30 in New York on
  2026-03-08) is the instant the clock jumps to (03:00 EDT); a window that lies
  wholly inside the skipped hour is empty;
* a bound the clock shows twice (fall back, e.g. 01:30 on 2026-11-01) is its
  first occurrence, for starts and ends alike; a window that spans the change
  lasts one hour more (or less, in spring) of real time than its wall-clock
  length;
* an end of ``time(0)`` means the end of the day (midnight of the next local
  date, by the same rule); zones with 30- and 45-minute offsets or a
  30-minute DST shift (Asia/Kathmandu, America/St_Johns, Australia/Lord_Howe)
  follow the same rule.

Windows of one day that overlap or touch are merged into one segment.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo

import holidays as holidays_lib

from spe_core.errors import ConfigError
from spe_core.model import Member

__all__ = [
    "add_working_time",
    "day_segments",
    "is_holiday",
    "is_working",
    "local_instant",
    "next_offset_change",
    "working_segments",
]

_HORIZON_DAYS = 400
_MIDNIGHT = time(0)
_SECOND = timedelta(seconds=1)


@functools.lru_cache(maxsize=512)
def _holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    try:
        days = holidays_lib.country_holidays(country, subdiv=subdivision, years=year)
    except NotImplementedError:
        raise ConfigError(
            f"the holidays package knows no country {country!r}"
            + (f" with subdivision {subdivision!r}" if subdivision else "")
            + ".",
            "use an ISO 3166 country code such as 'DE', 'FR' or 'US' (and a valid "
            "subdivision such as 'BY' or 'CA'), or leave holiday_country empty.",
        ) from None
    return frozenset(days.keys())


def is_holiday(member: Member, day: date) -> bool:
    """True if ``day`` (local to the member) is a public holiday where they work."""
    if not member.holiday_country:
        return False
    return day in _holidays(member.holiday_country, member.holiday_subdivision, day.year)


def next_offset_change(zone: tzinfo, lo: datetime, hi: datetime) -> datetime:
    """The first instant in ``lo``..``hi`` whose UTC offset in ``zone`` differs from ``lo``'s.

    ``lo`` and ``hi`` must have different offsets in ``zone`` (there is a change
    between them); found by bisection to the second (time zone changes happen
    on whole seconds). Returned in UTC.
    """
    lo, hi = lo.astimezone(UTC), hi.astimezone(UTC)
    before = lo.astimezone(zone).utcoffset()
    if hi.astimezone(zone).utcoffset() == before:
        return hi
    # whole seconds: lo rounded down keeps its offset unless it is the change itself
    lo = lo.replace(microsecond=0)
    while hi - lo > _SECOND:
        mid = lo + (hi - lo) // 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return hi


@functools.lru_cache(maxsize=8192)
def local_instant(zone: tzinfo, day: date, at: time) -> datetime:
    """The first instant (UTC) at which the clock in ``zone`` shows ``day`` ``at`` or later.

    For an ordinary local time that is the one instant it names. A time the
    clock shows twice (the hour repeated when DST ends) is its first
    occurrence; a time the clock skips (the hour lost when DST starts) is the
    instant the clock jumps to, i.e. the moment of the change.
    """
    wall = datetime.combine(day, at.replace(tzinfo=None, fold=0))
    first = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the earlier reading
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # skipped: fold=0 and fold=1 read the time with the offsets before and after the
    # change, and the change lies between the two instants
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = min(first, other), max(first, other)
    return next_offset_change(zone, lo, hi)


def _day_segments(member: Member, day: date) -> list[tuple[datetime, datetime]]:
    """The member's working segments on their local ``day``, minus absences, in UTC order."""
    if is_holiday(member, day):
        return []
    zone = member.zone
    segments: list[tuple[datetime, datetime]] = []
    for hours in member.working_hours.on(day.weekday()):
        start = local_instant(zone, day, hours.start)
        end = (
            local_instant(zone, day + timedelta(days=1), _MIDNIGHT)
            if hours.end == _MIDNIGHT
            else local_instant(zone, day, hours.end)
        )
        if not start < end:
            continue  # wholly inside a skipped hour
        if segments and start <= segments[-1][1]:
            if end > segments[-1][1]:
                segments[-1] = (segments[-1][0], end)
            continue
        segments.append((start, end))
    for absence in member.absences:
        a_start, a_end = absence.start.astimezone(UTC), absence.end.astimezone(UTC)
        cut = []
        for start, end in segments:
            if a_end <= start or a_start >= end:
                cut.append((start, end))
                continue
            if a_start > start:
                cut.append((start, a_start))
            if a_end < end:
                cut.append((a_end, end))
        segments = cut
    return segments


def day_segments(member: Member, day: date) -> list[tuple[datetime, datetime]]:
    """The member's working segments on their local ``day``: none on a public holiday,
    absences cut out, earliest first, as (start, end) instants in UTC.

    A segment ending at ``time(0)`` ends at the next local midnight; DST gaps
    and folds follow :func:`local_instant`.
    """
    return _day_segments(member, day)


def _days_around(member: Member, start: datetime, end: datetime) -> Iterator[date]:
    # a day's windows lie between its first local moment and the next day's; one day of
    # margin each side covers midnight-ending hours and a clock turned back over midnight
    zone = member.zone
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        yield day
        day += timedelta(days=1)


def working_segments(
    member: Member, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """The member's working time between ``start`` and ``end``, as ordered UTC segments."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    for day in _days_around(member, start, end):
        for s, e in _day_segments(member, day):
            lo, hi = max(s, start), min(e, end)
            if lo < hi:
                yield lo, hi


def is_working(member: Member, at: datetime) -> bool:
    """True if ``at`` falls in the member's working hours, off holidays and absences."""
    at = at.astimezone(UTC)
    return any(
        s <= at < e for day in _days_around(member, at, at) for s, e in _day_segments(member, day)
    )


def add_working_time(
    member: Member,
    start: datetime,
    duration: timedelta,
    segments: Callable[[Member, date], list[tuple[datetime, datetime]]] | None = None,
) -> datetime:
    """The moment (UTC) ``duration`` of the member's working time has passed after ``start``.

    The clock stops outside working hours, on holidays and during absences,
    so an SLA of 4 hours raised on Friday at 16:00 for a 9-17 member falls due
    on Monday at 12:00 (or later, after a holiday). Durations are real time:
    a window that spans a DST change counts the hours that really pass.

    ``segments`` may stand in for :func:`day_segments` (a caller that keeps the
    member's segments per day); it must answer what :func:`day_segments` does.
    """
    segments_of = _day_segments if segments is None else segments
    start = start.astimezone(UTC)
    if duration <= timedelta(0):
        return start
    left = duration
    day = start.astimezone(member.zone).date() - timedelta(days=1)
    for _ in range(_HORIZON_DAYS):
        for s, e in segments_of(member, day):
            lo = max(s, start)
            if lo >= e:
                continue
            if e - lo >= left:
                return lo + left
            left -= e - lo
        day += timedelta(days=1)
    raise ConfigError(
        f"member {member.id!r} has no working time in the next {_HORIZON_DAYS} days.",
        "give the member working hours (working_hours) that are not all absences or holidays.",
    )
