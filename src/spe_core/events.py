"""Domain events: the one record of every change.

The engine appends one event per state change, in the same store transaction
as the change itself. Metrics, the audit trail, listeners and the sync outbox
are all read from these events, and :func:`replay` rebuilds the opportunities'
current state from them alone.

Every event is a frozen attrs value with ``at`` (when it happened, aware), a
class-level ``kind`` (a stable dotted name used in storage and by listeners)
and a class-level ``version``, the schema version of its fields (1 unless the
class says otherwise). Stores write the version with each event; when a
release changes an event's fields it bumps ``version`` and registers an
upcaster from the old version (:func:`spe_core.codec.register_upcaster`), so
every database written before still reads. See docs/stores.md, "Versions".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

import attrs

from spe_core.errors import ConfigError
from spe_core.model import (
    Booking,
    Member,
    Opportunity,
    OpportunityStatus,
    Outcome,
    Task,
    aware_field,
    to_outcome,
)

__all__ = [
    "EVENT_TYPES",
    "AppointmentBooked",
    "AppointmentCancelled",
    "AppointmentEvent",
    "AppointmentRescheduled",
    "BusyTimeRead",
    "replay_bookings",
    "Event",
    "LeaseExpired",
    "MemberUpserted",
    "OpportunityBacklogged",
    "OpportunityExpired",
    "OpportunityGivenBack",
    "OpportunityLinked",
    "OpportunityQueued",
    "OpportunityReleased",
    "OpportunityReranked",
    "OpportunityResolved",
    "OpportunityStageChanged",
    "OpportunityStale",
    "OpportunityWithdrawn",
    "QueueReplenished",
    "QueueTargetChanged",
    "Recorded",
    "TaskAccepted",
    "TaskCancelled",
    "TaskCompleted",
    "TaskDeclined",
    "TaskEscalated",
    "TaskEvent",
    "TaskQueued",
    "TaskReassigned",
    "TaskRouted",
    "replay_tasks",
    "RecordQuarantined",
    "SyncCompleted",
    "SyncConflict",
    "event_type",
    "replay",
]


@attrs.frozen(kw_only=True)
class Event:
    """Base of every domain event."""

    kind: ClassVar[str] = "event"
    version: ClassVar[int] = 1
    """Schema version of this class's fields; add 1 (and register an upcaster) on a change."""
    at: datetime = attrs.field(validator=aware_field)


EVENT_TYPES: dict[str, type[Event]] = {}


def event_type(cls: type[Event]) -> type[Event]:
    """Class decorator registering an event class under its ``kind``.

    The kind is what the store writes; the class's ``version`` (default 1) is
    written beside it. Raises :class:`~spe_core.errors.ConfigError` for a kind
    registered twice or a version that is not a whole number from 1.
    """
    if cls.kind in EVENT_TYPES:
        raise ConfigError(
            f"event kind {cls.kind!r} is registered twice "
            f"({EVENT_TYPES[cls.kind].__qualname__} and {cls.__qualname__}).",
            "give each event class its own kind; to change an event's fields, change "
            "its class and bump its version instead of adding a second class.",
        )
    version = cls.version
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(
            f"event {cls.kind!r} has version {version!r}; versions are whole numbers from 1.",
            "set version: ClassVar[int] = 1 and add 1 each time the event's fields change.",
        )
    EVENT_TYPES[cls.kind] = cls
    return cls


def _trusted_maker(cls: type[Event]) -> Any:
    """A function making a ``cls`` from its fields' values (by name), without running
    its validators and converters: for the engine's hot path, which passes only values
    already in the form the class stores (checked there: aware UTC times, enums).
    Generated once per class from its own field names."""
    names = [f.name for f in attrs.fields(cls)]
    lines = [f"def make({', '.join(names)}):", "    e = new(cls)"]
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls}
    for name in names:
        scope[f"set_{name}"] = getattr(cls, name).__set__
        lines.append(f"    set_{name}(e, {name})")
    lines.append("    return e")
    exec("\n".join(lines), scope)  # generated from the class's own field names
    return scope["make"]


@attrs.frozen
class Recorded:
    """An event as stored: its position ``seq`` in the log (1, 2, ...) and the event."""

    seq: int
    event: Event


# --- members -------------------------------------------------------------------------


@event_type
@attrs.frozen(kw_only=True)
class MemberUpserted(Event):
    """A member was added or changed (role, skills, limits, availability)."""

    kind: ClassVar[str] = "member.upserted"
    member: Member


# --- the pull queue --------------------------------------------------------------------


@event_type
@attrs.frozen(kw_only=True)
class OpportunityBacklogged(Event):
    """Promotions produced an opportunity; it waits in the backlog."""

    kind: ClassVar[str] = "opportunity.backlogged"
    opportunity: Opportunity


@event_type
@attrs.frozen(kw_only=True)
class OpportunityQueued(Event):
    """An opportunity entered the pull queue (``opportunity`` is its queued state)."""

    kind: ClassVar[str] = "opportunity.queued"
    opportunity: Opportunity
    from_backlog: bool = False


@event_type
@attrs.frozen(kw_only=True)
class OpportunityReleased(Event):
    """A salesperson pulled an opportunity; it is theirs until resolved, given back
    or its lease expires."""

    kind: ClassVar[str] = "opportunity.released"
    opportunity_id: str
    member_id: str
    lease_expires_at: datetime | None = attrs.field(validator=aware_field)


@event_type
@attrs.frozen(kw_only=True)
class OpportunityGivenBack(Event):
    """The holder gave the opportunity back; it is queued again without them."""

    kind: ClassVar[str] = "opportunity.given_back"
    opportunity_id: str
    member_id: str
    reason: str = ""


@event_type
@attrs.frozen(kw_only=True)
class LeaseExpired(Event):
    """The holder's lease ran out; the opportunity went back to the queue."""

    kind: ClassVar[str] = "opportunity.lease_expired"
    opportunity_id: str
    member_id: str


@event_type
@attrs.frozen(kw_only=True)
class OpportunityResolved(Event):
    """The holder resolved the opportunity with an outcome."""

    kind: ClassVar[str] = "opportunity.resolved"
    opportunity_id: str
    member_id: str
    outcome: Outcome = attrs.field(converter=to_outcome)


@event_type
@attrs.frozen(kw_only=True)
class OpportunityStale(Event):
    """An opportunity sat in the queue longer than the stale age: back to nurture."""

    kind: ClassVar[str] = "opportunity.stale"
    opportunity_id: str
    queued_at: datetime = attrs.field(validator=aware_field)


@event_type
@attrs.frozen(kw_only=True)
class OpportunityExpired(Event):
    """An opportunity passed its ``expires_at`` before anyone pulled it."""

    kind: ClassVar[str] = "opportunity.expired"
    opportunity_id: str
    expires_at: datetime = attrs.field(validator=aware_field)


@event_type
@attrs.frozen(kw_only=True)
class OpportunityWithdrawn(Event):
    """A person changed the opportunity in the CRM in a way SPE did not (an owner set
    by hand, say); the CRM's edit wins and the opportunity leaves SPE's flow."""

    kind: ClassVar[str] = "opportunity.withdrawn"
    opportunity_id: str
    reason: str
    previous_owner_id: str | None = None


@event_type
@attrs.frozen(kw_only=True)
class OpportunityReranked(Event):
    """A person changed a waiting opportunity's tier or score in the CRM: it keeps its
    place in the flow (backlog or queue) and takes the rank of its new values."""

    kind: ClassVar[str] = "opportunity.reranked"
    opportunity_id: str
    tier: int
    score: float
    previous_tier: int
    previous_score: float


@event_type
@attrs.frozen(kw_only=True)
class OpportunityStageChanged(Event):
    """The opportunity's stage changed in the CRM (after SPE released it): the process
    map places it in a phase by ``stage``; ``closed`` marks the end of its flow."""

    kind: ClassVar[str] = "opportunity.stage_changed"
    opportunity_id: str
    stage: str
    closed: bool = False


@event_type
@attrs.frozen(kw_only=True)
class QueueTargetChanged(Event):
    """Buffer management changed the queue's target (with the evidence)."""

    kind: ClassVar[str] = "queue.target_changed"
    previous: int
    target: int
    reason: str


@event_type
@attrs.frozen(kw_only=True)
class QueueReplenished(Event):
    """Promotions' morning top-up ran (even when it moved nothing)."""

    kind: ClassVar[str] = "queue.replenished"
    moved: int
    level_before: int
    level_after: int
    target: int
    zone: str
    shortfall: int


# --- sync -------------------------------------------------------------------------------


@event_type
@attrs.frozen(kw_only=True)
class OpportunityLinked(Event):
    """The CRM confirmed a write and named the opportunity's record id there."""

    kind: ClassVar[str] = "opportunity.linked"
    opportunity_id: str
    crm: str
    crm_id: str


@event_type
@attrs.frozen(kw_only=True)
class SyncConflict(Event):
    """A person changed a record in the CRM that SPE also manages (an owner set by
    hand, say). ``resolution`` says who won: ``crm_wins`` or ``spe_wins``."""

    kind: ClassVar[str] = "sync.conflict"
    crm: str
    key: str
    field: str
    spe_value: str | None
    crm_value: str | None
    resolution: str


@event_type
@attrs.frozen(kw_only=True)
class RecordQuarantined(Event):
    """The sync gave up on a record; ``reason`` says what a person must fix."""

    kind: ClassVar[str] = "sync.quarantined"
    crm: str
    direction: str
    stream: str
    key: str
    reason: str


@event_type
@attrs.frozen(kw_only=True)
class SyncCompleted(Event):
    """One sync run finished; its counts."""

    kind: ClassVar[str] = "sync.completed"
    crm: str
    read: int
    applied: int
    written: int
    retried: int
    quarantined: int
    conflicts: int


# --- tasks (routing) ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TaskEvent(Event):
    """Base of task events: each carries the task as it is after the change."""

    task: Task


@event_type
@attrs.frozen(kw_only=True)
class TaskRouted(TaskEvent):
    """A task was assigned to a member; ``candidates`` eligible members were offered to
    the chooser (the best by the route's strategy, at most ``TOP_K`` + 1)."""

    kind: ClassVar[str] = "task.routed"
    strategy: str
    candidates: int


@event_type
@attrs.frozen(kw_only=True)
class TaskQueued(TaskEvent):
    """No member could take the task: it waits in its role's queue, with the reason."""

    kind: ClassVar[str] = "task.queued"
    reason: str


@event_type
@attrs.frozen(kw_only=True)
class TaskAccepted(TaskEvent):
    """The assignee accepted the task."""

    kind: ClassVar[str] = "task.accepted"


@event_type
@attrs.frozen(kw_only=True)
class TaskDeclined(TaskEvent):
    """The assignee declined; ``task`` is the task after re-routing."""

    kind: ClassVar[str] = "task.declined"
    member_id: str
    reason: str


@event_type
@attrs.frozen(kw_only=True)
class TaskCompleted(TaskEvent):
    """The assignee completed the task; ``within_sla`` says whether it met its deadline."""

    kind: ClassVar[str] = "task.completed"
    within_sla: bool


@event_type
@attrs.frozen(kw_only=True)
class TaskReassigned(TaskEvent):
    """Someone moved the task to another member by hand."""

    kind: ClassVar[str] = "task.reassigned"
    from_member_id: str | None
    by: str


@event_type
@attrs.frozen(kw_only=True)
class TaskEscalated(TaskEvent):
    """An overdue task was re-routed (or sent back to its role's queue)."""

    kind: ClassVar[str] = "task.escalated"
    from_member_id: str | None
    reason: str


@event_type
@attrs.frozen(kw_only=True)
class TaskCancelled(TaskEvent):
    """A task's work was withdrawn: ``task`` is cancelled (no assignee, out of every
    queue). ``from_member_id`` held it (None when it waited in a queue); ``crm`` names
    the CRM where its record was deleted (None when cancelled in SPE), so that the
    sync does not write to a record that is gone."""

    kind: ClassVar[str] = "task.cancelled"
    version: ClassVar[int] = 1
    from_member_id: str | None
    reason: str
    crm: str | None = None


def replay_tasks(events: Iterable[Event | Recorded]) -> dict[str, Task]:
    """Rebuild every task's current state from the event log alone."""
    state: dict[str, Task] = {}
    for item in events:
        event = item.event if isinstance(item, Recorded) else item
        if isinstance(event, TaskEvent):
            state[event.task.id] = event.task
    return state


# --- calendar (appointments and busy time) ------------------------------------------


@attrs.frozen(kw_only=True)
class AppointmentEvent(Event):
    """Base of calendar events: each carries the booking as it is after the change and
    ``by``, the sales coordinator (or process) who made the change."""

    booking: Booking
    by: str

    @property
    def member_id(self) -> str:
        """Whose calendar changed."""
        return self.booking.member_id

    @property
    def start(self) -> datetime:
        """When the meeting starts."""
        return self.booking.start

    @property
    def in_person(self) -> bool:
        """True for an in-person meeting."""
        return self.booking.in_person


@event_type
@attrs.frozen(kw_only=True)
class AppointmentBooked(AppointmentEvent):
    """A meeting was placed in a member's calendar."""

    kind: ClassVar[str] = "appointment.booked"


@event_type
@attrs.frozen(kw_only=True)
class AppointmentCancelled(AppointmentEvent):
    """A booking was cancelled (``booking`` keeps the slot it held), with the reason."""

    kind: ClassVar[str] = "appointment.cancelled"
    reason: str = ""


@event_type
@attrs.frozen(kw_only=True)
class AppointmentRescheduled(AppointmentEvent):
    """A booking moved to another time or member; the old slot is given with it."""

    kind: ClassVar[str] = "appointment.rescheduled"
    from_member_id: str
    from_start: datetime = attrs.field(validator=aware_field)


@event_type
@attrs.frozen(kw_only=True)
class BusyTimeRead(Event):
    """A member's busy time was read from their calendar (``count`` entries in the span)."""

    kind: ClassVar[str] = "calendar.busy_read"
    member_id: str
    start: datetime = attrs.field(validator=aware_field)
    end: datetime = attrs.field(validator=aware_field)
    count: int


def replay_bookings(events: Iterable[Event | Recorded]) -> dict[str, Booking]:
    """Rebuild every booking's current state (cancelled ones included) from the log."""
    state: dict[str, Booking] = {}
    for item in events:
        event = item.event if isinstance(item, Recorded) else item
        if isinstance(event, AppointmentEvent):
            state[event.booking.id] = event.booking
    return state


# --- replay ---------------------------------------------------------------------------


def replay(events: Iterable[Event | Recorded]) -> dict[str, Opportunity]:
    """Rebuild every opportunity's current state from the event log alone.

    A store's state must always equal the replay of its own log; the stateful
    tests check exactly that.
    """
    state: dict[str, Opportunity] = {}
    for item in events:
        event = item.event if isinstance(item, Recorded) else item
        _apply(state, event)
    return state


def _apply(state: dict[str, Opportunity], event: Event) -> None:
    evolve = attrs.evolve
    if isinstance(event, OpportunityBacklogged | OpportunityQueued):
        state[event.opportunity.id] = event.opportunity
    elif isinstance(event, OpportunityReleased):
        opp = state[event.opportunity_id]
        state[opp.id] = evolve(
            opp,
            status=OpportunityStatus.RELEASED,
            owner_id=event.member_id,
            released_at=event.at,
            lease_expires_at=event.lease_expires_at,
        )
    elif isinstance(event, OpportunityGivenBack | LeaseExpired):
        opp = state[event.opportunity_id]
        excluded: Any = opp.excluded | {event.member_id}
        state[opp.id] = evolve(
            opp,
            status=OpportunityStatus.QUEUED,
            owner_id=None,
            released_at=None,
            lease_expires_at=None,
            excluded=excluded if isinstance(event, OpportunityGivenBack) else opp.excluded,
        )
    elif isinstance(event, OpportunityResolved):
        opp = state[event.opportunity_id]
        state[opp.id] = evolve(
            opp,
            status=OpportunityStatus.RESOLVED,
            outcome=event.outcome,
            resolved_at=event.at,
            lease_expires_at=None,
        )
    elif isinstance(event, OpportunityStale):
        opp = state[event.opportunity_id]
        state[opp.id] = evolve(opp, status=OpportunityStatus.NURTURE)
    elif isinstance(event, OpportunityExpired):
        opp = state[event.opportunity_id]
        state[opp.id] = evolve(opp, status=OpportunityStatus.EXPIRED)
    elif isinstance(event, OpportunityReranked):
        opp = state[event.opportunity_id]
        state[opp.id] = evolve(opp, tier=event.tier, score=event.score)
    elif isinstance(event, OpportunityLinked):
        opp = state[event.opportunity_id]
        ids = dict(opp.external_ids)
        ids[event.crm] = event.crm_id
        state[opp.id] = evolve(opp, external_ids=ids)
    elif isinstance(event, OpportunityWithdrawn):
        opp = state[event.opportunity_id]
        state[opp.id] = evolve(
            opp,
            status=OpportunityStatus.WITHDRAWN,
            owner_id=None,
            released_at=None,
            lease_expires_at=None,
        )
