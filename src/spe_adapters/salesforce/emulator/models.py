"""The emulated org: its objects, records, rules, sessions and faults.

Resettable and seedable; thread-safe (one lock); indexed by Id and by every
external-id field, so collections of 200 and query pages of 2,000 take
milliseconds. Time comes from an injectable clock, so tests control
``SystemModstamp``.
"""

from __future__ import annotations

import itertools
import random
import re
import secrets
import string
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs

from spe_adapters.emulator_kit.demo_team import DEMO_TEAM
from spe_adapters.emulator_kit.faults import Faults as KitFaults

__all__ = [
    "FIELD_TYPES",
    "Faults",
    "Org",
    "RecordError",
    "RequestError",
    "canonical_field",
    "canonical_object",
    "id18",
    "parse_write_datetime",
    "salesforce_time",
    "schema",
]

_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
PREFIXES = {
    "User": "005",
    "Lead": "00Q",
    "Opportunity": "006",
    "Account": "001",
    "Task": "00T",
    "Event": "00U",
}

# object -> field -> (type, createable/updateable, required on create)
FIELD_TYPES: dict[str, dict[str, tuple[str, bool, bool]]] = {
    "User": {
        "Id": ("id", False, False),
        "Name": ("string", True, False),
        "Username": ("string", True, True),
        "IsActive": ("boolean", True, False),
        "TimeZoneSidKey": ("string", True, False),
        "Latitude": ("double", True, False),
        "Longitude": ("double", True, False),
        "City": ("string", True, False),
        "SPE_Role__c": ("picklist", True, False),
    },
    "Lead": {
        "Id": ("id", False, False),
        "LastName": ("string", True, True),
        "Company": ("string", True, True),
        "OwnerId": ("reference", True, False),
        "Rating": ("picklist", True, False),
        "LeadSource": ("picklist", True, False),
        "Status": ("picklist", True, False),
        "SPE_Key__c": ("string", True, False),
        "SPE_Status__c": ("picklist", True, False),
        "SPE_Released_At__c": ("datetime", True, False),
    },
    "Opportunity": {
        "Id": ("id", False, False),
        "Name": ("string", True, True),
        "StageName": ("picklist", True, True),
        "CloseDate": ("date", True, True),
        "AccountId": ("reference", True, False),
        "OwnerId": ("reference", True, False),
        "LeadSource": ("picklist", True, False),
        "SPE_Key__c": ("string", True, False),
        "SPE_Status__c": ("picklist", True, False),
        "SPE_Released_At__c": ("datetime", True, False),
    },
    "Account": {"Id": ("id", False, False), "Name": ("string", True, True)},
    "Task": {
        "Id": ("id", False, False),
        "Subject": ("string", True, True),
        "OwnerId": ("reference", True, False),
        "WhatId": ("reference", True, False),
        "Status": ("picklist", True, False),
        "Priority": ("picklist", True, False),
        "ActivityDate": ("date", True, False),
        "Description": ("textarea", True, False),
        "SPE_Key__c": ("string", True, False),
        "SPE_Kind__c": ("picklist", True, False),
    },
    "Event": {
        "Id": ("id", False, False),
        "Subject": ("string", True, False),
        "OwnerId": ("reference", True, False),
        "WhatId": ("reference", True, False),
        "StartDateTime": ("datetime", True, True),
        "EndDateTime": ("datetime", True, True),
        "ShowAs": ("picklist", True, False),
        "Location": ("string", True, False),
        "Description": ("textarea", True, False),
        "SPE_Key__c": ("string", True, False),
    },
}
EXTERNAL_IDS = {"SPE_Key__c"}
# Audit and system fields every object has (Object Reference: System Fields): three
# dateTime fields and the boolean IsDeleted, none of them writable through the API.
SYSTEM_FIELDS = ("CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted")
SYSTEM_TYPES = {
    "CreatedDate": "datetime",
    "LastModifiedDate": "datetime",
    "SystemModstamp": "datetime",
    "IsDeleted": "boolean",
}
LABELS = {
    "User": ("User", "Users"),
    "Lead": ("Lead", "Leads"),
    "Opportunity": ("Opportunity", "Opportunities"),
    "Account": ("Account", "Accounts"),
    "Task": ("Task", "Tasks"),
    "Event": ("Event", "Events"),
}
# reference field -> (relationship name, the object it points to); Task/Event's WhatId is
# polymorphic (Account, Opportunity, ...), the emulator resolves it to Account.
REFERENCES = {
    "OwnerId": ("Owner", "User"),
    "AccountId": ("Account", "Account"),
    "WhatId": ("What", "Account"),
}
# lengths of text fields (SOAP API Developer Guide, Field Types: string has a length)
TEXT_LENGTHS = {"string": 255, "picklist": 255, "textarea": 32000, "id": 18, "reference": 18}
TEXT_TYPES = frozenset({"id", "reference", "string", "picklist", "textarea"})
# field lengths that differ from the type's (Object Reference for Salesforce: Lead.LastName
# and User.Username are 80, Opportunity.Name 120; SPE_Key__c is Text(80) as docs/salesforce.md
# tells admins to create it)
FIELD_LENGTHS = {
    ("Lead", "LastName"): 80,
    ("User", "Username"): 80,
    ("Opportunity", "Name"): 120,
    **{(o, "SPE_Key__c"): 80 for o in ("Lead", "Opportunity", "Task", "Event")},
}


def schema() -> dict[str, dict[str, str]]:
    """object -> field -> SOAP field type, system fields included (the SOQL parser's view)."""
    return {
        o: {**{n: t for n, (t, _, _) in fields.items()}, **SYSTEM_TYPES}
        for o, fields in FIELD_TYPES.items()
    }


def canonical_object(name: str) -> str | None:
    """The object's API name, matched case-insensitively (object names are not case
    sensitive: SOQL and SOSL Reference, SOQL SELECT Syntax), or None."""
    return {o.lower(): o for o in FIELD_TYPES}.get(name.lower())


def canonical_field(sobject: str, name: str) -> str | None:
    """The field's API name on ``sobject`` matched case-insensitively, or None."""
    names = [*FIELD_TYPES[sobject], *SYSTEM_FIELDS]
    return {n.lower(): n for n in names}.get(name.lower())


# REST API Developer Guide, "Valid Date and DateTime Formats": dateTime is
# yyyy-MM-ddTHH:mm:ss.SSS+/-HH:mm or yyyy-MM-ddTHH:mm:ss.SSSZ, SSS the OPTIONAL three-digit
# milliseconds (so microseconds are refused); date is yyyy-MM-dd, no offset. The +HHmm form
# (no colon) is accepted too: it is the form Salesforce itself writes in responses.
_WRITE_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{3})?(?:Z|[+-]\d{2}:?\d{2})"
)
_WRITE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_write_datetime(text: str) -> datetime | None:
    """A dateTime value written through the REST API, or None if it is not one."""
    if not _WRITE_DATETIME.fullmatch(text):
        return None
    value = text.replace("Z", "+00:00")
    if value[-3] != ":":
        value = value[:-2] + ":" + value[-2:]
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _parse_write_date(text: str) -> date | None:
    if not _WRITE_DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


# --- record Ids -----------------------------------------------------------------------------
# An Id is 15 case-sensitive characters; the 18-character form adds three characters that
# encode the case of the first 15, five characters each (REST API Developer Guide and SOAP
# API Developer Guide, Field Types: ID; "either the 15-character or 18-character ID" is
# accepted everywhere an Id is).
_SUFFIX = string.ascii_uppercase + "012345"


def _suffix(id15: str) -> str:
    out = ""
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out += _SUFFIX[bits]
    return out


def id18(raw: str) -> str | None:
    """The 18-character form of a 15- or 18-character Id, or None if ``raw`` is not an Id.

    An 18-character Id is read case-insensitively: its suffix gives the case of each letter.
    """
    if len(raw) not in (15, 18) or not raw.isascii() or not raw.isalnum():
        return None
    if len(raw) == 15:
        return raw + _suffix(raw)
    suffix = raw[15:].upper()
    if any(ch not in _SUFFIX for ch in suffix):
        return None
    body = list(raw[:15])
    for chunk, ch in enumerate(suffix):
        bits = _SUFFIX.index(ch)
        for i in range(5):
            k = chunk * 5 + i
            body[k] = body[k].upper() if bits & (1 << i) else body[k].lower()
    id15 = "".join(body)
    if _suffix(id15) != suffix:
        return None
    return id15 + suffix


def salesforce_time(value: datetime) -> str:
    """A datetime as Salesforce writes it: ``2026-01-05T08:00:00.000+0000``."""
    v = value.astimezone(UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}+0000"


class RecordError(Exception):
    """A record-level error: Salesforce's statusCode, message and fields."""

    def __init__(self, code: str, message: str, fields: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.code, self.message, self.fields = code, message, list(fields)

    def as_dict(self) -> dict[str, Any]:
        """Salesforce's per-record error shape."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


def _unique_key(value: Any) -> str:
    """An external-id value as its unique index holds it: a Unique text field treats "ABC"
    and "abc" as duplicates unless it is marked case-sensitive (Salesforce Help, Custom Field
    Attributes), and upserts match the same way."""
    return str(value).lower()


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, int):
        return "VALUE_NUMBER_INT"
    if isinstance(value, float):
        return "VALUE_NUMBER_FLOAT"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, list):
        return "START_ARRAY"
    return "START_OBJECT"


def _deserialize(name: str, kind: str, value: Any) -> Any:
    """One JSON value as a value of the field's SOAP type (SOAP API Developer Guide, Field
    Types), or a :class:`RequestError` JSON_PARSER_ERROR as Salesforce answers a value that
    does not deserialize (REST API Developer Guide, Status Codes and Error Responses)."""
    if value is None:
        return None
    converted: Any = None
    if kind in TEXT_TYPES:
        if isinstance(value, str):
            converted = value
        elif isinstance(value, bool):
            converted = "true" if value else "false"
        elif isinstance(value, int | float):
            converted = str(value)
    elif kind == "boolean":
        converted = value if isinstance(value, bool) else None
    elif kind == "double":
        if isinstance(value, int | float) and not isinstance(value, bool):
            converted = float(value)
    elif kind == "date" and isinstance(value, str):
        converted = _parse_write_date(value)
    elif kind == "datetime" and isinstance(value, str):
        converted = parse_write_datetime(value)
    # values given from Python (Org.create in tests), never from JSON
    elif isinstance(value, datetime):
        converted = value if kind == "datetime" and value.tzinfo is not None else None
    elif isinstance(value, date):
        converted = value if kind == "date" else None
    if converted is None:
        raise RequestError(
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {kind} from {_json_kind(value)} value {value!r} "
            f"or request may be missing a required field ({name})",
            [name],
        )
    return converted


class RequestError(RecordError):
    """An error in the request itself (an unknown field, a value that does not deserialize
    into the field's type): Salesforce fails the whole request with HTTP 400, it does not
    report it per record (REST API Developer Guide, sObject Collections: "If the request
    isn't well formed, the API returns a 400 Bad Request")."""


@attrs.define
class Faults(KitFaults):
    """Faults to inject: the emulator kit's (statuses drawn mean 503/500
    SERVER_UNAVAILABLE, 403 REQUEST_LIMIT_EXCEEDED, 401 INVALID_SESSION_ID;
    ``failing_records`` maps record Ids or external-id values to the statusCode their
    write fails with), plus ``refused_in_request``: record Ids or external-id values
    (``SPE_Key__c``) holding a value that does not deserialize, so any sObject
    Collections request containing one fails as a whole with HTTP 400
    JSON_PARSER_ERROR and writes nothing."""

    refused_in_request: set[str] = attrs.Factory(set)

    def refused(self, *keys: object) -> str | None:
        """The first of ``keys`` set to be refused in a request, or None (empty and None
        keys never match)."""
        for key in keys:
            if key is not None and key != "" and str(key) in self.refused_in_request:
                return str(key)
        return None

    def configure(self, body: Mapping[str, Any]) -> None:
        """The kit's settings, and ``refused_in_request`` (a list; absent: none)."""
        super().configure(body)
        self.refused_in_request = {str(k) for k in body.get("refused_in_request", [])}


class Org:
    """The data and rules of one emulated Salesforce org."""

    def __init__(
        self, clock: Callable[[], datetime] | None = None, daily_api_limit: int = 100_000
    ) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        self.daily_api_limit = daily_api_limit
        self.faults = Faults()
        self.reset()

    def reset(self) -> None:
        """Forget every record, session, cursor and fault."""
        with self.lock:
            self.records: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in FIELD_TYPES}
            # the recycle bin: deleted records, which only queryAll returns
            self.deleted: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in FIELD_TYPES}
            self.by_external: dict[tuple[str, str, str], str] = {}
            self.sessions: set[str] = set()
            # Salesforce Help, "Set Session Security" / "Session Settings": a session
            # times out after the org's (or connected app's) Timeout Value of inactivity
            # (15 minutes to 24 hours, 2 hours by default); the REST API then answers 401
            # INVALID_SESSION_ID. None here: sessions end only by expire_sessions().
            self.session_timeout: timedelta | None = None
            self._session_used: dict[str, datetime] = {}
            self.credentials: dict[str, str] = {}
            self.jwt_keys: dict[str, str] = {}
            # the OAuth flows' org settings: client-credentials apps (consumer key ->
            # (secret, Run As username)), whether the org is a sandbox (JWT audience
            # test.salesforce.com) and its Experience Cloud site URLs (also audiences)
            self.client_apps: dict[str, tuple[str, str | None]] = {}
            self.sandbox = False
            self.community_urls: set[str] = set()
            self.cursors: dict[str, list[dict[str, Any]]] = {}
            self.api_used = 0
            self._ids = itertools.count(1)
            self._cursor_ids = itertools.count(1)
            self.faults = Faults()

    # --- identity --------------------------------------------------------------------

    def new_id(self, sobject: str) -> str:
        """A Salesforce-shaped 18-character Id for ``sobject``: key prefix, a pod-like
        ``5g00``, eight case-sensitive characters, and the case-checksum suffix."""
        # a bijection of the counter over 62**8 (the multiplier is prime to 62), so the
        # Ids mix upper and lower case as real ones do and never repeat
        n = (next(self._ids) * 2654435761 + 12345) % 62**8
        body = ""
        for _ in range(8):
            n, r = divmod(n, 62)
            body = _ALPHABET[r] + body
        id15 = PREFIXES[sobject] + "5g00" + body
        return id15 + _suffix(id15)

    def resolve_id(self, sobject: str, raw: Any) -> str:
        """The 18-character Id of ``raw`` for ``sobject`` (raises MALFORMED_ID)."""
        value = id18(raw) if isinstance(raw, str) else None
        if value is None:
            raise RecordError("MALFORMED_ID", f"malformed id {raw}", ["Id"])
        if not value.startswith(PREFIXES[sobject]):
            raise RecordError(
                "MALFORMED_ID", f"{sobject} ID: id value of incorrect type: {raw}", ["Id"]
            )
        return value

    def add_login(self, username: str, password: str) -> None:
        """Register credentials for the OAuth username-password flow."""
        self.credentials[username] = password

    def add_jwt_app(self, consumer_key: str, public_key_pem: str) -> None:
        """Register a connected app's certificate key for the JWT bearer flow."""
        self.jwt_keys[consumer_key] = public_key_pem

    def add_client_app(self, consumer_key: str, secret: str, run_as: str | None) -> None:
        """Register a connected app with the client credentials flow enabled, running as
        the user ``run_as`` (None: no Run As user chosen, so the flow is refused)."""
        self.client_apps[consumer_key] = (secret, run_as)

    def new_session(self) -> str:
        """A new access token."""
        token = "00D" + secrets.token_hex(20)
        self.sessions.add(token)
        self._session_used[token] = self.clock()
        return token

    def session_valid(self, token: str) -> bool:
        """Whether ``token`` is a live session (using it resets its inactivity timeout)."""
        with self.lock:
            if token not in self.sessions:
                return False
            now = self.clock()
            last = self._session_used.get(token, now)
            if self.session_timeout is not None and now - last >= self.session_timeout:
                self.sessions.discard(token)
                return False
            self._session_used[token] = now
            return True

    def expire_sessions(self) -> None:
        """Invalidate every access token (as a session timeout would)."""
        self.sessions.clear()

    # --- records -----------------------------------------------------------------------

    def validate(self, sobject: str, fields: Any) -> dict[str, Any]:
        """The request-level checks of one record's JSON: every field exists on the object
        (names are case-insensitive) and every value deserializes into the field's type.

        Returns the fields under their API names with their values converted; raises
        :class:`RequestError` (the whole request fails with 400)."""
        schema = FIELD_TYPES[sobject]
        if not isinstance(fields, Mapping):
            raise RequestError(
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of {sobject} from {_json_kind(fields)} value "
                f"{fields}",
            )
        clean: dict[str, Any] = {}
        for raw_name, value in fields.items():
            if raw_name == "attributes":
                continue
            name = canonical_field(sobject, str(raw_name))
            if name is None:
                # REST API Developer Guide, Status Codes and Error Responses: 400 with
                # INVALID_FIELD for a field the object does not have
                raise RequestError(
                    "INVALID_FIELD",
                    f"No such column '{raw_name}' on sobject of type {sobject}",
                    [str(raw_name)],
                )
            kind = SYSTEM_TYPES.get(name) or schema[name][0]
            clean[name] = _deserialize(name, kind, value)
        return clean

    def _check(self, sobject: str, fields: Any, creating: bool) -> dict[str, Any]:
        if sobject not in FIELD_TYPES:
            raise RecordError("NOT_FOUND", f"sObject type '{sobject}' is not supported.")
        schema = FIELD_TYPES[sobject]
        clean: dict[str, Any] = {}
        for name, value in self.validate(sobject, fields).items():
            if name == "Id":
                continue
            if name in SYSTEM_FIELDS or not schema[name][1]:
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {name}. Please check the security "
                    "settings of this field and verify that it is read/write for your "
                    "profile or permission set.",
                    [name],
                )
            kind, _, required = schema[name]
            # a required field cannot be set to null (or to an empty string, which
            # Salesforce stores as null) on create or update (SOAP API Developer Guide,
            # Core Data Types: required fields; StatusCode REQUIRED_FIELD_MISSING)
            if required and value in (None, ""):
                raise RecordError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]", [name]
                )
            limit = FIELD_LENGTHS.get((sobject, name), TEXT_LENGTHS.get(kind))
            if isinstance(value, str) and limit is not None and len(value) > limit:
                # SOAP API Developer Guide, Field Types: string fields have a maximum length;
                # StatusCode STRING_TOO_LONG
                raise RecordError(
                    "STRING_TOO_LONG",
                    f"{name}: data value too large: {value[:40]} (max length={limit})",
                    [name],
                )
            clean[name] = value
        if creating:
            missing = [n for n, (_, _, req) in schema.items() if req and clean.get(n) in (None, "")]
            if missing:
                raise RecordError(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                    missing,
                )
        return clean

    def create(self, sobject: str, fields: dict[str, Any]) -> str:
        """Insert a record; returns its Id (raises :class:`RecordError`)."""
        with self.lock:
            clean = self._check(sobject, fields, creating=True)
            self._check_unique(sobject, clean, None)
            record_id = self.new_id(sobject)
            now = self.clock()
            record = {
                "Id": record_id,
                **clean,
                "CreatedDate": now,
                "LastModifiedDate": now,
                "SystemModstamp": now,
                "IsDeleted": False,
            }
            self.records[sobject][record_id] = record
            self._index(sobject, record)
            return record_id

    def update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        """Update a record by its 15- or 18-character Id (raises :class:`RecordError`)."""
        with self.lock:
            if sobject not in FIELD_TYPES:
                raise RecordError("NOT_FOUND", f"sObject type '{sobject}' is not supported.")
            full_id = self.resolve_id(sobject, record_id)
            record = self.records[sobject].get(full_id)
            if record is None:
                if full_id in self.deleted[sobject]:
                    raise RecordError("ENTITY_IS_DELETED", "entity is deleted", ["Id"])
                raise RecordError(
                    "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["Id"]
                )
            clean = self._check(sobject, fields, creating=False)
            self._check_unique(sobject, clean, full_id)
            self._unindex(sobject, record)
            record.update(clean)
            now = self.clock()
            record["LastModifiedDate"] = record["SystemModstamp"] = now
            self._index(sobject, record)

    def delete(self, sobject: str, record_id: str) -> None:
        """Move a record to the recycle bin (raises :class:`RecordError`): queries no
        longer return it, queryAll does, with ``IsDeleted`` true."""
        with self.lock:
            full_id = id18(record_id) or record_id
            record = self.records.get(sobject, {}).pop(full_id, None)
            if record is None:
                if full_id in self.deleted.get(sobject, {}):
                    raise RecordError("ENTITY_IS_DELETED", "entity is deleted", ["Id"])
                raise RecordError("NOT_FOUND", "The requested resource does not exist", ["Id"])
            self._unindex(sobject, record)
            now = self.clock()
            record.update(IsDeleted=True, LastModifiedDate=now, SystemModstamp=now)
            self.deleted[sobject][full_id] = record

    def upsert(
        self, sobject: str, field: str, value: str, fields: dict[str, Any]
    ) -> tuple[str, bool]:
        """Upsert by an external-id field; returns (Id, created)."""
        with self.lock:
            name = canonical_field(sobject, field) if sobject in FIELD_TYPES else None
            if name not in EXTERNAL_IDS:
                raise RecordError("INVALID_FIELD", f"{field} is not an external id field")
            existing = self.by_external.get((sobject, name, _unique_key(value)))
            if existing is not None:
                self.update(sobject, existing, fields)
                return existing, False
            return self.create(sobject, {**fields, name: value}), True

    def _index(self, sobject: str, record: dict[str, Any]) -> None:
        for field in EXTERNAL_IDS:
            if record.get(field):
                self.by_external[(sobject, field, _unique_key(record[field]))] = record["Id"]

    def _unindex(self, sobject: str, record: dict[str, Any]) -> None:
        for field in EXTERNAL_IDS:
            if record.get(field):
                self.by_external.pop((sobject, field, _unique_key(record[field])), None)

    def _check_unique(self, sobject: str, fields: dict[str, Any], own: str | None) -> None:
        """An external-id field here is unique (Custom Field Attributes: External ID with
        Unique, case-insensitive: the default); a second record with the value is
        DUPLICATE_VALUE (SOAP API StatusCode)."""
        for field in EXTERNAL_IDS:
            value = fields.get(field)
            if value:
                holder = self.by_external.get((sobject, field, _unique_key(value)))
                if holder is not None and holder != own:
                    raise RecordError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {field} duplicates value on "
                        f"record with id: {holder}",
                        [field],
                    )

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """A copy of one record (by its 15- or 18-character Id), or None."""
        with self.lock:
            record = self.records.get(sobject, {}).get(id18(record_id) or record_id)
            return None if record is None else dict(record)

    def all(self, sobject: str) -> list[dict[str, Any]]:
        """Copies of every record of ``sobject``."""
        with self.lock:
            return [dict(r) for r in self.records.get(sobject, {}).values()]

    def snapshot(self) -> tuple[Any, Any, Any]:
        """A copy of every record and index (for allOrNone rollback)."""
        with self.lock:
            return (
                {o: {i: dict(r) for i, r in recs.items()} for o, recs in self.records.items()},
                dict(self.by_external),
                {o: {i: dict(r) for i, r in recs.items()} for o, recs in self.deleted.items()},
            )

    def restore(self, snapshot: tuple[Any, Any, Any]) -> None:
        """Go back to a :meth:`snapshot`."""
        with self.lock:
            self.records, self.by_external, self.deleted = snapshot

    # --- seeding -----------------------------------------------------------------------

    def seed(self, seed: int = 7, *, leads: int = 300) -> dict[str, str]:
        """A deterministic demo org: an integration user, the demo team (``DEMO_TEAM``:
        SPE roles, time zones, the field salesperson's address), queued leads.

        Returns the demo login (username and password).
        """
        rng = random.Random(seed)
        with self.lock:
            self.create(
                "User",
                {
                    "Name": "SPE Integration",
                    "Username": "spe@demo.example",
                    "SPE_Role__c": None,
                    "IsActive": True,
                },
            )
            self.add_login("spe@demo.example", "demo-password")
            for person in DEMO_TEAM:
                # a User's address (City, Latitude, Longitude) and TimeZoneSidKey: standard
                # User fields (Object Reference for the Salesforce Platform, "User")
                values: dict[str, Any] = {
                    "Name": person.name,
                    "Username": person.email,
                    "SPE_Role__c": person.role,
                    "IsActive": True,
                    "TimeZoneSidKey": person.time_zone,
                }
                if person.home_base is not None:
                    lat, lon, city = person.home_base
                    values.update(Latitude=lat, Longitude=lon, City=city)
                self.create("User", values)
            for i in range(leads):
                self.create(
                    "Lead",
                    {
                        "LastName": f"Contact {i + 1}",
                        "Company": f"Account {rng.randrange(400)}",
                        "Rating": rng.choice(["Hot", "Warm", "Cold", "Cold"]),
                        "LeadSource": rng.choice(["Web", "Webinar", "Trade Show", "Referral"]),
                        "Status": "Open - Not Contacted",
                        "SPE_Status__c": "Queued",
                    },
                )
        return {"username": "spe@demo.example", "password": "demo-password"}
