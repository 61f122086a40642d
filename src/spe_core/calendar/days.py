"""One member's local day as the rules see it: working windows, entries in order and
the places visited."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import NamedTuple

from spe_core import worktime
from spe_core.calendar.rules import _MICROSECOND, _ZERO, MemberCalendar, TravelFn
from spe_core.model import (
    Booking,
    Location,
    Member,
    Role,
)

__all__ = ["local_day"]


# --- one member's day ---------------------------------------------------------------------


class _Item(NamedTuple):
    start: datetime
    end: datetime
    loc: Location | None
    kind: str  # "in" (in person), "call", "busy"
    key: str


def _minutes(value: timedelta) -> str:
    return f"{round(value.total_seconds() / 60)} min"


def _hm(value: datetime, member: Member) -> str:
    return value.astimezone(member.zone).strftime("%a %Y-%m-%d %H:%M")


def local_day(member: Member, at: datetime) -> date:
    """The member's local calendar day at ``at``."""
    return at.astimezone(member.zone).date()


def _week(day: date) -> tuple[int, int]:
    iso = day.isocalendar()
    return iso.year, iso.week


class _Day:
    """One member's local day: working bounds and the entries in it, by start."""

    __slots__ = (
        "day",
        "end",
        "home",
        "in_person",
        "items",
        "member",
        "offset",
        "segments",
        "start",
        "version",
    )

    def __init__(self, member: Member, day: date) -> None:
        self.member = member
        self.day = day
        self.segments = worktime.day_segments(member, day)
        self.start = self.segments[0][0] if self.segments else None
        self.end = self.segments[-1][1] if self.segments else None
        # the member's UTC offset through the working day, None if the clock changes in it
        self.offset: timedelta | None = None
        if self.start is not None and self.end is not None:
            zone = member.zone
            first = self.start.astimezone(zone).utcoffset()
            if first == (self.end - _MICROSECOND).astimezone(zone).utcoffset():
                self.offset = first
        self.home = member.home_base if member.role is Role.FIELD_SALES else None
        self.items: list[_Item] = []
        self.in_person = 0  # in-person entries among the items
        self.version = 0

    def add(self, item: _Item) -> None:
        # bisect by (start, key) keeps the order stable and deterministic
        lo, hi = 0, len(self.items)
        probe = (item.start, item.key)
        while lo < hi:
            mid = (lo + hi) // 2
            if (self.items[mid].start, self.items[mid].key) < probe:
                lo = mid + 1
            else:
                hi = mid
        self.items.insert(lo, item)
        if item.kind == "in":
            self.in_person += 1
        self.version += 1

    def remove(self, key: str) -> _Item:
        for i, item in enumerate(self.items):
            if item.key == key:
                self.version += 1
                if item.kind == "in":
                    self.in_person -= 1
                return self.items.pop(i)
        raise KeyError(key)

    def travel(self, travel: TravelFn) -> timedelta:
        """Home-to-home travel of the day's located entries."""
        if self.home is None or self.start is None:
            return _ZERO
        total = _ZERO
        at, where = self.start, self.home
        for item in self.items:
            if item.loc is not None:
                total += travel(where, item.loc, at)
                at, where = item.end, item.loc
        return total + travel(where, self.home, at)


def _item_for_booking(booking: Booking, home: Location | None) -> _Item:
    if booking.in_person:
        return _Item(booking.start, booking.end, booking.location, "in", booking.id)
    return _Item(booking.start, booking.end, home, "call", booking.id)


def _build_days(cal: MemberCalendar) -> dict[date, _Day]:
    member = cal.member
    days: dict[date, _Day] = {}

    def day_of(d: date) -> _Day:
        found = days.get(d)
        if found is None:
            found = days[d] = _Day(member, d)
        return found

    for booking in cal.bookings:
        day = day_of(local_day(member, booking.start))
        day.add(_item_for_booking(booking, day.home))
    for busy in cal.busy:
        first, last = local_day(member, busy.start), local_day(member, busy.end)
        d = first
        while d <= last:
            day = day_of(d)
            lo, hi = busy.start, busy.end
            if day.start is not None and day.end is not None:
                lo, hi = max(lo, day.start), min(hi, day.end)
            if lo < hi:
                day.add(_Item(lo, hi, None, "busy", busy.id))
            d += timedelta(days=1)
    return days
