"""The Salesforce adapter: simple-salesforce for every call, translating only.

- Reads: SOQL through ``query_all_iter``, every value escaped by
  ``format_soql``, ordered by ``SystemModstamp, Id`` (the replication key),
  in pages of up to 2,000 records; the queued object, Tasks and calendar
  Events through queryAll, so a deleted record is withdrawn from SPE's flow,
  a deleted Task cancels the routed task and a deleted Event frees its time.
- Writes: the sObject Collections endpoint, 200 records a call with
  ``allOrNone: false``: updates by Id for records Salesforce already has,
  upserts by the ``SPE_Key__c`` external id for records SPE created, so a
  rerun never duplicates. Every per-record result inside the HTTP 200 is
  checked; a whole request refused with HTTP 400 (an unknown field or a value
  of the wrong JSON type in any record) is
  :class:`~spe_core.errors.BatchRejected`, which the sync engine answers by
  splitting the batch. Datetimes are written in UTC with milliseconds.
- Errors: rate limits (HTTP 403 ``REQUEST_LIMIT_EXCEEDED``) and 5xx become
  :class:`~spe_core.errors.TransientError` for the sync engine to retry; calls
  without an answer (refused, DNS, timeout, certificate) are classified by
  :func:`spe_adapters._network.transport_error`; an expired session (401) is
  renewed once, then it is :class:`~spe_core.errors.AuthenticationFailed`.
- :meth:`SalesforceAdapter.check` logs in, describes every mapped object and
  reports each problem with its fix (``spe check``).
- API usage is read from the ``Sforce-Limit-Info`` header of every reply
  (through a response hook on the session, since calls through ``sf.Lead``
  do not update ``sf.api_usage``); near the daily limit the adapter slows
  down, then stops with a transient error.
- The HTTP session sets ``trust_env = False``: otherwise ``REQUESTS_CA_BUNDLE``
  or ``CURL_CA_BUNDLE`` silently override ``verify``; and it mounts an adapter
  with a default timeout, since simple-salesforce sets none on writes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import attrs
import requests
from requests.adapters import HTTPAdapter

from spe_adapters._fields import raw_fields
from spe_adapters._network import transport_error
from spe_adapters.salesforce import mapping
from spe_adapters.salesforce.auth import Session, login
from spe_adapters.salesforce.settings import SalesforceSettings
from spe_core.adapter import (
    Change,
    ChangeKind,
    CheckResult,
    CheckStatus,
    Inbound,
    SourceRecord,
    StreamSpec,
    WriteResult,
)
from spe_core.errors import (
    AdapterError,
    AuthenticationFailed,
    BatchRejected,
    CertificateProblem,
    ConfigError,
    MappingError,
    SpeError,
    TransientError,
)

__all__ = ["RETRYABLE_CODES", "SalesforceAdapter", "http_session"]

log = logging.getLogger(__name__)

DELETIONS_READ = frozenset({"opportunities", "tasks", "busy"})
"""Streams read through queryAll (deleted records come with ``IsDeleted`` true)."""

BATCH = 200
RETRYABLE_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "REQUEST_LIMIT_EXCEEDED",
        "SERVER_UNAVAILABLE",
        "API_TEMPORARILY_UNAVAILABLE",
    }
)
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


class _TimeoutAdapter(HTTPAdapter):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=self.timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


def http_session(settings: SalesforceSettings) -> requests.Session:
    """A requests session that honours ``verify`` and always has a timeout."""
    http = requests.Session()
    http.trust_env = False  # else REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override verify
    http.verify = settings.ca_bundle or True
    adapter = _TimeoutAdapter(settings.timeout_seconds)
    http.mount("https://", adapter)
    http.mount("http://", adapter)
    return http


def _soql_datetime(value: datetime) -> str:
    from simple_salesforce.format import format_soql

    text: str = format_soql("{}", value.astimezone(UTC))
    return text


class SalesforceAdapter:
    """SPE's adapter for Salesforce (register name ``salesforce``)."""

    name: ClassVar[str] = mapping.CRM
    batch_size = BATCH
    reads_in_thread = True  # read() uses its own HTTP session; to_inbound() only maps

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        self.http = http_session(settings)
        self.http.hooks["response"].append(self._read_usage)
        self.api_used: int | None = None
        self.api_max: int | None = None
        self.calls = 0
        self._sf: Any = None
        self._instance_url: str | None = None

    @classmethod
    def from_config(cls, options: Mapping[str, Any]) -> SalesforceAdapter:
        """Build the adapter from the ``[adapter.salesforce]`` table of spe.toml."""
        return cls(SalesforceSettings.from_mapping(options))

    # --- connection -------------------------------------------------------------------

    def _read_usage(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        match = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if match:
            self.api_used, self.api_max = int(match.group(1)), int(match.group(2))

    def _connect(self) -> Any:
        from simple_salesforce.api import Salesforce

        session: Session = login(self.settings, self.http)
        self._instance_url = session.instance_url
        self._sf = Salesforce(
            session_id=session.session_id,
            instance_url=session.instance_url,
            version=self.settings.api_version,
            session=self.http,
        )
        return self._sf

    @property
    def sf(self) -> Any:
        """The simple-salesforce client, logged in on first use."""
        return self._sf if self._sf is not None else self._connect()

    def _pace(self) -> None:
        """Slow down near the daily API limit; stop just below it."""
        if not self.api_max or self.api_used is None:
            return
        share = self.api_used / self.api_max
        if share >= self.settings.stop_at:
            raise TransientError(
                f"Salesforce API usage is at {self.api_used} of {self.api_max} calls today.",
                "the sync resumes when the rolling 24-hour limit frees up.",
                retry_after=900.0,
            )
        if share >= self.settings.slow_down_at:
            self.sleep(1.0)

    def _call(self, action: Callable[[], Any], *, batch: bool = False) -> Any:
        """Run one API call, translating failures; renew an expired session once.

        ``batch``: the call writes a collection, so an HTTP 400 refuses the whole
        batch (:class:`~spe_core.errors.BatchRejected`).
        """
        from simple_salesforce.exceptions import SalesforceExpiredSession

        self._pace()
        try:
            with _translated(self._instance_url or self.settings.login_url, batch=batch):
                return action()
        except SalesforceExpiredSession:
            log.info("Salesforce session expired; logging in again")
            self._connect()
        try:
            with _translated(self._instance_url or self.settings.login_url, batch=batch):
                return action()
        except SalesforceExpiredSession:
            raise _fresh_session_refused() from None

    # --- reading ------------------------------------------------------------------------

    def streams(self) -> Sequence[StreamSpec]:
        streams = [
            StreamSpec("members", "SystemModstamp"),
            StreamSpec("opportunities", "SystemModstamp"),
        ]
        if self.settings.fields.task_kind_field:
            streams.append(StreamSpec("tasks", "SystemModstamp"))
        if self.settings.fields.calendar_events:
            streams.append(StreamSpec("busy", "SystemModstamp"))
        return streams

    def _query(self, stream: str, since: datetime | None) -> str:
        f = self.settings.fields
        if stream == "members":
            fields, obj = mapping.user_fields(self.settings), "User"
            conditions = []
            if f.role_field and not self.settings.roles:
                conditions.append(f"{f.role_field} != null")
        elif stream == "opportunities":
            fields, obj = mapping.soql_fields(self.settings), f.queued_object
            conditions = [f"{f.status_field} != null"]
        elif stream == "tasks" and f.task_kind_field:
            fields, obj = mapping.task_fields(self.settings), "Task"
            conditions = [f"{f.task_kind_field} != null"]
        elif stream == "busy" and f.calendar_events:
            fields, obj = mapping.event_fields(self.settings), "Event"
            conditions = [f"{f.key_field} = null"]  # SPE's own bookings are not busy time
        else:
            raise AdapterError(
                f"the Salesforce adapter has no stream {stream!r}.",
                "use one of: members, opportunities.",
            )
        if since is not None:
            conditions.append(f"SystemModstamp >= {_soql_datetime(since)}")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return f"SELECT {', '.join(fields)} FROM {obj}{where} ORDER BY SystemModstamp, Id"

    def read(self, stream: str, since: datetime | None) -> Iterator[list[SourceRecord]]:
        from simple_salesforce.exceptions import SalesforceExpiredSession

        soql = self._query(stream, since)
        size = self.settings.query_page_size
        headers = {"Sforce-Query-Options": f"batchSize={size}"}
        for attempt in (1, 2):
            self._pace()
            page: list[SourceRecord] = []
            try:
                with _translated(self._instance_url or self.settings.login_url):
                    # queued records, tasks and busy time through queryAll: a record
                    # deleted since the bookmark is withdrawn / cancelled / frees its
                    # time instead of silently staying in SPE
                    records = self.sf.query_all_iter(
                        soql, include_deleted=stream in DELETIONS_READ, headers=headers
                    )
                    for record in records:
                        page.append(self._source(stream, record))
                        if len(page) == size:
                            yield page
                            page = []
                if page:
                    yield page
                return
            except SalesforceExpiredSession:
                if attempt == 2:
                    raise _fresh_session_refused() from None
                # start the query again: re-read records are applied idempotently
                log.info("Salesforce session expired while reading; logging in again")
                self._connect()

    def _source(self, stream: str, record: dict[str, Any]) -> SourceRecord:
        record = {k: v for k, v in record.items() if k != "attributes"}
        record_id = str(record.get("Id"))
        try:
            modified = mapping.parse_datetime(
                record.get("SystemModstamp"), "SystemModstamp", record_id
            )
        except MappingError:
            modified = datetime.now(UTC)  # the mapping step reports the record
        return SourceRecord(stream, record_id, modified, record)

    def to_inbound(self, record: SourceRecord) -> Inbound:
        data = raw_fields(record)  # read only: the mapping never changes it
        if record.stream == "members":
            return Inbound(
                mapping.member_from_user(data, self.settings),
                supplies=mapping.user_supplies(data),
            )
        if record.stream == "tasks":
            return mapping.task_from_record(data, self.settings)
        if record.stream == "busy":
            return mapping.busy_from_event(data, self.settings)
        mapping.parse_datetime(data.get("SystemModstamp"), "SystemModstamp", record.crm_id)
        return mapping.opportunity_from_record(data, self.settings)

    # --- writing ------------------------------------------------------------------------

    def write(self, changes: Sequence[Change]) -> Sequence[WriteResult]:
        if len(changes) > BATCH:
            raise AdapterError(
                f"asked to write {len(changes)} changes in one call.",
                f"the sync engine sends at most {BATCH}; this is a bug.",
            )
        results: dict[int, WriteResult] = {}
        updates = [(i, c) for i, c in enumerate(changes) if c.crm_id]
        upserts = [(i, c) for i, c in enumerate(changes) if not c.crm_id]
        for group, upsert in ((updates, False), (upserts, True)):
            if group:
                for (i, _), result in zip(group, self._collection(group, upsert), strict=True):
                    results[i] = result
        return [results[i] for i in range(len(changes))]

    def _collection(self, group: list[tuple[int, Change]], upsert: bool) -> list[WriteResult]:
        kinds = {change.kind for _, change in group}
        if len(kinds) != 1:
            raise AdapterError(
                f"the Salesforce adapter cannot write {sorted(k.value for k in kinds)} changes "
                "in one call.",
                "the sync engine sends one kind per batch; this is a bug.",
            )
        kind = kinds.pop()
        f = self.settings.fields
        to_record, sobject = {
            ChangeKind.OPPORTUNITY: (mapping.record_from_change, f.queued_object),
            ChangeKind.TASK: (mapping.record_from_task_change, "Task"),
            ChangeKind.BOOKING: (mapping.record_from_booking_change, "Event"),
        }[kind]
        records = [to_record(c, self.settings) for _, c in group]
        body = {"allOrNone": False, "records": records}
        if upsert:
            path = f"composite/sobjects/{sobject}/{f.key_field}"
            for record in records:
                record.pop("Id", None)
        else:
            path = "composite/sobjects"
        reply = self._call(lambda: self.sf.restful(path, method="PATCH", json=body), batch=True)
        if not isinstance(reply, list) or len(reply) != len(group):
            raise TransientError(
                f"Salesforce answered {type(reply).__name__} for a collection of {len(group)}.",
                "the sync retries; report it if it recurs.",
            )
        out = []
        for (_, change), item in zip(group, reply, strict=True):
            if item.get("success"):
                out.append(WriteResult(change.key, True, crm_id=item.get("id") or change.crm_id))
                continue
            errors = item.get("errors") or []
            codes = {str(e.get("statusCode")) for e in errors}
            out.append(
                WriteResult(
                    change.key,
                    False,
                    crm_id=change.crm_id,
                    error=_errors(errors),
                    retryable=bool(codes & RETRYABLE_CODES),
                )
            )
        return out

    def close(self) -> None:
        self.http.close()

    # --- checking -------------------------------------------------------------------------

    def check(self) -> Sequence[CheckResult]:
        """Log in, describe every mapped object, check each mapped field, and report the
        API usage left: one result per part, problems with their fixes (never raises for
        a problem it can describe; parts after a failed login or a CRM that stopped
        answering are ``not checked``)."""
        plan = _field_plan(self.settings)
        parts = ["login", *(f"object {obj}" for obj in plan), "API usage"]
        results: list[CheckResult] = []

        def stop(exc: SpeError, part: str) -> Sequence[CheckResult]:
            results.append(CheckResult(part, CheckStatus.PROBLEM, exc.problem, exc.fix))
            why = f"not checked: the {part} step failed first"
            later = parts[parts.index(part) + 1 :]
            results.extend(CheckResult(p, CheckStatus.NOT_CHECKED, why) for p in later)
            return results

        try:
            self._connect()
            # the first call proves the session (a session id is not checked until used)
            limits: Any = self._call(self.sf.limits)
        except (TransientError, AuthenticationFailed, CertificateProblem, ConfigError) as exc:
            return stop(exc, "login")  # refused credentials, no answer, a missing variable
        except AdapterError as exc:  # logged in, but /limits is not readable
            limits = exc
        results.append(
            CheckResult(
                "login",
                CheckStatus.OK,
                f"logged in ({self.settings.auth}) to {self._instance_url}",
            )
        )
        for obj, fields in plan.items():
            try:
                describe = self._call(functools.partial(self._describe, obj))
            except (TransientError, AuthenticationFailed) as exc:
                return stop(exc, f"object {obj}")
            except AdapterError as exc:
                results.append(
                    CheckResult(
                        f"object {obj}",
                        CheckStatus.PROBLEM,
                        f"Salesforce cannot describe {obj}: {exc.problem}",
                        f"grant the integration user read access to {obj} (profile or "
                        "permission set), or turn its sync off in [adapter.salesforce.fields].",
                    )
                )
                continue
            results.extend(_check_fields(obj, fields, describe))
        if isinstance(limits, AdapterError):
            results.append(
                CheckResult(
                    "API usage",
                    CheckStatus.PROBLEM,
                    f"Salesforce's /limits could not be read: {limits.problem}",
                    "give the integration user the View Setup and Configuration permission.",
                )
            )
        else:
            results.append(self._usage_result(limits))
        return results

    def _describe(self, obj: str) -> Any:
        return getattr(self.sf, obj).describe()

    def _usage_result(self, limits: Any) -> CheckResult:
        daily = limits.get("DailyApiRequests") if isinstance(limits, dict) else None
        if not isinstance(daily, dict) or not daily.get("Max"):
            return CheckResult(
                "API usage",
                CheckStatus.PROBLEM,
                "Salesforce's /limits has no DailyApiRequests.",
                "give the integration user the View Setup and Configuration permission.",
            )
        most, left = int(daily["Max"]), int(daily.get("Remaining", 0))
        detail = f"{left} of {most} daily API requests left"
        if (most - left) / most >= self.settings.stop_at:
            return CheckResult(
                "API usage",
                CheckStatus.PROBLEM,
                detail + f"; the sync stops above {self.settings.stop_at:.0%} used.",
                "wait for the rolling 24-hour limit to free up, or buy more API calls.",
            )
        return CheckResult("API usage", CheckStatus.OK, detail)


@attrs.frozen
class _Want:
    """What SPE needs of one mapped field: its types, and whether SPE writes it
    (``update``: on every change, so updateable; ``create``: only when SPE creates
    the record, so createable) or it is the external id SPE upserts by."""

    types: frozenset[str] | None = None
    write: str | None = None
    external_id: bool = False


_TEXT = frozenset({"string", "textarea", "picklist", "email", "phone", "url"})
_PICK = frozenset({"picklist", "string"})
_NUMBER = frozenset({"double", "int", "long", "currency", "percent"})
_REF = frozenset({"reference"})
_DATETIME = frozenset({"datetime"})


def _field_plan(settings: SalesforceSettings) -> dict[str, dict[str, _Want]]:
    """Object -> field -> what SPE needs of it, for every object the mapping uses."""
    f = settings.fields
    key = _Want(frozenset({"string"}), "create", external_id=True)
    plan: dict[str, dict[str, _Want]] = {}
    user = {name: _Want() for name in mapping.user_fields(settings)}
    if f.role_field:
        user[f.role_field] = _Want(_PICK)
    for name in ("Latitude", "Longitude"):
        if name in user:
            user[name] = _Want(_NUMBER)
    plan["User"] = user
    queued = {name: _Want() for name in mapping.soql_fields(settings)}
    queued.update(
        {
            f.key_field: key,
            f.status_field: _Want(_PICK, "update"),
            f.released_at_field: _Want(_DATETIME, "update"),
            "OwnerId": _Want(_REF, "update"),
            f.account_field: _Want(_REF if f.account_field == "AccountId" else _TEXT, "create"),
            f.campaign: _Want(_PICK | _TEXT, "create"),
        }
    )
    for extra in (f.tier_field, f.score_field):
        if extra:
            queued[extra] = _Want(_NUMBER)
    if f.skills_field:
        queued[f.skills_field] = _Want(_TEXT | {"multipicklist"})
    if f.queued_object == "Lead":
        queued["LastName"] = _Want(_TEXT, "create")
    else:
        queued["Name"] = _Want(_TEXT, "create")
        queued["StageName"] = _Want(_PICK, "create")
        queued["CloseDate"] = _Want(frozenset({"date"}), "create")
    plan[f.queued_object] = queued
    if f.task_kind_field:
        task = {name: _Want() for name in mapping.task_fields(settings)}
        task.update(
            {
                f.key_field: key,
                f.task_kind_field: _Want(_PICK, "create"),
                "Status": _Want(_PICK, "update"),
                "OwnerId": _Want(_REF, "update"),
                "Priority": _Want(_PICK, "update"),
                "ActivityDate": _Want(frozenset({"date"}), "update"),
                "Subject": _Want(_TEXT | {"combobox"}, "create"),
            }
        )
        plan["Task"] = task
    if f.calendar_events:
        event = {name: _Want() for name in mapping.event_fields(settings)}
        event.update(
            {
                f.key_field: key,
                "Subject": _Want(_TEXT | {"combobox"}, "update"),
                "ShowAs": _Want(_PICK, "update"),
                "OwnerId": _Want(_REF, "update"),
                "StartDateTime": _Want(_DATETIME, "update"),
                "EndDateTime": _Want(_DATETIME, "update"),
                "Location": _Want(_TEXT, "update"),
                "Description": _Want(_TEXT, "update"),
            }
        )
        plan["Event"] = event
    return plan


def _check_fields(obj: str, wanted: Mapping[str, _Want], describe: Any) -> list[CheckResult]:
    """One result per problem field of ``obj`` (by its describe), or one OK result."""
    described = {
        str(d.get("name", "")).lower(): d
        for d in (describe.get("fields") or [] if isinstance(describe, dict) else [])
        if isinstance(d, dict)
    }
    out: list[CheckResult] = []
    where = "[adapter.salesforce.fields]"
    for name, want in wanted.items():
        part = f"field {obj}.{name}"
        field = described.get(name.lower())
        if field is None:
            out.append(
                CheckResult(
                    part,
                    CheckStatus.PROBLEM,
                    f"{obj} has no field {name} the integration user can see.",
                    f"create {name} on {obj} (docs/salesforce.md, section 1) and give the "
                    f"integration user field-level access, or map another field in {where}.",
                )
            )
            continue
        kind = str(field.get("type"))
        if want.types is not None and kind not in want.types:
            out.append(
                CheckResult(
                    part,
                    CheckStatus.PROBLEM,
                    f"{obj}.{name} is a {kind} field; SPE needs {' or '.join(sorted(want.types))}.",
                    "change the field's type in Setup or map a field of the right type "
                    f"in {where}.",
                )
            )
        if want.write is not None:
            flag = "updateable" if want.write == "update" else "createable"
            if not field.get(flag):
                out.append(
                    CheckResult(
                        part,
                        CheckStatus.PROBLEM,
                        f"{obj}.{name} is not {flag} for the integration user; SPE writes it.",
                        "give the integration user edit access to the field (field-level "
                        "security in its profile or permission set).",
                    )
                )
        if want.external_id and not field.get("externalId"):
            out.append(
                CheckResult(
                    part,
                    CheckStatus.PROBLEM,
                    f"{obj}.{name} is not marked External ID; SPE upserts by it.",
                    f"edit {name} on {obj} in Setup and tick External ID and Unique.",
                )
            )
    if not out:
        out.append(
            CheckResult(
                f"object {obj}",
                CheckStatus.OK,
                f"{len(wanted)} mapped fields present, typed and writable as SPE needs",
            )
        )
    return out


def _fresh_session_refused() -> AuthenticationFailed:
    return AuthenticationFailed(
        "Salesforce refused a fresh session as expired or invalid (HTTP 401).",
        "check the integration user's session settings (Session Timeout, IP restrictions) "
        "and that the user may use the API.",
    )


@contextlib.contextmanager
def _translated(url: str | None, *, batch: bool = False) -> Iterator[None]:
    """Turn simple-salesforce and requests failures into SPE's errors.

    An expired session (401) passes through so that the caller can log in again.
    ``batch``: an HTTP 400 refused a whole collection request
    (:class:`~spe_core.errors.BatchRejected`, with Salesforce's message as detail).
    """
    from simple_salesforce.exceptions import (
        SalesforceGeneralError,
        SalesforceMalformedRequest,
        SalesforceRefusedRequest,
        SalesforceResourceNotFound,
    )

    try:
        yield
    except SalesforceRefusedRequest as exc:
        if "REQUEST_LIMIT_EXCEEDED" in str(exc.content):
            raise TransientError(
                "Salesforce's API request limit is exceeded (HTTP 403 REQUEST_LIMIT_EXCEEDED).",
                "the sync backs off and retries; raise the org's limit if it recurs.",
                retry_after=60.0,
            ) from None
        raise AdapterError(
            f"Salesforce refused the request: {_errors(exc.content)}.",
            "grant the integration user access to the objects and fields in the mapping "
            "(see docs/salesforce.md).",
        ) from None
    except SalesforceMalformedRequest as exc:
        if batch:
            detail = _errors(exc.content)
            raise BatchRejected(
                f"Salesforce refused a whole collection request (HTTP 400): {detail}.",
                "the sync splits the batch until the bad record stands alone and "
                "quarantines it; fix that record's value or the field mapping.",
                detail=detail,
            ) from None
        raise AdapterError(
            f"Salesforce rejected a request (HTTP {exc.status}): {_errors(exc.content)}.",
            "check that every mapped object and field exists (spe check).",
        ) from None
    except SalesforceResourceNotFound as exc:
        raise AdapterError(
            f"Salesforce rejected a request (HTTP {exc.status}): {_errors(exc.content)}.",
            "check that every mapped object and field exists (spe check).",
        ) from None
    except SalesforceGeneralError as exc:
        if exc.status >= 500:
            raise TransientError(
                f"Salesforce answered HTTP {exc.status}.", "the sync retries with backoff."
            ) from None
        raise AdapterError(
            f"Salesforce answered HTTP {exc.status}: {_errors(exc.content)}.",
            "see the message above.",
        ) from None
    except requests.RequestException as exc:
        raise transport_error(exc, "Salesforce", url) from None


def _errors(content: Any) -> str:
    """Salesforce error bodies (``[{"errorCode"|"statusCode", "message", "fields"}]``) as text."""
    if isinstance(content, list):
        parts = []
        for e in content:
            if isinstance(e, dict):
                code = e.get("errorCode") or e.get("statusCode")
                fields = e.get("fields")
                suffix = f" ({', '.join(fields)})" if fields else ""
                parts.append(f"{code}: {e.get('message')}{suffix}")
        return "; ".join(parts) or "no details"
    return str(content)[:300]
