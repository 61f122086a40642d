"""Field mapping between HubSpot records and SPE values.

Named constructors for foreign data live here, never in the model:
:func:`member_from_owner`, :func:`opportunity_from_record` (deal or contact),
:func:`task_from_record`, and the property dicts written for each change. A
record that cannot be mapped raises :class:`~spe_core.errors.MappingError`,
which the sync engine turns into a quarantine entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from spe_adapters._fields import one_id
from spe_adapters.hubspot.settings import HubSpotSettings
from spe_core.adapter import Change, Inbound
from spe_core.errors import InvalidValue, MappingError
from spe_core.inbound import KNOWN_STATUSES
from spe_core.model import Location, Member, Opportunity, Role, Task

__all__ = [
    "CRM",
    "TASK_STATUS",
    "epoch_ms",
    "member_from_owner",
    "opportunity_from_record",
    "opportunity_properties",
    "owner_role",
    "parse_datetime",
    "properties_for_change",
    "record_properties",
    "task_from_record",
    "task_properties",
    "task_record_properties",
]

CRM = "hubspot"


ARCHIVED = "@archived"
"""The key under which a record read from HubSpot's recycling bin carries ``True``
(no HubSpot property name can start with ``@``)."""


def parse_datetime(value: Any, name: str, record_id: str) -> datetime:
    """A HubSpot datetime property (ISO-8601, or epoch milliseconds) as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        raise MappingError(
            f"record {record_id} has no {name}.",
            f"check that the private app can read {name} (scope crm.objects.*.read).",
        )
    text = value.strip()
    try:
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise MappingError(
            f"record {record_id} has a malformed {name} {value!r}.",
            f"{name} must be a HubSpot datetime; check the property type.",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def epoch_ms(value: datetime) -> int:
    """A datetime as the epoch milliseconds HubSpot's search filters compare."""
    return int(value.timestamp() * 1000)


def owner_role(owner: dict[str, Any], settings: HubSpotSettings) -> str | None:
    """The SPE role configured for an owner: by id, by email, then by team (primary first)."""
    role = settings.roles.get(str(owner.get("id"))) or settings.roles.get(
        str(owner.get("email") or "")
    )
    if role:
        return role
    teams = sorted(owner.get("teams") or [], key=lambda t: not t.get("primary"))
    for team in teams:
        role = settings.team_roles.get(str(team.get("name")))
        if role:
            return role
    return None


def owner_supplies(owner: dict[str, Any], settings: HubSpotSettings) -> frozenset[str]:
    """The member attributes an owner (with the adapter's settings) holds: name, role,
    active, and the home base when ``home_bases`` names one; the others (time zone,
    skills, coordinator, ...) keep SPE's values, set in ``spe.toml``."""
    supplies = {"name", "role", "active", "external_ids"}
    owner_id = str(owner.get("id") or "")
    if owner_id in settings.home_bases or str(owner.get("email")) in settings.home_bases:
        supplies.add("home_base")
    return frozenset(supplies)


def member_from_owner(owner: dict[str, Any], settings: HubSpotSettings) -> Member:
    """An SPE member from a HubSpot owner (role from ``roles`` or ``team_roles``)."""
    owner_id = str(owner.get("id") or "")
    role = owner_role(owner, settings)
    if role is None:
        raise MappingError(
            f"owner {owner_id} ({owner.get('email')}) has no SPE role.",
            "name the owner in [adapter.hubspot.roles] or their team in "
            "[adapter.hubspot.team_roles].",
        )
    name = " ".join(p for p in (owner.get("firstName"), owner.get("lastName")) if p)
    base = settings.home_bases.get(owner_id) or settings.home_bases.get(str(owner.get("email")))
    home = None
    if base is not None:
        if not isinstance(base, Mapping) or "lat" not in base or "lon" not in base:
            raise MappingError(
                f"[adapter.hubspot.home_bases] entry for owner {owner_id} is not a table with "
                "lat and lon.",
                'write "owner@example.com" = { lat = 48.14, lon = 11.58, address = "Munich" }.',
            )
        try:
            home = Location(base["lat"], base["lon"], base.get("address"))
        except (InvalidValue, TypeError, ValueError):
            raise MappingError(
                f"[adapter.hubspot.home_bases] entry for owner {owner_id} is not a valid place.",
                "use latitude -90..90 and longitude -180..180.",
            ) from None
    user = str(owner.get("userId") or "")
    try:
        return Member(
            home_base=home,
            id=owner_id,
            name=name or str(owner.get("email") or owner_id),
            role=Role.parse(role),
            time_zone=settings.default_time_zone,
            active=not bool(owner.get("archived")),
            # the owner's HubSpot user id lets HubSpot's app card (which knows the
            # viewing user, not their owner id) find the member
            external_ids={CRM: owner_id, **({"hubspot_user": user} if user else {})},
        )
    except InvalidValue as exc:
        raise MappingError(f"owner {owner_id} cannot be mapped: {exc.problem}", exc.fix) from None


def record_properties(settings: HubSpotSettings) -> list[str]:
    """The properties of the queued object the adapter reads."""
    f = settings.fields
    names = [
        "hs_object_id",
        settings.created_property,
        settings.last_modified_property,
        "hubspot_owner_id",
        f.key_property,
        f.status_property,
        settings.account_property,
    ]
    if settings.queued_object == "deals":
        names += ["pipeline", "dealstage"]
    for extra in (f.tier_property, f.score_property, f.campaign_property, f.skills_property):
        if extra:
            names.append(extra)
    return list(dict.fromkeys(names))


def _number(record: dict[str, Any], name: str, record_id: str) -> float:
    value = record.get(name)
    if value is None or value == "":
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MappingError(
            f"record {record_id} has a non-numeric {name} {value!r}.",
            f"make {name} a number property.",
        ) from None


def opportunity_from_record(record: dict[str, Any], settings: HubSpotSettings) -> Inbound:
    """An SPE opportunity (with HubSpot's owner and status) from a deal or contact."""
    f = settings.fields
    what = settings.queued_object[:-1]
    record_id = str(record.get("hs_object_id") or record.get("id") or "")
    if not record_id:
        raise MappingError("a record came without an id.", "report this to the adapter's authors.")
    account = record.get(settings.account_property)
    if not account:
        raise MappingError(
            f"{what} {record_id} has no {settings.account_property}.",
            f"fill {settings.account_property} in HubSpot; SPE needs the account to route work.",
        )
    tier = int(_number(record, f.tier_property, record_id)) if f.tier_property else 0
    score = _number(record, f.score_property, record_id) if f.score_property else 0.0
    skills: list[str] | frozenset[str] = frozenset()  # none: already normalised
    if f.skills_property and record.get(f.skills_property):
        skills = [s.strip() for s in str(record[f.skills_property]).split(",") if s.strip()]
    key = record.get(f.key_property) or f"hs-{record_id}"
    campaign = record.get(f.campaign_property) if f.campaign_property else None
    try:
        opp = Opportunity(
            id=str(key),
            account_id=str(account),
            queued_at=parse_datetime(
                record.get(settings.created_property), settings.created_property, record_id
            ),
            source_campaign=campaign or None,
            tier=tier,
            score=score,
            required_skills=skills,
            external_ids=one_id(CRM, record_id),
        )
    except InvalidValue as exc:
        raise MappingError(f"{what} {record_id} cannot be mapped: {exc.problem}", exc.fix) from None
    return Inbound(
        opp,
        crm_owner=record.get("hubspot_owner_id") or None,
        crm_status=crm_status(record.get(f.status_property), settings, record_id),
        deleted=bool(record.get(ARCHIVED)),
    )


def crm_status(value: Any, settings: HubSpotSettings, record_id: str) -> str | None:
    """The SPE status a status-property value stands for; a value the mapping does not
    know passes through unchanged, so the sync quarantines the record naming the value
    and ``status_values`` (never read as "no SPE status" and ignored in silence)."""
    f = settings.fields
    if value is None or str(value).strip() == "":
        return None
    known = f.status_from_crm(str(value))
    if known is not None:
        return known
    text = str(value)
    if text in KNOWN_STATUSES:  # an SPE status's name that the mapping gives another value
        raise MappingError(
            f"{settings.queued_object[:-1]} {record_id} has {f.status_property} {text!r}, which "
            f"[adapter.hubspot.fields.status_values] does not map (it maps {text!r} to "
            f"{f.status_values.get(text)!r}).",
            f"set the record's {f.status_property} to a mapped value, or map {text!r} in "
            "[adapter.hubspot.fields.status_values].",
        )
    return text


def hubspot_time(value: datetime) -> str:
    """A datetime as HubSpot writes property values: ISO-8601 UTC with ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _time(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def opportunity_properties(change: Change, settings: HubSpotSettings) -> dict[str, str]:
    """The deal or contact properties to write for one opportunity change."""
    f = settings.fields
    values = change.data
    props: dict[str, str] = {f.key_property: change.key}
    if "status" in values:
        props[f.status_property] = f.status_values[str(values["status"])]
    if "owner" in values:
        props["hubspot_owner_id"] = str(values["owner"] or settings.queue_owner_id or "")
    if "released_at" in values:
        props[f.released_at_property] = _time(values["released_at"])
    if "account_id" in values:  # an opportunity created in SPE: what describes it, too
        account = str(values["account_id"])
        props[settings.account_property] = account
        if settings.queued_object == "deals":
            props.setdefault("dealname", f"{account} (SPE {change.key})")
            props["pipeline"] = settings.pipeline or "default"
            props["dealstage"] = settings.stage
        else:
            props.setdefault("lastname", account)
        campaign = f.campaign_property
        if campaign and not campaign.startswith("hs_") and values.get("source_campaign"):
            props[campaign] = str(values["source_campaign"])
        if f.tier_property and values.get("tier") is not None:
            props[f.tier_property] = str(values["tier"])
        if f.score_property and values.get("score") is not None:
            props[f.score_property] = str(values["score"])
    return props


#: SPE task status -> HubSpot's ``hs_task_status``.
TASK_STATUS = {
    "unassigned": "NOT_STARTED",
    "assigned": "NOT_STARTED",
    "accepted": "IN_PROGRESS",
    "completed": "COMPLETED",
    "cancelled": "DEFERRED",
}
_PRIORITY_IN = {"high": 2, "medium": 3, "low": 4}
_PRIORITY_OUT = {1: "HIGH", 2: "HIGH", 3: "MEDIUM", 4: "LOW"}


def task_record_properties(settings: HubSpotSettings) -> list[str]:
    """The task properties the adapter reads."""
    return [
        "hs_object_id",
        "hs_createdate",
        "hs_lastmodifieddate",
        "hs_task_subject",
        "hs_task_priority",
        "hubspot_owner_id",
        "spe_account",
        settings.fields.key_property,
        str(settings.fields.task_kind_property),
    ]


def task_from_record(record: dict[str, Any], settings: HubSpotSettings) -> Inbound:
    """An SPE task from a HubSpot task someone created for SPE to route."""
    record_id = str(record.get("hs_object_id") or record.get("id") or "")
    kind = record.get(str(settings.fields.task_kind_property))
    if not kind:
        raise MappingError(
            f"task {record_id} has no {settings.fields.task_kind_property}.",
            "set the SPE task kind on the task, or leave it to people.",
        )
    key = record.get(settings.fields.key_property) or f"hs-{record_id}"
    try:
        task = Task(
            id=str(key),
            kind=str(kind),
            account_id=str(record.get("spe_account") or "unknown account"),
            created_at=parse_datetime(record.get("hs_createdate"), "hs_createdate", record_id),
            priority=_PRIORITY_IN.get(str(record.get("hs_task_priority") or "").lower(), 3),
            external_ids={CRM: record_id},
        )
    except InvalidValue as exc:
        raise MappingError(f"task {record_id} cannot be mapped: {exc.problem}", exc.fix) from None
    return Inbound(task, crm_owner=record.get("hubspot_owner_id") or None)


def task_properties(
    change: Change, settings: HubSpotSettings, now: datetime | None = None
) -> dict[str, str]:
    """The task properties to write for one routed task.

    ``hs_timestamp`` (the task's due date) is required when HubSpot creates a task: it is
    the due date when SPE has one, else, for a task HubSpot does not have yet, ``now``
    (the time of writing). An update without a due date leaves HubSpot's value alone.
    """
    values = change.data
    props: dict[str, str] = {settings.fields.key_property: change.key}
    if "status" in values:
        props["hs_task_status"] = TASK_STATUS.get(str(values["status"]), "NOT_STARTED")
    if values.get("owner"):
        props["hubspot_owner_id"] = str(values["owner"])
    if "priority" in values and values["priority"] is not None:
        props["hs_task_priority"] = _PRIORITY_OUT.get(int(values["priority"]), "MEDIUM")
    if values.get("due") is not None:
        props["hs_timestamp"] = _time(values["due"])
    elif change.crm_id is None:
        props["hs_timestamp"] = _time(now or datetime.now(UTC))
    if settings.fields.task_kind_property and values.get("kind"):
        props[settings.fields.task_kind_property] = str(values["kind"])
    if "account_id" in values:
        kind = str(values.get("kind", "task")).replace("_", " ")
        props["hs_task_subject"] = f"{kind} for {values['account_id']}"
        props["spe_account"] = str(values["account_id"])
    return props


def meeting_record_properties(settings: HubSpotSettings) -> list[str]:
    """The meeting properties the adapter reads as busy time."""
    return [
        "hs_object_id",
        "hs_createdate",
        "hs_lastmodifieddate",
        "hs_meeting_title",
        "hs_meeting_start_time",
        "hs_meeting_end_time",
        "hs_meeting_outcome",
        "hubspot_owner_id",
        settings.fields.key_property,
    ]


def busy_from_meeting(record: dict[str, Any], settings: HubSpotSettings) -> Inbound:
    """Busy time from a meeting in an owner's calendar (meetings SPE wrote are its
    bookings: ``Inbound(None)``, ignored; a cancelled or deleted meeting frees its
    time)."""
    from spe_core.model import Busy

    record_id = str(record.get("hs_object_id") or "")
    if record.get(settings.fields.key_property):
        return Inbound(None)
    owner = record.get("hubspot_owner_id")
    if not owner:
        raise MappingError(
            f"meeting {record_id} has no hubspot_owner_id.", "assign the meeting to an owner."
        )
    start = parse_datetime(record.get("hs_meeting_start_time"), "hs_meeting_start_time", record_id)
    end = parse_datetime(record.get("hs_meeting_end_time"), "hs_meeting_end_time", record_id)
    try:
        busy = Busy(
            record_id, str(owner), start, end, str(record.get("hs_meeting_title") or "busy")
        )
    except InvalidValue as exc:
        raise MappingError(
            f"meeting {record_id} cannot be mapped: {exc.problem}", exc.fix
        ) from None
    free = str(record.get("hs_meeting_outcome") or "").upper() == "CANCELED"
    return Inbound(
        busy,
        crm_owner=str(owner),
        crm_status="free" if free else "busy",
        deleted=bool(record.get(ARCHIVED)),
    )


def meeting_properties(
    change: Change, settings: HubSpotSettings, now: datetime | None = None
) -> dict[str, str]:
    """The meeting properties to write for one booking (a cancelled one is CANCELED);
    ``hs_timestamp`` (required on create) is its start, else ``now``."""
    values = change.data
    cancelled = values.get("status") == "cancelled"
    props: dict[str, str] = {
        settings.fields.key_property: change.key,
        "hs_meeting_title": str(values.get("subject") or "Meeting"),
        "hs_meeting_outcome": "CANCELED" if cancelled else "SCHEDULED",
    }
    if values.get("owner"):
        props["hubspot_owner_id"] = str(values["owner"])
    if values.get("start") is not None:
        props["hs_meeting_start_time"] = _time(values["start"])
        props["hs_timestamp"] = _time(values["start"])
    elif change.crm_id is None:
        props["hs_timestamp"] = _time(now or datetime.now(UTC))
    if values.get("end") is not None:
        props["hs_meeting_end_time"] = _time(values["end"])
    if values.get("address"):
        props["hs_meeting_location"] = str(values["address"])
    if values.get("booked_by"):
        props["hs_meeting_body"] = f"Booked by {values['booked_by']} through SPE."
    return props


def properties_for_change(
    change: Change, settings: HubSpotSettings, now: datetime | None = None
) -> dict[str, str]:
    """The properties to write for one change of any supported kind (``now``: the time of
    writing, for the ``hs_timestamp`` a new task or meeting needs)."""
    from spe_core.adapter import ChangeKind

    if change.kind is ChangeKind.TASK:
        return task_properties(change, settings, now)
    if change.kind is ChangeKind.BOOKING:
        return meeting_properties(change, settings, now)
    return opportunity_properties(change, settings)
