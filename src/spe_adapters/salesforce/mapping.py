"""Field mapping between Salesforce records and SPE values.

Named constructors for foreign data live here, never in the model:
:func:`member_from_user`, :func:`opportunity_from_record` (Lead or
Opportunity) and :func:`record_from_change`. A record that cannot be mapped
raises :class:`~spe_core.errors.MappingError`, which the sync engine turns
into a quarantine entry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from spe_adapters._fields import one_id
from spe_adapters.salesforce.settings import RATING_TIERS, SalesforceSettings
from spe_core.adapter import Change, Inbound
from spe_core.errors import InvalidValue, MappingError
from spe_core.model import Location, Member, Opportunity, Role

__all__ = [
    "CRM",
    "busy_from_event",
    "event_fields",
    "format_datetime",
    "record_from_booking_change",
    "TASK_STATUS",
    "record_from_task_change",
    "task_fields",
    "task_from_record",
    "member_from_user",
    "opportunity_from_record",
    "parse_datetime",
    "record_from_change",
    "soql_fields",
    "user_fields",
]

CRM = "salesforce"


def parse_datetime(value: Any, field: str, record_id: str) -> datetime:
    """A Salesforce datetime (``2024-01-02T03:04:05.000+0000``) as an aware datetime."""
    if not isinstance(value, str) or not value:
        raise MappingError(
            f"record {record_id} has no {field}.",
            f"check that the integration user can read {field}.",
        )
    try:  # Python 3.11 reads Salesforce's "+0000" and "Z" offsets as they come
        parsed = datetime.fromisoformat(value)
    except ValueError:
        pass
    else:
        if parsed.tzinfo is not None:
            return parsed
    text = value.replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MappingError(
            f"record {record_id} has a malformed {field} {value!r}.",
            "this is not a Salesforce datetime; check the field type.",
        ) from None
    if parsed.tzinfo is None:
        raise MappingError(
            f"record {record_id} has {field} {value!r} without an offset.",
            "Salesforce datetimes carry an offset; check the field type.",
        )
    return parsed


def format_datetime(value: datetime) -> str:
    """A datetime as Salesforce's REST API takes it: UTC, at most milliseconds
    (``2026-01-05T08:00:00.123Z``; the REST API Developer Guide's date-time format
    ``yyyy-MM-ddTHH:mm:ss.SSSZ``). Sub-millisecond digits are cut, never rounded up
    into the next second."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_fields(settings: SalesforceSettings) -> list[str]:
    """The User fields the adapter reads."""
    fields = ["Id", "Name", "Username", "IsActive", "TimeZoneSidKey", "SystemModstamp"]
    if settings.fields.calendar_events:
        fields += ["Latitude", "Longitude", "City"]  # a field member's home base
    if settings.fields.role_field:
        fields.append(settings.fields.role_field)
    return fields


def user_supplies(record: dict[str, Any]) -> frozenset[str]:
    """The member attributes a User record holds (the others keep SPE's values:
    skills, WIP limit, working hours, coordinator, ... come from ``spe.toml``)."""
    supplies = {"name", "role", "active", "external_ids"}
    if record.get("TimeZoneSidKey"):
        supplies.add("time_zone")
    if record.get("Latitude") is not None and record.get("Longitude") is not None:
        supplies.add("home_base")
    return frozenset(supplies)


def member_from_user(record: dict[str, Any], settings: SalesforceSettings) -> Member:
    """An SPE member from a Salesforce User (role from config, else the role field)."""
    user_id = str(record.get("Id") or "")
    role_name = settings.roles.get(user_id) or settings.roles.get(str(record.get("Username")))
    if role_name is None and settings.fields.role_field:
        role_name = record.get(settings.fields.role_field)
    if not role_name:
        raise MappingError(
            f"User {user_id} ({record.get('Username')}) has no SPE role.",
            f"set {settings.fields.role_field or 'a role'} on the user, or name the user in "
            "[adapter.salesforce.roles].",
        )
    home = None
    if record.get("Latitude") is not None and record.get("Longitude") is not None:
        try:
            home = Location(record["Latitude"], record["Longitude"], record.get("City"))
        except (InvalidValue, TypeError, ValueError):
            raise MappingError(
                f"User {user_id} has an invalid address location "
                f"({record.get('Latitude')!r}, {record.get('Longitude')!r}).",
                "fix the user's address (Latitude -90..90, Longitude -180..180).",
            ) from None
    try:
        return Member(
            id=user_id,
            home_base=home,
            name=str(record.get("Name") or record.get("Username") or user_id),
            role=Role.parse(str(role_name)),
            time_zone=str(record.get("TimeZoneSidKey") or "UTC"),
            active=bool(record.get("IsActive", True)),
            external_ids={CRM: user_id},
        )
    except InvalidValue as exc:
        raise MappingError(f"User {user_id} cannot be mapped: {exc.problem}", exc.fix) from None


def soql_fields(settings: SalesforceSettings) -> list[str]:
    """The fields of the queued object the adapter reads."""
    f = settings.fields
    fields = [
        "Id",
        "OwnerId",
        "CreatedDate",
        "SystemModstamp",
        "IsDeleted",
        f.key_field,
        f.status_field,
        f.account_field,
        f.campaign,
    ]
    if f.queued_object == "Lead":
        fields.append("Rating")
    for extra in (f.tier_field, f.score_field, f.skills_field):
        if extra:
            fields.append(extra)
    return list(dict.fromkeys(fields))


def _number(record: dict[str, Any], field: str, record_id: str) -> float:
    value = record.get(field)
    if value is None or value == "":
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MappingError(
            f"record {record_id} has a non-numeric {field} {value!r}.",
            f"make {field} a number field.",
        ) from None


def opportunity_from_record(record: dict[str, Any], settings: SalesforceSettings) -> Inbound:
    """An SPE opportunity (with the CRM's owner and status) from a Lead or Opportunity."""
    f = settings.fields
    record_id = str(record.get("Id") or "")
    if not record_id:
        raise MappingError("a record came without an Id.", "report this to the adapter's authors.")
    account = record.get(f.account_field)
    if not account:
        raise MappingError(
            f"{f.queued_object} {record_id} has no {f.account_field}.",
            f"fill {f.account_field} in Salesforce; SPE needs the account to route work.",
        )
    if f.tier_field:
        tier = int(_number(record, f.tier_field, record_id))
    elif f.queued_object == "Lead":
        tier = RATING_TIERS.get(str(record.get("Rating") or "").lower(), 0)
    else:
        tier = 0
    score = _number(record, f.score_field, record_id) if f.score_field else 0.0
    skills: list[str] | frozenset[str] = frozenset()  # none: already normalised
    if f.skills_field and record.get(f.skills_field):
        skills = [s.strip() for s in str(record[f.skills_field]).split(",")]
    key = record.get(f.key_field) or f"sf-{record_id}"
    try:
        opp = Opportunity(
            id=str(key),
            account_id=str(account),
            queued_at=parse_datetime(record.get("CreatedDate"), "CreatedDate", record_id),
            source_campaign=record.get(f.campaign) or None,
            tier=tier,
            score=score,
            required_skills=skills,
            external_ids=one_id(CRM, record_id),
        )
    except InvalidValue as exc:
        raise MappingError(
            f"{f.queued_object} {record_id} cannot be mapped: {exc.problem}", exc.fix
        ) from None
    return Inbound(
        opp,
        crm_owner=record.get("OwnerId"),
        crm_status=f.status_from_crm(record.get(f.status_field)),
        deleted=bool(record.get("IsDeleted")),
    )


def record_from_change(change: Change, settings: SalesforceSettings) -> dict[str, Any]:
    """The Salesforce fields to write for one opportunity change."""
    f = settings.fields
    values = change.data
    record: dict[str, Any] = {"attributes": {"type": f.queued_object}, f.key_field: change.key}
    if change.crm_id:
        record["Id"] = change.crm_id
    if "status" in values:
        record[f.status_field] = f.status_values[str(values["status"])]
    if "owner" in values:
        owner = values["owner"] or settings.queue_owner_id
        if owner:
            record["OwnerId"] = owner
    if "released_at" in values:
        at = values["released_at"]
        record[f.released_at_field] = None if at is None else format_datetime(at)
    if "account_id" in values:  # an opportunity created in SPE: required fields too
        account = str(values["account_id"])
        record[f.account_field] = account
        if f.queued_object == "Lead":
            record.setdefault("LastName", account)
        else:
            record.setdefault("Name", f"SPE {change.key}")
            record.setdefault("StageName", "Prospecting")
            record.setdefault("CloseDate", values.get("close_date") or "2099-12-31")
        if values.get("source_campaign"):
            record[f.campaign] = values["source_campaign"]
    return record


#: SPE task status -> the standard Task ``Status`` picklist value.
TASK_STATUS = {
    "unassigned": "Not Started",
    "assigned": "Not Started",
    "accepted": "In Progress",
    "completed": "Completed",
    "cancelled": "Deferred",
}
_PRIORITY_IN = {"high": 2, "normal": 3, "low": 4}
_PRIORITY_OUT = {1: "High", 2: "High", 3: "Normal", 4: "Low"}


def task_fields(settings: SalesforceSettings) -> list[str]:
    """The Task fields the adapter reads."""
    return [
        "Id",
        "Subject",
        "OwnerId",
        "WhatId",
        "Priority",
        "CreatedDate",
        "SystemModstamp",
        "IsDeleted",
        settings.fields.key_field,
        str(settings.fields.task_kind_field),
    ]


def task_from_record(record: dict[str, Any], settings: SalesforceSettings) -> Inbound:
    """An SPE task from a Salesforce Task someone created for SPE to route."""
    from spe_core.model import Task

    record_id = str(record.get("Id") or "")
    kind = record.get(str(settings.fields.task_kind_field))
    if not kind:
        raise MappingError(
            f"Task {record_id} has no {settings.fields.task_kind_field}.",
            "set the SPE task kind on the Task, or leave it to people.",
        )
    key = record.get(settings.fields.key_field) or f"sf-{record_id}"
    try:
        task = Task(
            id=str(key),
            kind=str(kind),
            account_id=str(record.get("WhatId") or "unknown account"),
            created_at=parse_datetime(record.get("CreatedDate"), "CreatedDate", record_id),
            priority=_PRIORITY_IN.get(str(record.get("Priority") or "").lower(), 3),
            external_ids={CRM: record_id},
        )
    except InvalidValue as exc:
        raise MappingError(f"Task {record_id} cannot be mapped: {exc.problem}", exc.fix) from None
    # read through queryAll: a Task deleted in Salesforce cancels the routed SPE task
    return Inbound(task, crm_owner=record.get("OwnerId"), deleted=bool(record.get("IsDeleted")))


def event_fields(settings: SalesforceSettings) -> list[str]:
    """The Event fields the adapter reads as busy time."""
    return [
        "Id",
        "OwnerId",
        "Subject",
        "StartDateTime",
        "EndDateTime",
        "ShowAs",
        "SystemModstamp",
        "IsDeleted",
        settings.fields.key_field,
    ]


def busy_from_event(record: dict[str, Any], settings: SalesforceSettings) -> Inbound:
    """Busy time from an Event in a member's calendar (Events SPE wrote are its bookings:
    they map to ``Inbound(None)`` and are ignored; ``ShowAs = Free`` and a deleted
    Event, read through queryAll, free the time)."""
    from spe_core.model import Busy

    record_id = str(record.get("Id") or "")
    if record.get(settings.fields.key_field):
        return Inbound(None)
    owner = record.get("OwnerId")
    if not owner:
        raise MappingError(
            f"Event {record_id} has no OwnerId.", "give the Event an owner (a user)."
        )
    start = parse_datetime(record.get("StartDateTime"), "StartDateTime", record_id)
    end = parse_datetime(record.get("EndDateTime"), "EndDateTime", record_id)
    try:
        busy = Busy(record_id, str(owner), start, end, str(record.get("Subject") or "busy"))
    except InvalidValue as exc:
        raise MappingError(f"Event {record_id} cannot be mapped: {exc.problem}", exc.fix) from None
    free = str(record.get("ShowAs") or "Busy").lower() == "free"
    return Inbound(
        busy,
        crm_owner=str(owner),
        crm_status="free" if free else "busy",
        deleted=bool(record.get("IsDeleted")),
    )


def record_from_booking_change(change: Change, settings: SalesforceSettings) -> dict[str, Any]:
    """The Event fields to write for one booking (a cancelled booking shows as free)."""
    values = change.data
    cancelled = values.get("status") == "cancelled"
    record: dict[str, Any] = {
        "attributes": {"type": "Event"},
        settings.fields.key_field: change.key,
        "Subject": ("Cancelled: " if cancelled else "") + str(values.get("subject") or "Meeting"),
        "ShowAs": "Free" if cancelled else "Busy",
    }
    if change.crm_id:
        record["Id"] = change.crm_id
    if values.get("owner"):
        record["OwnerId"] = values["owner"]
    for name, field in (("start", "StartDateTime"), ("end", "EndDateTime")):
        if values.get(name) is not None:
            record[field] = format_datetime(values[name])
    if values.get("address"):
        record["Location"] = str(values["address"])[:255]
    if values.get("booked_by"):
        record["Description"] = f"Booked by {values['booked_by']} through SPE."
    return record


def record_from_task_change(change: Change, settings: SalesforceSettings) -> dict[str, Any]:
    """The Task fields to write for one routed task."""
    values = change.data
    record: dict[str, Any] = {"attributes": {"type": "Task"}, settings.fields.key_field: change.key}
    if change.crm_id:
        record["Id"] = change.crm_id
    if "status" in values:
        record["Status"] = TASK_STATUS.get(str(values["status"]), "Not Started")
    if values.get("owner"):
        record["OwnerId"] = values["owner"]
    if "priority" in values:
        record["Priority"] = _PRIORITY_OUT.get(int(values["priority"]), "Normal")
    if values.get("due") is not None:
        record["ActivityDate"] = values["due"].date().isoformat()
    if settings.fields.task_kind_field and values.get("kind"):
        record[settings.fields.task_kind_field] = values["kind"]
    if "account_id" in values:
        record["Subject"] = f"{str(values.get('kind', 'task')).replace('_', ' ')} "
        record["Subject"] += f"for {values['account_id']}"
    return record
