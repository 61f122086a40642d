"""Calendar rules and the values the calendar works with: the policy
(:class:`CalendarRules`), one member's calendar, violations, slots, proposals and week
plans, and where the team drifts from one sales coordinator per field salesperson."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import attrs

from spe_core.errors import ConfigError
from spe_core.model import (
    AppointmentRequest,
    Booking,
    Busy,
    FrozenMap,
    Location,
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
    """A place in a member's calendar where a request fits, as :func:`propose` offers it.

    A slot carries its request, so ``engine.book(slot, by="cy")`` books it as offered.
    """

    member_id: str
    start: datetime
    end: datetime
    added_travel: timedelta
    """Travel this meeting adds to the member's day (0 for a call)."""
    day_meetings: int
    """In-person meetings the member already has that local day."""
    week_meetings: int
    """In-person meetings the member already has that local ISO week."""
    request: AppointmentRequest | None = attrs.field(default=None, repr=False)
    """The request this slot was proposed for (None for a slot made by hand)."""


@attrs.frozen
class Proposal:
    """Ranked slots for one request, and the members left out with the reason.

    ``excluded`` holds a (member id, reason) pair for every member considered
    and left out (not eligible, busy time not fresh, or no room);
    :attr:`reasons` gives them as a mapping and :attr:`reason` says in one
    sentence why there is no slot at all.
    """

    request: AppointmentRequest
    slots: tuple[Slot, ...]
    excluded: tuple[tuple[str, str], ...]

    @property
    def best(self) -> Slot | None:
        """The best-ranked slot, or None."""
        return self.slots[0] if self.slots else None

    @property
    def reasons(self) -> FrozenMap[str, str]:
        """Why each member left out was left out: member id -> reason."""
        return FrozenMap(self.excluded)

    @property
    def reason(self) -> str | None:
        """None when there is a slot; else why nobody fits, member by member."""
        if self.slots:
            return None
        if not self.excluded:
            return (
                f"no member was considered for {self.request.id!r}: the team has no active "
                "field or inside salesperson."
            )
        return f"nobody fits {self.request.id!r}: " + " ".join(
            f"{member}: {why}" for member, why in self.excluded
        )


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
