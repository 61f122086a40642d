"""Validation, the one source of truth: every rule a member's calendar breaks, each with
a readable reason; and whether their busy time is fresh enough to offer them as free."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime

from spe_core import worktime
from spe_core.calendar.days import _build_days, _Day, _hm, _Item, _minutes, _week, local_day
from spe_core.calendar.rules import _ZERO, CalendarRules, MemberCalendar, TravelFn, Violation
from spe_core.model import (
    AppointmentRequest,
    Booking,
    Location,
    MeetingMode,
    Member,
    Role,
)

__all__ = ["stale_reason", "validate"]


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


def stale_reason(cal: MemberCalendar, rules: CalendarRules, now: datetime) -> str | None:
    """Why the member's busy time cannot be trusted at ``now`` (never read, or too old)."""
    if rules.busy_max_age is None:
        return None
    now = now.astimezone(UTC)
    if cal.busy_read_at is None:
        return (
            f"{cal.member.id}'s busy time was never read from their calendar, so free time "
            "cannot be known; run a sync (or set [calendar] busy_max_age_hours = 0 to keep busy "
            "time in SPE only)."
        )
    age = now - cal.busy_read_at
    if age > rules.busy_max_age:
        return (
            f"{cal.member.id}'s busy time was last read {_minutes(age)} ago, more than the "
            f"{_minutes(rules.busy_max_age)} allowed; run a sync to refresh it."
        )
    return None
