"""Calendar rules: where and when a sales coordinator may book a salesperson's meetings.

Pure functions of values passed in (members, their bookings and busy time, the
rules, a travel function and ``now``); nothing here reads a clock or a store.
The engine (:meth:`spe_core.engine.Engine.propose` and friends) loads the
calendars, calls these rules and writes the result atomically.

The rules, SPE's way (see ``docs/calendar.md``):

* in-person meetings go to field salespeople only; conference calls to field or
  inside salespeople;
* at most :attr:`CalendarRules.meetings_per_day` in-person meetings a local day
  (default 4) and :attr:`CalendarRules.meetings_per_week` a local ISO week
  (default 20), whatever the kind of meeting: limits belong to the member;
* everything inside the member's working hours in their time zone, off public
  holidays and absences (partial days block only their hours);
* conference calls are booked at least :attr:`CalendarRules.call_notice` ahead
  and, for a field member, sit before the first or after the last in-person
  meeting of the day (they are taken from home or the hotel);
* :attr:`CalendarRules.buffer` between consecutive calendar entries, no overlap
  with busy time or other bookings;
* the day starts and ends at the member's home base, and the travel between
  consecutive places always fits in the free time between them (busy time,
  whose place is unknown, is travelled around, never through).

:func:`validate` is the one source of truth: :func:`propose` and
:func:`plan_week` only return bookings that :func:`validate` accepts.

Time is real time: every instant the rules compute is UTC and every duration
(a meeting's length, buffers, travel, notice) is measured between absolute
instants, so a two-hour meeting lasts two hours on the night the clocks change.
Working windows come from :mod:`spe_core.worktime` (built per local date, with
its rule for skipped and repeated local times); local times appear only in the
messages.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import NamedTuple

import attrs

from spe_core import worktime
from spe_core.errors import ConfigError, InvalidValue
from spe_core.model import (
    AppointmentRequest,
    Booking,
    Busy,
    Location,
    MeetingMode,
    Member,
    Role,
    check_duration,
    check_int,
    check_number,
    to_utc,
)

__all__ = [
    "CalendarRules",
    "MemberCalendar",
    "Proposal",
    "Slot",
    "TravelFn",
    "Violation",
    "WeekPlan",
    "coordinator_problems",
    "great_circle_km",
    "great_circle_travel",
    "plan_week",
    "propose",
    "stale_reason",
    "validate",
]

#: Travel time from one place to another, leaving at a given time.
TravelFn = Callable[[Location, Location, datetime], timedelta]

_ZERO = timedelta(0)
_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_US = 86_400_000_000
_EARTH_RADIUS_KM = 6371.0088


_MAX_HORIZON_DAYS = 3650


def _positive_int(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    check_int(
        value,
        f"CalendarRules.{attribute.name} (calendar rule {attribute.name})",
        minimum=1,
        maximum=_MAX_HORIZON_DAYS if attribute.name == "horizon_days" else 2**31 - 1,
        error=ConfigError,
        fix=f"set [calendar] {attribute.name} to a whole number of 1 or more in spe.toml.",
    )


def _non_negative(instance: object, attribute: attrs.Attribute[timedelta], value: object) -> None:
    check_duration(
        value,
        f"CalendarRules.{attribute.name} (calendar rule {attribute.name})",
        positive=False,
        error=ConfigError,
        fix=f"set [calendar] {attribute.name} to 0 or more minutes (at most ten years).",
    )


def _positive_float(value: object, name: str) -> float:
    return check_number(
        value,
        f"CalendarRules.{name} (calendar rule {name})",
        positive=True,
        error=ConfigError,
        fix=f"set [calendar] {name} to a number above 0.",
    )


def _road_factor(value: object) -> float:
    return _positive_float(value, "road_factor")


def _speed_kmh(value: object) -> float:
    return _positive_float(value, "speed_kmh")


@attrs.frozen
class CalendarRules:
    """The calendar policy: caps, notice, buffers and the default travel model."""

    meetings_per_day: int = attrs.field(default=4, validator=_positive_int)
    """In-person meetings a field member may have on one local day (a cap)."""
    meetings_per_week: int = attrs.field(default=20, validator=_positive_int)
    """In-person meetings a field member may have in one local ISO week (a cap)."""
    call_notice: timedelta = attrs.field(default=timedelta(hours=24), validator=_non_negative)
    """How far ahead a conference call must be booked."""
    buffer: timedelta = attrs.field(default=timedelta(minutes=10), validator=_non_negative)
    """Free time kept between two consecutive calendar entries."""
    slot_step: timedelta = attrs.field(default=timedelta(minutes=15), validator=_non_negative)
    """Offered start times are multiples of this (0: any minute)."""
    busy_max_age: timedelta | None = attrs.field(default=timedelta(hours=24))
    """How old a member's busy-time read may be before they are no longer offered
    (None: busy time is kept in SPE only, no read is required)."""
    road_factor: float = attrs.field(default=1.3, converter=_road_factor)
    """Road distance over great-circle distance, for the default travel model."""
    speed_kmh: float = attrs.field(default=50.0, converter=_speed_kmh)
    """Average door-to-door speed, for the default travel model."""
    travel_overhead: timedelta = attrs.field(default=timedelta(minutes=10), validator=_non_negative)
    """Fixed time added to every trip between two different places (parking, walking in)."""
    travel_tie: timedelta = attrs.field(default=timedelta(minutes=5), validator=_non_negative)
    """Slots whose added travel differs by less than this rank as equal on travel."""
    horizon_days: int = attrs.field(default=31, validator=_positive_int)
    """How many days after the earliest start :func:`propose` looks for slots."""

    @busy_max_age.validator
    def _check_age(self, attribute: attrs.Attribute[timedelta | None], value: object) -> None:
        if value is not None:
            _non_negative(self, attribute, value)  # type: ignore[arg-type]


# --- travel ---------------------------------------------------------------------------


def great_circle_km(a: Location, b: Location) -> float:
    """The great-circle (haversine) distance between two places, in kilometres."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def great_circle_travel(rules: CalendarRules) -> TravelFn:
    """The default travel model: distance x road factor / speed + overhead, whole minutes up.

    The same place (within 50 m) is no trip at all. Results are cached per
    pair of places; the departure time is ignored (plug in a traffic-aware
    model through the ``spe_travel_minutes`` hook).
    """
    cache: dict[tuple[Location, Location], timedelta] = {}
    factor = rules.road_factor / rules.speed_kmh * 60.0
    overhead = rules.travel_overhead

    def travel(origin: Location, destination: Location, departure: datetime) -> timedelta:
        key = (origin, destination)
        found = cache.get(key)
        if found is None:
            km = great_circle_km(origin, destination)
            found = _ZERO if km < 0.05 else timedelta(minutes=math.ceil(km * factor)) + overhead
            cache[key] = found
        return found

    return travel


# --- calendars, violations and slots ----------------------------------------------------


def _bookings(items: Iterable[Booking]) -> tuple[Booking, ...]:
    return tuple(sorted((b for b in items if b.active), key=lambda b: (b.start, b.id)))


def _busy(items: Iterable[Busy]) -> tuple[Busy, ...]:
    return tuple(sorted(items, key=lambda b: (b.start, b.id)))


@attrs.frozen
class MemberCalendar:
    """One member's calendar as the rules see it.

    ``bookings`` are the active bookings (cancelled ones are dropped) and
    ``busy`` the time already taken, both over the span being checked (whole
    ISO weeks, so the weekly cap can be counted). ``busy_read_at`` is when
    busy time was last read from the member's calendar (None: never).
    """

    member: Member
    bookings: tuple[Booking, ...] = attrs.field(default=(), converter=_bookings)
    busy: tuple[Busy, ...] = attrs.field(default=(), converter=_busy)
    busy_read_at: datetime | None = attrs.field(default=None, converter=to_utc)


@attrs.frozen
class Violation:
    """One broken rule in a calendar, with a reason a coordinator can act on.

    ``rule`` is a stable code: ``inactive``, ``role``, ``skills``,
    ``home_base``, ``range``, ``window``, ``holiday``, ``absence``, ``hours``,
    ``notice``, ``overlap``, ``buffer``, ``call_between``, ``travel``,
    ``day_cap`` or ``week_cap``.
    """

    member_id: str
    booking_id: str | None
    rule: str
    reason: str

    def __str__(self) -> str:
        return self.reason


@attrs.frozen
class Slot:
    """A place in a member's calendar where a request fits, as :func:`propose` offers it."""

    member_id: str
    start: datetime
    end: datetime
    added_travel: timedelta
    """Travel this meeting adds to the member's day (0 for a call)."""
    day_meetings: int
    """In-person meetings the member already has that local day."""
    week_meetings: int
    """In-person meetings the member already has that local ISO week."""


@attrs.frozen
class Proposal:
    """Ranked slots for one request, and the members left out with the reason."""

    request: AppointmentRequest
    slots: tuple[Slot, ...]
    excluded: tuple[tuple[str, str], ...]

    @property
    def best(self) -> Slot | None:
        """The best-ranked slot, or None."""
        return self.slots[0] if self.slots else None


@attrs.frozen
class WeekPlan:
    """What :func:`plan_week` booked, and each request it could not place, with why."""

    bookings: tuple[Booking, ...]
    unplanned: tuple[tuple[str, str], ...]
    travel: timedelta
    """Total travel of the planned members' days (home to home), new and existing bookings."""

    @property
    def booked_share(self) -> float:
        """Booked requests over all requests (1.0 when there were none)."""
        total = len(self.bookings) + len(self.unplanned)
        return len(self.bookings) / total if total else 1.0


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


def _pattern_ok(kinds: Iterable[str]) -> bool:
    """True if calls sit only before the first or after the last in-person entry."""
    phase = 0  # 0: calls before, 1: in person, 2: calls after
    for kind in kinds:
        if kind == "in":
            if phase == 2:
                return False
            phase = 1
        elif kind == "call" and phase == 1:
            phase = 2
    return True


def _day_violations(
    day: _Day, rules: CalendarRules, travel: TravelFn, bookings: Mapping[str, Booking]
) -> list[Violation]:
    """Overlap, buffer, call placement and travel on one day (per-booking rules apart)."""
    member = day.member
    out: list[Violation] = []
    items = day.items
    if not items:
        return out

    def blame(a: _Item, b: _Item) -> str | None:
        return b.key if b.key in bookings else a.key if a.key in bookings else None

    # overlap and buffer: each entry against the one reaching furthest before it
    reach: _Item | None = None
    for item in items:
        if reach is not None and not (item.kind == reach.kind == "busy"):
            if item.start < reach.end:
                out.append(
                    Violation(
                        member.id,
                        blame(reach, item),
                        "overlap",
                        f"{_what(item)} at {_hm(item.start, member)} overlaps {_what(reach)} "
                        f"(until {_hm(reach.end, member)}).",
                    )
                )
            elif item.start - reach.end < rules.buffer:
                out.append(
                    Violation(
                        member.id,
                        blame(reach, item),
                        "buffer",
                        f"{_what(item)} at {_hm(item.start, member)} starts "
                        f"{_minutes(item.start - reach.end)} after {_what(reach)} ends; "
                        f"the rules keep {_minutes(rules.buffer)} between entries.",
                    )
                )
        if reach is None or item.end > reach.end:
            reach = item
    if day.home is not None:
        kinds = [i.kind for i in items if i.kind != "busy"]
        if not _pattern_ok(kinds):
            first = next(i for i in items if i.kind == "in")
            last = next(i for i in reversed(items) if i.kind == "in")
            for item in items:
                if item.kind == "call" and first.start < item.start < last.start:
                    out.append(
                        Violation(
                            member.id,
                            item.key,
                            "call_between",
                            f"conference call {item.key!r} at {_hm(item.start, member)} sits "
                            "between two in-person meetings; a field member takes calls before "
                            "the first or after the last meeting of the day.",
                        )
                    )
        out.extend(_travel_violations(day, rules, travel, bookings))
    return out


def _what(item: _Item) -> str:
    return {
        "in": f"meeting {item.key!r}",
        "call": f"call {item.key!r}",
        "busy": f"busy time {item.key!r}",
    }[item.kind]


def _travel_violations(
    day: _Day, rules: CalendarRules, travel: TravelFn, bookings: Mapping[str, Booking]
) -> list[Violation]:
    member = day.member
    if day.start is None or day.end is None or day.home is None:
        return []
    out: list[Violation] = []
    home = day.home
    # (start, end, loc, real, key) with the day's virtual start and end at home
    chain: list[tuple[datetime, datetime, Location | None, bool, str]] = [
        (day.start, day.start, home, False, "home")
    ]
    chain.extend((i.start, i.end, i.loc, True, i.key) for i in day.items)
    chain.append((day.end, day.end, home, False, "home"))
    last = 0
    busy_time = _ZERO
    gaps = 0
    for n in range(1, len(chain)):
        start, end, loc, real, key = chain[n]
        if chain[n - 1][3] and real:
            gaps += 1
        if loc is None:
            busy_time += end - start
            continue
        _, a_end, a_loc, a_real, a_key = chain[last]
        assert a_loc is not None
        need = travel(a_loc, loc, a_end)
        free = start - a_end - busy_time - gaps * rules.buffer
        outside = (real and start < day.start) or (a_real and a_end > day.end)
        if need > _ZERO and free < need and not outside:  # outside the day: reported as hours
            if not real:
                reason = (
                    f"{_what_key(a_key, bookings)} ends at {_hm(a_end, member)}: getting home "
                    f"takes {_minutes(need)} but the working day ends at {_hm(day.end, member)}."
                )
                culprit: str | None = a_key
            elif not a_real:
                reason = (
                    f"{_what_key(key, bookings)} at {_hm(start, member)} needs "
                    f"{_minutes(need)} of travel from home but the working day starts at "
                    f"{_hm(day.start, member)}."
                )
                culprit = key
            else:
                reason = (
                    f"{_what_key(key, bookings)} at {_hm(start, member)} needs "
                    f"{_minutes(need)} of travel from {_what_key(a_key, bookings)}, which "
                    f"leaves {_minutes(max(free, _ZERO))} for it"
                    + (
                        " after busy time and buffers."
                        if busy_time
                        else " after the buffer."
                        if gaps
                        else "."
                    )
                )
                culprit = key if key in bookings else a_key
            out.append(
                Violation(member.id, culprit if culprit in bookings else None, "travel", reason)
            )
        last, busy_time, gaps = n, _ZERO, 0
    return out


def _what_key(key: str, bookings: Mapping[str, Booking]) -> str:
    booking = bookings.get(key)
    if booking is None:
        return f"entry {key!r}"
    return f"{'meeting' if booking.in_person else 'call'} {key!r}"


def _eligibility(member: Member, request: AppointmentRequest) -> tuple[str, str] | None:
    """(rule, reason) if ``member`` may never take ``request``, else None."""
    if not member.active:
        return "inactive", f"{member.id} is not active."
    if request.in_person and member.role is not Role.FIELD_SALES:
        return "role", (
            f"{member.id} is {member.role.value}: in-person meetings go to field sales only."
        )
    if not request.in_person and member.role not in (Role.FIELD_SALES, Role.INSIDE_SALES):
        return "role", (
            f"{member.id} is {member.role.value}: conference calls go to inside or field sales."
        )
    if request.in_person and member.home_base is None:
        return "home_base", (
            f"{member.id} has no home base, so travel to the meeting cannot be planned; "
            "set home_base on the member."
        )
    missing = request.required_skills - member.skills
    if missing:
        return "skills", f"{member.id} lacks the skills {', '.join(sorted(missing))}."
    return None


def _booking_violations(
    member: Member, booking: Booking, rules: CalendarRules, day: _Day
) -> list[Violation]:
    """The rules one booking must meet on its own."""
    out: list[Violation] = []
    request = booking.request
    problem = _eligibility(member, request)
    if problem is not None:
        out.append(Violation(member.id, booking.id, *problem))
    start, end = booking.start, booking.end
    if start < request.earliest or end > request.deadline:
        out.append(
            Violation(
                member.id,
                booking.id,
                "range",
                f"{_what_key(booking.id, {booking.id: booking})} at {_hm(start, member)} lies "
                f"outside its request's range {_hm(request.earliest, member)} to "
                f"{_hm(request.deadline, member)}.",
            )
        )
    if request.windows and not any(w.holds(start, end) for w in request.windows):
        out.append(
            Violation(
                member.id,
                booking.id,
                "window",
                f"{_what_key(booking.id, {booking.id: booking})} at {_hm(start, member)} is "
                "outside every time window the customer gave.",
            )
        )
    if not any(s <= start and end <= e for s, e in day.segments):
        if worktime.is_holiday(member, day.day):
            rule, why = "holiday", f"{day.day.isoformat()} is a public holiday for {member.id}"
        elif any(a.start < end and start < a.end for a in member.absences):
            absence = next(a for a in member.absences if a.start < end and start < a.end)
            rule, why = "absence", f"{member.id} is away ({absence.reason})"
        else:
            rule, why = "hours", f"it is outside {member.id}'s working hours"
        out.append(
            Violation(
                member.id,
                booking.id,
                rule,
                f"{_what_key(booking.id, {booking.id: booking})} at {_hm(start, member)} "
                f"cannot be held: {why}.",
            )
        )
    if request.mode is MeetingMode.CONFERENCE_CALL and start - booking.booked_at < (
        rules.call_notice
    ):
        out.append(
            Violation(
                member.id,
                booking.id,
                "notice",
                f"call {booking.id!r} at {_hm(start, member)} was booked "
                f"{_minutes(start - booking.booked_at)} ahead; calls need "
                f"{_minutes(rules.call_notice)} of notice.",
            )
        )
    return out


def validate(calendar: MemberCalendar, rules: CalendarRules, travel: TravelFn) -> list[Violation]:
    """Every rule the member's calendar breaks, each with a readable reason.

    An empty list means the calendar is valid. Works on any calendar,
    including one edited by hand in the CRM: bookings are checked one by one
    (role, skills, range, customer windows, working hours, holidays,
    absences, notice), then day by day (overlaps, buffers, call placement,
    travel from home and back) and against the daily and weekly caps.
    """
    member = calendar.member
    days = _build_days(calendar)
    by_id = {b.id: b for b in calendar.bookings}
    out: list[Violation] = []
    for booking in calendar.bookings:
        out.extend(
            _booking_violations(member, booking, rules, days[local_day(member, booking.start)])
        )
    for d in sorted(days):
        out.extend(_day_violations(days[d], rules, travel, by_id))
    out.extend(_cap_violations(member, calendar.bookings, rules))
    return out


def _cap_violations(
    member: Member, bookings: Sequence[Booking], rules: CalendarRules
) -> list[Violation]:
    out: list[Violation] = []
    per_day: dict[date, list[Booking]] = defaultdict(list)
    per_week: dict[tuple[int, int], list[Booking]] = defaultdict(list)
    for b in bookings:
        if b.in_person:
            d = local_day(member, b.start)
            per_day[d].append(b)
            per_week[_week(d)].append(b)
    for d, items in sorted(per_day.items()):
        for b in items[rules.meetings_per_day :]:
            out.append(
                Violation(
                    member.id,
                    b.id,
                    "day_cap",
                    f"meeting {b.id!r} is {member.id}'s in-person meeting number "
                    f"{items.index(b) + 1} on {d.isoformat()}; the cap is "
                    f"{rules.meetings_per_day} a day.",
                )
            )
    for (year, week), items in sorted(per_week.items()):
        for b in items[rules.meetings_per_week :]:
            out.append(
                Violation(
                    member.id,
                    b.id,
                    "week_cap",
                    f"meeting {b.id!r} is {member.id}'s in-person meeting number "
                    f"{items.index(b) + 1} in week {year}-W{week:02d}; the cap is "
                    f"{rules.meetings_per_week} a week.",
                )
            )
    return out


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


def stale_reason(cal: MemberCalendar, rules: CalendarRules, now: datetime) -> str | None:
    """Why the member's busy time cannot be trusted at ``now`` (never read, or too old)."""
    if rules.busy_max_age is None:
        return None
    now = now.astimezone(UTC)
    if cal.busy_read_at is None:
        return (
            f"{cal.member.id}'s busy time was never read from their calendar, so free time "
            "cannot be known; run a sync (or set [calendar] busy_max_age = 0 to keep busy "
            "time in SPE only)."
        )
    age = now - cal.busy_read_at
    if age > rules.busy_max_age:
        return (
            f"{cal.member.id}'s busy time was last read {_minutes(age)} ago, more than the "
            f"{_minutes(rules.busy_max_age)} allowed; run a sync to refresh it."
        )
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


# --- planning a week ----------------------------------------------------------------------


def plan_week(
    requests: Iterable[AppointmentRequest],
    calendars: Iterable[MemberCalendar],
    rules: CalendarRules,
    travel: TravelFn,
    now: datetime,
    *,
    by: Mapping[str, str] | str = "planner",
    nearest: int | None = 12,
    improve: bool = True,
    improve_steps: int = 8_000,
) -> WeekPlan:
    """Place as many requests as possible, then keep travel low (a batch for coordinators).

    Cheapest insertion: every request is priced at its least added travel
    over the members' days it could go in (for in-person meetings, the
    ``nearest`` members by home base; None: all), and the cheapest request is
    placed first, re-pricing lazily as days fill; requests that fit nowhere
    are returned with the reason. Ties between members are broken by load
    (member id only last). The improvement phase then retries the unplaced
    ones over all members, and, for at most ``improve_steps`` tried moves (a
    work budget, not a clock: the plan is deterministic), moves placed
    meetings to cheaper places, swaps meetings between member days and trades
    a placed meeting for an unplaced request when that lowers travel (the
    number booked never drops), and finally retries the unplaced ones.
    Conference calls go to inside salespeople first, to the member-day with
    the most free working time; calls no inside salesperson can take are
    placed on field salespeople only after all that, in the time the visits
    leave, so calls never cost an in-person meeting.
    ``by`` names the coordinator per member id (or one name for all). Every
    returned booking passes :func:`validate`, and existing bookings and busy
    time are never moved.
    """
    now = now.astimezone(UTC)
    calendars = list(calendars)
    requests = list(requests)
    seen: set[str] = set()
    for r in requests:
        if r.id in seen:
            raise InvalidValue(
                f"appointment request {r.id!r} appears twice in the batch.",
                "give every request its own id.",
            )
        seen.add(r.id)
    planner = _Planner(calendars, rules, travel, now)
    members = {c.member.id: c.member for c in calendars}
    booked_ids = {bid for c in calendars for bid in (b.id for b in c.bookings)}
    usable: dict[str, MemberCalendar] = {}
    why_not: dict[str, str] = {}
    for cal in calendars:
        stale = stale_reason(cal, rules, now)
        if stale is None and cal.member.active:
            usable[cal.member.id] = cal
        else:
            why_not[cal.member.id] = stale or f"{cal.member.id} is not active."

    def coordinator(member_id: str) -> str:
        if isinstance(by, str):
            return by
        return by.get(member_id) or members[member_id].coordinator_id or "planner"

    # candidate members per request
    candidates: dict[str, list[Member]] = {}
    everyone: dict[str, list[Member]] = {}
    unplanned: dict[str, str] = {}
    for r in requests:
        if r.id in booked_ids:
            unplanned[r.id] = f"request {r.id!r} is already booked."
            continue
        ok = [m.member for m in usable.values() if _eligibility(m.member, r) is None]
        everyone[r.id] = ok
        if r.in_person and nearest is not None and r.location is not None:
            loc = r.location
            ok.sort(key=lambda m: (great_circle_km(m.home_base or loc, loc), m.id))
            ok = ok[:nearest]
        if not ok:
            reasons = sorted(
                {
                    (_eligibility(c.member, r) or ("", why_not.get(c.member.id, "")))[1]
                    for c in calendars
                }
                - {""}
            )
            unplanned[r.id] = (
                "no member can take it: " + "; ".join(reasons[:3])
                if reasons
                else "there are no members to plan for."
            )
            continue
        candidates[r.id] = ok
    by_id = {r.id: r for r in requests}
    # cache of (day version, priced fits) per request and member day
    cache: dict[str, dict[tuple[str, date], tuple[tuple[int, int], list[tuple[_Key, _Fit]]]]]
    cache = defaultdict(dict)
    # the member days a request may go in, per request and member (they never change)
    spots: dict[tuple[str, str], list[tuple[date, _Day, tuple[str, tuple[int, int]]]]] = {}

    def price(r: AppointmentRequest) -> tuple[_Key, _Day, _Fit] | None:
        lo, hi = _request_bounds(r, rules, now)
        if lo + r.duration > hi:
            return None
        best: tuple[_Key, _Day, _Fit] | None = None
        mine = cache[r.id]
        counts = planner.week_counts
        for m in candidates[r.id]:
            if not (r.in_person or field_calls) and m.role is Role.FIELD_SALES:
                continue  # a call on field sales waits until the visits are placed
            days = spots.get((r.id, m.id))
            if days is None:
                days = spots[(r.id, m.id)] = [
                    (d, planner.day(m, d), (m.id, _week(d)))
                    for d in _days_between(m, lo, hi, rules.horizon_days)
                ]
            for d, day, week in days:
                cached = mine.get((m.id, d))
                # fits depend on the day and on the week's count (the weekly cap)
                version = (day.version, counts[week])
                if cached is None or cached[0] != version:
                    fits = planner.best_in_day(day, r, lo, hi)
                    # calls: inside sales (tier 0) before field sales (tier 2, only once
                    # the visits are placed), the day with the most spare time first;
                    # in person: least travel, then earliest; then load, member id last
                    if r.in_person:
                        tier, spare = 1, 0
                    else:
                        tier = 2 if m.role is Role.FIELD_SALES else 0
                        spare = -_spare_seconds(day) if fits else 0
                    load = (day.in_person, _load(day))
                    cached = (
                        version,
                        [
                            (
                                (
                                    tier,
                                    round(f.added.total_seconds()),
                                    spare,
                                    f.start,
                                    *load,
                                    m.id,
                                ),
                                f,
                            )
                            for f in fits
                        ],
                    )
                    mine[(m.id, d)] = cached
                for key, fit in cached[1]:
                    if best is None or key < best[0]:
                        best = (key, day, fit)
        return best

    placed: dict[str, tuple[_Day, Booking]] = {}

    def place(r: AppointmentRequest, day: _Day, fit: _Fit) -> bool:
        booking = Booking(r, day.member.id, fit.start, coordinator(day.member.id), now)
        if not planner.confirm(day, booking):
            return False
        planner.commit(day, booking)
        placed[r.id] = (day, booking)
        return True

    def insert_all(pending: Iterable[str]) -> None:
        heap: list[tuple[_Key, int, str]] = []
        counter = itertools.count()
        for rid in pending:
            priced = price(by_id[rid])
            if priced is None:
                unplanned[rid] = _no_room(by_id[rid])
                continue
            heapq.heappush(heap, (priced[0], next(counter), rid))
        rejected: dict[str, int] = defaultdict(int)
        while heap:
            _, _, rid = heapq.heappop(heap)
            r = by_id[rid]
            priced = price(r)
            if priced is None:
                unplanned[rid] = _no_room(r)
                continue
            if heap and priced[0] > heap[0][0]:
                heapq.heappush(heap, (priced[0], next(counter), rid))
                continue
            if place(r, priced[1], priced[2]):
                unplanned.pop(rid, None)
                continue
            # the fast check and the validator disagree: never book it there
            rejected[rid] += 1
            bad = priced[1]
            cache[rid][(bad.member.id, bad.day)] = (
                (bad.version, planner.week_counts[(bad.member.id, _week(bad.day))]),
                [],
            )
            if rejected[rid] < 5:
                heapq.heappush(heap, (priced[0], next(counter), rid))
            else:
                unplanned[rid] = _no_room(r)

    # calls go to inside sales while the visits are placed and improved; the calls left
    # over then take the field time the visits leave (in-person capacity comes first)
    field_calls = False
    insert_all(r.id for r in requests if r.id in candidates)
    if improve:
        budget = _Budget(improve_steps)

        def retry_all() -> None:
            # what is still unplaced may fit with a member further away
            retry = sorted(rid for rid in unplanned if rid in candidates)
            if not retry:
                return
            bounds = [_request_bounds(by_id[rid], rules, now) for rid in retry]
            lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds)
            roomy = {
                m.id for m in members.values() if m.id in usable and _has_room(planner, m, lo, hi)
            }
            for rid in retry:
                if by_id[rid].in_person:
                    candidates[rid] = [m for m in everyone[rid] if m.id in roomy]
                else:
                    candidates[rid] = everyone[rid]
            insert_all(retry)

        retry_all()
        _improve(placed, planner, place, rules, by_id, unplanned, candidates, budget)
        retry_all()
    field_calls = True
    insert_all(sorted(rid for rid in unplanned if rid in candidates and not by_id[rid].in_person))
    bookings = tuple(sorted((b for _, b in placed.values()), key=lambda b: (b.start, b.id)))
    touched = {(d.member.id, d.day) for d, _ in placed.values()}
    total = sum((planner.days[k].travel(travel) for k in sorted(touched)), _ZERO)
    return WeekPlan(bookings, tuple(sorted(unplanned.items())), total)


def _has_room(planner: _Planner, member: Member, lo: datetime, hi: datetime) -> bool:
    """True if some day of ``member`` between ``lo`` and ``hi`` is under both caps."""
    rules = planner.rules
    for d in _days_between(member, lo, hi, rules.horizon_days):
        if planner.week_counts[(member.id, _week(d))] >= rules.meetings_per_week:
            continue
        day = planner.day(member, d)
        if day.start is not None and day.in_person < rules.meetings_per_day:
            return True
    return False


def _no_room(r: AppointmentRequest) -> str:
    return (
        f"no member has room for it between {r.earliest.isoformat()} and "
        f"{r.deadline.isoformat()} (caps, busy time, travel, working hours or holidays)."
    )


def _improve(
    placed: dict[str, tuple[_Day, Booking]],
    planner: _Planner,
    place: Callable[[AppointmentRequest, _Day, _Fit], bool],
    rules: CalendarRules,
    requests: Mapping[str, AppointmentRequest],
    unplanned: dict[str, str],
    candidates: Mapping[str, Sequence[Member]],
    budget: _Budget,
) -> None:
    """Local search on travel until nothing improves or the ``budget`` of tried moves is spent.

    Three moves, each kept only when it lowers total travel by a whole minute
    or more and every placement passes :meth:`_Planner.confirm`: relocate one
    meeting, swap two meetings between member days, and trade a placed
    meeting for an unplaced request near it. Deterministic for a given input.
    """
    travel = planner.travel
    near = _neighbours(requests.values(), 12)

    # a quick estimate (travel ignoring time) picks which moves are worth the full check
    # keyed by object identity (hashing a Location costs more than the lookup); the
    # places are pinned so no identity is reused while the memo lives
    memo: dict[tuple[int, int], float] = {}
    pinned: dict[int, Location] = {}

    def hop(a: Location, b: Location) -> float:
        key = (id(a), id(b))
        found = memo.get(key)
        if found is None:
            pinned[key[0]], pinned[key[1]] = a, b
            found = memo[key] = travel(a, b, planner.now).total_seconds()
        return found

    def stops(day: _Day, skip: str) -> list[Location]:
        assert day.home is not None
        inner = [i.loc for i in day.items if i.loc is not None and i.key != skip]
        return [day.home, *inner, day.home]

    def cost(route: list[Location]) -> float:
        return sum(hop(a, b) for a, b in itertools.pairwise(route))

    def sig(day: _Day) -> tuple[object, ...]:
        """The day's content (a failed try puts it back as it was, with a new version)."""
        return (id(day), *((i.key, i.start) for i in day.items))

    removal: dict[str, tuple[tuple[object, ...], float, list[tuple[Location, Location, float]]]]
    removal = {}

    def exchange_gain(x: str, loc: Location) -> float:
        """Estimated travel saved by taking ``x`` out of its day and putting ``loc`` in."""
        day = placed[x][0]
        if day.home is None:
            return math.inf
        known = removal.get(x)
        now_sig = sig(day)
        if known is None or known[0] != now_sig:
            rest = stops(day, x)
            legs = [(a, b, hop(a, b)) for a, b in itertools.pairwise(rest)]
            saved = cost(stops(day, "")) - sum(leg[2] for leg in legs)
            known = removal[x] = (now_sig, saved, legs)
        get = memo.get
        where = id(loc)
        best = math.inf
        for a, b, ab in known[2]:
            there = get((id(a), where))
            back = get((where, id(b)))
            if there is None:
                there = hop(a, loc)
            if back is None:
                back = hop(loc, b)
            best = min(best, there + back - ab)
        return known[1] - best

    # neighbourhoods checked without success, by the days and versions they were checked at
    checked: dict[str, tuple[tuple[object, ...], ...]] = {}
    settled: dict[str, tuple[object, ...]] = {}

    def unchanged(rid: str, others: Iterable[str]) -> bool:
        stamp = tuple(
            sig(placed[o][0]) if o in placed else () for o in itertools.chain((rid,), others)
        )
        if checked.get(rid) == stamp:
            return True
        checked[rid] = stamp
        return False

    def may_go(r: AppointmentRequest, day: _Day) -> bool:
        """False if the request's range or customer windows miss the day's working hours."""
        if day.start is None or day.end is None:
            return False
        lo, hi = _request_bounds(r, rules, planner.now)
        if lo >= day.end or hi <= day.start:
            return False
        return not r.windows or any(w.start < day.end and w.end > day.start for w in r.windows)

    def take(rid: str) -> tuple[_Day, Booking]:
        day, booking = placed.pop(rid)
        planner.uncommit(day, booking)
        return day, booking

    def put(rid: str, day: _Day, booking: Booking) -> None:
        planner.commit(day, booking)
        placed[rid] = (day, booking)

    def fit_in(day: _Day, r: AppointmentRequest) -> _Fit | None:
        if _eligibility(day.member, r) is not None:
            return None
        lo, hi = _request_bounds(r, rules, planner.now)
        if lo + r.duration > hi:
            return None
        fits = planner.best_in_day(day, r, lo, hi)
        return min(fits, key=lambda f: (f.added, f.start)) if fits else None

    def relocate(rid: str, roomy: Mapping[str, list[_Day]]) -> bool:
        """Move the meeting to its cheapest place: its own day or a day with room."""
        before = placed[rid][0].travel(travel)
        day, booking = take(rid)
        saving = before - day.travel(travel)
        r = booking.request
        best: tuple[timedelta, datetime, _Day, _Fit] | None = None
        others = (d for m in candidates.get(rid, ()) for d in roomy.get(m.id, ()))
        for there in itertools.chain((day,), others):
            if there is not day and not may_go(r, there):
                continue
            fit = fit_in(there, r)
            if fit is not None and (best is None or (fit.added, fit.start) < best[:2]):
                best = (fit.added, fit.start, there, fit)
        if best is not None and best[0] < saving and place(r, best[2], best[3]):
            return True
        put(rid, day, booking)
        return False

    def swap(x: str, y: str) -> bool:
        dx, bx = placed[x]
        dy, by_ = placed[y]
        if dx is dy:
            return False
        before = dx.travel(travel) + dy.travel(travel)
        take(x)
        take(y)
        fy = fit_in(dx, by_.request)
        fx = fit_in(dy, bx.request) if fy is not None else None
        if (
            fx is not None
            and fy is not None
            and dx.travel(travel) + dy.travel(travel) + fx.added + fy.added < before
            and place(by_.request, dx, fy)
        ):
            if place(bx.request, dy, fx):
                return True
            take(y)  # undo y in x's day, then put both back
        put(x, dx, bx)
        put(y, dy, by_)
        return False

    def trade(u: str, x: str) -> bool:
        dx, bx = placed[x]
        before = dx.travel(travel)
        take(x)
        r = requests[u]
        fu = fit_in(dx, r)
        if fu is not None and dx.travel(travel) + fu.added < before and place(r, dx, fu):
            unplanned.pop(u, None)
            unplanned[x] = _no_room(bx.request)
            return True
        put(x, dx, bx)
        return False

    while budget.left > 0:
        moved = 0
        cap = rules.meetings_per_day
        roomy: dict[str, list[_Day]] = defaultdict(list)
        for key in sorted(planner.days):
            day = planner.days[key]
            if day.start is not None and day.in_person < cap:
                roomy[key[0]].append(day)
        for rid in sorted(placed, key=lambda r: (placed[r][1].start, r)):
            if rid in placed and placed[rid][0].home is None:
                continue  # a call with inside sales: no travel to save, no budget spent
            if budget.spend():
                return
            if rid not in placed:
                continue
            # with every other day full, only its own day matters: skip it if unchanged
            stuck = not any(m.id in roomy for m in candidates.get(rid, ()))
            stamp = sig(placed[rid][0])
            if stuck and settled.get(rid) == stamp:
                continue
            settled[rid] = stamp
            if relocate(rid, roomy):
                moved += 1
        for x in sorted(placed):
            if x in requests and not requests[x].in_person:
                continue  # calls have no place to swap
            if budget.spend():
                return
            lx = requests[x].location if x in requests else None
            if lx is None or unchanged(x, near.get(x, ())):
                continue
            options = []
            for y in near.get(x, ()):
                ly = requests[y].location
                if (
                    y in placed
                    and ly is not None
                    and placed[y][0] is not placed[x][0]
                    and may_go(requests[y], placed[x][0])
                    and may_go(requests[x], placed[y][0])
                ):
                    gain = exchange_gain(x, ly) + exchange_gain(y, lx)
                    if gain >= 60:
                        options.append((-gain, y))
            for _, y in sorted(options):
                if x in placed and y in placed and swap(x, y):
                    moved += 1
                    break
        for u in sorted(unplanned):
            if u in requests and not requests[u].in_person:
                continue  # calls have no place to trade
            if budget.spend():
                return
            lu = requests[u].location if u in requests else None
            if lu is None or unchanged(u, near.get(u, ())):
                continue
            options = []
            for x in near.get(u, ()):
                if x in placed and may_go(requests[u], placed[x][0]):
                    gain = exchange_gain(x, lu)
                    if gain >= 60:
                        options.append((-gain, x))
            for _, x in sorted(options):
                if u in unplanned and x in placed and trade(u, x):
                    moved += 1
                    break
        if not moved:
            return


class _Budget:
    """A deterministic work budget for the improvement search (no clock reads in rules)."""

    __slots__ = ("left",)

    def __init__(self, steps: int) -> None:
        self.left = steps

    def spend(self) -> bool:
        """Spend one step; True when the budget is used up."""
        self.left -= 1
        return self.left < 0


def _neighbours(requests: Iterable[AppointmentRequest], k: int) -> dict[str, list[str]]:
    """The ``k`` nearest located in-person requests to each one (a grid, no full scan)."""
    located = sorted((r.id, r.location) for r in requests if r.in_person and r.location is not None)
    if len(located) < 2:
        return {}
    cell = 0.05  # degrees of latitude, about 5.5 km
    grid: dict[tuple[int, int], list[tuple[str, float, float]]] = defaultdict(list)
    points: list[tuple[str, float, float, int, int]] = []
    for rid, loc in located:
        assert loc is not None
        x = loc.lon * math.cos(math.radians(loc.lat))
        gx, gy = math.floor(x / cell), math.floor(loc.lat / cell)
        grid[(gx, gy)].append((rid, x, loc.lat))
        points.append((rid, x, loc.lat, gx, gy))
    out: dict[str, list[str]] = {}
    for rid, x, y, gx, gy in points:
        ring = 1
        while True:
            found = [
                ((ox - x) ** 2 + (oy - y) ** 2, oid)
                for i in range(gx - ring, gx + ring + 1)
                for j in range(gy - ring, gy + ring + 1)
                for oid, ox, oy in grid.get((i, j), ())
                if oid != rid
            ]
            if len(found) >= k or len(found) >= len(points) - 1 or ring > 64:
                break
            ring += 1
        found.sort()
        out[rid] = [oid for _, oid in found[:k]]
    return out


# --- the team ---------------------------------------------------------------------------------


def coordinator_problems(members: Iterable[Member]) -> list[str]:
    """Where the team drifts from SPE's one sales coordinator per field salesperson.

    Reports field members without a coordinator, coordinators that are not
    active sales coordinators, coordinators shared by several field members,
    and the overall ratio when it is not 1:1. An empty list means 1:1.
    """
    members = list(members)
    by_id = {m.id: m for m in members}
    field = [m for m in members if m.role is Role.FIELD_SALES and m.active]
    coordinators = [m for m in members if m.role is Role.SALES_COORDINATOR and m.active]
    out: list[str] = []
    served: dict[str, list[str]] = defaultdict(list)
    for m in field:
        if m.coordinator_id is None:
            out.append(f"field member {m.id} has no sales coordinator (set coordinator_id).")
            continue
        c = by_id.get(m.coordinator_id)
        if c is None or c.role is not Role.SALES_COORDINATOR or not c.active:
            out.append(
                f"field member {m.id}'s coordinator {m.coordinator_id!r} is not an active "
                "sales coordinator."
            )
            continue
        served[c.id].append(m.id)
    for cid, field_ids in sorted(served.items()):
        if len(field_ids) > 1:
            out.append(
                f"sales coordinator {cid} fills {len(field_ids)} calendars "
                f"({', '.join(sorted(field_ids))}); SPE runs one coordinator per field "
                "salesperson."
            )
    if field and len(coordinators) != len(field):
        out.append(
            f"the team has {len(field)} field salespeople and {len(coordinators)} sales "
            "coordinators; SPE runs them 1:1."
        )
    return out
