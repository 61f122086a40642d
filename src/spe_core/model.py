"""The SPE domain values: who is on the team and what flows through it.

Every value is an ``attrs`` frozen, slotted class, validated on creation and
changed with :func:`attrs.evolve`. Values never parse foreign data: mapping a
CRM record onto a value happens in the adapter's mapping module. Datetimes are
always timezone-aware; a naive datetime is refused with a clear error. Every
datetime field is stored as the same instant in UTC (:func:`to_utc`), so values
compare, subtract and add on real time whatever zone they were given in, and
every store sees the same instants; local times are shown only in messages.
"""

from __future__ import annotations

import enum
import itertools
import zoneinfo
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

import attrs

from spe_core.errors import InvalidValue

__all__ = [
    "Absence",
    "AppointmentRequest",
    "Booking",
    "BookingStatus",
    "Busy",
    "MeetingMode",
    "TimeWindow",
    "DayHours",
    "Location",
    "Member",
    "Opportunity",
    "OpportunityStatus",
    "Outcome",
    "OPEN_TASK_STATUSES",
    "Role",
    "Task",
    "TaskKind",
    "TaskStatus",
    "WorkingHours",
    "aware",
    "aware_field",
    "external_ids",
    "frozen_strings",
    "to_optional_outcome",
    "to_outcome",
    "to_role",
    "to_utc",
    "utc_fields",
]


class Role(enum.StrEnum):
    """The one role each team member has (SPE's division of labour)."""

    PROMOTIONS = "promotions"
    INSIDE_SALES = "inside_sales"
    FIELD_SALES = "field_sales"
    SALES_COORDINATOR = "sales_coordinator"
    CUSTOMER_SERVICE = "customer_service"
    ENGINEERING = "engineering"
    PROJECT_LEADER = "project_leader"
    BUSINESS_DEVELOPMENT = "business_development"

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        """The role named by ``value`` (case and ``-``/space insensitive)."""
        if isinstance(value, Role):
            return value
        key = str(value).strip().lower().replace("-", "_").replace(" ", "_")
        try:
            return cls(key)
        except ValueError:
            raise InvalidValue(
                f"{value!r} is not an SPE role.",
                f"use one of: {', '.join(r.value for r in cls)}.",
            ) from None


class Outcome(enum.StrEnum):
    """How a salesperson resolves an opportunity they pulled."""

    WON = "won"
    LOST = "lost"
    DISQUALIFIED = "disqualified"
    APPOINTMENT_SET = "appointment_set"
    NURTURE = "nurture"

    @classmethod
    def parse(cls, value: str | Outcome) -> Outcome:
        """The outcome named by ``value``."""
        if isinstance(value, Outcome):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise InvalidValue(
                f"{value!r} is not an outcome.",
                f"use one of: {', '.join(o.value for o in cls)}.",
            ) from None


class OpportunityStatus(enum.StrEnum):
    """Where an opportunity is in the flow. Exactly one at any time."""

    BACKLOG = "backlog"
    """Produced by Promotions, waiting to be moved into the queue."""
    QUEUED = "queued"
    """In the pull queue (the buffer)."""
    RELEASED = "released"
    """Pulled by exactly one salesperson, who holds it under a lease."""
    RESOLVED = "resolved"
    """Closed by its salesperson with an :class:`Outcome`."""
    NURTURE = "nurture"
    """Left the queue unpulled (stale) and went back to marketing nurture."""
    EXPIRED = "expired"
    """Passed its ``expires_at`` before anyone pulled it."""
    WITHDRAWN = "withdrawn"
    """Taken out of SPE's flow because a person changed it in the CRM (a sync conflict
    that the CRM won); SPE no longer writes to it."""


# --- validators and converters ------------------------------------------------


def to_role(value: str | Role) -> Role:
    """Converter: a :class:`Role` from its name."""
    return Role.parse(value)


def to_outcome(value: str | Outcome) -> Outcome:
    """Converter: an :class:`Outcome` from its name."""
    return Outcome.parse(value)


def to_optional_outcome(value: str | Outcome | None) -> Outcome | None:
    """Converter: an :class:`Outcome` from its name, None staying None."""
    return None if value is None else Outcome.parse(value)


def aware(value: datetime, name: str = "datetime") -> datetime:
    """Return ``value`` if it is timezone-aware, else raise :class:`InvalidValue`."""
    if not isinstance(value, datetime):
        raise InvalidValue(
            f"{name} must be a datetime, got {type(value).__name__} {value!r}.",
            "pass a timezone-aware datetime such as datetime(2025, 1, 6, 9, tzinfo=UTC).",
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValue(
            f"{name} {value.isoformat()} has no time zone.",
            "pass a timezone-aware datetime, e.g. value.replace(tzinfo=UTC) or datetime.now(UTC).",
        )
    return value


def to_utc(value: Any) -> Any:
    """Converter: an aware datetime as the same instant in UTC.

    Python compares, subtracts and adds two datetimes that share one tzinfo
    object on their wall-clock readings, ignoring a DST change between them;
    in UTC every operation is on real time. Anything else (None, a naive
    datetime, a wrong type) is returned unchanged for the validator to refuse.
    """
    if type(value) is datetime and value.tzinfo is UTC:
        return value  # the common case
    if isinstance(value, datetime) and value.tzinfo is not None and value.utcoffset() is not None:
        return value.astimezone(UTC)
    return value


_DATETIME_TYPES = frozenset({"datetime", "datetime | None", datetime})


def utc_fields(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    """attrs field transformer: every ``datetime`` field gets the :func:`to_utc` converter."""
    return [
        f.evolve(converter=to_utc) if f.type in _DATETIME_TYPES and f.converter is None else f
        for f in fields
    ]


def aware_field(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: None or a timezone-aware datetime."""
    if value is None or (
        type(value) is datetime and value.tzinfo is not None and value.utcoffset() is not None
    ):
        return  # the common case, checked without building the error's name
    aware(value, f"{type(instance).__name__}.{attribute.name}")  # type: ignore[arg-type]


def _non_empty(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(
            f"{type(instance).__name__}.{attribute.name} must be a non-empty string, "
            f"got {value!r}.",
            f"give every {type(instance).__name__.lower()} a non-empty {attribute.name}.",
        )


def _time_zone(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidValue(
            f"{type(instance).__name__}.{attribute.name} {value!r} is not an IANA time zone.",
            "use a name such as 'Europe/Paris', 'America/New_York' or 'UTC'.",
        ) from None


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidValue(
            f"{type(instance).__name__}.{attribute.name} must be a positive whole number "
            f"or None, got {value!r}.",
            "use 1 or more, or None for the policy's default.",
        )


def frozen_strings(values: Iterable[str] | str | None) -> frozenset[str]:
    """Convert skills, tags and the like into a frozenset of stripped strings."""
    if values is None:
        return frozenset()
    if type(values) is frozenset and all(type(v) is str and v and v == v.strip() for v in values):
        return values  # already normalised (the common case when values are evolved)
    if isinstance(values, str):
        values = [values]
    return frozenset(str(v).strip() for v in values if str(v).strip())


def external_ids(
    values: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> tuple[tuple[str, str], ...]:
    """Normalise external ids (CRM name -> record id) into sorted pairs."""
    if values is None or values == ():
        return ()
    if (
        type(values) is tuple
        and all(
            type(p) is tuple and len(p) == 2 and type(p[0]) is type(p[1]) is str for p in values
        )
        and all(a[0] < b[0] for a, b in itertools.pairwise(values))
    ):
        return values  # already normalised: sorted, one id per CRM
    pairs = values.items() if isinstance(values, Mapping) else values
    out = tuple(sorted((str(k), str(v)) for k, v in pairs))
    if len({k for k, _ in out}) != len(out):
        raise InvalidValue(
            f"external ids name the same CRM twice: {out!r}.",
            "give at most one record id per CRM.",
        )
    return out


# --- places and time ------------------------------------------------------------


@attrs.frozen(cache_hash=True)  # travel times are cached per pair of places
class Location:
    """A place on Earth: a customer's site or a field member's home base."""

    lat: float = attrs.field(converter=float)
    lon: float = attrs.field(converter=float)
    address: str | None = None

    @lat.validator
    def _check_lat(self, _: attrs.Attribute[float], value: float) -> None:
        if not -90.0 <= value <= 90.0:
            raise InvalidValue(
                f"latitude {value} is outside -90..90.", "check the order (lat, lon)."
            )

    @lon.validator
    def _check_lon(self, _: attrs.Attribute[float], value: float) -> None:
        if not -180.0 <= value <= 180.0:
            raise InvalidValue(
                f"longitude {value} is outside -180..180.", "check the order (lat, lon)."
            )


@attrs.frozen
class DayHours:
    """Working time on one weekday (0 = Monday), local to the member's time zone.

    ``end`` of ``time(0)`` means midnight at the end of the day (``00:00-00:00``
    is the whole day). How local times map to instants across DST changes is
    described in :mod:`spe_core.worktime`.
    """

    weekday: int
    start: time
    end: time

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise InvalidValue(
                f"weekday {self.weekday} is outside 0..6.", "use 0 for Monday to 6 for Sunday."
            )
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise InvalidValue(
                "working hours must be local wall-clock times without tzinfo.",
                "set the member's time_zone instead of a tzinfo on the times.",
            )
        if not (self.start < self.end or self.end == time(0)):
            raise InvalidValue(
                f"working hours on weekday {self.weekday} start at {self.start} "
                f"but end at {self.end}.",
                "make the start earlier than the end, or end at 00:00 for midnight "
                "(split overnight shifts in two days).",
            )


def _day_hours(days: Iterable[DayHours]) -> tuple[DayHours, ...]:
    return tuple(days)


def _absences(items: Iterable[Absence]) -> tuple[Absence, ...]:
    return tuple(items)


@attrs.frozen
class WorkingHours:
    """A member's weekly working time, in their own time zone."""

    days: tuple[DayHours, ...] = attrs.field(converter=_day_hours)

    @classmethod
    def weekdays(cls, start: time = time(9), end: time = time(17)) -> WorkingHours:
        """Monday to Friday, ``start`` to ``end``."""
        return cls(tuple(DayHours(d, start, end) for d in range(5)))

    def on(self, weekday: int) -> tuple[DayHours, ...]:
        """The working intervals on ``weekday`` (0 = Monday), earliest first."""
        return tuple(sorted((d for d in self.days if d.weekday == weekday), key=lambda d: d.start))


@attrs.frozen(field_transformer=utc_fields)
class Absence:
    """Time a member is away (out of office, leave, a partial-day appointment)."""

    start: datetime = attrs.field(validator=aware_field)
    end: datetime = attrs.field(validator=aware_field)
    reason: str = "out of office"

    def __attrs_post_init__(self) -> None:
        if not self.start < self.end:
            raise InvalidValue(
                f"absence starts at {self.start.isoformat()} but ends at {self.end.isoformat()}.",
                "make the start earlier than the end.",
            )

    def covers(self, at: datetime) -> bool:
        """True if ``at`` falls inside this absence (start inclusive, end exclusive)."""
        return self.start <= at < self.end


# --- people -------------------------------------------------------------------------


@attrs.frozen
class Member:
    """A person on the sales team, with exactly one :class:`Role`.

    ``wip_limit`` None means "use the queue policy's default". ``weight``
    scales a member's share of routed tasks (2.0 takes twice the share);
    ``task_capacity`` caps their open tasks (None: the routing default).
    Field members have a ``home_base`` (where their day starts and ends) and
    a ``coordinator_id`` (the sales coordinator who fills their calendar).
    """

    id: str = attrs.field(validator=_non_empty)
    name: str = attrs.field(validator=_non_empty)
    role: Role = attrs.field(converter=to_role)
    skills: frozenset[str] = attrs.field(factory=frozenset, converter=frozen_strings)
    time_zone: str = attrs.field(default="UTC", validator=_time_zone)
    wip_limit: int | None = attrs.field(default=None, validator=_positive_or_none)
    active: bool = True
    weight: float = attrs.field(default=1.0, converter=float)
    task_capacity: int | None = attrs.field(default=None, validator=_positive_or_none)
    working_hours: WorkingHours = attrs.field(factory=WorkingHours.weekdays)
    absences: tuple[Absence, ...] = attrs.field(default=(), converter=_absences)
    home_base: Location | None = None
    coordinator_id: str | None = None
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    external_ids: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=external_ids)

    @weight.validator
    def _check_weight(self, _: attrs.Attribute[float], value: float) -> None:
        if not value > 0:
            raise InvalidValue(
                f"Member {self.id!r} has weight {value}; weights must be above 0.",
                "use 1.0 for an ordinary share, 0.5 for half, 2.0 for double; "
                "set active=False to take someone out of rotation.",
            )

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The member's time zone as a :class:`zoneinfo.ZoneInfo`."""
        return zoneinfo.ZoneInfo(self.time_zone)

    def external_id(self, crm: str) -> str | None:
        """This member's record id in ``crm`` (e.g. ``"salesforce"``), if known."""
        return dict(self.external_ids).get(crm)


# --- opportunities ------------------------------------------------------------------


@attrs.frozen(field_transformer=utc_fields)
class Opportunity:
    """A sales opportunity, with where it stands in the flow.

    The first fields describe the opportunity (set by Promotions or read from
    the CRM); the last ones are its state in the pull queue, changed only by
    the engine. ``tier`` and ``score`` rank it (higher first); ``score`` is
    set at enqueue and may be adjusted by scoring plugins.
    """

    id: str = attrs.field(validator=_non_empty)
    account_id: str = attrs.field(validator=_non_empty)
    queued_at: datetime = attrs.field(validator=aware_field)
    source_campaign: str | None = None
    tier: int = attrs.field(default=0)
    score: float = attrs.field(default=0.0, converter=float)
    required_skills: frozenset[str] = attrs.field(factory=frozenset, converter=frozen_strings)
    not_before: datetime | None = attrs.field(default=None, validator=aware_field)
    expires_at: datetime | None = attrs.field(default=None, validator=aware_field)
    external_ids: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=external_ids)
    # state in the flow
    status: OpportunityStatus = attrs.field(
        default=OpportunityStatus.BACKLOG, converter=OpportunityStatus
    )
    owner_id: str | None = None
    released_at: datetime | None = attrs.field(default=None, validator=aware_field)
    lease_expires_at: datetime | None = attrs.field(default=None, validator=aware_field)
    excluded: frozenset[str] = attrs.field(factory=frozenset, converter=frozen_strings)
    outcome: Outcome | None = attrs.field(default=None, converter=to_optional_outcome)
    resolved_at: datetime | None = attrs.field(default=None, validator=aware_field)

    @tier.validator
    def _check_tier(self, _: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidValue(
                f"Opportunity {self.id!r} has tier {value!r}; tiers are whole numbers.",
                "use 0 (default) and higher numbers for better tiers.",
            )

    @score.validator
    def _check_score(self, _: attrs.Attribute[float], value: float) -> None:
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidValue(
                f"Opportunity {self.id!r} has score {value}; scores must be finite.",
                "check the scoring plugin or the CRM field it reads.",
            )

    def __attrs_post_init__(self) -> None:
        released = self.status is OpportunityStatus.RELEASED
        if released != (self.owner_id is not None) and self.status is not (
            OpportunityStatus.RESOLVED
        ):
            raise InvalidValue(
                f"Opportunity {self.id!r} is {self.status.value} with owner "
                f"{self.owner_id!r}: only released and resolved opportunities have an owner.",
                "let the engine change the state (pull, resolve, give back).",
            )
        if (self.status is OpportunityStatus.RESOLVED) != (self.outcome is not None):
            raise InvalidValue(
                f"Opportunity {self.id!r} is {self.status.value} with outcome "
                f"{self.outcome!r}: exactly the resolved ones have an outcome.",
                "let the engine resolve opportunities.",
            )
        if (
            self.not_before is not None
            and self.expires_at is not None
            and self.expires_at <= self.not_before
        ):
            raise InvalidValue(
                f"Opportunity {self.id!r} expires ({self.expires_at.isoformat()}) before it "
                f"may be worked ({self.not_before.isoformat()}).",
                "move expires_at after not_before, or drop one of them.",
            )

    def external_id(self, crm: str) -> str | None:
        """This opportunity's record id in ``crm``, if known."""
        return dict(self.external_ids).get(crm)


# === routing (issue 3): routing code goes between these markers ===


class TaskKind(enum.StrEnum):
    """The built-in kinds of transactional work (custom kinds come from config)."""

    QUOTE = "quote"
    ORDER_ENTRY = "order_entry"
    ADMIN = "admin"
    SERVICE_REQUEST = "service_request"
    COMPLAINT = "complaint"
    SOLUTION_DESIGN = "solution_design"
    TECHNICAL_DEMO = "technical_demo"
    IMPLEMENTATION_HANDOFF = "implementation_handoff"
    APPOINTMENT_REQUEST = "appointment_request"
    RESEARCH = "research"


class TaskStatus(enum.StrEnum):
    """Where a task is. Exactly one at any time."""

    UNASSIGNED = "unassigned"
    """Waiting in its role's queue (no eligible member, with the reason)."""
    ASSIGNED = "assigned"
    """Routed to a member, not yet accepted."""
    ACCEPTED = "accepted"
    """Accepted by its assignee, in progress."""
    COMPLETED = "completed"
    CANCELLED = "cancelled"


OPEN_TASK_STATUSES = frozenset({TaskStatus.ASSIGNED, TaskStatus.ACCEPTED})


def _priority(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 4:
        raise InvalidValue(
            f"Task.priority must be 1 (urgent) to 4 (low), got {value!r}.",
            "use 1 for urgent, 2 high, 3 normal (default), 4 low.",
        )


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


@attrs.frozen(field_transformer=utc_fields)
class Task:
    """A piece of transactional work, routed to a specialist, never to a salesperson.

    The first fields describe the work; the last ones are its routing state,
    changed only by the engine. ``prior_assignees`` records everyone it was
    ever routed to, so re-routing never bounces between the same people.
    """

    id: str = attrs.field(validator=_non_empty)
    kind: str = attrs.field(validator=_non_empty)
    account_id: str = attrs.field(validator=_non_empty)
    created_at: datetime = attrs.field(validator=aware_field)
    opportunity_id: str | None = None
    priority: int = attrs.field(default=3, validator=_priority)
    due_at: datetime | None = attrs.field(default=None, validator=aware_field)
    required_skills: frozenset[str] = attrs.field(factory=frozenset, converter=frozen_strings)
    external_ids: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=external_ids)
    # routing state
    status: TaskStatus = attrs.field(default=TaskStatus.UNASSIGNED, converter=TaskStatus)
    queue_role: Role | None = attrs.field(
        default=None, converter=attrs.converters.optional(to_role)
    )
    assignee_id: str | None = None
    assigned_at: datetime | None = attrs.field(default=None, validator=aware_field)
    accept_by: datetime | None = attrs.field(default=None, validator=aware_field)
    complete_by: datetime | None = attrs.field(default=None, validator=aware_field)
    accepted_at: datetime | None = attrs.field(default=None, validator=aware_field)
    completed_at: datetime | None = attrs.field(default=None, validator=aware_field)
    prior_assignees: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    unassigned_reason: str | None = None
    escalations: int = 0
    weight: float = 1.0
    """The task's share of its assignee's load (set from its route when routed)."""

    def __attrs_post_init__(self) -> None:
        holding = self.status in OPEN_TASK_STATUSES
        if holding != (self.assignee_id is not None) and self.status is not (TaskStatus.COMPLETED):
            raise InvalidValue(
                f"Task {self.id!r} is {self.status.value} with assignee {self.assignee_id!r}: "
                "only assigned, accepted and completed tasks have an assignee.",
                "let the engine route tasks.",
            )

    @property
    def is_open(self) -> bool:
        """True while the task is assigned or accepted."""
        return self.status in OPEN_TASK_STATUSES

    def external_id(self, crm: str) -> str | None:
        """This task's record id in ``crm``, if known."""
        return dict(self.external_ids).get(crm)


# === end routing ===

# === calendar (issue 4): calendar code goes between these markers ===


class MeetingMode(enum.StrEnum):
    """How a meeting is held: at the customer's site, or by phone or video."""

    IN_PERSON = "in_person"
    CONFERENCE_CALL = "conference_call"


class BookingStatus(enum.StrEnum):
    """Whether a booking still holds its slot."""

    BOOKED = "booked"
    CANCELLED = "cancelled"


def _duration(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, timedelta) or not timedelta(0) < value <= timedelta(hours=12):
        raise InvalidValue(
            f"{type(instance).__name__}.{attribute.name} must be a duration above 0 and at "
            f"most 12 hours, got {value!r}.",
            "pass a timedelta such as timedelta(minutes=60).",
        )


@attrs.frozen(field_transformer=utc_fields)
class TimeWindow:
    """A stretch of time (start inclusive, end exclusive), e.g. when a customer can meet."""

    start: datetime = attrs.field(validator=aware_field)
    end: datetime = attrs.field(validator=aware_field)

    def __attrs_post_init__(self) -> None:
        if not self.start < self.end:
            raise InvalidValue(
                f"time window starts at {self.start.isoformat()} but ends at "
                f"{self.end.isoformat()}.",
                "make the start earlier than the end.",
            )

    def holds(self, start: datetime, end: datetime) -> bool:
        """True if ``start``..``end`` lies inside this window."""
        return self.start <= start and end <= self.end


def _windows(items: Iterable[TimeWindow]) -> tuple[TimeWindow, ...]:
    return tuple(sorted(items, key=lambda w: (w.start, w.end)))


@attrs.frozen(field_transformer=utc_fields)
class AppointmentRequest:
    """A meeting a sales coordinator has to place in a salesperson's calendar.

    In-person meetings need the customer's ``location`` and go to field
    salespeople only; conference calls need none. The meeting must start at
    or after ``earliest`` and end by ``deadline``; when ``windows`` are given
    (the customer's availability) it must also lie inside one of them.
    """

    id: str = attrs.field(validator=_non_empty)
    account_id: str = attrs.field(validator=_non_empty)
    duration: timedelta = attrs.field(validator=_duration)
    mode: MeetingMode = attrs.field(converter=MeetingMode)
    earliest: datetime = attrs.field(validator=aware_field)
    deadline: datetime = attrs.field(validator=aware_field)
    location: Location | None = None
    windows: tuple[TimeWindow, ...] = attrs.field(default=(), converter=_windows)
    required_skills: frozenset[str] = attrs.field(factory=frozenset, converter=frozen_strings)
    opportunity_id: str | None = None
    external_ids: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=external_ids)

    def __attrs_post_init__(self) -> None:
        if self.earliest + self.duration > self.deadline:
            raise InvalidValue(
                f"appointment request {self.id!r} lasts {self.duration} but its range "
                f"{self.earliest.isoformat()}..{self.deadline.isoformat()} is shorter.",
                "move the deadline later or the earliest start sooner.",
            )
        if self.mode is MeetingMode.IN_PERSON and self.location is None:
            raise InvalidValue(
                f"appointment request {self.id!r} is in person but has no location.",
                "give the customer's site as location=Location(lat, lon), or make it a "
                "conference call.",
            )

    @property
    def in_person(self) -> bool:
        """True for a meeting at the customer's site."""
        return self.mode is MeetingMode.IN_PERSON

    def external_id(self, crm: str) -> str | None:
        """This request's record id in ``crm``, if known."""
        return dict(self.external_ids).get(crm)


@attrs.frozen(field_transformer=utc_fields)
class Booking:
    """An appointment request placed in one member's calendar.

    A booking's id is its request's id: a request holds at most one slot at a
    time. ``by`` is the sales coordinator (or process) who made the booking;
    ``booked_at`` is when, which the minimum-notice rule for calls reads.
    """

    request: AppointmentRequest
    member_id: str = attrs.field(validator=_non_empty)
    start: datetime = attrs.field(validator=aware_field)
    by: str = attrs.field(validator=_non_empty)
    booked_at: datetime = attrs.field(validator=aware_field)
    status: BookingStatus = attrs.field(default=BookingStatus.BOOKED, converter=BookingStatus)
    external_ids: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=external_ids)

    @property
    def id(self) -> str:
        """The booking's id (its request's id)."""
        return self.request.id

    @property
    def end(self) -> datetime:
        """When the meeting ends: ``duration`` of real time after ``start`` (UTC)."""
        return self.start + self.request.duration

    @property
    def in_person(self) -> bool:
        """True for a meeting at the customer's site."""
        return self.request.in_person

    @property
    def location(self) -> Location | None:
        """Where the meeting is held (None for a call)."""
        return self.request.location

    @property
    def active(self) -> bool:
        """True while the booking holds its slot."""
        return self.status is BookingStatus.BOOKED

    def external_id(self, crm: str) -> str | None:
        """This booking's event id in ``crm``, if known."""
        return dict(self.external_ids).get(crm)


@attrs.frozen(field_transformer=utc_fields)
class Busy:
    """Time a member's calendar already has taken (read from the CRM or entered by hand).

    Busy time has no known place: the travel rule lets a member travel
    around it, never through it. ``id`` identifies it in its source so a
    re-read replaces rather than duplicates it.
    """

    id: str = attrs.field(validator=_non_empty)
    member_id: str = attrs.field(validator=_non_empty)
    start: datetime = attrs.field(validator=aware_field)
    end: datetime = attrs.field(validator=aware_field)
    reason: str = "busy"

    def __attrs_post_init__(self) -> None:
        if not self.start < self.end:
            raise InvalidValue(
                f"busy time {self.id!r} starts at {self.start.isoformat()} but ends at "
                f"{self.end.isoformat()}.",
                "make the start earlier than the end.",
            )


# === end calendar ===
