"""The API's typed route table and the OpenAPI 3.0 document made from it.

Every operation is one :class:`Operation`: method, path, ``operationId``,
summary, parameters, request and response schemas, and the handler. The same
schemas check each request body before the handler sees it
(:func:`check`), and :func:`openapi` turns the table into the published
document, OpenAPI **3.0.3** (Salesforce External Services registers 2.0 and
3.0 documents, not 3.1): a value that may be null says ``nullable: true``, never
``type: [..., "null"]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import attrs

from spe_core.errors import InvalidValue
from spe_core.model import Outcome

__all__ = ["COMPONENTS", "Operation", "Param", "check", "openapi"]

Schema = dict[str, Any]
OPENAPI_VERSION = "3.0.3"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _s(description: str = "", **more: Any) -> Schema:
    return {"type": "string", **({"description": description} if description else {}), **more}


def _int(description: str = "", **more: Any) -> Schema:
    return {"type": "integer", "format": "int32", **more} | (
        {"description": description} if description else {}
    )


def _num(description: str = "", **more: Any) -> Schema:
    return {"type": "number", "format": "double", **more} | (
        {"description": description} if description else {}
    )


def _time(description: str = "") -> Schema:
    return _s(description, format="date-time")


def _null(schema: Schema) -> Schema:
    """``schema`` or null. In OpenAPI 3.0 an ``enum`` must list null to allow it; rather
    than an enum with a null member (which External Services would turn into an odd Apex
    value), a nullable enum becomes a string whose description lists the values."""
    out = {**schema, "nullable": True}
    if "enum" in out:
        values = out.pop("enum")
        out["description"] = (out.get("description", "") + " one of: " + ", ".join(values)).strip()
    return out


def _list(items: Schema, description: str = "") -> Schema:
    return {"type": "array", "items": items} | ({"description": description} if description else {})


def _map(values: Schema, description: str) -> Schema:
    return {"type": "object", "additionalProperties": values, "description": description}


def _obj(description: str, required: Sequence[str] = (), **properties: Schema) -> Schema:
    out: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        out["required"] = list(required)
    return out


_ID = _s(minLength=1, maxLength=200)
_MEMBER = _s("the member's id", minLength=1, maxLength=200)

COMPONENTS: dict[str, Schema] = {
    "Error": _obj(
        "What went wrong and how to fix it.",
        ["error", "code"],
        error=_s("what was wrong"),
        fix=_null(_s("how to fix it")),
        code=_s("a stable name for the kind of error, e.g. WrongState"),
    ),
    "Health": _obj("The process is up.", ["status"], status=_s("ok")),
    "Ready": _obj(
        "The process can serve: its store answers.",
        ["status", "store"],
        status=_s("ok"),
        store=_s("the kind of store (sqlite, postgresql, memory)"),
    ),
    "QueueStatus": _obj(
        "The pull queue's level against its target.",
        ["level", "target", "zone", "backlog", "released", "shortfall"],
        level=_int("opportunities waiting in the queue"),
        target=_int("the level Promotions tops the queue up to each morning"),
        zone=_s("buffer zone of the level", enum=["green", "yellow", "red"]),
        backlog=_int("opportunities produced but not yet in the queue"),
        released=_int("opportunities pulled and not yet resolved"),
        oldestQueuedAt=_null(_time("when the oldest waiting opportunity was queued")),
        shortfall=_int("how many the queue lacks to reach its target"),
    ),
    "Opportunity": _obj(
        "A sales opportunity and where it stands in the flow.",
        ["id", "accountId", "status", "tier", "score"],
        id=_s(),
        accountId=_s(),
        status=_s(
            enum=["backlog", "queued", "released", "resolved", "nurture", "expired", "withdrawn"]
        ),
        tier=_int("higher first"),
        score=_num("higher first within a tier"),
        ownerId=_null(_s("the member holding it")),
        releasedAt=_null(_time()),
        leaseExpiresAt=_null(_time("when it returns to the queue unless resolved")),
        outcome=_null(_s(enum=[o.value for o in Outcome])),
        resolvedAt=_null(_time()),
        queuedAt=_null(_time()),
        requiredSkills=_list(_s()),
        externalIds=_map(_s(), "the CRM ids, by CRM name"),
    ),
    "PullRequest": _obj(
        "How many opportunities to pull (default 1).",
        count=_int("how many", minimum=1, maximum=20),
    ),
    "PullResult": _obj(
        "What a pull released; empty with the reason when nothing could be released.",
        ["memberId", "requested", "released"],
        memberId=_s(),
        requested=_int(),
        released=_list(_ref("Opportunity")),
        reason=_null(_s("why fewer than requested were released")),
    ),
    "ResolveRequest": _obj(
        "Close a pulled opportunity with its outcome.",
        ["memberId", "outcome"],
        memberId=_MEMBER,
        outcome=_s(enum=[o.value for o in Outcome]),
    ),
    "GiveBackRequest": _obj(
        "Hand a pulled opportunity back to the queue.",
        ["memberId"],
        memberId=_MEMBER,
        reason=_s("why", maxLength=1000),
    ),
    "MemberWork": _obj(
        "What a member holds now.",
        ["memberId", "opportunities", "tasks"],
        memberId=_s(),
        opportunities=_list(_ref("Opportunity")),
        tasks=_list(_ref("Task")),
    ),
    "TaskRequest": _obj(
        "A new task to route to customer service or engineering.",
        ["id", "kind", "accountId"],
        id=_ID,
        kind=_s("quote, order_entry, admin, service_request, ... or a kind from spe.toml"),
        accountId=_ID,
        opportunityId=_s(minLength=1, maxLength=200),
        priority=_int("1 urgent to 4 low (default 3)", minimum=1, maximum=4),
        dueAt=_time(),
        requiredSkills=_list(_s(minLength=1, maxLength=200)),
    ),
    "Task": _obj(
        "A task and where it is.",
        ["id", "kind", "accountId", "status", "priority", "escalations"],
        id=_s(),
        kind=_s(),
        accountId=_s(),
        opportunityId=_null(_s()),
        status=_s(enum=["unassigned", "assigned", "accepted", "completed", "cancelled"]),
        priority=_int(),
        queueRole=_null(_s("the role whose queue it waits in")),
        assigneeId=_null(_s()),
        assignedAt=_null(_time()),
        acceptBy=_null(_time()),
        completeBy=_null(_time()),
        acceptedAt=_null(_time()),
        completedAt=_null(_time()),
        unassignedReason=_null(_s()),
        escalations=_int(),
    ),
    "TaskAction": _obj("The member acting on the task.", ["memberId"], memberId=_MEMBER),
    "Location": _obj(
        "A place, for travel times.",
        ["lat", "lon"],
        lat=_num(minimum=-90, maximum=90),
        lon=_num(minimum=-180, maximum=180),
        address=_s(maxLength=1000),
    ),
    "TimeWindow": _obj(
        "A window the meeting must fall in.", ["start", "end"], start=_time(), end=_time()
    ),
    "AppointmentRequest": _obj(
        "A meeting to place in a salesperson's calendar.",
        ["id", "accountId", "durationMinutes", "mode", "earliest", "deadline"],
        id=_ID,
        accountId=_ID,
        durationMinutes=_int(minimum=1, maximum=720),
        mode=_s(enum=["in_person", "conference_call"]),
        earliest=_time(),
        deadline=_time(),
        location=_ref("Location"),
        windows=_list(_ref("TimeWindow")),
        requiredSkills=_list(_s(minLength=1, maxLength=200)),
        opportunityId=_s(minLength=1, maxLength=200),
    ),
    "ProposeRequest": _obj(
        "Ask for slots that fit a request.",
        ["request"],
        request=_ref("AppointmentRequest"),
        members=_list(_s(minLength=1, maxLength=200), "only these members (default: all)"),
        limit=_int("at most this many slots (default 10)", minimum=1, maximum=100),
    ),
    "Slot": _obj(
        "A place where the request fits.",
        ["memberId", "start", "end", "addedTravelMinutes", "dayMeetings", "weekMeetings"],
        memberId=_s(),
        start=_time(),
        end=_time(),
        addedTravelMinutes=_num("travel this meeting adds to the day"),
        dayMeetings=_int("in-person meetings already that day"),
        weekMeetings=_int("in-person meetings already that week"),
    ),
    "Exclusion": _obj(
        "A member left out, and why.", ["memberId", "reason"], memberId=_s(), reason=_s()
    ),
    "Proposal": _obj(
        "Ranked slots for a request.",
        ["requestId", "slots", "excluded"],
        requestId=_s(),
        slots=_list(_ref("Slot")),
        excluded=_list(_ref("Exclusion")),
    ),
    "BookRequest": _obj(
        "Book a request in a member's calendar.",
        ["request", "memberId", "start"],
        request=_ref("AppointmentRequest"),
        memberId=_MEMBER,
        start=_time(),
        by=_s("who books (required for integration and admin tokens)", minLength=1, maxLength=200),
    ),
    "CancelRequest": _obj(
        "Cancel a booking.",
        by=_s(
            "who cancels (required for integration and admin tokens)", minLength=1, maxLength=200
        ),
        reason=_s(maxLength=1000),
    ),
    "RescheduleRequest": _obj(
        "Move a booking.",
        ["start"],
        start=_time(),
        memberId=_s("move it to this member too", minLength=1, maxLength=200),
        by=_s(
            "who moves it (required for integration and admin tokens)", minLength=1, maxLength=200
        ),
    ),
    "Booking": _obj(
        "A booked meeting.",
        ["id", "memberId", "accountId", "start", "end", "mode", "status", "by", "bookedAt"],
        id=_s("the appointment request's id"),
        memberId=_s(),
        accountId=_s(),
        opportunityId=_null(_s()),
        start=_time(),
        end=_time(),
        mode=_s(enum=["in_person", "conference_call"]),
        status=_s(enum=["booked", "cancelled"]),
        by=_s(),
        bookedAt=_time(),
    ),
    "Metrics": _obj(
        "Flow metrics over the last days, with the queue's status now.",
        ["queue", "since", "events", "outcomes", "zoneShare", "pullsPerMemberDay"],
        queue=_ref("QueueStatus"),
        since=_time(),
        events=_int("events measured"),
        outcomes=_map(_int(), "resolved opportunities by outcome"),
        zoneShare=_map(_num(), "share of time the queue spent in each zone"),
        pullsPerMemberDay=_map(_num(), "average pulls per working day, by member"),
        meetingsPerMemberDay=_map(_num(), "average in-person meetings per day, by member"),
        hitRate=_null(_num("won / resolved")),
        slaAttainment=_null(_num("share of tasks completed within their SLA")),
        endToEndP50Hours=_null(_num()),
        endToEndP85Hours=_null(_num()),
    ),
    "ReplenishResult": _obj(
        "What the morning top-up moved into the queue.",
        ["moved", "queue"],
        moved=_list(_s(), "ids moved from the backlog"),
        queue=_ref("QueueStatus"),
    ),
    "SweepResult": _obj(
        "What a sweep returned or retired.",
        ["leaseExpired", "stale", "expired"],
        leaseExpired=_list(_s()),
        stale=_list(_s()),
        expired=_list(_s()),
    ),
}


@attrs.frozen
class Param:
    """A path or query parameter."""

    name: str
    where: str  # "path" or "query"
    schema: Schema
    description: str
    required: bool = True
    header: str | None = None
    """An HTTP header that carries the same value (a query parameter given wins); not
    in the document, whose parameter names Salesforce turns into Apex identifiers."""


@attrs.frozen
class Operation:
    """One API operation."""

    method: str
    path: str
    operation_id: str
    summary: str
    description: str
    tag: str
    handler: Callable[[Any], Any]
    response: str
    params: tuple[Param, ...] = ()
    body: str | None = None
    body_required: bool = True
    authenticated: bool = True
    errors: tuple[int, ...] = (400, 401, 403, 404, 409, 422, 503)
    one_unit: bool = False
    """Check the token and run the handler in one unit of work (one store transaction).
    Only for handlers whose store reads all go through engine operations (which join
    the unit): not for one that reads the store outside a transaction
    (``engine.store.events()``, ``engine.held_by``)."""


_ERROR_TEXT = {
    400: "The request is malformed.",
    401: "No valid bearer token.",
    403: "The token may not do this.",
    404: "Something named does not exist.",
    409: "An SPE rule or the current state refuses it.",
    422: "A value is invalid.",
    503: "The store is unavailable; try again.",
}


def openapi(operations: Sequence[Operation], *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of ``operations``."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "description": op.description,
            "tags": [op.tag],
            "responses": {
                "200": {
                    "description": op.summary,
                    "content": {"application/json": {"schema": _ref(op.response)}},
                },
                **{
                    str(code): {
                        "description": _ERROR_TEXT[code],
                        "content": {"application/json": {"schema": _ref("Error")}},
                    }
                    for code in (op.errors if op.authenticated else (503,))
                },
            },
        }
        if op.params:
            entry["parameters"] = [
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.required or p.where == "path",
                    "description": p.description,
                    "schema": p.schema,
                }
                for p in op.params
            ]
        if op.body is not None:
            entry["requestBody"] = {
                "required": op.body_required,
                "content": {"application/json": {"schema": _ref(op.body)}},
            }
        if not op.authenticated:
            entry["security"] = []
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "SPE's pull queue, task routing and calendar for a CRM to call. "
            "Authenticate with a bearer token made by `spe token create`.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": t} for t in sorted({op.tag for op in operations})],
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from `spe token create`",
                }
            },
        },
    }


# --- checking request values against the schemas -----------------------------------


def _fail(where: str, problem: str, fix: str) -> InvalidValue:
    return InvalidValue(f"{where} {problem}.", fix)


def check(value: Any, schema: Schema, where: str) -> Any:
    """``value`` if it matches ``schema`` (the subset used above), else :class:`InvalidValue`
    naming the place (``body.request.durationMinutes``) and what is expected. A ``null``
    optional property counts as absent (CRM flows send unset inputs as null)."""
    if "$ref" in schema:
        return check(value, COMPONENTS[schema["$ref"].rsplit("/", 1)[1]], where)
    if value is None:
        if schema.get("nullable"):
            return None
        raise _fail(where, "must not be null", "give a value")
    kind = schema.get("type")
    if kind == "object":
        return _check_object(value, schema, where)
    if kind == "array":
        if not isinstance(value, list):
            raise _fail(where, "must be a list", "send a JSON array")
        return [check(v, schema["items"], f"{where}[{i}]") for i, v in enumerate(value)]
    if kind == "string":
        return _check_string(value, schema, where)
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            raise _fail(where, "must be an integer", "send a whole number")
        _check_range(value, schema, where)
        return value
    if kind == "number":
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise _fail(where, "must be a number", "send a finite number")
        _check_range(value, schema, where)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _fail(where, "must be true or false", "send a JSON boolean")
        return value
    raise AssertionError(f"schema type {kind!r} not handled")  # pragma: no cover


def _check_object(value: Any, schema: Schema, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, "must be an object", "send a JSON object")
    if "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        return {str(k): check(v, extra, f"{where}.{k}") for k, v in value.items()}
    properties: Mapping[str, Schema] = schema.get("properties", {})
    out: dict[str, Any] = {}
    for name in schema.get("required", ()):
        if value.get(name) is None and not properties[name].get("nullable"):
            raise _fail(f"{where}.{name}", "is missing", f"send {name}")
    for name, sub in properties.items():
        if name in value and (value[name] is not None or name in schema.get("required", ())):
            out[name] = check(value[name], sub, f"{where}.{name}")
    return out


def _check_string(value: Any, schema: Schema, where: str) -> Any:
    if not isinstance(value, str):
        raise _fail(where, "must be a string", "send a JSON string")
    if len(value) < schema.get("minLength", 0):
        raise _fail(where, f"must have at least {schema['minLength']} character(s)", "fill it in")
    if len(value) > schema.get("maxLength", 100_000):
        raise _fail(where, f"must have at most {schema['maxLength']} characters", "shorten it")
    if "enum" in schema and value not in schema["enum"]:
        raise _fail(where, f"must be one of {', '.join(schema['enum'])}", "use one of those")
    if schema.get("format") == "date-time":
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            stamp = None
        if stamp is None or stamp.tzinfo is None:
            raise _fail(
                where,
                "must be an ISO 8601 date and time with its offset",
                "send e.g. 2026-03-02T09:00:00Z",
            )
        try:  # the engine keeps UTC, within the years the model accepts
            in_utc = stamp.astimezone(UTC)
        except OverflowError:
            in_utc = None
        if in_utc is None or not 1900 <= in_utc.year <= 8999:
            raise _fail(where, "must fall in the years 1900 to 8999", "send a date in that range")
        return stamp
    if schema.get("format") == "date":  # pragma: no cover - no date fields yet
        return date.fromisoformat(value)
    return value


def _check_range(value: float, schema: Schema, where: str) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        raise _fail(where, f"must be at least {schema['minimum']}", "send a larger value")
    if "maximum" in schema and value > schema["maximum"]:
        raise _fail(where, f"must be at most {schema['maximum']}", "send a smaller value")
    if schema.get("format") == "int32" and not -(2**31) <= value < 2**31:
        raise _fail(where, "must fit in 32 bits", "send a smaller value")
