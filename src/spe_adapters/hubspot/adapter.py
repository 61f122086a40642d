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
- Writes: batch update by record id for records HubSpot already has, batch
  upsert by the unique ``spe_key`` property for records SPE created, 100
  inputs a call, so a rerun never duplicates. A 207 multi-status reply is
  checked input by input.
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
  failures are transient too; 401/403 and bad requests are
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

from spe_adapters.hubspot import mapping
from spe_adapters.hubspot.settings import HubSpotSettings
from spe_core.adapter import Change, ChangeKind, Inbound, SourceRecord, StreamSpec, WriteResult
from spe_core.errors import AdapterError, CrmError, MappingError, TransientError

__all__ = ["BATCH", "NO_RETRY", "RETRYABLE_CATEGORIES", "Apis", "HubSpotAdapter", "translate"]

log = logging.getLogger(__name__)

BATCH = 100
#: At most this many ids in one ``NOT_IN`` filter of a search continuation; more records
#: sharing one modification time are read by id on their own.
TIE_EXCLUDE = 100
#: HubSpot refuses search request bodies over 3,000 characters
#: (https://developers.hubspot.com/docs/api/crm/search, Limitations).
SEARCH_BODY_LIMIT = 3_000
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
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        self.monotonic = monotonic
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

    def _call(self, action: Callable[[Apis], Any]) -> dict[str, Any]:
        """One API call; its JSON reply as plain data.

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
            translate(exc)
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
        """Pages of ``stream`` modified at or after ``since``, in last-modified order.

        HubSpot's search takes one sort rule, so records sharing one last-modified
        millisecond come in no defined order, and ``after`` is an offset into a live
        result (an edit between two pages shifts records past the boundary) capped at
        10,000. So every page is a new query from a keyset: after a page whose last
        record was modified at ``M``, the next query asks for records modified after
        ``M``, or at ``M`` and not among the ids already read at ``M`` (``NOT_IN``). When
        more records share ``M`` than such a filter can name, the records at ``M`` are
        read on their own, sorted by ``hs_object_id`` with an ``hs_object_id`` window
        (``GT`` the last id), before the read moves past ``M``. No offset, no cap, no
        record skipped or read twice by one read.
        """
        if stream == "members":
            yield from self._read_owners()
            return
        object_type, modified, properties, base = self._object(stream)
        size = self.settings.search_page_size
        by_time = [{"propertyName": modified, "direction": "ASCENDING"}]
        tie_ms: str | None = None  # the modification time of the last page's last record
        at_last: list[str] = []  # the ids read so far that were modified at tie_ms
        groups: list[dict[str, Any]] = [
            {
                "filters": base
                + ([] if since is None else [_flt(modified, "GTE", str(mapping.epoch_ms(since)))])
            }
        ]
        while True:
            page = self._search(object_type, _search_body(groups, by_time, properties, size))
            results = page.get("results") or []
            records = [self._source(stream, modified, r) for r in results]
            if records:
                yield records
            if len(records) < size or len(records) >= _total(page, len(records)):
                return
            last_ms = str(mapping.epoch_ms(records[-1].modified_at))
            if last_ms != tie_ms:
                tie_ms, at_last = last_ms, []
            at_last += [r.crm_id for r in records if str(mapping.epoch_ms(r.modified_at)) == tie_ms]
            later = {"filters": [*base, _flt(modified, "GT", last_ms)]}
            same = {
                "filters": [
                    *base,
                    _flt(modified, "EQ", last_ms),
                    {"propertyName": "hs_object_id", "operator": "NOT_IN", "values": at_last},
                ]
            }
            groups = [same, later]
            body = _search_body(groups, by_time, properties, size)
            if len(at_last) > TIE_EXCLUDE or len(json.dumps(body)) > SEARCH_BODY_LIMIT:
                yield from self._read_instant(
                    stream, object_type, modified, base, properties, last_ms, set(at_last)
                )
                groups = [later]
                tie_ms, at_last = None, []

    def _read_instant(
        self,
        stream: str,
        object_type: str,
        modified: str,
        base: list[dict[str, Any]],
        properties: list[str],
        at_ms: str,
        seen: set[str],
    ) -> Iterator[list[SourceRecord]]:
        """The records modified at ``at_ms`` not in ``seen``: one sort rule on
        ``hs_object_id``, each page a window of ids above the last one read."""
        size = self.settings.search_page_size
        by_id = [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
        last_id: str | None = None
        log.info(
            "%s: %d records share one modification time; reading them by id", stream, len(seen)
        )
        while True:
            filters = [*base, _flt(modified, "EQ", at_ms)]
            if last_id is not None:
                filters.append(_flt("hs_object_id", "GT", last_id))
            page = self._search(
                object_type, _search_body([{"filters": filters}], by_id, properties, size)
            )
            results = page.get("results") or []
            records = [self._source(stream, modified, r) for r in results]
            fresh = [r for r in records if r.crm_id not in seen]
            seen.update(r.crm_id for r in fresh)
            if fresh:
                yield fresh
            if len(records) < size or len(records) >= _total(page, len(records)):
                return
            last_id = records[-1].crm_id

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
        if len(changes) > BATCH:
            raise AdapterError(
                f"asked to write {len(changes)} changes in one call.",
                f"the sync engine sends at most {BATCH}; this is a bug.",
            )
        results: dict[int, WriteResult] = {}
        groups: dict[tuple[ChangeKind, bool], list[tuple[int, Change]]] = {}
        for i, change in enumerate(changes):
            groups.setdefault((change.kind, bool(change.crm_id)), []).append((i, change))
        for (kind, known), group in groups.items():
            object_type = self._object_for(kind)
            out = self._update(object_type, group) if known else self._upsert(object_type, group)
            for (i, _), result in zip(group, out, strict=True):
                results[i] = result
        return [results[i] for i in range(len(changes))]

    def _update(self, object_type: str, group: list[tuple[int, Change]]) -> list[WriteResult]:
        from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInput

        inputs = [
            {"id": c.crm_id, "properties": mapping.properties_for_change(c, self.settings)}
            for _, c in group
        ]
        request = BatchInputSimplePublicObjectBatchInput(inputs=inputs)
        reply = self._call(
            lambda apis: apis.batch.update(
                object_type,
                request,
                _request_timeout=self.settings.timeout_seconds,
                _preload_content=False,
            )
        )
        done = {str(r.get("id")): str(r.get("id")) for r in reply.get("results") or []}
        return self._per_input(group, reply, done, lambda c: str(c.crm_id))

    def _upsert(self, object_type: str, group: list[tuple[int, Change]]) -> list[WriteResult]:
        from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInputUpsert

        key = self.settings.fields.key_property
        inputs = []
        for _, change in group:
            props = mapping.properties_for_change(change, self.settings)
            props.pop(key, None)  # the key is the upsert's id
            inputs.append({"id": change.key, "idProperty": key, "properties": props})
        request = BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs)
        reply = self._call(
            lambda apis: apis.batch.upsert(
                object_type,
                request,
                _request_timeout=self.settings.timeout_seconds,
                _preload_content=False,
            )
        )
        done: dict[str, str] = {}
        results = list(reply.get("results") or [])
        for result in results:
            value = (result.get("properties") or {}).get(key)
            if value:
                done[str(value)] = str(result.get("id"))
        if not done and len(results) == len(group) and not reply.get("errors"):
            done = {c.key: str(r.get("id")) for (_, c), r in zip(group, results, strict=True)}
        return self._per_input(group, reply, done, lambda c: c.key)

    @staticmethod
    def _per_input(
        group: list[tuple[int, Change]],
        reply: dict[str, Any],
        done: dict[str, str],
        ident: Callable[[Change], str],
    ) -> list[WriteResult]:
        """One result per input: the 200's results and the 207's errors, matched by id."""
        failed: dict[str, tuple[str, bool]] = {}
        for error in reply.get("errors") or []:
            category = str(error.get("category") or "")
            text = f"{category}: {error.get('message')}"
            for value in (error.get("context") or {}).get("ids", []) or []:
                failed[str(value)] = (text, category in RETRYABLE_CATEGORIES)
        out = []
        for _, change in group:
            key = ident(change)
            if key in done:
                out.append(WriteResult(change.key, True, crm_id=done[key]))
            elif key in failed:
                text, retryable = failed[key]
                out.append(
                    WriteResult(
                        change.key, False, crm_id=change.crm_id, error=text, retryable=retryable
                    )
                )
            else:
                out.append(
                    WriteResult(
                        change.key,
                        False,
                        crm_id=change.crm_id,
                        error="HubSpot's batch reply named neither a result nor an error "
                        "for this input",
                        retryable=True,
                    )
                )
        return out

    def close(self) -> None:
        apis, self._apis = self._apis, None
        if apis is not None:
            for api in (apis.search, apis.batch, apis.owners):
                with contextlib.suppress(AttributeError):
                    api.api_client.rest_client.pool_manager.clear()


def _flt(name: str, operator: str, value: str) -> dict[str, Any]:
    return {"propertyName": name, "operator": operator, "value": value}


def _search_body(
    groups: list[dict[str, Any]], sorts: list[dict[str, Any]], properties: list[str], limit: int
) -> dict[str, Any]:
    return {
        "filterGroups": groups,
        "sorts": sorts,
        "properties": properties,
        "limit": limit,
        "after": None,
    }


def _total(page: dict[str, Any], default: int) -> int:
    """How many records the query matched (HubSpot's ``total``), else ``default``."""
    total = page.get("total")
    return total if isinstance(total, int) and total >= 0 else default + 1


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


def translate(exc: Exception) -> NoReturn:
    """Raise SPE's error for a failed call: by HTTP ``status`` (every hubspot sub-package
    has its own ApiException class), or by urllib3's transport errors."""
    if isinstance(exc, urllib3.exceptions.HTTPError):
        raise TransientError(
            f"HubSpot did not answer ({type(exc).__name__}).", "the sync retries with backoff."
        ) from None
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
        raise AdapterError(
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
