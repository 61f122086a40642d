"""The HubSpot adapter: hubspot-api-client (CRM v3) for every call, translating only.

- Reads: owners through the owners API (every page, active and archived);
  deals or contacts, and tasks, through the search API, filtered by
  last-modified ``>=`` the bookmark (epoch milliseconds), sorted by
  last-modified then ``hs_object_id``, 200 records a page. HubSpot's search
  returns at most 10,000 results for one query (an ``after`` of 10,000 or
  more is an HTTP 400), so before a window reaches the cap the adapter starts
  a new query *after the last record seen* (modified later, or at the same
  instant with a higher id): any volume is read, none twice. Search calls
  keep to a per-second budget.
- Writes: batch update by record id for records HubSpot already has; batch
  upsert by ``spe_key`` for SPE's tasks and bookings (the sync links only
  opportunities to their records, so these come without an id every time);
  batch create for opportunities SPE created, every input carrying an
  ``objectWriteTraceId`` (its SPE key) so that HubSpot answers each input on
  its own (207 multi-status); an input whose unique ``spe_key`` a record
  already holds (a write before a crash, a reply that never arrived) is
  upserted by that key instead, so a rerun never duplicates. 100 inputs a
  call. HubSpot returns results in no promised order: each is matched to its
  input by record id, trace id or the echoed ``spe_key`` (sent explicitly),
  never by position; an input the reply does not answer (left out, or a
  ``PROCESSING`` reply) is a retryable failure. HubSpot refuses a whole batch
  update or upsert for one invalid input, writing nothing: the adapter raises
  :class:`~spe_core.errors.BatchRejected` and the sync engine splits the
  batch until the bad input stands alone.
- Traps of the client, each handled and tested: every sub-API property
  access (``client.crm.objects.search_api``) builds a new ApiClient and
  connection pool, so each API is built once and rebuilt only when the token
  in the environment changes; the client would otherwise let urllib3 retry
  on its own (and exhausted urllib3 retries raise ``MaxRetryError``, not
  ``ApiException``), so one explicit policy without retries is passed and the
  sync engine alone retries; every sub-package has its own ``ApiException``
  class, so errors are classified by their ``status``, never by class.
- Errors: 429 (the ten-secondly or daily limit) becomes a
  :class:`~spe_core.errors.TransientError` whose ``retry_after`` comes from
  the ``X-HubSpot-RateLimit-*`` headers; 5xx, timeouts and connection
  failures are transient too (classified by
  :func:`spe_adapters._network.transport_error`); 401 is
  :class:`~spe_core.errors.AuthenticationFailed`, 403 and bad requests are
  :class:`~spe_core.errors.AdapterError` with the fix. The token never
  reaches logs or error text.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, NoReturn

import attrs
import urllib3
from urllib3.util.retry import Retry

from spe_adapters._network import transport_error
from spe_adapters.hubspot import mapping
from spe_adapters.hubspot.settings import HubSpotSettings
from spe_core.adapter import Change, ChangeKind, Inbound, SourceRecord, StreamSpec, WriteResult
from spe_core.errors import (
    AdapterError,
    AuthenticationFailed,
    BatchRejected,
    CrmError,
    MappingError,
    TransientError,
)

__all__ = ["BATCH", "NO_RETRY", "RETRYABLE_CATEGORIES", "Apis", "HubSpotAdapter", "translate"]

log = logging.getLogger(__name__)

BATCH = 100
#: urllib3 must not retry on its own: the sync engine owns retries and backoff.
NO_RETRY = Retry(total=0, redirect=0, raise_on_redirect=False, raise_on_status=False)
RETRYABLE_CATEGORIES = frozenset(
    {"RATE_LIMITS", "LOCKED", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"}
)


@attrs.define
class Apis:
    """The sub-APIs the adapter uses, each built once for one token."""

    search: Any
    batch: Any
    owners: Any


class HubSpotAdapter:
    """SPE's adapter for HubSpot (register name ``hubspot``)."""

    name: ClassVar[str] = mapping.CRM
    batch_size = BATCH

    def __init__(
        self,
        settings: HubSpotSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        self.monotonic = monotonic
        self.clock = clock
        self.calls = 0
        self.builds = 0
        self._apis: Apis | None = None
        self._token: str | None = None
        self._searches: deque[float] = deque()

    @classmethod
    def from_config(cls, options: Mapping[str, Any]) -> HubSpotAdapter:
        """Build the adapter from the ``[adapter.hubspot]`` table of spe.toml."""
        return cls(HubSpotSettings.from_mapping(options))

    # --- connection -------------------------------------------------------------------

    def build(self, token: str) -> Apis:
        """Build the client and its sub-APIs for ``token`` (each property access builds a
        new ApiClient, so this reads each exactly once)."""
        from hubspot import HubSpot

        client = HubSpot(access_token=token, host=self.settings.host.rstrip("/"), retry=NO_RETRY)
        return Apis(
            search=client.crm.objects.search_api,
            batch=client.crm.objects.batch_api,
            owners=client.crm.owners.owners_api,
        )

    @property
    def apis(self) -> Apis:
        """The sub-APIs, rebuilt only when the token in the environment changes."""
        token = self.settings.secret(self.settings.access_token_env, "private-app access token")
        if self._apis is None or token != self._token:
            self._apis = self.build(token)
            self._token = token
            self.builds += 1
        return self._apis

    def _call(self, action: Callable[[Apis], Any], *, refused: str | None = None) -> dict[str, Any]:
        """One API call; its JSON reply as plain data. ``refused`` (a batch write: "3
        deals"): a 400, 404 or 409 refuses the whole batch for its input, raised as
        :class:`~spe_core.errors.BatchRejected`.

        Calls pass ``_preload_content=False`` and the adapter decodes the JSON itself: the
        client's model deserializer parses every record's ``createdAt`` and ``updatedAt``
        with dateutil, which costs more than the HTTP call. Non-2xx replies still raise
        the client's ``ApiException``.
        """
        apis = self.apis
        self.calls += 1
        try:
            response = action(apis)
            try:
                data = json.loads(response.data or b"{}")
            finally:
                response.release_conn()
        except Exception as exc:  # every sub-package has its own ApiException
            if refused is not None:
                _rejected(exc, refused)
            translate(exc, self.settings.host)
        if not isinstance(data, dict):
            raise TransientError(
                f"HubSpot answered {type(data).__name__} where an object was expected.",
                "the sync retries; report it if it recurs.",
            )
        data["_status"] = response.status
        return data

    def _search_budget(self) -> None:
        """Keep to ``search_requests_per_second`` search calls in any one second."""
        budget = self.settings.search_requests_per_second
        if budget <= 0:
            return
        now = self.monotonic()
        while self._searches and now - self._searches[0] >= 1.0:
            self._searches.popleft()
        if len(self._searches) >= budget:
            wait = 1.0 - (now - self._searches[0])
            if wait > 0:
                self.sleep(wait)
            self._searches.popleft()
            now = self.monotonic()
        self._searches.append(now)

    # --- reading ------------------------------------------------------------------------

    def streams(self) -> Sequence[StreamSpec]:
        streams = [
            StreamSpec("members", "updatedAt", is_sorted=False),
            StreamSpec("opportunities", self.settings.last_modified_property),
        ]
        if self.settings.fields.task_kind_property:
            streams.append(StreamSpec("tasks", "hs_lastmodifieddate"))
        if self.settings.fields.calendar_meetings:
            streams.append(StreamSpec("busy", "hs_lastmodifieddate"))
        return streams

    def _object(self, stream: str) -> tuple[str, str, list[str], list[dict[str, Any]]]:
        """(object type, last-modified property, properties, base filters) of a stream."""
        s, f = self.settings, self.settings.fields
        if stream == "opportunities":
            filters: list[dict[str, Any]] = [
                {"propertyName": f.status_property, "operator": "HAS_PROPERTY"}
            ]
            if s.queued_object == "deals" and s.pipeline:
                filters.append({"propertyName": "pipeline", "operator": "EQ", "value": s.pipeline})
            return (
                s.queued_object,
                s.last_modified_property,
                mapping.record_properties(s),
                filters,
            )
        if stream == "tasks" and f.task_kind_property:
            return (
                "tasks",
                "hs_lastmodifieddate",
                mapping.task_record_properties(s),
                [{"propertyName": f.task_kind_property, "operator": "HAS_PROPERTY"}],
            )
        if stream == "busy" and f.calendar_meetings:
            return ("meetings", "hs_lastmodifieddate", mapping.meeting_record_properties(s), [])
        raise AdapterError(
            f"the HubSpot adapter has no stream {stream!r}.",
            "use one of: members, opportunities, tasks, busy.",
        )

    def read(self, stream: str, since: datetime | None) -> Iterator[list[SourceRecord]]:
        if stream == "members":
            yield from self._read_owners()
            return
        object_type, modified, properties, base = self._object(stream)
        size = self.settings.search_page_size
        cap = self.settings.search_result_cap
        since_filter = (
            []
            if since is None
            else [
                {
                    "propertyName": modified,
                    "operator": "GTE",
                    "value": str(mapping.epoch_ms(since)),
                }
            ]
        )
        groups = [{"filters": base + since_filter}]
        after = 0
        while True:
            body = {
                "filterGroups": groups,
                "sorts": [
                    {"propertyName": modified, "direction": "ASCENDING"},
                    {"propertyName": "hs_object_id", "direction": "ASCENDING"},
                ],
                "properties": properties,
                "limit": size,
                "after": str(after) if after else None,
            }
            page = self._search(object_type, body)
            records = [self._source(stream, modified, r) for r in page.get("results") or []]
            if records:
                yield records
            nxt = _next_after(page)
            if nxt is None or not records:
                return
            after = int(nxt)
            if after + size > cap:  # the next page would cross the cap: a new window
                last = records[-1]
                last_ms = str(mapping.epoch_ms(last.modified_at))
                later = {"propertyName": modified, "operator": "GT", "value": last_ms}
                same = {"propertyName": modified, "operator": "EQ", "value": last_ms}
                higher = {"propertyName": "hs_object_id", "operator": "GT", "value": last.crm_id}
                groups = [{"filters": [*base, later]}, {"filters": [*base, same, higher]}]
                after = 0
                log.info("%s: search window full; continuing after record %s", stream, last.crm_id)

    def _search(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        from hubspot.crm.objects import PublicObjectSearchRequest

        request = PublicObjectSearchRequest(
            filter_groups=body["filterGroups"],
            sorts=body["sorts"],
            properties=body["properties"],
            limit=body["limit"],
            after=body["after"],
        )
        self._search_budget()
        return self._call(
            lambda apis: apis.search.do_search(
                object_type,
                request,
                _request_timeout=self.settings.timeout_seconds,
                _preload_content=False,
            )
        )

    def _read_owners(self) -> Iterator[list[SourceRecord]]:
        for archived in (False, True):
            after: str | None = None
            while True:
                kwargs: dict[str, Any] = {"limit": 500, "archived": archived}
                if after:
                    kwargs["after"] = after
                page = self._owners_page(kwargs)
                records = []
                for data in page.get("results") or []:
                    raw = {
                        "id": data.get("id"),
                        "email": data.get("email"),
                        "firstName": data.get("firstName"),
                        "lastName": data.get("lastName"),
                        "archived": bool(data.get("archived")),
                        "teams": [
                            {"name": t.get("name"), "primary": bool(t.get("primary"))}
                            for t in data.get("teams") or []
                        ],
                    }
                    if mapping.owner_role(raw, self.settings) is None:
                        continue  # not part of SPE's team (an admin, the integration user)
                    try:
                        modified = mapping.parse_datetime(
                            data.get("updatedAt"), "updatedAt", str(raw["id"])
                        )
                    except MappingError:
                        modified = datetime.now(UTC)
                    records.append(SourceRecord("members", str(raw["id"]), modified, raw))
                if records:
                    yield records
                nxt = _next_after(page)
                if not nxt:
                    break
                after = str(nxt)

    def _owners_page(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        def call(apis: Apis) -> Any:
            return apis.owners.get_page(
                _request_timeout=self.settings.timeout_seconds, _preload_content=False, **kwargs
            )

        return self._call(call)

    def _source(self, stream: str, modified: str, record: dict[str, Any]) -> SourceRecord:
        record_id = str(record.get("id"))
        props = dict(record.get("properties") or {})
        props.setdefault("hs_object_id", record_id)
        if record.get("archived"):
            props[mapping.ARCHIVED] = True
        try:
            at = mapping.parse_datetime(props.get(modified), modified, record_id)
        except MappingError:  # the mapping step reports the record
            at = datetime.now(UTC)
        return SourceRecord(stream, record_id, at, props)

    def to_inbound(self, record: SourceRecord) -> Inbound:
        data = record.data
        if record.stream == "members":
            return Inbound(
                mapping.member_from_owner(data, self.settings),
                supplies=mapping.owner_supplies(data, self.settings),
            )
        if record.stream == "tasks":
            return mapping.task_from_record(data, self.settings)
        if record.stream == "busy":
            return mapping.busy_from_meeting(data, self.settings)
        modified = self.settings.last_modified_property
        mapping.parse_datetime(data.get(modified), modified, record.crm_id)
        return mapping.opportunity_from_record(data, self.settings)

    def read_ids(
        self, stream: str, ids: Sequence[str], *, archived: bool = False
    ) -> list[SourceRecord]:
        """The current version of these records (for webhook-driven near-real-time sync);
        ids HubSpot no longer has are left out. ``archived``: read them from the
        recycling bin instead (records a deletion webhook named); they map as
        deleted."""
        from hubspot.crm.objects import BatchReadInputSimplePublicObjectId

        object_type, modified, properties, _ = self._object(stream)
        out: list[SourceRecord] = []
        unique = list(dict.fromkeys(str(i) for i in ids))
        for start in range(0, len(unique), BATCH):
            chunk = unique[start : start + BATCH]
            request = BatchReadInputSimplePublicObjectId(
                inputs=[{"id": i} for i in chunk],
                properties=properties,
                properties_with_history=[],
            )
            reply = self._batch_read(object_type, request, archived)
            out.extend(self._source(stream, modified, r) for r in reply.get("results") or [])
        return out

    def _batch_read(self, object_type: str, request: Any, archived: bool) -> dict[str, Any]:
        def call(apis: Apis) -> Any:
            return apis.batch.read(
                object_type,
                request,
                archived=archived,
                _request_timeout=self.settings.timeout_seconds,
                _preload_content=False,
            )

        return self._call(call)

    def check(self) -> list[str]:
        """Problems with the connection or the mapping (``spe check``): the token and
        scopes reach owners and the searched objects, and every mapped property exists
        (a search filter on a missing property is an HTTP 400 naming it)."""
        problems: list[str] = []
        try:
            self._owners_page({"limit": 1})
        except CrmError as exc:
            problems.append(exc.problem)
            return problems
        for stream in [s.name for s in self.streams() if s.name != "members"]:
            object_type, _, properties, _ = self._object(stream)
            for start in range(0, len(properties), 6):
                group = [
                    {"propertyName": p, "operator": "HAS_PROPERTY"}
                    for p in properties[start : start + 6]
                ]
                body = {
                    "filterGroups": [{"filters": group}],
                    "sorts": [],
                    "properties": ["hs_object_id"],
                    "limit": 1,
                    "after": None,
                }
                try:
                    self._search(object_type, body)
                except CrmError as exc:
                    problems.append(f"{object_type}: {exc.problem}")
        return problems

    # --- writing ------------------------------------------------------------------------

    def _object_for(self, kind: ChangeKind) -> str:
        if kind is ChangeKind.OPPORTUNITY:
            return self.settings.queued_object
        if kind is ChangeKind.TASK:
            return "tasks"
        return "meetings"

    def write(self, changes: Sequence[Change]) -> Sequence[WriteResult]:
        """Write up to 100 changes: batch update by id for records HubSpot has, batch
        create (with ``objectWriteTraceId``) for new opportunities, batch upsert by the
        key for tasks and bookings without an id (the sync engine links only
        opportunities to the records created for them, so each later change of an SPE
        task or booking comes without one); one result per change, in order.

        HubSpot refuses a whole batch update or upsert for one invalid input: that is
        :class:`~spe_core.errors.BatchRejected`, and the sync engine splits the batch and
        calls again with the halves, so any subset may come back. Updates go first, so a
        refused update raises before anything is created.
        """
        if len(changes) > BATCH:
            raise AdapterError(
                f"asked to write {len(changes)} changes in one call.",
                f"the sync engine sends at most {BATCH}; this is a bug.",
            )
        keys = [(c.kind, c.key) for c in changes]
        if len(set(keys)) != len(keys):
            raise AdapterError(
                "asked to write the same record twice in one call.",
                "the sync engine sends one change per record; this is a bug.",
            )
        results: dict[int, WriteResult] = {}
        updates: dict[ChangeKind, list[tuple[int, Change]]] = {}
        creates: dict[ChangeKind, list[tuple[int, Change]]] = {}
        for i, change in enumerate(changes):
            (updates if change.crm_id else creates).setdefault(change.kind, []).append((i, change))
        for kind, group in updates.items():
            results.update(self._update(self._object_for(kind), group))
        for kind, group in creates.items():
            if kind is ChangeKind.OPPORTUNITY:
                results.update(self._create(self._object_for(kind), group))
            else:  # the sync links only opportunities: a task or booking may exist already
                results.update(self._upsert(self._object_for(kind), group))
        return [results[i] for i in range(len(changes))]

    def _properties(self, change: Change) -> dict[str, str]:
        return mapping.properties_for_change(change, self.settings, now=self.clock())

    def _write(self, action: Callable[[Apis], Any], object_type: str, count: int) -> Any:
        """One batch write call; a whole batch refused for its input is BatchRejected."""
        return self._call(action, refused=f"{count} {object_type}")

    def _update(self, object_type: str, group: list[tuple[int, Change]]) -> dict[int, WriteResult]:
        from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInput

        inputs = [{"id": c.crm_id, "properties": self._properties(c)} for _, c in group]
        request = BatchInputSimplePublicObjectBatchInput(inputs=inputs)
        reply = self._write(
            lambda apis: apis.batch.update(
                object_type,
                request,
                _request_timeout=self.settings.timeout_seconds,
                _preload_content=False,
            ),
            object_type,
            len(group),
        )
        # matched by the record id each result carries, never by position
        done = {str(r.get("id")): str(r.get("id")) for r in _results(reply)}
        failed = _errors(reply, "ids")
        return {i: _result(c, str(c.crm_id), done, failed, reply) for i, c in group}

    def _create(self, object_type: str, group: list[tuple[int, Change]]) -> dict[int, WriteResult]:
        """Batch create with an ``objectWriteTraceId`` (the SPE key) on every input, so
        HubSpot answers each input on its own (207); an input whose unique key a record
        already holds (written before a crash, or by a reply that never arrived) is
        upserted by that key instead, so nothing is created twice."""
        from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInputForCreate

        key = self.settings.fields.key_property
        inputs = [
            {"properties": self._properties(c), "objectWriteTraceId": c.key} for _, c in group
        ]
        request = BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs)
        reply = self._write(
            lambda apis: apis.batch.create(
                object_type,
                request,
                _request_timeout=self.settings.timeout_seconds,
                _preload_content=False,
            ),
            object_type,
            len(group),
        )
        done: dict[str, str] = {}
        for r in _results(reply):
            trace = r.get("objectWriteTraceId") or (r.get("properties") or {}).get(key)
            if trace:
                done[str(trace)] = str(r.get("id"))
        failed = _errors(reply, "objectWriteTraceId")
        out: dict[int, WriteResult] = {}
        taken: list[tuple[int, Change]] = []
        for i, change in group:
            error = failed.get(change.key)
            if change.key not in done and error is not None and error[0].startswith("CONFLICT"):
                taken.append((i, change))
            else:
                out[i] = _result(change, change.key, done, failed, reply)
        if taken:
            out.update(self._upsert(object_type, taken))
        return out

    def _upsert(self, object_type: str, group: list[tuple[int, Change]]) -> dict[int, WriteResult]:
        """Batch upsert by the unique key property, which every input also sends in its
        properties so that each result echoes it: results are matched by that value."""
        from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInputUpsert

        key = self.settings.fields.key_property
        inputs = []
        for _, change in group:
            props = self._properties(change)
            props[key] = change.key  # asked for explicitly: the result echoes it
            inputs.append({"id": change.key, "idProperty": key, "properties": props})
        request = BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs)
        reply = self._write(
            lambda apis: apis.batch.upsert(
                object_type,
                request,
                _request_timeout=self.settings.timeout_seconds,
                _preload_content=False,
            ),
            object_type,
            len(group),
        )
        done: dict[str, str] = {}
        for r in _results(reply):
            value = (r.get("properties") or {}).get(key)
            if value:
                done[str(value)] = str(r.get("id"))
        failed = _errors(reply, "ids")
        return {i: _result(c, c.key, done, failed, reply) for i, c in group}

    def close(self) -> None:
        apis, self._apis = self._apis, None
        if apis is not None:
            for api in (apis.search, apis.batch, apis.owners):
                with contextlib.suppress(AttributeError):
                    api.api_client.rest_client.pool_manager.clear()


def _results(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """A COMPLETE batch reply's results (a PROCESSING one has none to trust)."""
    if str(reply.get("status") or "COMPLETE") != "COMPLETE":
        return []
    return [r for r in reply.get("results") or [] if isinstance(r, dict)]


def _errors(reply: dict[str, Any], context_key: str) -> dict[str, tuple[str, bool]]:
    """A 207's per-input errors by the input they name (``context[context_key]``):
    (category and message, retryable)."""
    failed: dict[str, tuple[str, bool]] = {}
    for error in reply.get("errors") or []:
        category = str(error.get("category") or "")
        text = f"{category}: {error.get('message')}"
        for value in (error.get("context") or {}).get(context_key, []) or []:
            failed[str(value)] = (text, category in RETRYABLE_CATEGORIES)
    return failed


def _result(
    change: Change,
    ident: str,
    done: Mapping[str, str],
    failed: Mapping[str, tuple[str, bool]],
    reply: dict[str, Any],
) -> WriteResult:
    """The result for one input, found by ``ident`` (never by position): success, the
    error HubSpot named for it, or, when the reply names neither, a retryable failure
    (the sync retries and in the end quarantines it; nothing is guessed)."""
    if ident in done:
        return WriteResult(change.key, True, crm_id=done[ident])
    if ident in failed:
        text, retryable = failed[ident]
        return WriteResult(change.key, False, crm_id=change.crm_id, error=text, retryable=retryable)
    status = str(reply.get("status") or "COMPLETE")
    why = (
        f"HubSpot answered the batch with status {status} and no results"
        if status != "COMPLETE"
        else "HubSpot's batch reply named neither a result nor an error for this input"
    )
    return WriteResult(change.key, False, crm_id=change.crm_id, error=why, retryable=True)


def _next_after(page: dict[str, Any]) -> str | None:
    after = ((page.get("paging") or {}).get("next") or {}).get("after")
    return None if after in (None, "") else str(after)


def _retry_after(headers: Mapping[str, str], body: dict[str, Any]) -> float:
    """Seconds to wait after a 429: ``Retry-After``, else the limit's own window."""
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
    if (
        body.get("policyName") == "DAILY"
        or headers.get("X-HubSpot-RateLimit-Daily-Remaining") == "0"
    ):
        now = datetime.now(UTC)
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight - now).total_seconds()
    interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
    if interval and interval.isdigit():
        return int(interval) / 1000
    return 10.0


def _body(exc: Any) -> dict[str, Any]:
    try:
        body = json.loads(getattr(exc, "body", None) or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _rejected(exc: Exception, what: str) -> None:
    """Raise BatchRejected when HubSpot refused a batch write for its input (HTTP 400,
    404 or 409 with HubSpot's error body); return otherwise."""
    status = getattr(exc, "status", None)
    if not type(exc).__module__.startswith("hubspot.") or status not in (400, 404, 409):
        return
    body = _body(exc)
    message = str(body.get("message") or getattr(exc, "reason", "") or "no details")[:500]
    category = str(body.get("category") or "")
    raise BatchRejected(
        f"HubSpot refused the batch of {what} (HTTP {status} {category}): {message}",
        "the sync splits the batch until the bad input stands alone, writes the rest and "
        "quarantines that one with this message; correct the record it names.",
        detail=f"{category}: {message}" if category else message,
    ) from None


def translate(exc: Exception, host: str | None = None) -> NoReturn:
    """Raise SPE's error for a failed call: by HTTP ``status`` (every hubspot sub-package
    has its own ApiException class), or, when no answer came, by
    :func:`~spe_adapters._network.transport_error`."""
    if isinstance(exc, urllib3.exceptions.HTTPError):
        raise transport_error(exc, "HubSpot", host) from None
    status = getattr(exc, "status", None)
    if not type(exc).__module__.startswith("hubspot.") or not isinstance(status, int):
        raise exc
    body = _body(exc)
    message = str(body.get("message") or getattr(exc, "reason", "") or "no details")[:300]
    category = str(body.get("category") or "")
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 0:
        raise TransientError(
            f"HubSpot could not be reached ({message.splitlines()[0]}).",
            "check the network and host; the sync retries.",
        ) from None
    if status == 429:
        policy = body.get("policyName") or "a rate limit"
        raise TransientError(
            f"HubSpot's rate limit was reached (HTTP 429, {policy}).",
            "the sync backs off and retries; lower the sync frequency if it recurs.",
            retry_after=_retry_after(headers, body),
        ) from None
    if status >= 500:
        raise TransientError(
            f"HubSpot answered HTTP {status}.", "the sync retries with backoff."
        ) from None
    if status == 401:
        raise AuthenticationFailed(
            "HubSpot refused the private-app access token (HTTP 401).",
            "check the variable named by access_token_env: the token may be wrong, rotated "
            "or revoked.",
        ) from None
    if status == 403:
        raise AdapterError(
            f"HubSpot refused the request (HTTP 403 {category}): {message}",
            "grant the private app the scopes listed in docs/hubspot.md.",
        ) from None
    raise AdapterError(
        f"HubSpot rejected a request (HTTP {status} {category}): {message}",
        "check that every mapped object and property exists (see docs/hubspot.md).",
    ) from None
