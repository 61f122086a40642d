"""The operations under ``/api/v1``: who may call each, what it does, what it answers.

Who may do what (the token kinds are in :mod:`spe_serve.tokens`):

- reading the queue and the metrics, routing a new task: any token;
- pulling, resolving, giving back, a member's work, accepting and completing a
  task: a member token for that member only; integration and admin tokens for
  the member the call names;
- proposing and booking, cancelling and rescheduling: a sales coordinator's
  member token for the field salespeople they coordinate (``coordinator_id``);
  integration and admin tokens for anyone, naming who acts (``by``);
- replenishing and sweeping the queue: admin tokens.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from spe_core.calendar import Proposal, Slot
from spe_core.engine import QueueStatus
from spe_core.errors import InvalidValue
from spe_core.model import (
    AppointmentRequest,
    Booking,
    Location,
    Member,
    Opportunity,
    Role,
    Task,
    TimeWindow,
)
from spe_serve.schema import Operation, Param
from spe_serve.tokens import TokenKind

if TYPE_CHECKING:
    from spe_serve.app import Call

__all__ = ["document", "operations"]

V1 = "/api/v1"


def _forbidden(problem: str, fix: str) -> Exception:
    from spe_serve.app import ApiError

    return ApiError(403, "Forbidden", problem, fix)


# --- values out -----------------------------------------------------------------------


def _t(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _queue(s: QueueStatus) -> dict[str, Any]:
    return {
        "level": s.level,
        "target": s.target,
        "zone": s.zone.value,
        "backlog": s.backlog,
        "released": s.released,
        "oldestQueuedAt": _t(s.oldest_queued_at),
        "shortfall": s.shortfall,
    }


def _opportunity(o: Opportunity) -> dict[str, Any]:
    return {
        "id": o.id,
        "accountId": o.account_id,
        "status": o.status.value,
        "tier": o.tier,
        "score": o.score,
        "ownerId": o.owner_id,
        "releasedAt": _t(o.released_at),
        "leaseExpiresAt": _t(o.lease_expires_at),
        "outcome": None if o.outcome is None else o.outcome.value,
        "resolvedAt": _t(o.resolved_at),
        "queuedAt": _t(o.queued_at),
        "requiredSkills": sorted(o.required_skills),
        "externalIds": dict(o.external_ids),
    }


def _task(t: Task) -> dict[str, Any]:
    return {
        "id": t.id,
        "kind": t.kind,
        "accountId": t.account_id,
        "opportunityId": t.opportunity_id,
        "status": t.status.value,
        "priority": t.priority,
        "queueRole": None if t.queue_role is None else t.queue_role.value,
        "assigneeId": t.assignee_id,
        "assignedAt": _t(t.assigned_at),
        "acceptBy": _t(t.accept_by),
        "completeBy": _t(t.complete_by),
        "acceptedAt": _t(t.accepted_at),
        "completedAt": _t(t.completed_at),
        "unassignedReason": t.unassigned_reason,
        "escalations": t.escalations,
    }


def _booking(b: Booking) -> dict[str, Any]:
    return {
        "id": b.id,
        "memberId": b.member_id,
        "accountId": b.request.account_id,
        "opportunityId": b.request.opportunity_id,
        "start": b.start.isoformat(),
        "end": b.end.isoformat(),
        "mode": b.request.mode.value,
        "status": b.status.value,
        "by": b.by,
        "bookedAt": b.booked_at.isoformat(),
    }


def _slot(s: Slot) -> dict[str, Any]:
    return {
        "memberId": s.member_id,
        "start": s.start.isoformat(),
        "end": s.end.isoformat(),
        "addedTravelMinutes": s.added_travel.total_seconds() / 60,
        "dayMeetings": s.day_meetings,
        "weekMeetings": s.week_meetings,
    }


def _proposal(p: Proposal) -> dict[str, Any]:
    return {
        "requestId": p.request.id,
        "slots": [_slot(s) for s in p.slots],
        "excluded": [{"memberId": m, "reason": r} for m, r in p.excluded],
    }


# --- values in ------------------------------------------------------------------------


def _request(data: dict[str, Any]) -> AppointmentRequest:
    where = data.get("location")
    return AppointmentRequest(
        id=data["id"],
        account_id=data["accountId"],
        duration=timedelta(minutes=data["durationMinutes"]),
        mode=data["mode"],
        earliest=data["earliest"],
        deadline=data["deadline"],
        location=None
        if where is None
        else Location(where["lat"], where["lon"], where.get("address")),
        windows=tuple(TimeWindow(w["start"], w["end"]) for w in data.get("windows", ())),
        required_skills=frozenset(data.get("requiredSkills", ())),
        opportunity_id=data.get("opportunityId"),
    )


# --- who may do what ------------------------------------------------------------------


def _act_for(c: Call, member_id: str) -> None:
    """A member token acts for its own member only."""
    p = c.principal
    assert p is not None
    if p.kind is TokenKind.MEMBER and p.member_id != member_id:
        raise _forbidden(
            "a member token acts for its own member only.",
            "call for your own member id, or use an integration token.",
        )


def _admin(c: Call) -> None:
    assert c.principal is not None
    if c.principal.kind is not TokenKind.ADMIN:
        raise _forbidden("this operation needs an admin token.", "use an admin token.")


def _coordinator(c: Call) -> Member | None:
    """The sales coordinator a member token stands for (None for integration and admin)."""
    p = c.principal
    assert p is not None
    if p.kind is not TokenKind.MEMBER:
        return None
    assert p.member_id is not None
    me = c.engine.member(p.member_id)
    if me.role is not Role.SALES_COORDINATOR:
        raise _forbidden(
            "only sales coordinators schedule field salespeople's calendars.",
            "ask the member's sales coordinator, or use an integration token.",
        )
    return me


def _may_schedule(c: Call, member_id: str) -> None:
    me = _coordinator(c)
    if me is not None and c.engine.member(member_id).coordinator_id != me.id:
        raise _forbidden(
            f"{me.id} is not the sales coordinator of {member_id}.",
            "schedule only your own field salespeople (their coordinator_id in spe.toml).",
        )


def _by(c: Call) -> str:
    """Who acts: the member token's member, or ``by`` in the body for other tokens."""
    p = c.principal
    assert p is not None
    if p.kind is TokenKind.MEMBER:
        assert p.member_id is not None
        return p.member_id
    by = c.body.get("by")
    if by is None:
        raise InvalidValue(
            "body.by is missing: an integration or admin token must say who acts.",
            "send by: the id of the coordinator or user on whose behalf you call.",
        )
    return str(by)


# --- handlers -------------------------------------------------------------------------


def healthz(c: Call) -> dict[str, Any]:
    return {"status": "ok"}


def readyz(c: Call) -> dict[str, Any]:
    with c.engine.unit() as u:
        u.tx.get_meta("serve:ready")
    return {"status": "ok", "store": c.engine.store.url.split(":", 1)[0]}


def queue_status(c: Call) -> dict[str, Any]:
    return _queue(c.engine.queue_status())


def _operation_id(c: Call) -> str | None:
    """The caller's ``Idempotency-Key``, as the engine call's operation id (scoped to the
    token, so two callers' keys never meet)."""
    key = c.query.get(IDEMPOTENCY_KEY)
    if key is None:
        return None
    assert c.principal is not None
    return f"api:{c.principal.id}:{key}"


def pull(c: Call) -> dict[str, Any]:
    member = c.path["memberId"]
    _act_for(c, member)
    result = c.engine.pull(member, c.body.get("count", 1), operation_id=_operation_id(c))
    return {
        "memberId": result.member_id,
        "requested": result.requested,
        "released": [_opportunity(o) for o in result.released],
        "reason": result.reason,
    }


def resolve(c: Call) -> dict[str, Any]:
    _act_for(c, c.body["memberId"])
    opp = c.engine.resolve(
        c.path["opportunityId"],
        c.body["memberId"],
        c.body["outcome"],
        operation_id=_operation_id(c),
    )
    return _opportunity(opp)


def give_back(c: Call) -> dict[str, Any]:
    _act_for(c, c.body["memberId"])
    opp = c.engine.give_back(
        c.path["opportunityId"],
        c.body["memberId"],
        c.body.get("reason", ""),
        operation_id=_operation_id(c),
    )
    return _opportunity(opp)


def member_work(c: Call) -> dict[str, Any]:
    member = c.path["memberId"]
    _act_for(c, member)
    c.engine.member(member)  # 404 for an unknown member
    return {
        "memberId": member,
        "opportunities": [_opportunity(o) for o in c.engine.held_by(member)],
        "tasks": [_task(t) for t in c.engine.open_tasks(member)],
    }


def route_task(c: Call) -> dict[str, Any]:
    b = c.body
    task = Task(
        id=b["id"],
        kind=b["kind"],
        account_id=b["accountId"],
        opportunity_id=b.get("opportunityId"),
        priority=b.get("priority", 3),
        due_at=b.get("dueAt"),
        required_skills=frozenset(b.get("requiredSkills", ())),
    )
    return _task(c.engine.route_task(task))


def accept_task(c: Call) -> dict[str, Any]:
    _act_for(c, c.body["memberId"])
    return _task(c.engine.accept_task(c.path["taskId"], c.body["memberId"]))


def complete_task(c: Call) -> dict[str, Any]:
    _act_for(c, c.body["memberId"])
    return _task(c.engine.complete_task(c.path["taskId"], c.body["memberId"]))


def propose(c: Call) -> dict[str, Any]:
    me = _coordinator(c)
    members: list[str] | None = c.body.get("members")
    if me is not None:
        mine = sorted(m.id for m in c.engine.members() if m.coordinator_id == me.id and m.active)
        if members is None:
            members = mine
        for m in members:
            if m not in mine:
                raise _forbidden(
                    f"{me.id} is not the sales coordinator of {m}.",
                    "propose only among your own field salespeople.",
                )
    proposal = c.engine.propose(
        _request(c.body["request"]), members=members, limit=c.body.get("limit", 10)
    )
    return _proposal(proposal)


def book(c: Call) -> dict[str, Any]:
    member = c.body["memberId"]
    _may_schedule(c, member)
    booking = c.engine.book(_request(c.body["request"]), member, c.body["start"], by=_by(c))
    return _booking(booking)


def cancel_booking(c: Call) -> dict[str, Any]:
    booking = c.engine.booking(c.path["bookingId"])
    _may_schedule(c, booking.member_id)
    cancelled = c.engine.cancel_booking(booking.id, by=_by(c), reason=c.body.get("reason", ""))
    return _booking(cancelled)


def reschedule_booking(c: Call) -> dict[str, Any]:
    booking = c.engine.booking(c.path["bookingId"])
    _may_schedule(c, booking.member_id)
    target = c.body.get("memberId")
    if target is not None:
        _may_schedule(c, target)
    moved = c.engine.reschedule(booking.id, c.body["start"], by=_by(c), member_id=target)
    return _booking(moved)


def metrics(c: Call) -> dict[str, Any]:
    from spe_core.flow import FlowMetrics

    engine = c.engine
    now = engine.clock.now()
    since = now - timedelta(days=c.query.get("days", 7))
    flow = FlowMetrics(policy=engine.policy)
    flow.feed_all(r for r in engine.store.events() if r.event.at >= since)
    report = flow.report(now)

    def hours(seconds: float | None) -> float | None:
        return None if seconds is None else seconds / 3600

    return {
        "queue": _queue(engine.queue_status()),
        "since": since.isoformat(),
        "events": report.events,
        "outcomes": dict(report.outcomes),
        "zoneShare": dict(report.zone_share),
        "pullsPerMemberDay": dict(report.pulls_per_member_day),
        "meetingsPerMemberDay": dict(report.meetings_per_member_day),
        "hitRate": report.hit_rate,
        "slaAttainment": report.sla_attainment,
        "endToEndP50Hours": hours(report.end_to_end_p50),
        "endToEndP85Hours": hours(report.end_to_end_p85),
    }


def replenish(c: Call) -> dict[str, Any]:
    _admin(c)
    result = c.engine.replenish()
    return {"moved": [o.id for o in result.moved], "queue": _queue(c.engine.queue_status())}


def sweep(c: Call) -> dict[str, Any]:
    _admin(c)
    result = c.engine.sweep()
    return {
        "leaseExpired": list(result.lease_expired),
        "stale": list(result.stale),
        "expired": list(result.expired),
    }


# --- the table ------------------------------------------------------------------------

_ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 200}


def _path(name: str, what: str) -> Param:
    return Param(name, "path", _ID_SCHEMA, what)


IDEMPOTENCY_KEY = "idempotencyKey"


def operations() -> list[Operation]:
    """Every operation of the API, in the order the document lists them."""
    retry = Param(
        IDEMPOTENCY_KEY,
        "query",
        {"type": "string", "minLength": 1, "maxLength": 100},
        "a unique key per call (a UUID), the same on each retry of it: a repeated call "
        "returns the first call's result instead of acting again (kept 24 hours); the "
        "Idempotency-Key header does the same",
        required=False,
        header="Idempotency-Key",
    )
    member = _path("memberId", "the member's id")
    opportunity = _path("opportunityId", "the opportunity's id")
    task = _path("taskId", "the task's id")
    booking = _path("bookingId", "the booking's id (its appointment request's id)")
    return [
        Operation(
            "GET",
            "/healthz",
            "health",
            "The process is up",
            "Always 200 while the process answers; no token needed.",
            "health",
            healthz,
            "Health",
            authenticated=False,
        ),
        Operation(
            "GET",
            "/readyz",
            "readiness",
            "The process can serve",
            "200 when the store answers, 503 when it does not; no token needed.",
            "health",
            readyz,
            "Ready",
            authenticated=False,
        ),
        Operation(
            "GET",
            f"{V1}/queue",
            "getQueueStatus",
            "Queue status",
            "The pull queue's level, target, zone and backlog.",
            "queue",
            queue_status,
            "QueueStatus",
            errors=(401, 403, 503),
            one_unit=True,
        ),
        Operation(
            "POST",
            f"{V1}/members/{{memberId}}/pull",
            "pullNext",
            "Pull the next opportunity for a member",
            "Releases the best eligible opportunity (or count of them) to the member; "
            "an empty list with the reason when at the WIP limit, the daily cap, or "
            "nothing eligible is queued.",
            "queue",
            pull,
            "PullResult",
            params=(member, retry),
            body="PullRequest",
            body_required=False,
            one_unit=True,
        ),
        Operation(
            "POST",
            f"{V1}/opportunities/{{opportunityId}}/resolve",
            "resolveOpportunity",
            "Resolve an opportunity with an outcome",
            "The member holding it closes it: won, lost, disqualified, appointment_set or nurture.",
            "queue",
            resolve,
            "Opportunity",
            params=(opportunity, retry),
            body="ResolveRequest",
            one_unit=True,
        ),
        Operation(
            "POST",
            f"{V1}/opportunities/{{opportunityId}}/give-back",
            "giveBackOpportunity",
            "Give an opportunity back to the queue",
            "The member holding it hands it back; it is queued again, never to them.",
            "queue",
            give_back,
            "Opportunity",
            params=(opportunity, retry),
            body="GiveBackRequest",
            one_unit=True,
        ),
        Operation(
            "GET",
            f"{V1}/members/{{memberId}}/work",
            "getMemberWork",
            "A member's current work",
            "The opportunities the member holds and their open tasks.",
            "queue",
            member_work,
            "MemberWork",
            params=(member,),
        ),
        Operation(
            "POST",
            f"{V1}/tasks",
            "routeTask",
            "Route a new task",
            "Routes a transactional task to customer service or engineering, or queues "
            "it in its role with the reason.",
            "tasks",
            route_task,
            "Task",
            body="TaskRequest",
            one_unit=True,
        ),
        Operation(
            "POST",
            f"{V1}/tasks/{{taskId}}/accept",
            "acceptTask",
            "Accept a task",
            "The assignee accepts the task.",
            "tasks",
            accept_task,
            "Task",
            params=(task,),
            body="TaskAction",
            one_unit=True,
        ),
        Operation(
            "POST",
            f"{V1}/tasks/{{taskId}}/complete",
            "completeTask",
            "Complete a task",
            "The assignee completes the task.",
            "tasks",
            complete_task,
            "Task",
            params=(task,),
            body="TaskAction",
            one_unit=True,
        ),
        Operation(
            "POST",
            f"{V1}/proposals",
            "proposeSlots",
            "Propose slots for a meeting",
            "Ranked slots that fit the request in field (or inside) salespeople's "
            "calendars; a coordinator's token looks at their own field salespeople.",
            "calendar",
            propose,
            "Proposal",
            body="ProposeRequest",
        ),
        Operation(
            "POST",
            f"{V1}/bookings",
            "bookMeeting",
            "Book a meeting",
            "Books the request in the member's calendar at start, re-checked against "
            "the calendar rules.",
            "calendar",
            book,
            "Booking",
            body="BookRequest",
            one_unit=True,
        ),
        Operation(
            "POST",
            f"{V1}/bookings/{{bookingId}}/cancel",
            "cancelBooking",
            "Cancel a booking",
            "Frees the booking's slot.",
            "calendar",
            cancel_booking,
            "Booking",
            params=(booking,),
            body="CancelRequest",
            body_required=False,
            one_unit=True,
        ),
        Operation(
            "POST",
            f"{V1}/bookings/{{bookingId}}/reschedule",
            "rescheduleBooking",
            "Reschedule a booking",
            "Moves the booking to start (and to memberId if "
            "given), re-checked against the calendar rules.",
            "calendar",
            reschedule_booking,
            "Booking",
            params=(booking,),
            body="RescheduleRequest",
            one_unit=True,
        ),
        Operation(
            "GET",
            f"{V1}/metrics",
            "getMetrics",
            "Flow metrics",
            "Flow metrics over the last days and the queue's status now.",
            "metrics",
            metrics,
            "Metrics",
            params=(
                Param(
                    "days",
                    "query",
                    {"type": "integer", "format": "int32", "minimum": 1, "maximum": 90},
                    "days to measure (default 7)",
                    required=False,
                ),
            ),
        ),
        Operation(
            "POST",
            f"{V1}/queue/replenish",
            "replenishQueue",
            "Top the queue up",
            "Moves the best backlog items into the queue up to its target (admin).",
            "queue",
            replenish,
            "ReplenishResult",
        ),
        Operation(
            "POST",
            f"{V1}/queue/sweep",
            "sweepQueue",
            "Sweep leases and stale items",
            "Returns expired leases to the queue and retires stale and expired "
            "opportunities (admin).",
            "queue",
            sweep,
            "SweepResult",
        ),
    ]


def document(server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of the API (``server_url``: where it is served)."""
    from spe_core import __version__
    from spe_serve.schema import openapi

    doc = openapi(operations(), title="SPE API", version=__version__)
    doc["servers"] = [{"url": server_url}]
    return doc
