"""The HubSpot adapter: hubspot-api-client (CRM v3) for every call, translating only.

- Reads: owners through the owners API (every page, active and archived);
  deals or contacts, and tasks, through the search API, filtered by
  last-modified ``>=`` the bookmark (epoch milliseconds), sorted by
  last-modified alone (HubSpot's search takes one sort rule), 200 records a
  page, every page a new keyset query from where the last ended (never an
  ``after`` offset into a live result, never near the 10,000-result cap);
  records sharing one modification time are told apart by ``hs_object_id``
  (see :meth:`HubSpotAdapter.read`). Search calls keep to a per-second
  budget. A status value the mapping does not know passes through for the
  sync to quarantine.
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
- Errors: a 429 of the ten-secondly limit becomes a
  :class:`~spe_core.errors.TransientError` whose ``retry_after`` is the
  window; a 429 of the daily limit one whose ``retry_after`` runs to midnight
  in the portal's time zone (account-info API, read once) and whose message
  names that time; 5xx and read timeouts are transient too; no answer at all
  is classified by :func:`spe_adapters._network.transport_error`; 401 is
  :class:`~spe_core.errors.AuthenticationFailed`, 403 and bad requests
  :class:`~spe_core.errors.AdapterError` with the fix. The token never
  reaches logs or error text.
- :meth:`HubSpotAdapter.check` (``spe check``): login, time zone, scopes and
  every mapped property's type, as :class:`~spe_core.adapter.CheckResult` values.
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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import urllib3
from urllib3.util.retry import Retry

from spe_adapters._fields import raw_fields
from spe_adapters._network import transport_error
from spe_adapters.hubspot import mapping
from spe_adapters.hubspot.settings import HubSpotSettings
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
    CrmError,
    CrmUnreachable,
    MappingError,
    SpeError,
    TransientError,
)
from spe_core.model import Opportunity

__all__ = ["BATCH", "NO_RETRY", "RETRYABLE_CATEGORIES", "Apis", "HubSpotAdapter", "translate"]

log = logging.getLogger(__name__)

BATCH = 100
#: At most this many ids in one ``NOT_IN`` filter of a search continuation; more records
#: sharing one modification time are read by id on their own.
TIE_EXCLUDE = 100
#: HubSpot takes at most 10 filters in one filter group (and 25 in a search: the two groups
#: of a continuation stay below it; https://developers.hubspot.com/changelog/breaking-
#: change-expanded-filtering-capabilities-and-error-messaging-in-hubspots-search-api).
GROUP_FILTERS = 10
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
    reads_in_thread = True  # read() uses its own HTTP session; to_inbound() only maps

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
        self._zone: ZoneInfo | None = None
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

    def _call(
        self, action: Callable[[Apis], Any], *, refused: str | None = None, zone: bool = True
    ) -> dict[str, Any]:
        """One API call; its JSON reply as plain data. ``refused`` (a batch write: "3
        deals"): a 400, 404 or 409 refuses the whole batch for its input, raised as
        :class:`~spe_core.errors.BatchRejected`. ``zone``: a daily-limit 429 names the
        reset time in the account's time zone (False for the account-info call itself).

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
            translate(
                exc,
                zone=self.account_time_zone if zone else None,
                now=self.clock,
                host=self.settings.host,
            )
        if not isinstance(data, dict):
            raise TransientError(
                f"HubSpot answered {type(data).__name__} where an object was expected.",
                "the sync retries; report it if it recurs.",
            )
        data["_status"] = response.status
        return data

    def account_details(self) -> dict[str, Any]:
        """The account-info API's details of the portal (``GET /account-info/v3/details``:
        ``portalId``, ``timeZone``, ...), through the client's own API client."""

        def call(apis: Apis) -> Any:
            return apis.owners.api_client.call_api(
                "/account-info/v3/details",
                "GET",
                header_params={"Accept": "application/json"},
                auth_settings=["oauth2"],
                _preload_content=False,
                _request_timeout=self.settings.timeout_seconds,
            )

        return self._call(call, zone=False)

    def account_time_zone(self) -> ZoneInfo | None:
        """The portal's time zone (its daily API limit resets at midnight in it): read
        once from the account-info API and kept; None when it cannot be read now."""
        if self._zone is None:
            try:
                name = str(self.account_details().get("timeZone") or "")
                self._zone = ZoneInfo(name)
            except (CrmError, ValueError, ZoneInfoNotFoundError):
                log.warning("HubSpot's account time zone could not be read")
                return None
        return self._zone

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
        ``M``, or at ``M`` and not among the ids already read at ``M`` (``NOT_IN``
        filters of up to 100 ids each, so every page is full). When more records share
        ``M`` than such filters can name (a search body holds 3,000 characters), or than
        one filter can name and a whole page held nothing else, the records at ``M`` are
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
            # the ids read at M, in NOT_IN filters of at most TIE_EXCLUDE ids each: past
            # one filter's worth only when this page also held records before M (an
            # instant that fills whole pages is read by id at once), so that pages stay
            # full and the read takes the fewest calls
            chunks = [at_last[i : i + TIE_EXCLUDE] for i in range(0, len(at_last), TIE_EXCLUDE)]
            same = {
                "filters": [
                    *base,
                    _flt(modified, "EQ", last_ms),
                    *(
                        {"propertyName": "hs_object_id", "operator": "NOT_IN", "values": ids}
                        for ids in chunks
                    ),
                ]
            }
            groups = [same, later]
            body = _search_body(groups, by_time, properties, size)
            if (
                (len(chunks) > 1 and len(at_last) >= len(records))
                or len(same["filters"]) > GROUP_FILTERS
                or len(json.dumps(body)) > SEARCH_BODY_LIMIT
            ):
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
                        "userId": data.get("userId"),  # the HubSpot user behind the owner
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
        data = raw_fields(record)  # read only: the mapping never changes it
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

    def purged_records(self, stream: str, known: Mapping[str, Opportunity]) -> list[SourceRecord]:
        """Deletion records for ids HubSpot purged for good (a privacy deletion: not in
        the recycling bin, so nothing can be read): ``known`` maps each CRM id to the
        opportunity SPE holds for it, whose key, account and queue time the record
        carries so that it maps, as deleted, onto that opportunity."""
        if stream != "opportunities":
            return []
        s = self.settings
        at = self.clock()
        out = []
        for crm_id, opp in known.items():
            data: dict[str, Any] = {
                "hs_object_id": crm_id,
                s.fields.key_property: opp.id,
                s.account_property: opp.account_id,
                s.created_property: mapping.hubspot_time(opp.queued_at or at),
                s.last_modified_property: mapping.hubspot_time(at),
                mapping.ARCHIVED: True,
            }
            out.append(SourceRecord(stream, crm_id, at, data))
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

    # --- check ------------------------------------------------------------------------

    def required_scopes(self) -> list[str]:
        """The private-app scopes the sync needs (docs/hubspot.md, section 2)."""
        s, f = self.settings, self.settings.fields
        scopes = [
            "crm.objects.owners.read",
            f"crm.objects.{s.queued_object}.read",
            f"crm.objects.{s.queued_object}.write",
        ]
        if f.task_kind_property or f.calendar_meetings:  # engagements: the contacts scopes
            scopes += ["crm.objects.contacts.read", "crm.objects.contacts.write"]
        return list(dict.fromkeys(scopes))

    def _expected_properties(self) -> dict[str, dict[str, frozenset[str]]]:
        """Object type -> property -> the HubSpot types that fit it."""
        s, f = self.settings, self.settings.fields
        text, number = frozenset({"string"}), frozenset({"number"})
        when = frozenset({"datetime", "date"})
        anything = frozenset({"string", "number", "enumeration", "datetime", "date", "bool"})
        queued: dict[str, frozenset[str]] = dict.fromkeys(mapping.record_properties(s), anything)
        queued.update(
            {
                f.key_property: text,
                f.status_property: frozenset({"enumeration", "string"}),
                f.released_at_property: when,
                s.account_property: frozenset({"string", "enumeration"}),
            }
        )
        for name, kinds in ((f.tier_property, number), (f.score_property, number)):
            if name:
                queued[name] = kinds
        if f.skills_property:
            queued[f.skills_property] = frozenset({"string", "enumeration"})
        out: dict[str, dict[str, frozenset[str]]] = {str(s.queued_object): queued}
        if f.task_kind_property:
            tasks = dict.fromkeys(mapping.task_record_properties(s), anything)
            tasks.update({f.key_property: text, "hs_timestamp": when})
            tasks[f.task_kind_property] = frozenset({"enumeration", "string"})
            out["tasks"] = tasks
        if f.calendar_meetings:
            meetings = dict.fromkeys(mapping.meeting_record_properties(s), anything)
            meetings.update(
                {
                    f.key_property: text,
                    "hs_meeting_start_time": when,
                    "hs_meeting_end_time": when,
                }
            )
            out["meetings"] = meetings
        return out

    def _token_scopes(self) -> list[str] | None:
        """The token's scopes from the private-app token-info API
        (``POST /oauth/v2/private-apps/get/access-token-info``); None if it will not say."""
        token = self.settings.secret(self.settings.access_token_env, "private-app access token")

        def call(apis: Apis) -> Any:
            return apis.owners.api_client.call_api(
                "/oauth/v2/private-apps/get/access-token-info",
                "POST",
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                body={"tokenKey": token},
                auth_settings=["oauth2"],
                _preload_content=False,
                _request_timeout=self.settings.timeout_seconds,
            )

        try:
            scopes = self._call(call, zone=False).get("scopes")
        except (TransientError, AuthenticationFailed, CertificateProblem):
            raise
        except CrmError:
            return None
        return [str(x) for x in scopes] if isinstance(scopes, list) else None

    def _property_definitions(self, object_type: str) -> dict[str, dict[str, Any]]:
        from hubspot import HubSpot

        token = self.settings.secret(self.settings.access_token_env, "private-app access token")
        client = HubSpot(access_token=token, host=self.settings.host.rstrip("/"), retry=NO_RETRY)
        api = client.crm.properties.core_api
        try:
            reply = self._call(
                lambda apis: api.get_all(
                    object_type,
                    archived=False,
                    _request_timeout=self.settings.timeout_seconds,
                    _preload_content=False,
                ),
                zone=False,
            )
        finally:
            with contextlib.suppress(AttributeError):
                api.api_client.rest_client.pool_manager.clear()
        return {str(p.get("name")): p for p in reply.get("results") or [] if isinstance(p, dict)}

    def check(self) -> list[CheckResult]:
        """Check the connection and the mapping against the portal (``spe check``): the
        token logs in, the account's time zone (the daily limit's reset) is read, the
        token has the scopes the sync needs, and every mapped property exists with a
        type that fits. One result per part; never raises for a problem it can describe
        (a refused login or an unreachable host leave the other parts not checked)."""
        results: list[CheckResult] = []
        later = [
            "time zone",
            "scopes",
            *(f"properties of {o}" for o in self._expected_properties()),
        ]

        def stop(part: str, exc: SpeError) -> list[CheckResult]:
            results.append(CheckResult(part, CheckStatus.PROBLEM, exc.problem, exc.fix))
            for name in later:
                results.append(
                    CheckResult(name, CheckStatus.NOT_CHECKED, f"not checked: {part} failed")
                )
            return results

        try:
            details = self.account_details()
        except (ConfigError, AuthenticationFailed, CrmUnreachable, CertificateProblem) as exc:
            return stop("login", exc)
        except CrmError as exc:
            details = {}
            try:  # the account-info API may be closed to the token: log in through owners
                self._owners_page({"limit": 1})
            except SpeError as again:
                return stop("login", again)
            results.append(
                CheckResult(
                    "login",
                    CheckStatus.OK,
                    f"the token is accepted (the account-info API refused: {exc.problem})",
                )
            )
        else:
            results.append(
                CheckResult(
                    "login",
                    CheckStatus.OK,
                    f"the private-app token is accepted by portal {details.get('portalId')}",
                )
            )
        name = str(details.get("timeZone") or "")
        try:
            self._zone = ZoneInfo(name)
            results.append(
                CheckResult(
                    "time zone",
                    CheckStatus.OK,
                    f"{name}: HubSpot's daily API limit resets at midnight there",
                )
            )
        except (ValueError, ZoneInfoNotFoundError):
            results.append(
                CheckResult(
                    "time zone",
                    CheckStatus.PROBLEM,
                    f"the account's time zone could not be read ({name or 'no answer'})",
                    "check the portal's time zone in Settings > Account defaults; until it is "
                    "known, a daily-limit stop names its reset in UTC.",
                )
            )
        try:
            granted = self._token_scopes()
        except SpeError as exc:
            return stop("scopes", exc)
        if granted is None:
            results.append(
                CheckResult(
                    "scopes",
                    CheckStatus.NOT_CHECKED,
                    "HubSpot did not list the token's scopes (not a private-app token?); "
                    "the property checks below show whether reads are allowed",
                )
            )
        else:
            for scope in self.required_scopes():
                ok = scope in granted
                results.append(
                    CheckResult(
                        f"scope {scope}",
                        CheckStatus.OK if ok else CheckStatus.PROBLEM,
                        "granted" if ok else "the private app's token lacks it",
                        None
                        if ok
                        else f"add {scope} in the private app's Scopes tab (Settings > "
                        "Integrations > Private Apps), commit, then run spe check again.",
                    )
                )
        for object_type, expected in self._expected_properties().items():
            try:
                found = self._property_definitions(object_type)
            except (AuthenticationFailed, CrmUnreachable, CertificateProblem) as exc:
                return stop(f"properties of {object_type}", exc)
            except CrmError as exc:
                results.append(
                    CheckResult(
                        f"properties of {object_type}", CheckStatus.PROBLEM, exc.problem, exc.fix
                    )
                )
                continue
            for prop, kinds in expected.items():
                results.append(self._check_property(object_type, prop, kinds, found.get(prop)))
        return results

    def _check_property(
        self,
        object_type: str,
        name: str,
        kinds: frozenset[str],
        found: dict[str, Any] | None,
    ) -> CheckResult:
        part = f"property {object_type}.{name}"
        f = self.settings.fields
        where = "[adapter.hubspot.fields]"
        if found is None:
            return CheckResult(
                part,
                CheckStatus.PROBLEM,
                f"{object_type} have no property {name!r}",
                f"create it (Settings > Properties, internal name {name}; see docs/hubspot.md) "
                f"or map an existing one in {where}.",
            )
        kind = str(found.get("type") or "")
        if kind not in kinds:
            return CheckResult(
                part,
                CheckStatus.PROBLEM,
                f"{name} is of type {kind!r}; SPE needs {' or '.join(sorted(kinds))}",
                f"change the property's field type, or map another property in {where}.",
            )
        if name == f.key_property and not found.get("hasUniqueValue"):
            return CheckResult(
                part,
                CheckStatus.PROBLEM,
                f"{name} does not require unique values: SPE upserts by it",
                "turn on 'Require unique values' for it (only possible while no two records "
                "share a value), or map a unique text property as key_property.",
            )
        if name == f.status_property and kind == "enumeration":
            options = {str(o.get("value")) for o in found.get("options") or []}
            missing = sorted(set(f.status_values.values()) - options)
            if missing:
                return CheckResult(
                    part,
                    CheckStatus.PROBLEM,
                    f"{name} has no option with the internal value {', '.join(missing)}",
                    f"add the options to {name}, or map the SPE statuses to existing options "
                    f"in {where} status_values.",
                )
        return CheckResult(part, CheckStatus.OK, f"exists ({kind})")

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

    def _write(self, operation: str, object_type: str, request: Any, count: int) -> Any:
        """One batch write call (``operation``: ``create``, ``update`` or ``upsert`` of the
        batch API); a whole batch refused for its input is BatchRejected."""

        def action(apis: Apis) -> Any:
            return getattr(apis.batch, operation)(
                object_type,
                request,
                _request_timeout=self.settings.timeout_seconds,
                _preload_content=False,
            )

        return self._call(action, refused=f"{count} {object_type}")

    def _update(self, object_type: str, group: list[tuple[int, Change]]) -> dict[int, WriteResult]:
        from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInput

        inputs = [{"id": c.crm_id, "properties": self._properties(c)} for _, c in group]
        request = BatchInputSimplePublicObjectBatchInput(inputs=inputs)
        reply = self._write("update", object_type, request, len(group))
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
        reply = self._write("create", object_type, request, len(group))
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
        reply = self._write("upsert", object_type, request, len(group))
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


def _is_daily(headers: Mapping[str, str], body: dict[str, Any]) -> bool:
    return (
        body.get("policyName") == "DAILY"
        or headers.get("X-HubSpot-RateLimit-Daily-Remaining") == "0"
    )


def daily_reset(now: datetime, zone: ZoneInfo | None) -> datetime:
    """When HubSpot's daily limit resets after ``now``: the next midnight in the account's
    time zone (UTC when it is not known), as an aware datetime in that zone."""
    tz = zone or ZoneInfo("UTC")
    local = now.astimezone(tz)
    return datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tz)


def _retry_after(headers: Mapping[str, str]) -> float:
    """Seconds to wait after a ten-secondly 429: ``Retry-After``, else the window."""
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
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


def translate(
    exc: Exception,
    *,
    zone: Callable[[], ZoneInfo | None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    host: str | None = None,
) -> NoReturn:
    """Raise SPE's error for a failed call: by HTTP ``status`` (every hubspot sub-package
    has its own ApiException class), or by urllib3's transport errors. ``zone`` gives the
    account's time zone for a daily-limit 429 (its reset time)."""
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
    if status == 429 and _is_daily(headers, body):
        account_zone = zone() if zone is not None else None
        at = now()
        reset = daily_reset(at, account_zone)
        where = (
            f"the account's time zone {account_zone.key}"
            if account_zone is not None
            else "UTC (the account's time zone could not be read)"
        )
        raise TransientError(
            f"HubSpot's daily API limit is used up (HTTP 429, DAILY); it resets at midnight "
            f"in {where}: {reset:%Y-%m-%d %H:%M %Z} "
            f"({reset.astimezone(UTC):%Y-%m-%d %H:%M} UTC).",
            "run the sync again after the reset; if the limit is reached every day, sync "
            "less often or raise the portal's API limit.",
            retry_after=max(1.0, (reset - at).total_seconds()),
        ) from None
    if status == 429:
        policy = body.get("policyName") or "a rate limit"
        raise TransientError(
            f"HubSpot's rate limit was reached (HTTP 429, {policy}).",
            "the sync backs off and retries; lower the sync frequency if it recurs.",
            retry_after=_retry_after(headers),
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
