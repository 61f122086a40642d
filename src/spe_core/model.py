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
import functools
import itertools
import math
import numbers
import re
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar, Generic, TypeVar

import attrs

from spe_core.errors import ConfigError, InvalidValue, SpeError

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)
K = TypeVar("K")
V_co = TypeVar("V_co", covariant=True)
_ZERO = timedelta(0)

__all__ = [
    "ID_RULE",
    "MAX_DURATION",
    "MAX_ID_LENGTH",
    "MAX_TIME",
    "MIN_TIME",
    "Absence",
    "AppointmentRequest",
    "Booking",
    "BookingStatus",
    "Busy",
    "FrozenMap",
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
    "bool_field",
    "check_by",
    "check_duration",
    "check_holidays",
    "check_id",
    "check_id_pairs",
    "check_ids",
    "check_enum",
    "check_instance",
    "check_roles",
    "check_stamped",
    "check_int",
    "check_items",
    "check_number",
    "check_optional",
    "check_optional_time",
    "check_optional_id",
    "check_supplies",
    "check_text",
    "check_time",
    "check_time_zone",
    "external_ids",
    "frozen_strings",
    "id_field",
    "optional_id_field",
    "optional_text_field",
    "times",
    "shown",
    "text_field",
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
                f"{shown(value)} is not an SPE role.",
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
        if type(value) is str:
            found = _OUTCOME_NAMES.get(value)  # the common case: the exact name
            if found is not None:
                return found
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise InvalidValue(
                f"{shown(value)} is not an outcome.",
                f"use one of: {', '.join(o.value for o in cls)}.",
            ) from None


_OUTCOME_NAMES: dict[str, Outcome] = {o.value: o for o in Outcome}


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
        try:
            return value.astimezone(UTC)
        except OverflowError:  # no such instant in UTC (within a day of year 1 or 9999):
            return value  # the field's range check refuses it, naming the field
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


# --- shared validators (one place for every value's checks) ------------------------
#
# Every value and policy checks its fields with these, so a bad value fails where
# it is made, with an error naming the field, the value (shortened) and the fix.

MAX_ID_LENGTH = 200
"""The longest id (in characters) any value accepts: at most 800 bytes of UTF-8,
which every store indexes (PostgreSQL's B-tree entries hold about 2.7 kB, even
for a queue ordered by three text fields)."""

ID_RULE = (
    f"use 1 to {MAX_ID_LENGTH} characters, not all blank, without control characters "
    "(U+0000-U+001F, U+007F-U+009F) or lone surrogates."
)
"""The id rule, as the fix an error about an id gives."""

_ID_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_TEXT_BAD = re.compile("[\x00\ud800-\udfff]")
MAX_DURATION = timedelta(days=3650)
"""The longest duration a policy accepts (ten years): longer ones overflow dates."""


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)``, shortened to about ``limit`` characters for an error message."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
    return f"{text[:limit]}... ({size})"


def _field(instance: object, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(instance).__name__}.{attribute.name}"


_GOOD_IDS: set[str] = set()  # ids already checked (values are rebuilt often: evolve, decode)


def _is_id(value: object) -> bool:
    if type(value) is not str:
        return False
    if value in _GOOD_IDS:
        return True
    if 0 < len(value) <= MAX_ID_LENGTH and _ID_BAD.search(value) is None and not value.isspace():
        if len(_GOOD_IDS) >= 100_000:
            _GOOD_IDS.clear()
        _GOOD_IDS.add(value)
        return True
    return False


def check_id(value: object, name: str, *, error: type[SpeError] = InvalidValue) -> str:
    """Return ``value`` if it follows the id rule (:data:`ID_RULE`), else raise ``error``.

    Every id (members, opportunities, accounts, tasks, requests, busy time,
    external ids, CRM names) follows it, so memory, SQLite and PostgreSQL all
    store and compare the same ids.
    """
    if _is_id(value) or (isinstance(value, str) and _is_id(str(value))):
        return value  # type: ignore[return-value]
    if not isinstance(value, str):
        problem = f"{name} must be a string id, got {type(value).__name__} {shown(value)}."
    elif not value or value.isspace():
        problem = f"{name} must be a non-empty string, got {shown(value)}."
    elif len(value) > MAX_ID_LENGTH:
        problem = f"{name} {shown(value)} is longer than {MAX_ID_LENGTH} characters."
    else:
        bad = _ID_BAD.search(value)
        where = "" if bad is None else f" {bad.group()!r} at position {bad.start()}"
        problem = f"{name} {shown(value)} contains a control character or lone surrogate{where}."
    raise error(problem, ID_RULE)


def check_text(value: object, name: str, *, error: type[SpeError] = InvalidValue) -> str:
    """Return ``value`` if it is a string every store keeps (no NUL, no lone surrogate)."""
    if isinstance(value, str) and _TEXT_BAD.search(value) is None:
        return value
    if not isinstance(value, str):
        problem = f"{name} must be a string, got {type(value).__name__} {shown(value)}."
    else:
        problem = f"{name} {shown(value)} contains a NUL character or a lone surrogate."
    raise error(problem, "remove NUL characters and unpaired surrogates from the text.")


def check_int(
    value: object,
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    error: type[SpeError] = InvalidValue,
    fix: str | None = None,
) -> int:
    """Return ``value`` if it is a whole number (not a bool, not a float) in range."""
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (minimum is None or value >= minimum)
        and (maximum is None or value <= maximum)
    ):
        return value
    span = (
        f" of {minimum} or more"
        if maximum is None and minimum is not None
        else f" from {minimum} to {maximum}"
        if minimum is not None
        else f" up to {maximum}"
        if maximum is not None
        else ""
    )
    raise error(
        f"{name} must be a whole number{span}, got {type(value).__name__} {shown(value)}.",
        fix or f"set {name} to a whole number{span} (not a fraction, not true/false).",
    )


def check_number(
    value: object,
    name: str,
    *,
    positive: bool = False,
    error: type[SpeError] = InvalidValue,
    fix: str | None = None,
) -> float:
    """``value`` as a float if it is a finite real number (not a bool), above 0 if
    ``positive``; else raise ``error``."""
    number: float | None = None
    if isinstance(value, bool):
        pass  # True is not a number here
    elif isinstance(value, numbers.Real):
        try:
            number = float(value)
        except (OverflowError, ValueError):
            number = None
    if number is not None and math.isfinite(number) and (not positive or number > 0):
        return number
    what = "a finite number above 0" if positive else "a finite number"
    raise error(
        f"{name} must be {what}, got {type(value).__name__} {shown(value)}.",
        fix or f"set {name} to {what}.",
    )


def check_duration(
    value: object,
    name: str,
    *,
    positive: bool = True,
    maximum: timedelta = MAX_DURATION,
    error: type[SpeError] = InvalidValue,
    fix: str | None = None,
) -> timedelta:
    """Return ``value`` if it is a timedelta above 0 (or 0 or more) and at most ``maximum``."""
    low_ok = isinstance(value, timedelta) and (value > _ZERO if positive else value >= _ZERO)
    if low_ok and value <= maximum:  # type: ignore[operator]
        return value  # type: ignore[return-value]
    what = "above 0" if positive else "of 0 or more"
    raise error(
        f"{name} must be a duration {what} and at most {maximum.days} days, got "
        f"{type(value).__name__} {shown(value)}.",
        fix or f"set {name} to a timedelta {what}, e.g. timedelta(minutes=30).",
    )


def check_instance(
    value: object, cls: type[T], name: str, *, error: type[SpeError] = InvalidValue
) -> T:
    """Return ``value`` if it is a ``cls``, else raise ``error`` naming ``name``."""
    if isinstance(value, cls):
        return value
    raise error(
        f"{name} must be a {cls.__name__}, got {type(value).__name__} {shown(value)}.",
        f"pass a {cls.__name__}.",
    )


def check_items(
    values: object, cls: type[T], name: str, *, error: type[SpeError] = InvalidValue
) -> tuple[T, ...]:
    """``values`` as a tuple if it is an iterable of ``cls`` (not a string), else ``error``."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise error(
            f"{name} must be a list of {cls.__name__}, got {type(values).__name__} "
            f"{shown(values)}.",
            f"pass a list or tuple of {cls.__name__} values.",
        )
    items = tuple(values)
    for index, item in enumerate(items):
        check_instance(item, cls, f"{name}[{index}]", error=error)
    return items


def check_ids(
    values: object, name: str, *, error: type[SpeError] = InvalidValue
) -> tuple[str, ...]:
    """``values`` as a tuple of ids (an iterable of strings following :data:`ID_RULE`)."""
    items = check_items(values, str, name, error=error)
    for index, item in enumerate(items):
        check_id(item, f"{name}[{index}]", error=error)
    return items


def check_time_zone(value: object, name: str, *, error: type[SpeError] = InvalidValue) -> str:
    """Return ``value`` if it names an IANA time zone known to :mod:`zoneinfo`."""
    fix = "use a name such as 'Europe/Paris', 'America/New_York' or 'UTC'."
    if not _is_id(value):
        raise error(f"{name} {shown(value)} is not an IANA time zone.", fix)
    try:
        zoneinfo.ZoneInfo(value)  # type: ignore[arg-type]
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise error(f"{name} {shown(value)} is not an IANA time zone.", fix) from None
    return value  # type: ignore[return-value]


@functools.lru_cache(maxsize=256)
def _holiday_problem(country: str, subdivision: str | None) -> str | None:
    import holidays

    try:
        holidays.country_holidays(country, subdiv=subdivision)
    except (NotImplementedError, LookupError, ValueError) as exc:
        return str(exc)
    return None


def check_holidays(
    country: object,
    subdivision: object,
    name: str,
    *,
    error: type[SpeError] = InvalidValue,
) -> None:
    """Raise ``error`` unless ``country`` (and ``subdivision``) are known to ``holidays``.

    ``name`` is the owner of the fields (e.g. ``"Member"``); None leaves them off.
    """
    if country is None:
        if subdivision is not None:
            raise error(
                f"{name}.holiday_subdivision {shown(subdivision)} is set without a "
                "holiday_country.",
                "set holiday_country too (e.g. 'DE' with subdivision 'BY'), or neither.",
            )
        return
    check_id(country, f"{name}.holiday_country", error=error)
    if subdivision is not None:
        check_id(subdivision, f"{name}.holiday_subdivision", error=error)
    problem = _holiday_problem(country, subdivision)
    if problem is not None:
        field = "holiday_subdivision" if subdivision is not None else "holiday_country"
        raise error(
            f"{name}.holiday_country {country!r}"
            + (f" with holiday_subdivision {subdivision!r}" if subdivision is not None else "")
            + f" is not known to the holidays package ({problem}; check {field}).",
            "use an ISO 3166 country code such as 'DE', 'FR' or 'US' and one of its "
            "subdivisions such as 'BY' or 'CA' (holidays.list_supported_countries()), "
            "or leave both empty.",
        )


def check_optional(
    value: object, cls: type[T], name: str, *, error: type[SpeError] = InvalidValue
) -> T | None:
    """Return ``value`` if it is None or a ``cls``, else raise ``error``."""
    return None if value is None else check_instance(value, cls, name, error=error)


def check_optional_id(value: object, name: str) -> str | None:
    """Return ``value`` if it is None or an id (:data:`ID_RULE`)."""
    return None if value is None else check_id(value, name)


def check_id_pairs(values: object, name: str) -> tuple[tuple[str, str], ...]:
    """``values`` as a tuple of (id, id) pairs, e.g. (member id, busy id)."""
    pairs = check_items(values, tuple, name)
    for index, pair in enumerate(pairs):
        if len(pair) != 2:
            raise InvalidValue(
                f"{name}[{index}] {shown(pair)} is not a pair of ids.",
                "pass (member id, entry id) pairs.",
            )
        check_id(pair[0], f"{name}[{index}][0]")
        check_id(pair[1], f"{name}[{index}][1]")
    return pairs


def check_supplies(supplies: object) -> None:
    """Check a ``supplies`` argument: None or member id -> attribute names (or None)."""
    if supplies is None:
        return
    if not isinstance(supplies, Mapping):
        raise InvalidValue(
            f"supplies must map member ids to attribute names, got {shown(supplies)}.",
            "pass {member_id: frozenset({'name', 'role'})}, or None.",
        )
    for member_id, names in supplies.items():
        check_id(member_id, "supplies key")
        if names is not None:
            check_items(names, str, f"supplies[{member_id!r}]")
            if not isinstance(names, frozenset | set):
                raise InvalidValue(
                    f"supplies[{member_id!r}] must be a set of attribute names, got "
                    f"{shown(names)}.",
                    "pass a frozenset such as frozenset({'name', 'role'}), or None.",
                )


def check_by(by: object) -> None:
    """Check a ``by`` argument: None, one id, or a mapping from member id to id."""
    if by is None or isinstance(by, str):
        check_optional_id(by, "by")
        return
    if not isinstance(by, Mapping):
        raise InvalidValue(
            f"by must be a name or a mapping from member id to name, got {shown(by)}.",
            "pass by='coordinator-id' or by={'field-member': 'coordinator-id'}.",
        )
    for key, value in by.items():
        check_id(key, "by key")
        check_id(value, f"by[{key!r}]")


MIN_TIME = datetime(1900, 1, 1, tzinfo=UTC)
"""The earliest instant a value or an engine operation accepts."""
MAX_TIME = datetime(9000, 1, 1, tzinfo=UTC)
"""The instant every accepted time is before (calendar arithmetic stays in range)."""


def check_time(value: object, name: str) -> datetime:
    """``value`` if it is a timezone-aware datetime from :data:`MIN_TIME` to before
    :data:`MAX_TIME` (else :class:`InvalidValue`)."""
    if not isinstance(value, datetime):
        raise InvalidValue(
            f"{name} must be a datetime, got {type(value).__name__} {shown(value)}.",
            "pass a timezone-aware datetime such as datetime(2025, 1, 6, 9, tzinfo=UTC).",
        )
    aware(value, name)
    if not MIN_TIME <= value < MAX_TIME:
        raise InvalidValue(
            f"{name} {value.isoformat()} is outside the years 1900 to 8999.",
            "pass a date in that range (for an open end, leave it out or use None).",
        )
    return value


def check_optional_time(value: object, name: str) -> datetime | None:
    """None, or a datetime that passes :func:`check_time`."""
    return None if value is None else check_time(value, name)


def times(instance: object, *required: str, optional: tuple[str, ...] = ()) -> None:
    """Check ``instance``'s datetime fields after :func:`aware_field`: the ``required``
    ones are not None, and all lie in :data:`MIN_TIME`..:data:`MAX_TIME`."""
    for name in (*required, *optional):
        value = getattr(instance, name)
        if value is None and name in required:
            raise InvalidValue(
                f"{type(instance).__name__}.{name} is required, got None.",
                "pass a timezone-aware datetime such as datetime(2025, 1, 6, 9, tzinfo=UTC).",
            )
        if value is not None and not MIN_TIME <= value < MAX_TIME:
            check_time(value, f"{type(instance).__name__}.{name}")


# attrs validators built on the checks above (the name is "Class.field")


def id_field(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: an id (:data:`ID_RULE`)."""
    if not _is_id(value):
        check_id(value, _field(instance, attribute))


def optional_id_field(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: None or an id (:data:`ID_RULE`)."""
    if value is not None and not _is_id(value):
        check_id(value, _field(instance, attribute))


def text_field(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: a string every store keeps (no NUL, no lone surrogate)."""
    check_text(value, _field(instance, attribute))


def optional_text_field(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: None or a string every store keeps."""
    if value is not None:
        check_text(value, _field(instance, attribute))


def bool_field(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """Validator: True or False (not 0, 1 or a string)."""
    if type(value) is not bool:
        raise InvalidValue(
            f"{_field(instance, attribute)} must be True or False, got "
            f"{type(value).__name__} {shown(value)}.",
            f"pass {attribute.name}=True or {attribute.name}=False.",
        )


def _non_empty(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    name = _field(instance, attribute)
    check_text(value, name)
    if not value.strip():  # type: ignore[attr-defined]
        raise InvalidValue(
            f"{name} must be a non-empty string, got {shown(value)}.",
            f"give every {type(instance).__name__.lower()} a non-empty {attribute.name}.",
        )


def _time_zone(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_time_zone(value, _field(instance, attribute))


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidValue(
            f"{_field(instance, attribute)} must be a positive whole number "
            f"or None, got {type(value).__name__} {shown(value)}.",
            "use 1 or more, or None for the policy's default.",
        )


def frozen_strings(values: Iterable[str] | str | None, name: str = "strings") -> frozenset[str]:
    """Convert skills, tags and the like into a frozenset of stripped strings.

    Each string (stripped; empty ones are dropped) must follow the id rule
    (:data:`ID_RULE`); ``name`` is the field named in the error.
    """
    if values is None:
        return frozenset()
    if type(values) is frozenset and all(_is_id(v) and v == v.strip() for v in values):
        return values  # already normalised (the common case when values are evolved)
    if isinstance(values, str):
        values = [values]
    items = check_items(values, str, name)
    out = frozenset(v.strip() for v in items if v.strip())
    for item in out:
        check_id(item, f"{name} item")
    return out


class FrozenMap(Mapping[K, V_co], Generic[K, V_co]):
    """A read-only, hashable mapping: what a value holds where it holds a mapping.

    ``Member.external_ids``, ``Change.values`` and ``SourceRecord.fields`` are
    frozen maps: read them as dicts (``m.external_ids["hubspot"]``,
    ``change.values.get("status")``, ``dict(record.fields)``); they cannot be
    changed, so values holding them stay frozen and hashable (when the mapped
    values are). A frozen map equals any mapping with the same items
    (``FrozenMap({"a": 1}) == {"a": 1}``). Build a changed copy with ``|``::

        ids = member.external_ids | {"hubspot": "7"}

    Items keep the order they were given in (values sort their keys).
    :mod:`spe_core.codec` stores it as a mapping.
    """

    __slots__ = ("_hash", "_items")

    _items: dict[K, V_co]
    _hash: int | None

    def __init__(self, items: Mapping[K, V_co] | Iterable[tuple[K, V_co]] = ()) -> None:
        object.__setattr__(self, "_items", dict(items))
        object.__setattr__(self, "_hash", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"FrozenMap is read-only (cannot set {name!r})")

    def __getitem__(self, key: K) -> V_co:
        return self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __hash__(self) -> int:
        if self._hash is None:
            object.__setattr__(self, "_hash", hash(frozenset(self._items.items())))
        return self._hash  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._items == dict(other.items())
        return NotImplemented

    def __or__(self, other: Mapping[K, Any]) -> FrozenMap[K, Any]:
        if not isinstance(other, Mapping):
            return NotImplemented
        return FrozenMap({**self._items, **other})

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (self._items,))


EMPTY_MAP: FrozenMap[Any, Any] = FrozenMap()


def external_ids(
    values: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> FrozenMap[str, str]:
    """Normalise external ids (CRM name -> record id) into a :class:`FrozenMap`, by CRM name.

    CRM names and record ids follow the id rule (:data:`ID_RULE`); whole-number
    record ids are turned into strings.
    """
    if (
        type(values) is FrozenMap
        and all(type(v) is str and _is_id(k) and _is_id(v) for k, v in values.items())
        and all(a < b for a, b in itertools.pairwise(values))
    ):
        return values  # already normalised: ids, sorted by CRM name
    if values is None or values == () or values == {}:
        return EMPTY_MAP
    if isinstance(values, Mapping):
        pairs: tuple[Any, ...] = tuple(values.items())
    else:
        pairs = check_items(values, tuple, "external_ids")
    out_list = []
    for pair in pairs:
        if len(pair) != 2:
            raise InvalidValue(
                f"external_ids entry {shown(pair)} is not a (CRM, record id) pair.",
                "pass a mapping such as {'salesforce': '00Q1'}.",
            )
        crm, record = pair
        if isinstance(record, int) and not isinstance(record, bool):
            record = str(record)
        check_id(crm, "external_ids CRM name")
        check_id(record, f"external_ids[{crm!r}]")
        out_list.append((str(crm), str(record)))
    out = tuple(sorted(out_list))
    if len({k for k, _ in out}) != len(out):
        raise InvalidValue(
            f"external_ids name the same CRM twice: {shown(out)}.",
            "give at most one record id per CRM.",
        )
    return FrozenMap(out)


def check_stamped(value: Opportunity | Task) -> None:
    """Refuse to store a new opportunity or task whose time the engine has not stamped.

    ``Opportunity.queued_at`` and ``Task.created_at`` may be None only on input:
    the engine stamps its clock's ``now`` before it stores the value.
    """
    name = "queued_at" if isinstance(value, Opportunity) else "created_at"
    if getattr(value, name) is None:
        raise InvalidValue(
            f"{type(value).__name__} {value.id!r} has no {name}, so it cannot be stored.",
            f"hand new values to the engine (it stamps {name} with its clock's now), or "
            f"give {name}.",
        )


def check_enum(
    cls: type[E], value: object, name: str, *, error: type[SpeError] = InvalidValue
) -> E:
    """``value`` as a member of the enum ``cls`` (given as one or by its value), else
    ``error`` naming ``name`` and the allowed values."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        try:
            return cls(value)
        except ValueError:
            pass
    raise error(
        f"{name} {shown(value)} is not a {cls.__name__}.",
        f"use one of: {', '.join(str(m.value) for m in cls)}.",
    )


def check_roles(
    values: object, name: str, *, fix: str, error: type[SpeError] = ConfigError
) -> tuple[Role, ...]:
    """A list of role names (or one) as roles, else ``error`` naming ``name``."""
    if isinstance(values, str | Role):
        values = [values]
    elif not isinstance(values, Iterable):
        raise error(f"{name} must be a list of roles, got {shown(values)}.", fix)
    out = []
    for value in values:
        try:
            out.append(Role.parse(value))
        except InvalidValue as exc:
            raise error(f"{name}: {exc.problem}", exc.fix) from None
    return tuple(out)


# --- places and time ------------------------------------------------------------


def _latitude(value: object) -> float:
    lat = check_number(value, "Location.lat", fix="give a latitude from -90 to 90.")
    if not -90.0 <= lat <= 90.0:
        raise InvalidValue(
            f"Location.lat: latitude {lat} is outside -90..90.", "check the order (lat, lon)."
        )
    return lat


def _longitude(value: object) -> float:
    lon = check_number(value, "Location.lon", fix="give a longitude from -180 to 180.")
    if not -180.0 <= lon <= 180.0:
        raise InvalidValue(
            f"Location.lon: longitude {lon} is outside -180..180.", "check the order (lat, lon)."
        )
    return lon


@attrs.frozen(cache_hash=True)  # travel times are cached per pair of places
class Location:
    """A place on Earth: a customer's site or a field member's home base."""

    lat: float = attrs.field(converter=_latitude)
    lon: float = attrs.field(converter=_longitude)
    address: str | None = attrs.field(default=None, validator=optional_text_field)


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
        check_int(
            self.weekday,
            "DayHours.weekday",
            minimum=0,
            maximum=6,
            fix="use 0 for Monday to 6 for Sunday.",
        )
        check_instance(self.start, time, "DayHours.start")
        check_instance(self.end, time, "DayHours.end")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise InvalidValue(
                "DayHours.start and DayHours.end (working hours) must be local wall-clock "
                "times without tzinfo.",
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
    return check_items(days, DayHours, "WorkingHours.days")


def _absences(items: Iterable[Absence]) -> tuple[Absence, ...]:
    return check_items(items, Absence, "Member.absences")


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
    reason: str = attrs.field(default="out of office", validator=text_field)

    def __attrs_post_init__(self) -> None:
        times(self, "start", "end")
        if not self.start < self.end:
            raise InvalidValue(
                f"absence starts at {self.start.isoformat()} but ends at {self.end.isoformat()}.",
                "make the start earlier than the end.",
            )

    def covers(self, at: datetime) -> bool:
        """True if ``at`` falls inside this absence (start inclusive, end exclusive)."""
        return self.start <= at < self.end


# --- people -------------------------------------------------------------------------


def _skills(values: Iterable[str] | str | None) -> frozenset[str]:
    return frozen_strings(values, "skills")


def _required_skills(values: Iterable[str] | str | None) -> frozenset[str]:
    return frozen_strings(values, "required_skills")


def _excluded(values: Iterable[str] | str | None) -> frozenset[str]:
    return frozen_strings(values, "Opportunity.excluded")


def _member_weight(value: object) -> float:
    return check_number(
        value,
        "Member.weight",
        positive=True,
        fix="use 1.0 for an ordinary share, 0.5 for half, 2.0 for double; "
        "set active=False to take someone out of rotation.",
    )


def _working_hours(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_instance(value, WorkingHours, _field(instance, attribute))


def _optional_location(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        check_instance(value, Location, _field(instance, attribute))


@attrs.frozen
class Member:
    """A person on the sales team, with exactly one :class:`Role`.

    ``wip_limit`` None means "use the queue policy's default". ``weight``
    scales a member's share of routed tasks (2.0 takes twice the share);
    ``task_capacity`` caps their open tasks (None: the routing default).
    Field members have a ``home_base`` (where their day starts and ends) and
    a ``coordinator_id`` (the sales coordinator who fills their calendar).
    """

    id: str = attrs.field(validator=id_field)
    name: str = attrs.field(validator=_non_empty)
    role: Role = attrs.field(converter=to_role)
    skills: frozenset[str] = attrs.field(factory=frozenset, converter=_skills)
    time_zone: str = attrs.field(default="UTC", validator=_time_zone)
    wip_limit: int | None = attrs.field(default=None, validator=_positive_or_none)
    active: bool = attrs.field(default=True, validator=bool_field)
    weight: float = attrs.field(default=1.0, converter=_member_weight)
    task_capacity: int | None = attrs.field(default=None, validator=_positive_or_none)
    working_hours: WorkingHours = attrs.field(
        factory=WorkingHours.weekdays, validator=_working_hours
    )
    absences: tuple[Absence, ...] = attrs.field(default=(), converter=_absences)
    home_base: Location | None = attrs.field(default=None, validator=_optional_location)
    coordinator_id: str | None = attrs.field(default=None, validator=optional_id_field)
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    external_ids: FrozenMap[str, str] = attrs.field(default=EMPTY_MAP, converter=external_ids)
    version: ClassVar[int] = 2
    """Schema version 2: ``external_ids`` is stored as a mapping (version 1: pairs)."""

    def __attrs_post_init__(self) -> None:
        if self.holiday_country is not None or self.holiday_subdivision is not None:
            check_holidays(self.holiday_country, self.holiday_subdivision, "Member")

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The member's time zone as a :class:`zoneinfo.ZoneInfo`."""
        return zoneinfo.ZoneInfo(self.time_zone)

    def external_id(self, crm: str) -> str | None:
        """This member's record id in ``crm`` (e.g. ``"salesforce"``), if known."""
        return self.external_ids.get(crm)


# --- opportunities ------------------------------------------------------------------


def _score(value: object) -> float:
    if type(value) is float and math.isfinite(value):
        return value
    return check_number(
        value,
        "Opportunity.score",
        fix="give a finite number; check the scoring plugin or the CRM field it reads.",
    )


def _opportunity_status(value: object) -> OpportunityStatus:
    return check_enum(OpportunityStatus, value, "Opportunity.status")


def _optional_outcome(value: object) -> Outcome | None:
    if value is None or isinstance(value, Outcome):
        return value
    if isinstance(value, str):
        try:
            return Outcome.parse(value)
        except InvalidValue:
            pass
    return check_enum(Outcome, value, "Opportunity.outcome")


@attrs.frozen(field_transformer=utc_fields)
class Opportunity:
    """A sales opportunity, with where it stands in the flow.

    The first fields describe the opportunity (set by Promotions or read from
    the CRM); the last ones are its state in the pull queue, changed only by
    the engine. ``tier`` and ``score`` rank it (higher first); ``score`` is
    set at enqueue and may be adjusted by scoring plugins.
    """

    id: str = attrs.field(validator=id_field)
    account_id: str = attrs.field(validator=id_field)
    queued_at: datetime | None = attrs.field(default=None, validator=aware_field)
    """When it entered the flow. None only on input: the engine stamps its clock's
    ``now`` when it is handed an opportunity without one (every stored one has it)."""
    source_campaign: str | None = attrs.field(default=None, validator=optional_id_field)
    tier: int = attrs.field(default=0)
    score: float = attrs.field(default=0.0, converter=_score)
    required_skills: frozenset[str] = attrs.field(factory=frozenset, converter=_required_skills)
    not_before: datetime | None = attrs.field(default=None, validator=aware_field)
    expires_at: datetime | None = attrs.field(default=None, validator=aware_field)
    external_ids: FrozenMap[str, str] = attrs.field(default=EMPTY_MAP, converter=external_ids)
    version: ClassVar[int] = 2
    """Schema version 2: ``external_ids`` is stored as a mapping (version 1: pairs)."""
    # state in the flow
    status: OpportunityStatus = attrs.field(
        default=OpportunityStatus.BACKLOG, converter=_opportunity_status
    )
    owner_id: str | None = attrs.field(default=None, validator=optional_id_field)
    released_at: datetime | None = attrs.field(default=None, validator=aware_field)
    lease_expires_at: datetime | None = attrs.field(default=None, validator=aware_field)
    excluded: frozenset[str] = attrs.field(factory=frozenset, converter=_excluded)
    outcome: Outcome | None = attrs.field(default=None, converter=_optional_outcome)
    resolved_at: datetime | None = attrs.field(default=None, validator=aware_field)

    @tier.validator
    def _check_tier(self, _: attrs.Attribute[int], value: int) -> None:
        if type(value) is not int or not -(2**62) <= value < 2**62:
            check_int(
                value,
                "Opportunity.tier",
                minimum=-(2**62),
                maximum=2**62 - 1,
                fix="use 0 (default) and higher whole numbers for better tiers.",
            )

    def __attrs_post_init__(self) -> None:
        later = ("not_before", "expires_at", "released_at", "lease_expires_at", "resolved_at")
        if self.status is OpportunityStatus.BACKLOG:  # new: the engine may stamp queued_at
            times(self, optional=("queued_at", *later))
        else:
            times(self, "queued_at", optional=later)
        released = self.status is OpportunityStatus.RELEASED
        if released != (self.owner_id is not None) and self.status is not (
            OpportunityStatus.RESOLVED
        ):
            raise InvalidValue(
                f"Opportunity {self.id!r} has status {self.status.value} and owner_id "
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
        return self.external_ids.get(crm)


# --- tasks (routing) ----------------------------------------------------------------


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
            f"Task.priority must be 1 (urgent) to 4 (low), got {shown(value)}.",
            "use 1 for urgent, 2 high, 3 normal (default), 4 low.",
        )


def _prior_assignees(values: Iterable[str]) -> tuple[str, ...]:
    return check_ids(values, "Task.prior_assignees")


def _task_status(value: object) -> TaskStatus:
    return check_enum(TaskStatus, value, "Task.status")


def _queue_role(value: object) -> Role | None:
    if value is None or isinstance(value, Role):
        return value
    if isinstance(value, str):
        try:
            return Role.parse(value)
        except InvalidValue:
            pass
    return check_enum(Role, value, "Task.queue_role")


def _escalations(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_int(value, "Task.escalations", minimum=0)


def _task_weight(value: object) -> float:
    if type(value) is float and math.isfinite(value) and value > 0:
        return value
    return check_number(value, "Task.weight", positive=True, fix="use 1.0 for an ordinary task.")


@attrs.frozen(field_transformer=utc_fields)
class Task:
    """A piece of transactional work, routed to a specialist, never to a salesperson.

    The first fields describe the work; the last ones are its routing state,
    changed only by the engine. ``prior_assignees`` records everyone it was
    ever routed to, so re-routing never bounces between the same people.
    """

    id: str = attrs.field(validator=id_field)
    kind: str = attrs.field(validator=id_field)
    account_id: str = attrs.field(validator=id_field)
    created_at: datetime | None = attrs.field(default=None, validator=aware_field)
    """When the work arose. None only on input: the engine stamps its clock's ``now``
    when it is handed a task without one (every stored one has it)."""
    opportunity_id: str | None = attrs.field(default=None, validator=optional_id_field)
    priority: int = attrs.field(default=3, validator=_priority)
    due_at: datetime | None = attrs.field(default=None, validator=aware_field)
    required_skills: frozenset[str] = attrs.field(factory=frozenset, converter=_required_skills)
    external_ids: FrozenMap[str, str] = attrs.field(default=EMPTY_MAP, converter=external_ids)
    version: ClassVar[int] = 2
    """Schema version 2: ``external_ids`` is stored as a mapping (version 1: pairs)."""
    # routing state
    status: TaskStatus = attrs.field(default=TaskStatus.UNASSIGNED, converter=_task_status)
    queue_role: Role | None = attrs.field(default=None, converter=_queue_role)
    assignee_id: str | None = attrs.field(default=None, validator=optional_id_field)
    assigned_at: datetime | None = attrs.field(default=None, validator=aware_field)
    accept_by: datetime | None = attrs.field(default=None, validator=aware_field)
    complete_by: datetime | None = attrs.field(default=None, validator=aware_field)
    accepted_at: datetime | None = attrs.field(default=None, validator=aware_field)
    completed_at: datetime | None = attrs.field(default=None, validator=aware_field)
    prior_assignees: tuple[str, ...] = attrs.field(default=(), converter=_prior_assignees)
    unassigned_reason: str | None = attrs.field(default=None, validator=optional_text_field)
    escalations: int = attrs.field(default=0, validator=_escalations)
    weight: float = attrs.field(default=1.0, converter=_task_weight)
    """The task's share of its assignee's load (set from its route when routed)."""

    def __attrs_post_init__(self) -> None:
        later = ("due_at", "assigned_at", "accept_by", "complete_by", "accepted_at", "completed_at")
        if self.status is TaskStatus.UNASSIGNED:  # new: the engine may stamp created_at
            times(self, optional=("created_at", *later))
        else:
            times(self, "created_at", optional=later)
        holding = self.status in OPEN_TASK_STATUSES
        if holding != (self.assignee_id is not None) and self.status is not (TaskStatus.COMPLETED):
            raise InvalidValue(
                f"Task {self.id!r} has status {self.status.value} and assignee_id "
                f"{self.assignee_id!r}: "
                "only assigned, accepted and completed tasks have an assignee.",
                "let the engine route tasks.",
            )

    @property
    def is_open(self) -> bool:
        """True while the task is assigned or accepted."""
        return self.status in OPEN_TASK_STATUSES

    def external_id(self, crm: str) -> str | None:
        """This task's record id in ``crm``, if known."""
        return self.external_ids.get(crm)


# --- calendar (appointments and busy time) ------------------------------------------


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
            f"most 12 hours, got {shown(value)}.",
            "pass a timedelta such as timedelta(minutes=60).",
        )


def _meeting_mode(value: object) -> MeetingMode:
    return check_enum(MeetingMode, value, "AppointmentRequest.mode")


def _booking_status(value: object) -> BookingStatus:
    return check_enum(BookingStatus, value, "Booking.status")


def _request(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_instance(value, AppointmentRequest, _field(instance, attribute))


@attrs.frozen(field_transformer=utc_fields)
class TimeWindow:
    """A stretch of time (start inclusive, end exclusive), e.g. when a customer can meet."""

    start: datetime = attrs.field(validator=aware_field)
    end: datetime = attrs.field(validator=aware_field)

    def __attrs_post_init__(self) -> None:
        times(self, "start", "end")
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
    windows = check_items(items, TimeWindow, "AppointmentRequest.windows")
    return tuple(sorted(windows, key=lambda w: (w.start, w.end)))


@attrs.frozen(field_transformer=utc_fields)
class AppointmentRequest:
    """A meeting a sales coordinator has to place in a salesperson's calendar.

    In-person meetings need the customer's ``location`` and go to field
    salespeople only; conference calls need none. The meeting must start at
    or after ``earliest`` and end by ``deadline``; when ``windows`` are given
    (the customer's availability) it must also lie inside one of them.
    """

    id: str = attrs.field(validator=id_field)
    account_id: str = attrs.field(validator=id_field)
    duration: timedelta = attrs.field(validator=_duration)
    mode: MeetingMode = attrs.field(converter=_meeting_mode)
    earliest: datetime = attrs.field(validator=aware_field)
    deadline: datetime = attrs.field(validator=aware_field)
    location: Location | None = attrs.field(default=None, validator=_optional_location)
    windows: tuple[TimeWindow, ...] = attrs.field(default=(), converter=_windows)
    required_skills: frozenset[str] = attrs.field(factory=frozenset, converter=_required_skills)
    opportunity_id: str | None = attrs.field(default=None, validator=optional_id_field)
    external_ids: FrozenMap[str, str] = attrs.field(default=EMPTY_MAP, converter=external_ids)
    version: ClassVar[int] = 2
    """Schema version 2: ``external_ids`` is stored as a mapping (version 1: pairs)."""

    def __attrs_post_init__(self) -> None:
        times(self, "earliest", "deadline")
        if self.deadline - self.earliest < self.duration:
            raise InvalidValue(
                f"appointment request {self.id!r} lasts {self.duration} (duration) but its "
                f"range (earliest..deadline) {self.earliest.isoformat()}.."
                f"{self.deadline.isoformat()} is shorter.",
                "move the deadline later or the earliest start sooner.",
            )
        if self.mode is MeetingMode.IN_PERSON and self.location is None:
            raise InvalidValue(
                f"appointment request {self.id!r} is in person but has no location "
                "(mode in_person, location None).",
                "give the customer's site as location=Location(lat, lon), or make it a "
                "conference call.",
            )

    @property
    def in_person(self) -> bool:
        """True for a meeting at the customer's site."""
        return self.mode is MeetingMode.IN_PERSON

    def external_id(self, crm: str) -> str | None:
        """This request's record id in ``crm``, if known."""
        return self.external_ids.get(crm)


@attrs.frozen(field_transformer=utc_fields)
class Booking:
    """An appointment request placed in one member's calendar.

    A booking's id is its request's id: a request holds at most one slot at a
    time. ``by`` is the sales coordinator (or process) who made the booking;
    ``booked_at`` is when, which the minimum-notice rule for calls reads.
    """

    request: AppointmentRequest = attrs.field(validator=_request)
    member_id: str = attrs.field(validator=id_field)
    start: datetime = attrs.field(validator=aware_field)
    by: str = attrs.field(validator=id_field)
    booked_at: datetime = attrs.field(validator=aware_field)
    status: BookingStatus = attrs.field(default=BookingStatus.BOOKED, converter=_booking_status)
    external_ids: FrozenMap[str, str] = attrs.field(default=EMPTY_MAP, converter=external_ids)
    version: ClassVar[int] = 2
    """Schema version 2: ``external_ids`` is stored as a mapping (version 1: pairs)."""

    def __attrs_post_init__(self) -> None:
        times(self, "start", "booked_at")

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
        return self.external_ids.get(crm)


@attrs.frozen(field_transformer=utc_fields)
class Busy:
    """Time a member's calendar already has taken (read from the CRM or entered by hand).

    Busy time has no known place: the travel rule lets a member travel
    around it, never through it. ``id`` identifies it in its source so a
    re-read replaces rather than duplicates it.
    """

    id: str = attrs.field(validator=id_field)
    member_id: str = attrs.field(validator=id_field)
    start: datetime = attrs.field(validator=aware_field)
    end: datetime = attrs.field(validator=aware_field)
    reason: str = attrs.field(default="busy", validator=text_field)

    def __attrs_post_init__(self) -> None:
        times(self, "start", "end")
        if not self.start < self.end:
            raise InvalidValue(
                f"busy time {self.id!r} starts at {self.start.isoformat()} but ends at "
                f"{self.end.isoformat()}.",
                "make the start earlier than the end.",
            )
