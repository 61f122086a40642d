"""Finding room: slot steps on the local clock, fitting a request into a day's gaps, and
:func:`propose`, the ranked slots for one request across the team."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import NamedTuple

from spe_core import worktime
from spe_core.calendar.days import (
    _build_days,
    _Day,
    _hm,
    _item_for_booking,
    _minutes,
    _week,
    local_day,
)
from spe_core.calendar.rules import (
    _DAY_US,
    _EPOCH,
    _MICROSECOND,
    _ZERO,
    CalendarRules,
    MemberCalendar,
    Proposal,
    Slot,
    TravelFn,
)
from spe_core.calendar.validation import (
    _booking_violations,
    _day_violations,
    _eligibility,
    _pattern_ok,
    stale_reason,
)
from spe_core.model import (
    AppointmentRequest,
    Booking,
    Location,
    Member,
    Role,
)

__all__ = ["propose"]


# --- finding room ---------------------------------------------------------------------------


def _ceil_step(
    at: datetime, step: timedelta, zone: tzinfo, offset: timedelta | None = None
) -> datetime:
    """The first instant at or after ``at`` whose local time in ``zone`` is a whole
    number of ``step`` after local midnight (so 30-minute steps offer :00 and :30
    in Kathmandu and on Lord Howe Island too). ``offset``: the zone's UTC offset
    at ``at`` and at the result, when the caller knows it does not change."""
    if step <= _ZERO:
        return at
    size = step // _MICROSECOND
    if offset is not None:
        since = ((at - _EPOCH + offset) // _MICROSECOND) % _DAY_US
        # steps count from each local midnight: past the day's last step, the next
        # midnight comes first
        return at + timedelta(microseconds=min(-since % size, _DAY_US - since))
    for _ in range(4):
        local = at.astimezone(zone)
        offset = local.utcoffset()
        wall = local.replace(tzinfo=None)
        since = (wall - datetime.combine(wall.date(), time(0))) // _MICROSECOND
        found = at + timedelta(microseconds=-since % size)
        midnight = worktime.local_instant(zone, wall.date() + timedelta(days=1), time(0))
        if found >= midnight:
            # steps count from each local midnight: start again on the next day's clock
            at = midnight
            continue
        if found.astimezone(zone).utcoffset() == offset:
            return found
        # the clock changed before that step: every step on the old clock is past, so
        # count again from the change, on the new clock
        at = worktime.next_offset_change(zone, at, found)
    return found


#: how plan_week ranks a fit: tier (calls on inside sales, in-person meetings, calls on
#: field sales), added travel (s), spare time (calls: most first), start, then load (the
#: day's in-person meetings, then all its entries) and member id only last
_Key = tuple[int, int, int, datetime, int, int, str]


class _Fit(NamedTuple):
    added: timedelta
    start: datetime
    gap: int


def _fit_in_gap(
    day: _Day,
    gap: int,
    request: AppointmentRequest,
    rules: CalendarRules,
    travel: TravelFn,
    lo: datetime,
    hi: datetime,
) -> _Fit | None:
    """The earliest start for ``request`` between ``day.items[gap-1]`` and ``[gap]``."""
    assert day.start is not None and day.end is not None
    items = day.items
    buf = rules.buffer
    duration = request.duration
    prev = items[gap - 1] if gap > 0 else None
    nxt = items[gap] if gap < len(items) else None
    lo = max(lo, day.start)
    hi = min(hi, day.end)
    if prev is not None:
        lo = max(lo, prev.end + buf)
    if nxt is not None:
        hi = min(hi, nxt.start - buf)
    if lo + duration > hi:
        return None
    loc = request.location if request.in_person else day.home
    added = _ZERO
    out_travel: tuple[Location, datetime, timedelta] | None = None
    if loc is not None and day.home is not None:
        # located predecessor and the busy time and buffers between it and the new entry
        j, busy_time, gaps = gap - 1, _ZERO, 0
        while j >= 0 and items[j].loc is None:
            busy_time += items[j].end - items[j].start
            gaps += 1
            j -= 1
        if j >= 0:
            gaps += 1
            a_end, a_loc = items[j].end, items[j].loc
            assert a_loc is not None
        else:
            a_end, a_loc = day.start, day.home
        t_in = travel(a_loc, loc, a_end)
        lo = max(lo, a_end + t_in + busy_time + gaps * buf)
        # located successor
        k, busy_after, gaps_after = gap, _ZERO, 0
        while k < len(items) and items[k].loc is None:
            busy_after += items[k].end - items[k].start
            gaps_after += 1
            k += 1
        if k < len(items):
            gaps_after += 1
            b_start, b_loc = items[k].start, items[k].loc
            assert b_loc is not None
        else:
            b_start, b_loc = day.end, day.home
        # travel out is estimated leaving at the earliest end, then re-checked at the real end
        t_out = travel(loc, b_loc, lo + duration)
        hi = min(hi, b_start - t_out - busy_after - gaps_after * buf)
        added = t_in + t_out - travel(a_loc, b_loc, a_end)
        out_travel = (b_loc, b_start, busy_after + gaps_after * buf)
    if lo + duration > hi:
        return None
    start = _first_start(day, request, rules, lo, hi)
    if start is None:
        return None
    if out_travel is not None:
        b_loc, b_start, slack = out_travel
        assert loc is not None
        if start + duration + travel(loc, b_loc, start + duration) + slack > b_start:
            return None
    return _Fit(added, start, gap)


def _first_start(
    day: _Day, request: AppointmentRequest, rules: CalendarRules, lo: datetime, hi: datetime
) -> datetime | None:
    """The earliest stepped start in [lo, hi - duration] inside a working segment and window."""
    duration = request.duration
    windows = request.windows or None
    zone, offset = day.member.zone, day.offset
    for s, e in day.segments:
        if e <= lo or s >= hi:
            continue
        a, b = max(lo, s), min(hi, e)
        if windows is None:
            start = _ceil_step(a, rules.slot_step, zone, offset)
            if start + duration <= b:
                return start
            continue
        for w in windows:
            wa, wb = max(a, w.start), min(b, w.end)
            start = _ceil_step(wa, rules.slot_step, zone, offset)
            if start + duration <= wb:
                return start
    return None


def _request_bounds(
    request: AppointmentRequest, rules: CalendarRules, now: datetime
) -> tuple[datetime, datetime]:
    lo = max(request.earliest, now)
    if not request.in_person:
        lo = max(lo, now + rules.call_notice)
    return lo, request.deadline


def _days_between(member: Member, lo: datetime, hi: datetime, limit: int) -> list[date]:
    first, last = local_day(member, lo), local_day(member, hi)
    out: list[date] = []
    d = first
    while d <= last and len(out) < limit:
        out.append(d)
        d += timedelta(days=1)
    return out


class _Planner:
    """Member days built lazily from calendars, with in-person counts per day and week."""

    def __init__(
        self,
        calendars: Iterable[MemberCalendar],
        rules: CalendarRules,
        travel: TravelFn,
        now: datetime,
    ) -> None:
        self.rules = rules
        self.travel = travel
        self.now = now
        self.calendars = {c.member.id: c for c in calendars}
        self.days: dict[tuple[str, date], _Day] = {}
        self.week_counts: dict[tuple[str, tuple[int, int]], int] = defaultdict(int)
        self.bookings: dict[str, dict[str, Booking]] = {}
        for cal in self.calendars.values():
            member = cal.member
            self.bookings[member.id] = {b.id: b for b in cal.bookings}
            for d, day in _build_days(cal).items():
                self.days[(member.id, d)] = day
            for b in cal.bookings:
                if b.in_person:
                    self.week_counts[(member.id, _week(local_day(member, b.start)))] += 1

    def day(self, member: Member, d: date) -> _Day:
        found = self.days.get((member.id, d))
        if found is None:
            found = self.days[(member.id, d)] = _Day(member, d)
        return found

    def best_in_day(
        self, day: _Day, request: AppointmentRequest, lo: datetime, hi: datetime
    ) -> list[_Fit]:
        """Every gap of the day the request fits in, earliest start per gap."""
        if day.start is None:
            return []
        if request.in_person:
            if day.in_person >= self.rules.meetings_per_day:
                return []
            if self.week_counts[(day.member.id, _week(day.day))] >= self.rules.meetings_per_week:
                return []
        fits = []
        kinds = [i.kind for i in day.items]
        new_kind = "in" if request.in_person else "call"
        for gap in range(len(day.items) + 1):
            if day.home is not None and not _pattern_ok(
                k for k in itertools.chain(kinds[:gap], (new_kind,), kinds[gap:]) if k != "busy"
            ):
                continue
            fit = _fit_in_gap(day, gap, request, self.rules, self.travel, lo, hi)
            if fit is not None:
                fits.append(fit)
        return fits

    def confirm(self, day: _Day, booking: Booking) -> bool:
        """Check the day with ``booking`` added against the full validator (the truth)."""
        member = day.member
        by_id = dict(self.bookings[member.id])
        by_id[booking.id] = booking
        problems = _booking_violations(member, booking, self.rules, day)
        if problems:
            return False
        day.add(_item_for_booking(booking, day.home))
        ok = not _day_violations(day, self.rules, self.travel, by_id)
        day.remove(booking.id)
        return ok

    def commit(self, day: _Day, booking: Booking) -> None:
        member = day.member
        day.add(_item_for_booking(booking, day.home))
        self.bookings[member.id][booking.id] = booking
        if booking.in_person:
            self.week_counts[(member.id, _week(day.day))] += 1

    def uncommit(self, day: _Day, booking: Booking) -> None:
        member = day.member
        day.remove(booking.id)
        del self.bookings[member.id][booking.id]
        if booking.in_person:
            self.week_counts[(member.id, _week(day.day))] -= 1


def _call_on_field(member: Member, request: AppointmentRequest) -> int:
    """1 for a conference call on a field salesperson (whose time is for visits), else 0."""
    return int(not request.in_person and member.role is Role.FIELD_SALES)


def _load(day: _Day) -> int:
    """The day's calendar entries (bookings and busy time): a tie-break, fewest first."""
    return len(day.items)


def _spare_seconds(day: _Day) -> int:
    """Working seconds of the day not covered by its entries (real seconds, overlaps apart)."""
    total = sum(e.timestamp() - s.timestamp() for s, e in day.segments)
    for item in day.items:
        if day.start is not None and day.end is not None:
            lo, hi = max(item.start, day.start), min(item.end, day.end)
            if lo < hi:
                total -= hi.timestamp() - lo.timestamp()
    return round(total)


def _tie(value: timedelta, rules: CalendarRules) -> int:
    if rules.travel_tie <= _ZERO:
        return round(value.total_seconds())
    return math.floor(value / rules.travel_tie)


def propose(
    request: AppointmentRequest,
    calendars: Iterable[MemberCalendar],
    rules: CalendarRules,
    travel: TravelFn,
    now: datetime,
    *,
    by: str = "proposal",
    limit: int = 10,
) -> Proposal:
    """Ranked slots for ``request`` across the members whose calendars are given.

    Members who can never take the request (inactive, wrong role, missing
    skills, no home base) or whose busy time is not known to be fresh are left
    out with the reason. For every other member, every gap of every day in the
    request's range (up to :attr:`CalendarRules.horizon_days`) offers its
    earliest valid start. Slots rank by least added travel (within
    :attr:`CalendarRules.travel_tie`), then earliest, then, for a call, inside
    salespeople before field salespeople (whose time is for visits), then
    fewest in-person meetings that day and that week and fewest entries that
    day (evening out the load), and member id only last.
    Each offered slot passes :func:`validate` when booked by ``by`` at ``now``.
    """
    now = now.astimezone(UTC)
    calendars = list(calendars)
    planner = _Planner(calendars, rules, travel, now)
    lo, hi = _request_bounds(request, rules, now)
    slots: list[tuple[tuple[int, datetime, int, int, int, int, str], Slot]] = []
    excluded: list[tuple[str, str]] = []
    for cal in calendars:
        member = cal.member
        problem = _eligibility(member, request)
        if problem is None:
            stale = stale_reason(cal, rules, now)
            if stale is not None:
                problem = ("busy", stale)
        if problem is not None:
            excluded.append((member.id, problem[1]))
            continue
        found = 0
        if lo + request.duration <= hi:
            for d in _days_between(member, lo, hi, rules.horizon_days):
                day = planner.day(member, d)
                for fit in planner.best_in_day(day, request, lo, hi):
                    booking = Booking(request, member.id, fit.start, by, now)
                    if not planner.confirm(day, booking):
                        continue
                    week = planner.week_counts[(member.id, _week(d))]
                    slot = Slot(
                        member.id,
                        fit.start,
                        fit.start + request.duration,
                        fit.added,
                        day.in_person,
                        week,
                        request,
                    )
                    key = (
                        _tie(fit.added, rules),
                        fit.start,
                        _call_on_field(member, request),
                        day.in_person,
                        week,
                        _load(day),
                        member.id,
                    )
                    slots.append((key, slot))
                    found += 1
        if not found:
            excluded.append(
                (
                    member.id,
                    f"{member.id} has no room for a {_minutes(request.duration)} "
                    f"{'meeting' if request.in_person else 'call'} between "
                    f"{_hm(lo, member)} and {_hm(hi, member)} (caps, busy time, travel, "
                    "working hours or holidays).",
                )
            )
    slots.sort(key=lambda pair: pair[0])
    return Proposal(request, tuple(s for _, s in slots[:limit]), tuple(excluded))
