"""Working time: when a member works, and clocks that run only while they do.

Pure functions of a :class:`~spe_core.model.Member` and times passed in: the
member's weekly :class:`~spe_core.model.WorkingHours` in their own time zone
(DST-correct, since local wall-clock times are converted per day), their
:class:`~spe_core.model.Absence` periods (partial days included) and the
public holidays of their country and subdivision (the ``holidays`` package).
Routing's SLA clock and the calendar rules both use them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

import holidays as holidays_lib

from spe_core.errors import ConfigError
from spe_core.model import Member

__all__ = ["add_working_time", "day_segments", "is_holiday", "is_working", "working_segments"]

_HORIZON_DAYS = 400


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


def _day_segments(member: Member, day: date) -> list[tuple[datetime, datetime]]:
    """The member's working segments on their local ``day``, minus absences, in UTC order."""
    if is_holiday(member, day):
        return []
    zone = member.zone
    segments = []
    for hours in member.working_hours.on(day.weekday()):
        start = datetime.combine(day, hours.start, tzinfo=zone)
        end = (
            datetime.combine(day, hours.end, tzinfo=zone)
            if hours.end != time(0)
            else (datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone))
        )
        segments.append((start, end))
    for absence in member.absences:
        cut = []
        for start, end in segments:
            if absence.end <= start or absence.start >= end:
                cut.append((start, end))
                continue
            if absence.start > start:
                cut.append((start, absence.start))
            if absence.end < end:
                cut.append((absence.end, end))
        segments = cut
    return [(s, e) for s, e in segments if s < e]


def day_segments(member: Member, day: date) -> list[tuple[datetime, datetime]]:
    """The member's working segments on their local ``day``: none on a public holiday,
    absences cut out, earliest first (aware datetimes in the member's zone)."""
    return _day_segments(member, day)


def working_segments(
    member: Member, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """The member's working time between ``start`` and ``end``, as ordered segments."""
    zone = member.zone
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    while day <= last:
        for s, e in _day_segments(member, day):
            lo, hi = max(s, start), min(e, end)
            if lo < hi:
                yield lo, hi
        day += timedelta(days=1)


def is_working(member: Member, at: datetime) -> bool:
    """True if ``at`` falls in the member's working hours, off holidays and absences."""
    local_day = at.astimezone(member.zone).date()
    return any(
        s <= at < e
        for d in (local_day - timedelta(days=1), local_day)
        for s, e in _day_segments(member, d)
    )


def add_working_time(member: Member, start: datetime, duration: timedelta) -> datetime:
    """The moment ``duration`` of the member's working time has passed after ``start``.

    The clock stops outside working hours, on holidays and during absences,
    so an SLA of 4 hours raised on Friday at 16:00 for a 9-17 member falls due
    on Monday at 12:00 (or later, after a holiday).
    """
    if duration <= timedelta(0):
        return start
    left = duration
    zone = member.zone
    day = start.astimezone(zone).date() - timedelta(days=1)
    for _ in range(_HORIZON_DAYS):
        for s, e in _day_segments(member, day):
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
