"""Pull-queue rules: pure functions of values and a time passed in.

Promotions tops the queue (the buffer) up from its backlog every morning;
inside salespeople pull the best eligible opportunity when they have room.
Nothing here reads a clock, a store or the network: the engine feeds these
rules and persists what they decide.

The order of the queue is a tuple of :class:`SortField` (default: tier desc,
score desc, queued_at asc, id asc). :func:`rank_key` encodes that order into
bytes whose plain byte order is the queue order, so every store can keep the
queue in one index and a pull is one indexed claim.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs

from spe_core.errors import ConfigError, RoleMayNotPull, WrongOwner, WrongState
from spe_core.events import (
    Event,
    LeaseExpired,
    OpportunityExpired,
    OpportunityGivenBack,
    OpportunityQueued,
    OpportunityReleased,
    OpportunityReranked,
    OpportunityResolved,
    OpportunityStale,
    OpportunityWithdrawn,
    _trusted_maker,
)
from spe_core.model import (
    MAX_TIME,
    MIN_TIME,
    Member,
    Opportunity,
    OpportunityStatus,
    Outcome,
    Role,
    check_duration,
    check_int,
    check_number,
    check_roles,
    shown,
)
from spe_core.model import _is_id as _is_id

__all__ = [
    "DEFAULT_ORDER",
    "PullAllowance",
    "QueuePolicy",
    "ReplenishmentPlan",
    "SortField",
    "Transition",
    "Zone",
    "buffer_zone",
    "check_may_pull",
    "enter_queue",
    "expire",
    "expire_lease",
    "give_back",
    "ineligibility",
    "is_eligible",
    "is_expired",
    "is_stale",
    "lease_deadline",
    "lease_has_expired",
    "parse_order",
    "plan_replenishment",
    "pull_allowance",
    "pull_day",
    "rank_key",
    "release",
    "rerank",
    "resolve",
    "retire_stale",
    "withdraw",
]

SORTABLE_FIELDS = (
    "tier",
    "score",
    "queued_at",
    "id",
    "account_id",
    "source_campaign",
    "not_before",
    "expires_at",
)


@attrs.frozen
class SortField:
    """One key of the queue order: an :class:`Opportunity` attribute and a direction."""

    name: str
    descending: bool = False

    def __attrs_post_init__(self) -> None:
        if type(self.descending) is not bool:
            raise ConfigError(
                f"SortField.descending must be True or False, got {shown(self.descending)}.",
                "pass descending=True or False (or prefix the name with '-').",
            )
        if not isinstance(self.name, str) or self.name not in SORTABLE_FIELDS:
            raise ConfigError(
                f"the queue cannot be ordered by {shown(self.name)} (SortField.name).",
                f"order by any of: {', '.join(SORTABLE_FIELDS)} "
                "(prefix a name with '-' for descending).",
            )

    def __str__(self) -> str:
        return f"-{self.name}" if self.descending else self.name


def parse_order(spec: Iterable[str | SortField]) -> tuple[SortField, ...]:
    """Parse an order such as ``["-tier", "-score", "queued_at"]``.

    ``id`` ascending is appended when missing, so the order is total and every
    store breaks ties the same way.
    """
    if isinstance(spec, str) or not isinstance(spec, Iterable):
        raise ConfigError(
            f"QueuePolicy.order must be a list of field names, got {shown(spec)}.",
            'write the order as a list, e.g. ["-tier", "-score", "queued_at"].',
        )
    fields: list[SortField] = []
    for item in spec:
        if isinstance(item, SortField):
            fields.append(item)
            continue
        if not isinstance(item, str):
            raise ConfigError(
                f"QueuePolicy.order item {shown(item)} is not a field name.",
                f"order by any of: {', '.join(SORTABLE_FIELDS)} (as strings).",
            )
        text = item.strip()
        descending = text.startswith("-")
        fields.append(SortField(text.lstrip("+-").strip(), descending))
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise ConfigError(
            f"the queue order names a field twice: {[str(f) for f in fields]}.",
            "name each field once.",
        )
    if "id" not in names:
        fields.append(SortField("id"))
    return tuple(fields)


DEFAULT_ORDER: tuple[SortField, ...] = parse_order(["-tier", "-score", "queued_at", "id"])


class Zone(enum.StrEnum):
    """Buffer zone of the queue level against its target (Theory of Constraints)."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


def _policy_duration(value: object, name: str) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    seconds = check_number(
        value,
        f"QueuePolicy.{name}",
        error=ConfigError,
        fix=f"give {name} as a timedelta or a number of seconds, or None to switch it off.",
    )
    if abs(seconds) > _MAX_SECONDS:
        raise ConfigError(
            f"QueuePolicy.{name} {shown(value)} seconds is longer than ten years.",
            f"give a shorter {name}, or None to switch it off.",
        )
    return timedelta(seconds=seconds)


_MAX_SECONDS = 3650 * 86_400


def _lease(value: timedelta | float | int | None) -> timedelta | None:
    return _policy_duration(value, "lease")


def _stale_age(value: timedelta | float | int | None) -> timedelta | None:
    return _policy_duration(value, "stale_age")


def _roles(roles: Iterable[str | Role]) -> frozenset[Role]:
    return frozenset(
        check_roles(
            roles,
            "QueuePolicy.pull_roles",
            fix="write pull_roles as a list, e.g. ['inside_sales'].",
        )
    )


_MAX_COUNT = 2**31 - 1  # what every store's INTEGER column holds


@attrs.frozen
class QueuePolicy:
    """How the pull queue behaves. Every number has an SPE-minded default.

    ``lease``: how long a pulled opportunity stays with its member before it
    goes back to the queue (None: never). ``stale_age``: how long an
    opportunity may wait in the queue before it goes back to nurture (None:
    forever). ``daily_pull_cap``: pulls per member per local day (None: no cap).
    """

    target: int = 100
    green_above: float = 2 / 3
    red_below: float = 1 / 3
    lease: timedelta | None = attrs.field(default=timedelta(hours=4), converter=_lease)
    stale_age: timedelta | None = attrs.field(default=timedelta(days=14), converter=_stale_age)
    default_wip_limit: int = 3
    daily_pull_cap: int | None = 30
    pull_roles: frozenset[Role] = attrs.field(
        default=frozenset({Role.INSIDE_SALES}), converter=_roles
    )
    order: tuple[SortField, ...] = attrs.field(default=DEFAULT_ORDER, converter=parse_order)

    def __attrs_post_init__(self) -> None:
        check_int(
            self.target,
            "QueuePolicy.target",
            minimum=0,
            maximum=_MAX_COUNT,
            error=ConfigError,
            fix="set [queue] target to the number of opportunities the buffer should hold.",
        )
        for fraction in ("red_below", "green_above"):
            check_number(
                getattr(self, fraction),
                f"QueuePolicy.{fraction}",
                error=ConfigError,
                fix="use fractions of the target, e.g. red_below = 0.333, green_above = 0.667.",
            )
        if not 0 <= self.red_below <= self.green_above <= 1:
            raise ConfigError(
                f"zone thresholds red_below={self.red_below} and green_above="
                f"{self.green_above} must satisfy 0 <= red_below <= green_above <= 1.",
                "use fractions of the target, e.g. red_below = 0.333, green_above = 0.667.",
            )
        for name in ("lease", "stale_age"):
            value = getattr(self, name)
            if value is not None:
                check_duration(
                    value,
                    f"QueuePolicy.{name} (queue {name})",
                    error=ConfigError,
                    fix=f"give a positive duration, or None to switch the {name} off.",
                )
        check_int(
            self.default_wip_limit,
            "QueuePolicy.default_wip_limit",
            minimum=1,
            maximum=_MAX_COUNT,
            error=ConfigError,
            fix="allow each member at least one opportunity in progress (a whole number).",
        )
        if self.daily_pull_cap is not None:
            check_int(
                self.daily_pull_cap,
                "QueuePolicy.daily_pull_cap",
                minimum=1,
                maximum=_MAX_COUNT,
                error=ConfigError,
                fix="use a whole number of 1 or more, or None for no cap.",
            )
        if not self.pull_roles:
            raise ConfigError(
                "no role may pull from the queue (QueuePolicy.pull_roles is empty).",
                "set pull_roles, e.g. ['inside_sales'].",
            )

    def wip_limit(self, member: Member) -> int:
        """The member's own WIP limit, or the policy default."""
        return member.wip_limit if member.wip_limit is not None else self.default_wip_limit


# --- ordering ------------------------------------------------------------------------

_SIGN = 1 << 63


def _encode_int(value: int) -> bytes:
    if not -_SIGN <= value < _SIGN:
        raise ConfigError(f"{value} does not fit the queue's 64-bit rank.", "use smaller numbers.")
    return (value + _SIGN).to_bytes(8, "big")


def _encode_float(value: float) -> bytes:
    (bits,) = struct.unpack(">Q", struct.pack(">d", value + 0.0))  # +0.0 folds -0.0 into 0.0
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits & _SIGN else bits | _SIGN
    return int(bits).to_bytes(8, "big")


def _encode_text(value: str) -> bytes:
    return value.encode("utf-8").replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def _encode_datetime(value: datetime) -> bytes:
    delta = value - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return _encode_int(micros)


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def _encode(value: object) -> bytes:
    if value is None:
        return b"\x00"
    if isinstance(value, bool):
        return b"\x01" + _encode_int(int(value))
    if isinstance(value, int):
        return b"\x01" + _encode_int(value)
    if isinstance(value, float):
        return b"\x01" + _encode_float(value)
    if isinstance(value, datetime):
        return b"\x01" + _encode_datetime(value)
    if isinstance(value, str):
        return b"\x01" + _encode_text(value)
    raise ConfigError(
        f"cannot order the queue by a {type(value).__name__}.",
        "order by numbers, text or datetimes.",
    )


_INVERT = bytes(255 - i for i in range(256))


def rank_key(opportunity: Opportunity, order: Sequence[SortField] = DEFAULT_ORDER) -> bytes:
    """Bytes whose byte order is the queue order of ``opportunity`` (smaller first).

    Missing values (None) sort first in ascending fields and last in
    descending ones.
    """
    parts = []
    for field in order:
        encoded = _encode(getattr(opportunity, field.name))
        parts.append(encoded.translate(_INVERT) if field.descending else encoded)
    return b"".join(parts)


# --- pulling ---------------------------------------------------------------------------


@attrs.frozen
class PullAllowance:
    """How many opportunities a member may pull now, and why not more."""

    count: int
    reason: str | None = None


def check_may_pull(member: Member, policy: QueuePolicy) -> None:
    """Raise :class:`RoleMayNotPull` if the member's role may not pull."""
    if member.role not in policy.pull_roles:
        raise RoleMayNotPull(
            member.id, member.role.value, tuple(sorted(r.value for r in policy.pull_roles))
        )


def pull_day(member: Member, now: datetime) -> date:
    """The member's local calendar day at ``now`` (the daily cap counts per local day)."""
    return now.astimezone(member.zone).date()


def pull_allowance(
    member: Member,
    policy: QueuePolicy,
    *,
    held: int,
    pulled_today: int,
    requested: int = 1,
) -> PullAllowance:
    """How many of ``requested`` opportunities the member may pull right now.

    ``held``: opportunities the member holds (released, unresolved);
    ``pulled_today``: pulls already made on the member's local day.
    """
    check_may_pull(member, policy)
    if requested < 1:
        raise WrongState(f"asked to pull {requested} opportunities.", "ask for 1 or more.")
    if not member.active:
        return PullAllowance(0, f"member {member.id!r} is inactive")
    limit = policy.wip_limit(member)
    room = limit - held
    if room <= 0:
        return PullAllowance(0, f"at WIP limit: holds {held} of {limit}")
    reason: str | None = None
    count = min(requested, room)
    if count < requested:
        reason = f"WIP limit {limit} leaves room for {room}"
    if policy.daily_pull_cap is not None:
        left = policy.daily_pull_cap - pulled_today
        if left <= 0:
            return PullAllowance(
                0, f"daily pull cap reached: {pulled_today} of {policy.daily_pull_cap} today"
            )
        if left < count:
            count = left
            reason = f"daily pull cap leaves {left} today"
    return PullAllowance(count, reason)


def ineligibility(opportunity: Opportunity, member: Member, now: datetime) -> str | None:
    """Why ``member`` may not pull ``opportunity`` at ``now``; None if they may."""
    if opportunity.status is not OpportunityStatus.QUEUED:
        return f"it is {opportunity.status.value}, not queued"
    if opportunity.not_before is not None and now < opportunity.not_before:
        return f"not before {opportunity.not_before.isoformat()}"
    if opportunity.expires_at is not None and now >= opportunity.expires_at:
        return f"expired at {opportunity.expires_at.isoformat()}"
    if member.id in opportunity.excluded:
        return "the member gave it back before"
    missing = opportunity.required_skills - member.skills
    if missing:
        return f"needs skills the member lacks: {', '.join(sorted(missing))}"
    return None


def is_eligible(opportunity: Opportunity, member: Member, now: datetime) -> bool:
    """True if ``member`` may pull ``opportunity`` at ``now`` (see :func:`ineligibility`)."""
    if opportunity.status is not OpportunityStatus.QUEUED:
        return False
    if opportunity.not_before is not None and now < opportunity.not_before:
        return False
    if opportunity.expires_at is not None and now >= opportunity.expires_at:
        return False
    if member.id in opportunity.excluded:
        return False
    return opportunity.required_skills <= member.skills


def lease_deadline(now: datetime, policy: QueuePolicy) -> datetime | None:
    """When a lease taken at ``now`` runs out (None: never)."""
    return None if policy.lease is None else now + policy.lease


# --- transitions ---------------------------------------------------------------------

#: The fields a transition changes (the opportunity's state in the flow).
_STATE_FIELDS = frozenset(
    {"status", "owner_id", "released_at", "lease_expires_at", "excluded", "outcome", "resolved_at"}
)


#: The state fields in the order :func:`_with_state` takes them.
_STATE_ORDER = (
    "status",
    "owner_id",
    "released_at",
    "lease_expires_at",
    "excluded",
    "outcome",
    "resolved_at",
)


def _make_state_copier() -> Any:
    """A function copying an Opportunity with new state fields (given positionally, in
    :data:`_STATE_ORDER`), field by field, without running the class's converters and
    validators again (generated once)."""
    names = [f.name for f in attrs.fields(Opportunity)]
    lines = [f"def copy(o, {', '.join(_STATE_ORDER)}):", "    n = new(Opportunity)"]
    scope: dict[str, Any] = {"new": object.__new__, "Opportunity": Opportunity}
    for name in names:
        scope[f"set_{name}"] = Opportunity.__dict__[name].__set__
        if name in _STATE_FIELDS:
            lines.append(f"    set_{name}(n, {name})")
        else:
            lines.append(f"    set_{name}(n, o.{name})")
    lines.append("    return n")
    exec("\n".join(lines), scope)  # generated from the class's own field names
    return scope["copy"]


_NO_IDS: frozenset[str] = frozenset()
_RELEASED = OpportunityStatus.RELEASED
_RESOLVED = OpportunityStatus.RESOLVED
_copy_state = _make_state_copier()


def _trusted_time(value: object) -> bool:
    """True for None or a UTC datetime inside the model's range (what the model would
    store unchanged)."""
    return value is None or (
        type(value) is datetime and value.tzinfo is UTC and MIN_TIME <= value < MAX_TIME
    )


def _with_state(
    opportunity: Opportunity,
    status: OpportunityStatus,
    owner_id: str | None,
    released_at: datetime | None,
    lease_expires_at: datetime | None,
    excluded: frozenset[str],
    outcome: Outcome | None,
    resolved_at: datetime | None,
) -> Opportunity:
    """``opportunity`` with every state field given (see :func:`_evolve`, which this is
    with all the state fields set, without building a dict of them)."""
    if (
        type(opportunity) is Opportunity
        and opportunity.queued_at is not None
        and type(status) is OpportunityStatus
        and (
            released_at is None
            or (
                type(released_at) is datetime
                and released_at.tzinfo is UTC
                and MIN_TIME <= released_at < MAX_TIME
            )
        )
        and (lease_expires_at is None or _trusted_time(lease_expires_at))
        and (resolved_at is None or _trusted_time(resolved_at))
        and (owner_id is None or _is_id(owner_id))
        and (outcome is None or type(outcome) is Outcome)
        and type(excluded) is frozenset
    ):
        return _copy_state(  # type: ignore[no-any-return]
            opportunity,
            status,
            owner_id,
            released_at,
            lease_expires_at,
            excluded,
            outcome,
            resolved_at,
        )
    return attrs.evolve(
        opportunity,
        status=status,
        owner_id=owner_id,
        released_at=released_at,
        lease_expires_at=lease_expires_at,
        excluded=excluded,
        outcome=outcome,
        resolved_at=resolved_at,
    )


def _evolve(opportunity: Opportunity, **changes: Any) -> Opportunity:
    """``attrs.evolve(opportunity, **changes)`` for a transition's state changes.

    A transition changes only state fields, with values it built itself: a status,
    a member's id (valid: members are checked when they are made), an
    :class:`Outcome`, a set of ids, and times that are the rule's ``now`` or derived
    from it. When every changed value is already in the form the model stores, the
    copy skips the converters and validators of the fields it does not change (they
    ran when ``opportunity`` was made); anything else goes through ``attrs.evolve``
    and the model's full checks.
    """
    if type(changes.get("status")) is not OpportunityStatus or not changes.keys() <= (
        _STATE_FIELDS
    ):
        return attrs.evolve(opportunity, **changes)
    o, get = opportunity, changes.get
    return _with_state(
        o,
        changes["status"],
        get("owner_id", o.owner_id),
        get("released_at", o.released_at),
        get("lease_expires_at", o.lease_expires_at),
        get("excluded", o.excluded),
        get("outcome", o.outcome),
        get("resolved_at", o.resolved_at),
    )


@attrs.frozen
class Transition:
    """A rule's decision: the opportunity's new state and the event recording it."""

    opportunity: Opportunity
    event: Event


def enter_queue(
    opportunity: Opportunity, now: datetime, score: float, *, from_backlog: bool
) -> Transition:
    """Put a backlog (or new) opportunity into the queue at ``now`` with ``score``."""
    if opportunity.status not in (OpportunityStatus.BACKLOG, OpportunityStatus.QUEUED) and (
        from_backlog
    ):
        raise WrongState(
            f"opportunity {opportunity.id!r} is {opportunity.status.value}, not in the backlog.",
            "only backlog opportunities can be moved into the queue by replenishment.",
        )
    queued = attrs.evolve(
        opportunity,
        status=OpportunityStatus.QUEUED,
        score=score,
        queued_at=now if from_backlog or opportunity.queued_at is None else opportunity.queued_at,
        owner_id=None,
        released_at=None,
        lease_expires_at=None,
        outcome=None,
        resolved_at=None,
    )
    return Transition(
        queued, OpportunityQueued(at=now, opportunity=queued, from_backlog=from_backlog)
    )


def release(
    opportunity: Opportunity, member: Member, now: datetime, policy: QueuePolicy
) -> Transition:
    """Release ``opportunity`` to ``member`` under a lease (it must be eligible)."""
    reason = ineligibility(opportunity, member, now)
    if reason is not None:
        raise WrongState(
            f"opportunity {opportunity.id!r} cannot be released to {member.id!r}: {reason}.",
            "pull through the engine, which only releases eligible opportunities.",
        )
    return _release(opportunity, member.id, now, lease_deadline(now, policy))


_released_event = _trusted_maker(OpportunityReleased)
_resolved_event = _trusted_maker(OpportunityResolved)


def _release(
    opportunity: Opportunity, member_id: str, now: datetime, deadline: datetime | None
) -> Transition:
    """:func:`release` of an opportunity known to be eligible (the engine checked it)."""
    o = opportunity
    released = _with_state(
        o, _RELEASED, member_id, now, deadline, o.excluded, o.outcome, o.resolved_at
    )
    if (
        type(now) is datetime
        and now.tzinfo is UTC
        and MIN_TIME <= now < MAX_TIME
        and (deadline is None or _trusted_time(deadline))
    ):
        event = _released_event(
            at=now, opportunity_id=o.id, member_id=member_id, lease_expires_at=deadline
        )
    else:
        event = OpportunityReleased(
            at=now, opportunity_id=o.id, member_id=member_id, lease_expires_at=deadline
        )
    return Transition(released, event)


def _unreleased(opportunity: Opportunity, status: OpportunityStatus, **changes: Any) -> Opportunity:
    """``opportunity`` in ``status`` with no holder and no lease."""
    return _evolve(
        opportunity,
        status=status,
        owner_id=None,
        released_at=None,
        lease_expires_at=None,
        **changes,
    )


def _check_holder(opportunity: Opportunity, member_id: str, action: str) -> None:
    if opportunity.status is not OpportunityStatus.RELEASED:
        raise WrongState(
            f"cannot {action} opportunity {opportunity.id!r}: it is "
            f"{opportunity.status.value}, not released.",
            "only an opportunity a member holds can be resolved or given back; "
            "its lease may have expired (see its events).",
        )
    if opportunity.owner_id != member_id:
        raise WrongOwner(
            f"cannot {action} opportunity {opportunity.id!r} as {member_id!r}: it is "
            f"released to {opportunity.owner_id!r}.",
            "act as the member who pulled it.",
        )


def resolve(
    opportunity: Opportunity, member_id: str, outcome: Outcome | str, now: datetime
) -> Transition:
    """The holder closes the opportunity with ``outcome``."""
    o = opportunity
    _check_holder(o, member_id, "resolve")
    result = outcome if type(outcome) is Outcome else Outcome.parse(outcome)
    resolved = _with_state(o, _RESOLVED, o.owner_id, o.released_at, None, o.excluded, result, now)
    if _trusted_time(now):
        event = _resolved_event(at=now, opportunity_id=o.id, member_id=member_id, outcome=result)
    else:
        event = OpportunityResolved(
            at=now, opportunity_id=o.id, member_id=member_id, outcome=result
        )
    return Transition(resolved, event)


def give_back(
    opportunity: Opportunity, member_id: str, now: datetime, reason: str = ""
) -> Transition:
    """The holder hands the opportunity back; they may not pull it again."""
    _check_holder(opportunity, member_id, "give back")
    returned = _unreleased(
        opportunity, OpportunityStatus.QUEUED, excluded=opportunity.excluded | {member_id}
    )
    return Transition(
        returned,
        OpportunityGivenBack(
            at=now, opportunity_id=opportunity.id, member_id=member_id, reason=reason
        ),
    )


def lease_has_expired(opportunity: Opportunity, now: datetime) -> bool:
    """True if ``opportunity`` is released and its lease ran out by ``now``."""
    return (
        opportunity.status is OpportunityStatus.RELEASED
        and opportunity.lease_expires_at is not None
        and opportunity.lease_expires_at <= now
    )


def expire_lease(opportunity: Opportunity, now: datetime) -> Transition:
    """Send an opportunity whose lease ran out back to the queue."""
    holder = opportunity.owner_id
    if holder is None or not lease_has_expired(opportunity, now):
        raise WrongState(
            f"opportunity {opportunity.id!r}'s lease has not run out at {now.isoformat()}.",
            "expire leases through Engine.expire_leases.",
        )
    returned = _unreleased(opportunity, OpportunityStatus.QUEUED)
    return Transition(
        returned,
        LeaseExpired(at=now, opportunity_id=opportunity.id, member_id=holder),
    )


def is_stale(opportunity: Opportunity, now: datetime, policy: QueuePolicy) -> bool:
    """True if a queued opportunity waited longer than the policy's stale age."""
    return (
        policy.stale_age is not None
        and opportunity.status is OpportunityStatus.QUEUED
        and opportunity.queued_at is not None
        and now - opportunity.queued_at >= policy.stale_age
    )


def retire_stale(opportunity: Opportunity, now: datetime, policy: QueuePolicy) -> Transition:
    """Send a stale queued opportunity back to nurture."""
    queued_at = opportunity.queued_at
    if queued_at is None or not is_stale(opportunity, now, policy):
        raise WrongState(
            f"opportunity {opportunity.id!r} is not stale at {now.isoformat()}.",
            "retire stale opportunities through Engine.retire_stale.",
        )
    return Transition(
        _evolve(opportunity, status=OpportunityStatus.NURTURE),
        OpportunityStale(at=now, opportunity_id=opportunity.id, queued_at=queued_at),
    )


def is_expired(opportunity: Opportunity, now: datetime) -> bool:
    """True if a queued or backlog opportunity passed its ``expires_at``."""
    return (
        opportunity.status in (OpportunityStatus.QUEUED, OpportunityStatus.BACKLOG)
        and opportunity.expires_at is not None
        and opportunity.expires_at <= now
    )


def expire(opportunity: Opportunity, now: datetime) -> Transition:
    """Retire an opportunity that passed its ``expires_at`` unpulled."""
    expires_at = opportunity.expires_at
    if expires_at is None or not is_expired(opportunity, now):
        raise WrongState(
            f"opportunity {opportunity.id!r} has not expired at {now.isoformat()}.",
            "expire opportunities through Engine.retire_stale.",
        )
    return Transition(
        _evolve(opportunity, status=OpportunityStatus.EXPIRED),
        OpportunityExpired(at=now, opportunity_id=opportunity.id, expires_at=expires_at),
    )


def withdraw(opportunity: Opportunity, now: datetime, reason: str) -> Transition:
    """Take an opportunity out of SPE's flow after a person changed it in the CRM."""
    if opportunity.status in (OpportunityStatus.RESOLVED, OpportunityStatus.WITHDRAWN):
        raise WrongState(
            f"opportunity {opportunity.id!r} is already {opportunity.status.value}.",
            "only open opportunities (backlog, queued, released) can be withdrawn.",
        )
    return Transition(
        _unreleased(opportunity, OpportunityStatus.WITHDRAWN),
        OpportunityWithdrawn(
            at=now,
            opportunity_id=opportunity.id,
            reason=reason,
            previous_owner_id=opportunity.owner_id,
        ),
    )


def rerank(opportunity: Opportunity, tier: int, score: float, now: datetime) -> Transition | None:
    """A person changed a waiting opportunity's ``tier`` or ``score`` in the CRM: the
    opportunity takes the new values (and so a new rank) where it is, backlog or queue.
    None when nothing changed; :class:`WrongState` for an opportunity no longer waiting
    (once released, its rank no longer matters)."""
    if opportunity.status not in (OpportunityStatus.BACKLOG, OpportunityStatus.QUEUED):
        raise WrongState(
            f"opportunity {opportunity.id!r} is {opportunity.status.value}, not waiting.",
            "only backlog and queued opportunities are ranked.",
        )
    if opportunity.tier == tier and opportunity.score == score:
        return None
    return Transition(
        attrs.evolve(opportunity, tier=tier, score=score),
        OpportunityReranked(
            at=now,
            opportunity_id=opportunity.id,
            tier=tier,
            score=score,
            previous_tier=opportunity.tier,
            previous_score=opportunity.score,
        ),
    )


# --- the buffer ----------------------------------------------------------------------


def buffer_zone(level: int, target: int, policy: QueuePolicy) -> Zone:
    """Green above ``green_above`` of target, red below ``red_below``, else yellow."""
    if target <= 0:
        return Zone.GREEN
    fill = level / target
    if fill > policy.green_above:
        return Zone.GREEN
    if fill < policy.red_below:
        return Zone.RED
    return Zone.YELLOW


@attrs.frozen
class ReplenishmentPlan:
    """What the morning top-up does: how many move from backlog to queue, and
    how many Promotions must still produce to reach the target."""

    level_before: int
    target: int
    to_move: int
    level_after: int
    zone_before: Zone
    zone_after: Zone
    shortfall: int


def plan_replenishment(level: int, available: int, policy: QueuePolicy) -> ReplenishmentPlan:
    """Top the queue up to ``policy.target`` from ``available`` backlog items, never above."""
    if level < 0 or available < 0:
        raise WrongState(f"negative level {level} or backlog {available}.", "report a bug.")
    wanted = max(0, policy.target - level)
    to_move = min(wanted, available)
    after = level + to_move
    return ReplenishmentPlan(
        level_before=level,
        target=policy.target,
        to_move=to_move,
        level_after=after,
        zone_before=buffer_zone(level, policy.target, policy),
        zone_after=buffer_zone(after, policy.target, policy),
        shortfall=max(0, policy.target - after),
    )
