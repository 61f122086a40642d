"""The emulated portal: owners, CRM objects, properties, rules, tokens and faults.

Resettable and seedable; thread-safe (one lock); indexed by id and by the
unique ``spe_key`` property, so batches of 100 and search pages of 200 take
milliseconds. Time comes from an injectable clock, so tests control the
last-modified properties. Property values are kept as HubSpot returns them:
strings (or None), datetimes as ISO-8601 UTC with milliseconds.
"""

from __future__ import annotations

import itertools
import random
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from spe_adapters.emulator_kit.demo_team import DEMO_TEAM
from spe_adapters.emulator_kit.faults import Faults as KitFaults

__all__ = [
    "DEMO_TEAMS",
    "LAST_MODIFIED",
    "OBJECT_TYPES",
    "PROPERTIES",
    "REQUIRED_ON_CREATE",
    "UNIQUE_PROPERTIES",
    "Faults",
    "Portal",
    "RecordError",
    "ALL_SCOPES",
    "epoch_ms",
    "hubspot_time",
    "parse_hubspot_time",
]

#: The demo portal's HubSpot team for each SPE role (its owners' roles come from these).
DEMO_TEAMS = {
    "inside_sales": "Inside Sales",
    "field_sales": "Field Sales",
    "sales_coordinator": "Sales Coordination",
    "customer_service": "Customer Service",
    "engineering": "Engineering",
    "promotions": "Promotions",
}

#: The object types the emulator serves (and their numeric type ids, as webhooks name them).
OBJECT_TYPES: dict[str, str] = {
    "contacts": "0-1",
    "deals": "0-3",
    "tasks": "0-27",
    "meetings": "0-47",
}
#: The last-modified property of each object type (contacts differ from the rest).
LAST_MODIFIED: dict[str, str] = {
    "contacts": "lastmodifieddate",
    "deals": "hs_lastmodifieddate",
    "tasks": "hs_lastmodifieddate",
    "meetings": "hs_lastmodifieddate",
}
CREATED: dict[str, str] = {
    "contacts": "createdate",
    "deals": "createdate",
    "tasks": "hs_createdate",
    "meetings": "hs_createdate",
}

_SPE = {
    "spe_key": "string",
    "spe_status": "enumeration",
    "spe_released_at": "datetime",
    "spe_tier": "number",
    "spe_score": "number",
    "spe_account": "string",
    "spe_skills": "string",
}
#: object type -> property -> type (string, number, datetime, enumeration, bool).
PROPERTIES: dict[str, dict[str, str]] = {
    "contacts": {
        "email": "string",
        "firstname": "string",
        "lastname": "string",
        "company": "string",
        "hubspot_owner_id": "enumeration",
        "hs_lead_status": "enumeration",
        "lifecyclestage": "enumeration",
        "hs_analytics_source": "enumeration",
        **_SPE,
    },
    "deals": {
        "dealname": "string",
        "amount": "number",
        "pipeline": "enumeration",
        "dealstage": "enumeration",
        "closedate": "datetime",
        "hubspot_owner_id": "enumeration",
        "hs_analytics_source": "enumeration",
        **_SPE,
    },
    "tasks": {
        "hs_task_subject": "string",
        "hs_task_body": "string",
        "hs_task_status": "enumeration",
        "hs_task_priority": "enumeration",
        "hs_task_type": "enumeration",
        "hs_timestamp": "datetime",
        "hubspot_owner_id": "enumeration",
        "spe_key": "string",
        "spe_task_kind": "enumeration",
        "spe_account": "string",
    },
    "meetings": {
        "hs_meeting_title": "string",
        "hs_meeting_start_time": "datetime",
        "hs_meeting_end_time": "datetime",
        "hs_meeting_outcome": "enumeration",
        "hs_meeting_location": "string",
        "hs_meeting_body": "string",
        "hs_timestamp": "datetime",
        "hubspot_owner_id": "enumeration",
        "spe_key": "string",
    },
}
for _type, _props in PROPERTIES.items():
    _props.update(
        {
            "hs_object_id": "number",
            LAST_MODIFIED[_type]: "datetime",
            CREATED[_type]: "datetime",
        }
    )
READ_ONLY = {"hs_object_id", *LAST_MODIFIED.values(), *CREATED.values()}
UNIQUE_PROPERTIES = {"spe_key"}
#: Properties an API create must carry, per object type. Tasks: "hs_timestamp: Required.
#: This field marks the task's due date" (HubSpot, "Tasks" API guide,
#: https://developers.hubspot.com/docs/api/crm/tasks). Meetings: "hs_timestamp: Required.
#: This field marks the date and time that the meeting occurred ... When the property value
#: is missing, the value will default to hs_meeting_start_time" (HubSpot, "Meetings" API
#: guide, https://developers.hubspot.com/docs/api/crm/meetings): the fallback, when present.
REQUIRED_ON_CREATE: dict[str, tuple[tuple[str, str | None], ...]] = {
    "tasks": (("hs_timestamp", None),),
    "meetings": (("hs_timestamp", "hs_meeting_start_time"),),
}
DEAL_STAGES = {
    "default": [
        "appointmentscheduled",
        "qualifiedtobuy",
        "presentationscheduled",
        "decisionmakerboughtin",
        "contractsent",
        "closedwon",
        "closedlost",
    ],
}
ENUM_OPTIONS: dict[str, set[str]] = {
    "spe_status": {
        "backlog",
        "queued",
        "released",
        "won",
        "lost",
        "disqualified",
        "appointment_set",
        "nurture",
        "expired",
    },
    "hs_task_status": {"NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"},
    "hs_task_priority": {"NONE", "LOW", "MEDIUM", "HIGH"},
}


#: The private-app scopes a new token gets unless the test says otherwise (HubSpot's scope
#: names: https://developers.hubspot.com/docs/api/scopes).
ALL_SCOPES: tuple[str, ...] = (
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.owners.read",
)


def property_definition(object_type: str, name: str, kind: str) -> dict[str, Any]:
    """One property as the properties API describes it (``GET /crm/v3/properties/{object}``,
    https://developers.hubspot.com/docs/api/crm/properties): ``type`` and ``fieldType``,
    the options of an enumeration, whether its values are unique."""
    field_type = {
        "string": "text",
        "number": "number",
        "datetime": "date",
        "enumeration": "select",
        "bool": "booleancheckbox",
    }[kind]
    options = sorted(ENUM_OPTIONS.get(name, ()))
    if name == "dealstage":
        options = list(DEAL_STAGES["default"])
    return {
        "name": name,
        "label": name.replace("_", " ").title(),
        "type": kind,
        "fieldType": field_type,
        "groupName": f"{object_type[:-1]}information",
        "description": "",
        "options": [
            {"label": o, "value": o, "displayOrder": i, "hidden": False}
            for i, o in enumerate(options)
        ],
        "hasUniqueValue": name in UNIQUE_PROPERTIES,
        "hidden": False,
        "formField": False,
        "calculated": name in READ_ONLY,
        "externalOptions": False,
        "modificationMetadata": {
            "archivable": name not in READ_ONLY,
            "readOnlyDefinition": not name.startswith("spe_"),
            "readOnlyValue": name in READ_ONLY,
        },
        "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": "2024-01-01T00:00:00.000Z",
        "archived": False,
    }


def hubspot_time(value: datetime) -> str:
    """A datetime as HubSpot writes it: ``2026-01-05T08:00:00.000Z``."""
    v = value.astimezone(UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"


def parse_hubspot_time(value: str) -> datetime:
    """An ISO-8601 datetime or epoch milliseconds (as HubSpot accepts both) as aware UTC."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def epoch_ms(value: datetime) -> int:
    """A datetime as epoch milliseconds (search filters compare dates this way)."""
    return int(value.timestamp() * 1000)


class RecordError(Exception):
    """A per-input error: HubSpot's category and message."""

    def __init__(self, category: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.category, self.message, self.status = category, message, status


@attrs.define
class Faults(KitFaults):
    """Faults to inject (the kit's, see :class:`spe_adapters.emulator_kit.Faults`), plus
    ``daily_limit_hit``: every request answers 429 with the DAILY policy.

    Statuses: 429 = the ten-secondly rolling limit, 5xx; ``failing_records``: record
    ids or ``spe_key`` values whose writes fail inside an otherwise fine batch (value:
    the error category, e.g. ``VALIDATION_ERROR``).

    Batch write replies: ``shuffle_results`` (default on) returns results in an
    order unrelated to the inputs, drawn from ``order_rng`` (seed it for a
    reproducible order), because HubSpot does not promise any order;
    ``omit_from_replies``: record ids, ``spe_key`` values or ``objectWriteTraceId``
    values whose write happens but whose result the reply leaves out;
    ``processing_replies``: the next that many batch write replies say
    ``"status": "PROCESSING"`` with no results (the writes happen).
    """

    daily_limit_hit: bool = False
    shuffle_results: bool = True
    order_rng: random.Random = attrs.Factory(lambda: random.Random(11))
    omit_from_replies: set[str] = attrs.Factory(set)
    processing_replies: int = 0

    def configure_replies(self, body: Mapping[str, Any]) -> None:
        """The batch-reply settings from ``POST /__emulator/faults``: ``shuffle_results``
        (default true), ``results_seed``, ``omit_from_replies``, ``processing_replies``."""
        self.shuffle_results = bool(body.get("shuffle_results", True))
        if "results_seed" in body:
            self.order_rng = random.Random(int(body["results_seed"]))
        self.omit_from_replies = {str(k) for k in body.get("omit_from_replies", [])}
        self.processing_replies = int(body.get("processing_replies", 0))

    def draw(self, write: bool = False) -> int | None:
        """The status this request must fail with, or None."""
        if self.daily_limit_hit:
            return 429
        return super().draw(write)

    def configure(self, body: Mapping[str, Any]) -> None:
        """The kit's settings, and ``daily_limit_hit``."""
        super().configure(body)
        self.daily_limit_hit = bool(body.get("daily_limit_hit", False))
        self.configure_replies(body)


class Portal:
    """The data and rules of one emulated HubSpot portal (account)."""

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        *,
        daily_limit: int = 500_000,
        ten_second_limit: int = 190,
        time_zone: str = "America/New_York",
        search_lag: timedelta = timedelta(0),
    ) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        self.daily_limit = daily_limit
        self.ten_second_limit = ten_second_limit
        self.portal_id = 4242424
        #: The account's time zone (account-info API); the daily API limit resets at
        #: midnight in it (https://developers.hubspot.com/docs/api/usage-details).
        self.time_zone = time_zone
        #: How long a write takes to reach search: newly created or updated records can
        #: take a few moments to appear in search results
        #: (https://developers.hubspot.com/docs/api/crm/search, Limitations). Zero for
        #: fast tests; until it has passed, search sees the record as it was before.
        self.search_lag = search_lag
        self.reset()

    def reset(self) -> None:
        """Forget every owner, record, token and fault."""
        with self.lock:
            self.owners: dict[str, dict[str, Any]] = {}
            self.objects: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in OBJECT_TYPES}
            # the recycling bin: archived records, returned only when asked for
            self.archived: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in OBJECT_TYPES}
            self.unique: dict[tuple[str, str, str], str] = {}
            self.tokens: set[str] = set()
            #: token -> its private-app scopes (the token-info API reports them)
            self.token_scopes: dict[str, tuple[str, ...]] = {}
            self.api_used = 0
            self.usage_day: date | None = None
            self._ids = itertools.count(1001)
            self._owner_ids = itertools.count(70001)
            self.faults = Faults()

    # --- identity --------------------------------------------------------------------------

    def new_token(self, scopes: Iterable[str] = ALL_SCOPES) -> str:
        """A private-app access token this portal accepts."""
        token = "pat-eu1-" + secrets.token_hex(16)
        self.add_token(token, scopes)
        return token

    def add_token(self, token: str, scopes: Iterable[str] = ALL_SCOPES) -> None:
        """Accept ``token`` as a private-app access token with these scopes."""
        self.tokens.add(token)
        self.token_scopes[token] = tuple(scopes)

    def revoke_tokens(self) -> None:
        """Invalidate every token (as a rotated private-app token would)."""
        self.tokens.clear()
        self.token_scopes.clear()

    # --- usage -----------------------------------------------------------------------------

    def count_call(self) -> bool:
        """Count one API call against the daily limit; False when the limit is already
        reached. The count resets at midnight in the account's time zone
        (https://developers.hubspot.com/docs/api/usage-details: the daily limit resets at
        midnight in the account's time zone setting)."""
        with self.lock:
            today = self.clock().astimezone(ZoneInfo(self.time_zone)).date()
            if today != self.usage_day:
                self.usage_day, self.api_used = today, 0
            if self.api_used >= self.daily_limit:
                return False
            self.api_used += 1
            return True

    def next_reset(self) -> datetime:
        """When the daily limit resets: the next midnight in the account's time zone."""
        zone = ZoneInfo(self.time_zone)
        local = self.clock().astimezone(zone)
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), zone)
        return midnight.astimezone(UTC)

    def account_details(self) -> dict[str, Any]:
        """The account-info API's reply (``GET /account-info/v3/details``; HubSpot's
        "Retrieve account details", https://developers.hubspot.com/docs/api-reference/
        latest/account/account-information/get-account-details)."""
        offset = self.clock().astimezone(ZoneInfo(self.time_zone)).utcoffset() or timedelta(0)
        ms = int(offset.total_seconds() * 1000)
        sign = "-" if ms < 0 else "+"
        minutes = abs(ms) // 60_000
        return {
            "portalId": self.portal_id,
            "accountType": "STANDARD",
            "timeZone": self.time_zone,
            "companyCurrency": "USD",
            "additionalCurrencies": [],
            "utcOffset": f"{sign}{minutes // 60:02d}:{minutes % 60:02d}",
            "utcOffsetMilliseconds": ms,
            "uiDomain": "app.hubspot.com",
            "dataHostingLocation": "na1",
        }

    def add_owner(
        self,
        first_name: str,
        last_name: str,
        email: str,
        *,
        teams: Iterable[str] = (),
        archived: bool = False,
    ) -> str:
        """Create an owner (a HubSpot user who can own records); returns its id."""
        with self.lock:
            owner_id = str(next(self._owner_ids))
            now = hubspot_time(self.clock())
            self.owners[owner_id] = {
                "id": owner_id,
                "email": email,
                "type": "PERSON",
                "firstName": first_name,
                "lastName": last_name,
                "userId": int(owner_id) + 1_000_000,
                "userIdIncludingInactive": int(owner_id) + 1_000_000,
                "createdAt": now,
                "updatedAt": now,
                "archived": archived,
                "teams": [
                    {"id": str(900 + i), "name": name, "primary": i == 0}
                    for i, name in enumerate(teams)
                ],
            }
            return owner_id

    def update_owner(self, owner_id: str, **fields: Any) -> None:
        """Change an owner as a HubSpot admin would (``firstName``, ``email``,
        ``archived``, ...); ``updatedAt`` moves to now."""
        with self.lock:
            owner = self.owners[owner_id]
            owner.update(fields, updatedAt=hubspot_time(self.clock()))

    # --- records ---------------------------------------------------------------------------

    def _check(
        self, object_type: str, properties: Mapping[str, Any], own: str | None
    ) -> dict[str, str | None]:
        schema = PROPERTIES.get(object_type)
        if schema is None:
            raise RecordError("OBJECT_NOT_FOUND", f"Unknown object type {object_type}", 404)
        clean: dict[str, str | None] = {}
        for name, value in properties.items():
            if name not in schema:
                raise RecordError(
                    "VALIDATION_ERROR",
                    f'Property values were not valid: [{{"isValid":false,"message":"Property '
                    f'\\"{name}\\" does not exist","error":"PROPERTY_DOESNT_EXIST",'
                    f'"name":"{name}"}}]',
                )
            if name in READ_ONLY:
                raise RecordError(
                    "VALIDATION_ERROR", f'Property "{name}" is read-only and cannot be set'
                )
            text = None if value is None or value == "" else str(value)
            kind = schema[name]
            if text is not None and kind == "number":
                try:
                    float(text)
                except ValueError:
                    raise RecordError(
                        "VALIDATION_ERROR", f"{text} was not a valid number for {name}"
                    ) from None
            if text is not None and kind == "datetime":
                try:
                    text = hubspot_time(parse_hubspot_time(text))
                except ValueError:
                    raise RecordError(
                        "VALIDATION_ERROR", f"{text} was not a valid datetime for {name}"
                    ) from None
            if text is not None and name in ENUM_OPTIONS and text not in ENUM_OPTIONS[name]:
                raise RecordError(
                    "VALIDATION_ERROR",
                    f"{text} was not one of the allowed options for {name}: "
                    f"{sorted(ENUM_OPTIONS[name])}",
                )
            if text is not None and name == "hubspot_owner_id" and text not in self.owners:
                raise RecordError(
                    "VALIDATION_ERROR", f"{text} is not a valid owner id for hubspot_owner_id"
                )
            if text is not None and name == "dealstage":
                pipeline = str(properties.get("pipeline") or "default")
                if text not in DEAL_STAGES.get(pipeline, []):
                    raise RecordError(
                        "VALIDATION_ERROR",
                        f"{text} is not a valid stage of pipeline {pipeline} for dealstage",
                    )
            if text is not None and name in UNIQUE_PROPERTIES:
                holder = self.unique.get((object_type, name, text))
                if holder is not None and holder != own:
                    raise RecordError(
                        "CONFLICT",
                        f"A {object_type[:-1]} with {name} {text} already exists "
                        f"(Existing ID: {holder})",
                        409,
                    )
            clean[name] = text
        return clean

    def check_write(
        self, object_type: str, properties: Mapping[str, Any], own: str | None
    ) -> dict[str, str | None]:
        """Validate one API write without changing anything (raises :class:`RecordError`):
        ``own`` is the id of the record it updates, None for a create (which must then
        carry the properties HubSpot requires on create)."""
        with self.lock:
            clean = self._check(object_type, properties, own)
            if own is None:
                for name, fallback in REQUIRED_ON_CREATE.get(object_type, ()):
                    if clean.get(name) or (fallback and clean.get(fallback)):
                        continue
                    raise RecordError(
                        "VALIDATION_ERROR",
                        f'Property values were not valid: [{{"isValid":false,"message":'
                        f'"{name} is required","error":"REQUIRED_FIELD","name":"{name}"}}]',
                    )
            return clean

    def api_properties(self, object_type: str, properties: Mapping[str, Any]) -> dict[str, Any]:
        """The properties an API create stores: the documented defaults filled in (a
        meeting's ``hs_timestamp`` from ``hs_meeting_start_time``)."""
        props = dict(properties)
        for name, fallback in REQUIRED_ON_CREATE.get(object_type, ()):
            if not props.get(name) and fallback and props.get(fallback):
                props[name] = props[fallback]
        return props

    def create(self, object_type: str, properties: Mapping[str, Any]) -> str:
        """Create a record; returns its id (raises :class:`RecordError`)."""
        with self.lock:
            clean = self._check(object_type, properties, None)
            record_id = str(next(self._ids))
            now = self.clock()
            stamp = hubspot_time(now)
            props: dict[str, str | None] = dict(clean)
            props.update(
                {
                    "hs_object_id": record_id,
                    CREATED[object_type]: stamp,
                    LAST_MODIFIED[object_type]: stamp,
                }
            )
            record = {"id": record_id, "properties": props, "createdAt": now, "updatedAt": now}
            self.objects[object_type][record_id] = record
            self._index(object_type, record)
            self._lag(record, None)
            return record_id

    def update(self, object_type: str, record_id: str, properties: Mapping[str, Any]) -> None:
        """Update a record by id (raises :class:`RecordError`)."""
        with self.lock:
            record = self.objects.get(object_type, {}).get(record_id)
            if record is None:
                raise RecordError(
                    "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.", 404
                )
            clean = self._check(object_type, properties, record_id)
            self._unindex(object_type, record)
            self._lag(record, dict(record["properties"]))
            record["properties"].update(clean)
            now = self.clock()
            record["updatedAt"] = now
            record["properties"][LAST_MODIFIED[object_type]] = hubspot_time(now)
            self._index(object_type, record)

    def upsert(
        self, object_type: str, id_property: str, value: str, properties: Mapping[str, Any]
    ) -> tuple[str, bool]:
        """Create or update by a unique property; returns (id, created)."""
        with self.lock:
            if id_property not in UNIQUE_PROPERTIES:
                raise RecordError(
                    "VALIDATION_ERROR",
                    f"{id_property} is not a unique property of {object_type}; "
                    "upsert needs a property with unique values",
                )
            existing = self.unique.get((object_type, id_property, value))
            if existing is not None:
                self.update(object_type, existing, properties)
                return existing, False
            return self.create(object_type, {**properties, id_property: value}), True

    def archive(self, object_type: str, record_id: str) -> None:
        """Move a record to the recycling bin (raises :class:`RecordError`): searches
        and reads no longer return it; a batch read with ``archived=true`` does."""
        with self.lock:
            record = self.objects.get(object_type, {}).pop(record_id, None)
            if record is None:
                raise RecordError(
                    "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.", 404
                )
            self._unindex(object_type, record)
            record["archivedAt"] = record["updatedAt"] = self.clock()
            self.archived[object_type][record_id] = record

    def privacy_delete(self, object_type: str, record_id: str) -> None:
        """GDPR delete: the record is purged for good, not moved to the recycling bin
        (https://developers.hubspot.com/docs/api/crm/contacts, "GDPR delete": the
        record is permanently deleted). Only contacts can be (raises :class:`RecordError`)."""
        with self.lock:
            if object_type != "contacts":
                raise RecordError(
                    "VALIDATION_ERROR", f"GDPR delete is not supported for {object_type}", 400
                )
            record = self.objects[object_type].pop(record_id, None)
            binned = self.archived[object_type].pop(record_id, None)
            if record is None and binned is None:
                raise RecordError(
                    "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.", 404
                )
            if record is not None:
                self._unindex(object_type, record)

    def _lag(self, record: dict[str, Any], before: dict[str, Any] | None) -> None:
        """Remember what search shows until ``search_lag`` has passed: the version before
        this write (None: a new record, not found at all)."""
        if not self.search_lag:
            record.pop("searchView", None)
            return
        visible = self.clock() + self.search_lag
        shown = record.get("searchView")
        if shown is not None and shown[0] > self.clock():
            before = shown[1]  # still lagging: search keeps showing the older version
        record["searchView"] = (visible, before)

    def searchable(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The record as search sees it now (None: not yet indexed)."""
        view = record.get("searchView")
        if view is None or view[0] <= self.clock():
            return record
        if view[1] is None:
            return None
        return {**record, "properties": view[1]}

    def find(self, object_type: str, id_property: str, value: str) -> str | None:
        """The id of the record whose unique ``id_property`` is ``value``."""
        with self.lock:
            if id_property == "hs_object_id":
                return value if value in self.objects.get(object_type, {}) else None
            return self.unique.get((object_type, id_property, value))

    def _index(self, object_type: str, record: dict[str, Any]) -> None:
        for name in UNIQUE_PROPERTIES:
            value = record["properties"].get(name)
            if value:
                self.unique[(object_type, name, value)] = record["id"]

    def _unindex(self, object_type: str, record: dict[str, Any]) -> None:
        for name in UNIQUE_PROPERTIES:
            value = record["properties"].get(name)
            if value:
                self.unique.pop((object_type, name, value), None)

    def get(self, object_type: str, record_id: str) -> dict[str, Any] | None:
        """A copy of one record's properties, or None."""
        with self.lock:
            record = self.objects.get(object_type, {}).get(record_id)
            return None if record is None else dict(record["properties"])

    def all(self, object_type: str) -> list[dict[str, Any]]:
        """Copies of the properties of every record of ``object_type``."""
        with self.lock:
            return [dict(r["properties"]) for r in self.objects.get(object_type, {}).values()]

    # --- seeding ---------------------------------------------------------------------------

    def seed(self, seed: int = 7, *, deals: int = 300) -> dict[str, str]:
        """A deterministic demo portal: the demo team (``DEMO_TEAM``) as owners in
        role-named teams (``DEMO_TEAMS``), queued deals.

        Returns ``{"access_token": ...}``: a private-app token the portal accepts.
        """
        rng = random.Random(seed)
        with self.lock:
            # owners carry a name, an e-mail and teams, no address or time zone (CRM API
            # "Owners": GET /crm/v3/owners); the demo team's roles are team names
            for person in DEMO_TEAM:
                team_name = DEMO_TEAMS[person.role]
                self.add_owner(person.first_name, person.last_name, person.email, teams=[team_name])
            for i in range(deals):
                self.create(
                    "deals",
                    {
                        "dealname": f"Demo deal {i + 1}",
                        "pipeline": "default",
                        "dealstage": "appointmentscheduled",
                        "amount": str(rng.randrange(5, 200) * 100),
                        "spe_account": f"Account {rng.randrange(400)}",
                        "spe_tier": str(rng.choice([0, 0, 1, 2])),
                        "spe_score": str(rng.randrange(100)),
                        "hs_analytics_source": rng.choice(
                            ["ORGANIC_SEARCH", "PAID_SEARCH", "REFERRALS", "EMAIL_MARKETING"]
                        ),
                        "spe_status": "queued",
                    },
                )
            token = "pat-demo-" + secrets.token_hex(8)
            self.add_token(token)
        return {"access_token": token}
