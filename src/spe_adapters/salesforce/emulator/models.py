"""The emulated org: its objects, records, rules, sessions and faults.

Resettable and seedable; thread-safe (one lock); indexed by Id and by every
external-id field, so collections of 200 and query pages of 2,000 take
milliseconds. Time comes from an injectable clock, so tests control
``SystemModstamp``.
"""

from __future__ import annotations

import itertools
import random
import secrets
import string
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

# Faults: the emulator kit's. Statuses drawn mean 503/500 (SERVER_UNAVAILABLE), 403
# (REQUEST_LIMIT_EXCEEDED), 401 (INVALID_SESSION_ID); failing_records maps record Ids or
# external-id values to the statusCode their write fails with.
from spe_adapters.emulator_kit.faults import Faults

__all__ = ["FIELD_TYPES", "Faults", "Org", "RecordError", "salesforce_time"]

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
SYSTEM_FIELDS = ("CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted")


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
        """A Salesforce-shaped 18-character Id for ``sobject``."""
        n = next(self._ids)
        body = ""
        for _ in range(12):
            n, r = divmod(n, 62)
            body = _ALPHABET[r] + body
        return PREFIXES[sobject] + body + "AAA"

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

    def _check(self, sobject: str, fields: dict[str, Any], creating: bool) -> dict[str, Any]:
        schema = FIELD_TYPES.get(sobject)
        if schema is None:
            raise RecordError("NOT_FOUND", f"sObject type '{sobject}' is not supported.")
        clean: dict[str, Any] = {}
        for name, value in fields.items():
            if name in ("attributes", "Id"):
                continue
            if name not in schema:
                raise RecordError(
                    "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}", [name]
                )
            kind, writable, _ = schema[name]
            if not writable:
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {name}.",
                    [name],
                )
            if value is not None and kind == "datetime" and isinstance(value, str):
                try:
                    text = value.replace("Z", "+00:00")
                    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
                        text = text[:-2] + ":" + text[-2:]
                    value = datetime.fromisoformat(text)
                except ValueError:
                    raise RecordError(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        f"{name}: value not of required type: {value}",
                        [name],
                    ) from None
            if (
                value is not None
                and kind == "double"
                and (isinstance(value, bool) or not isinstance(value, int | float))
            ):
                raise RecordError(
                    "INVALID_TYPE_ON_FIELD_IN_RECORD",
                    f"{name}: value not of required type: {value}",
                    [name],
                )
            if value is not None and kind == "boolean" and not isinstance(value, bool):
                raise RecordError(
                    "INVALID_TYPE_ON_FIELD_IN_RECORD",
                    f"{name}: value not of required type: {value}",
                    [name],
                )
            clean[name] = value
        if creating:
            missing = [n for n, (_, _, req) in schema.items() if req and not clean.get(n)]
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
        """Update a record by Id (raises :class:`RecordError`)."""
        with self.lock:
            record = self.records.get(sobject, {}).get(record_id)
            if record is None:
                code = "MALFORMED_ID" if len(record_id) not in (15, 18) else "ENTITY_IS_DELETED"
                raise RecordError(code, f"invalid cross reference id: {record_id}", ["Id"])
            clean = self._check(sobject, fields, creating=False)
            self._check_unique(sobject, clean, record_id)
            self._unindex(sobject, record)
            record.update(clean)
            now = self.clock()
            record["LastModifiedDate"] = record["SystemModstamp"] = now
            self._index(sobject, record)

    def delete(self, sobject: str, record_id: str) -> None:
        """Move a record to the recycle bin (raises :class:`RecordError`): queries no
        longer return it, queryAll does, with ``IsDeleted`` true."""
        with self.lock:
            record = self.records.get(sobject, {}).pop(record_id, None)
            if record is None:
                if record_id in self.deleted.get(sobject, {}):
                    raise RecordError("ENTITY_IS_DELETED", "entity is deleted", ["Id"])
                raise RecordError("NOT_FOUND", "The requested resource does not exist", ["Id"])
            self._unindex(sobject, record)
            now = self.clock()
            record.update(IsDeleted=True, LastModifiedDate=now, SystemModstamp=now)
            self.deleted[sobject][record_id] = record

    def upsert(
        self, sobject: str, field: str, value: str, fields: dict[str, Any]
    ) -> tuple[str, bool]:
        """Upsert by an external-id field; returns (Id, created)."""
        with self.lock:
            if field not in EXTERNAL_IDS:
                raise RecordError("INVALID_FIELD", f"{field} is not an external id field")
            existing = self.by_external.get((sobject, field, str(value)))
            if existing is not None:
                self.update(sobject, existing, fields)
                return existing, False
            return self.create(sobject, {**fields, field: value}), True

    def _index(self, sobject: str, record: dict[str, Any]) -> None:
        for field in EXTERNAL_IDS:
            if record.get(field):
                self.by_external[(sobject, field, str(record[field]))] = record["Id"]

    def _unindex(self, sobject: str, record: dict[str, Any]) -> None:
        for field in EXTERNAL_IDS:
            if record.get(field):
                self.by_external.pop((sobject, field, str(record[field])), None)

    def _check_unique(self, sobject: str, fields: dict[str, Any], own: str | None) -> None:
        for field in EXTERNAL_IDS:
            value = fields.get(field)
            if value:
                holder = self.by_external.get((sobject, field, str(value)))
                if holder is not None and holder != own:
                    raise RecordError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {field} duplicates value on "
                        f"record with id: {holder}",
                        [field],
                    )

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """A copy of one record, or None."""
        with self.lock:
            record = self.records.get(sobject, {}).get(record_id)
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
        """A deterministic demo org: an integration user, a team with SPE roles, queued leads.

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
            team = [
                ("Ana Ruiz", "inside_sales"),
                ("Ben Okafor", "inside_sales"),
                ("Chloé Martin", "inside_sales"),
                ("Ivan Petrov", "field_sales"),
                ("Kai Müller", "sales_coordinator"),
                ("Max Olsen", "customer_service"),
                ("Nora Ali", "engineering"),
                ("Gina Rossi", "promotions"),
            ]
            for name, role in team:
                user = name.split()[0].lower()
                self.create(
                    "User",
                    {
                        "Name": name,
                        "Username": f"{user}@demo.example",
                        "SPE_Role__c": role,
                        "IsActive": True,
                        "TimeZoneSidKey": "Europe/Berlin",
                    },
                )
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
