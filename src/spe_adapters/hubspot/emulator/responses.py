"""Request parsing, the CRM v3 subset's replies in HubSpot's documented JSON shapes, the URL map."""

from __future__ import annotations

import functools
import json
import uuid
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from spe_adapters.emulator_kit import KitApp, RequestLog, RollingWindow
from spe_adapters.hubspot.emulator.models import (
    CREATED,
    LAST_MODIFIED,
    PROPERTIES,
    UNIQUE_PROPERTIES,
    Portal,
    RecordError,
    epoch_ms,
    hubspot_time,
    parse_hubspot_time,
    property_definition,
)

__all__ = [
    "MAX_BATCH",
    "MAX_SEARCH_LIMIT",
    "SEARCH_RESULT_CAP",
    "EmulatorApp",
    "RequestLog",
    "SearchError",
    "compile_search",
]

MAX_BATCH = 100
MAX_SEARCH_LIMIT = 200
#: Search returns at most 10,000 results for one query; paging past them is a 400
#: (https://developers.hubspot.com/docs/api/crm/search, Limitations).
SEARCH_RESULT_CAP = 10_000
#: Filter limits since the search API change of August 2024: 5 filter groups, 10 filters
#: a group, 25 in all (https://developers.hubspot.com/changelog/breaking-change-expanded-
#: filtering-capabilities-and-error-messaging-in-hubspots-search-api).
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
#: A search request body may hold at most 3,000 characters
#: (https://developers.hubspot.com/docs/api/crm/search, Limitations).
MAX_SEARCH_BODY = 3_000
#: One sort rule per search (https://developers.hubspot.com/docs/api/crm/search, Sorting
#: search results: a search takes a single sorting rule).
MAX_SORTS = 1

_O = "/crm/v3/objects/<object_type>"
URLS = Map(
    [
        Rule("/crm/v3/owners", endpoint="owners", methods=["GET"]),
        Rule("/crm/v3/owners/", endpoint="owners", methods=["GET"]),
        Rule("/crm/v3/owners/<owner_id>", endpoint="owner", methods=["GET"]),
        Rule("/account-info/v3/details", endpoint="account_details", methods=["GET"]),
        Rule(
            "/oauth/v2/private-apps/get/access-token-info",
            endpoint="token_info",
            methods=["POST"],
        ),
        Rule("/crm/v3/properties/<object_type>", endpoint="properties", methods=["GET"]),
        Rule(f"{_O}/gdpr-delete", endpoint="gdpr_delete", methods=["POST"]),
        Rule(_O, endpoint="get_page", methods=["GET"]),
        Rule(_O, endpoint="create_one", methods=["POST"]),
        Rule(f"{_O}/search", endpoint="search", methods=["POST"]),
        Rule(f"{_O}/batch/read", endpoint="batch_read", methods=["POST"]),
        Rule(f"{_O}/batch/create", endpoint="batch_create", methods=["POST"]),
        Rule(f"{_O}/batch/update", endpoint="batch_update", methods=["POST"]),
        Rule(f"{_O}/batch/upsert", endpoint="batch_upsert", methods=["POST"]),
        Rule(f"{_O}/batch/archive", endpoint="batch_archive", methods=["POST"]),
        Rule(f"{_O}/<record_id>", endpoint="get_one", methods=["GET"]),
        Rule(f"{_O}/<record_id>", endpoint="archive", methods=["DELETE"]),
        Rule(f"{_O}/<record_id>", endpoint="update_one", methods=["PATCH"]),
    ],
    strict_slashes=False,
)
WRITES = {
    "batch_create",
    "batch_update",
    "batch_upsert",
    "batch_archive",
    "create_one",
    "update_one",
}


class SearchError(Exception):
    """A search request HubSpot would refuse with HTTP 400."""


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json", headers=headers)


def error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    """HubSpot's error body."""
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }


def _error(status: int, category: str, message: str, **extra: Any) -> Response:
    return _json(error_body(category, message, **extra), status)


#: Engagements are covered by the contacts scopes (docs/hubspot.md, section 2).
_SCOPE_OBJECT = {
    "deals": "deals",
    "contacts": "contacts",
    "tasks": "contacts",
    "meetings": "contacts",
}


def _missing_scopes(
    endpoint: str, object_type: str | None, method: str, granted: tuple[str, ...]
) -> list[str]:
    """The scopes a call needs that the token lacks (empty: allowed)."""
    if endpoint in ("owners", "owner"):
        needed = "crm.objects.owners.read"
    elif object_type is not None:
        access = "write" if endpoint in WRITES or endpoint in ("archive", "gdpr_delete") else "read"
        needed = f"crm.objects.{_SCOPE_OBJECT.get(object_type, object_type)}.{access}"
    else:
        return []
    return [] if needed in granted else [needed]


# --- search --------------------------------------------------------------------------------

Predicate = Callable[[dict[str, Any]], bool]


@functools.lru_cache(maxsize=1 << 17)
def _ms(text: str) -> float:
    return float(epoch_ms(parse_hubspot_time(text)))


def _typed(kind: str, value: Any) -> Any:
    """A property value as search compares it: numbers and epoch ms as floats, text folded,
    enumeration values exact (filters on enumeration properties are case-sensitive:
    https://developers.hubspot.com/docs/api/crm/search, Filter search results)."""
    if value is None or value == "":
        return None
    text = str(value)
    if kind == "datetime":
        try:
            return _ms(text)
        except ValueError:
            raise SearchError(f"{text} is not a valid date (use epoch milliseconds)") from None
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            raise SearchError(f"{text} is not a valid number") from None
    if kind == "enumeration":
        return text
    return text.lower()


def _filter(schema: dict[str, str], spec: Any) -> Predicate:
    if not isinstance(spec, dict):
        raise SearchError("each filter must be an object")
    name = spec.get("propertyName")
    operator = spec.get("operator", "EQ")
    if name not in schema:
        raise SearchError(f"There was a problem with the request: property {name} does not exist")
    kind = schema[name]

    def prop(record: dict[str, Any]) -> Any:
        raw = record["properties"].get(name)
        if raw is None or raw == "":
            return None
        return _typed(kind, raw)

    if operator == "HAS_PROPERTY":
        return lambda r: prop(r) is not None
    if operator == "NOT_HAS_PROPERTY":
        return lambda r: prop(r) is None
    if operator in ("IN", "NOT_IN"):
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise SearchError(f"operator {operator} needs a non-empty values list")
        wanted = {_typed(kind, v) for v in values}
        if operator == "IN":
            return lambda r: prop(r) in wanted
        return lambda r: prop(r) not in wanted
    if "value" not in spec:
        raise SearchError(f"operator {operator} needs a value")
    value = _typed(kind, spec["value"])
    if operator == "BETWEEN":
        high = _typed(kind, spec.get("highValue"))
        return lambda r: (v := prop(r)) is not None and value <= v <= high
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "EQ": lambda a, b: a == b,
        "NEQ": lambda a, b: a != b,
        "GT": lambda a, b: a > b,
        "GTE": lambda a, b: a >= b,
        "LT": lambda a, b: a < b,
        "LTE": lambda a, b: a <= b,
    }
    if operator not in compare:
        raise SearchError(f"operator {operator} is not supported")
    test = compare[operator]
    if operator == "NEQ":
        return lambda r: prop(r) != value
    return lambda r: (v := prop(r)) is not None and test(v, value)


def compile_search(
    object_type: str, body: dict[str, Any]
) -> tuple[Predicate, list[tuple[str, bool]]]:
    """A search body's filter groups (OR of ANDs) as a predicate, and its sorts."""
    schema = PROPERTIES[object_type]
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list):
        raise SearchError("filterGroups must be a list")
    if len(groups) > MAX_FILTER_GROUPS:
        raise SearchError(f"the maximum number of filterGroups is {MAX_FILTER_GROUPS}")
    compiled: list[list[Predicate]] = []
    total = 0
    for group in groups:
        filters = (group or {}).get("filters") or []
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise SearchError(
                f"the maximum number of filters in one filterGroup is {MAX_FILTERS_PER_GROUP}"
            )
        total += len(filters)
        compiled.append([_filter(schema, f) for f in filters])
    if total > MAX_FILTERS:
        raise SearchError(f"the maximum number of filters in a search is {MAX_FILTERS}")
    sorts: list[tuple[str, bool]] = []
    if len(body.get("sorts") or []) > MAX_SORTS:
        raise SearchError(
            "There was a problem with the request: a search accepts only one sort rule "
            f"(got {len(body.get('sorts') or [])})"
        )
    for sort in body.get("sorts") or []:
        if isinstance(sort, str):  # the short form: "-createdate"
            name, descending = sort.lstrip("-"), sort.startswith("-")
        elif isinstance(sort, dict):
            name = str(sort.get("propertyName"))
            descending = str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING"
        else:
            raise SearchError("each sort must be an object with propertyName and direction")
        if name not in schema:
            raise SearchError(f"cannot sort by {name}: the property does not exist")
        sorts.append((name, descending))

    def matches(record: dict[str, Any]) -> bool:
        if not compiled:
            return True
        return any(all(test(record) for test in group) for group in compiled)

    return matches, sorts


# --- the application -----------------------------------------------------------------------


class EmulatorApp(KitApp):
    """The WSGI application behind the emulator's server (on the emulator kit: request
    log, faults and the ``/__emulator/`` admin routes are the kit's)."""

    urls = URLS

    def __init__(self, portal: Portal) -> None:
        super().__init__(portal)
        self.portal = portal
        self._window = RollingWindow(portal.ten_second_limit, 10.0)

    def not_found(self, request: Request) -> Response:
        return _error(404, "OBJECT_NOT_FOUND", "resource not found")

    def http_error(self, exc: HTTPException) -> Response:
        return _error(exc.code or 400, "VALIDATION_ERROR", exc.description or "")

    def seed(self, options: dict[str, Any]) -> Any:
        return self.portal.seed(int(options.get("seed", 7)), deals=int(options.get("deals", 300)))

    def _limit_headers(self) -> dict[str, str]:
        portal = self.portal
        return {
            "X-HubSpot-RateLimit-Daily": str(portal.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(
                max(0, portal.daily_limit - portal.api_used)
            ),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(portal.ten_second_limit),
            "X-HubSpot-RateLimit-Remaining": str(self._window.remaining()),
        }

    def _rate_limited(self, daily: bool) -> Response:
        headers = self._limit_headers()
        if daily:
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = "0"
            policy, message = "DAILY", "You have reached your daily limit."
        else:
            headers["X-HubSpot-RateLimit-Remaining"] = "0"
            policy, message = (
                "TEN_SECONDLY_ROLLING",
                "You have reached your ten_secondly_rolling limit.",
            )
        return _json(
            error_body(
                "RATE_LIMITS", message, errorType="RATE_LIMIT", policyName=policy, groupName="api"
            ),
            429,
            headers,
        )

    def dispatch(self, request: Request, endpoint: str, args: dict[str, Any]) -> Response:
        portal = self.portal
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if token not in portal.tokens:
            return _error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        object_type = args.get("object_type")
        if object_type is not None and object_type not in PROPERTIES:
            return _error(
                400, "OBJECT_NOT_FOUND", f"Unable to infer object type from: {object_type}"
            )
        missing = _missing_scopes(
            endpoint, object_type, request.method, portal.token_scopes.get(token, ())
        )
        if missing:
            # https://developers.hubspot.com/docs/api/scopes: a call the token's scopes do
            # not cover is a 403 MISSING_SCOPES naming the scopes it needs
            return _error(
                403,
                "MISSING_SCOPES",
                "This app hasn't been granted all required scopes to make this call.",
                errors=[
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": missing},
                    }
                ],
            )
        fault = portal.faults.draw(write=endpoint in WRITES)
        portal.faults.delay()
        within = portal.count_call()
        with portal.lock:
            self._window.hit()
        if not within:  # the daily limit, reset at midnight in the account's time zone
            return self._rate_limited(daily=True)
        if fault == 429:
            return self._rate_limited(daily=portal.faults.daily_limit_hit)
        if fault is not None:
            return _error(
                fault,
                "INTERNAL_ERROR" if fault == 500 else "SERVICE_UNAVAILABLE",
                "internal error" if fault == 500 else "Service temporarily unavailable",
            )
        try:
            response: Response = getattr(self, endpoint)(request, **args)
        except _BadRequest as exc:
            response = _error(400, exc.category, exc.message)
        if endpoint != "search":  # search replies carry no rate-limit headers
            response.headers.update(self._limit_headers())
        return response

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(request.get_data(as_text=True) or "{}")
        except json.JSONDecodeError as exc:
            raise _BadRequest("VALIDATION_ERROR", f"Invalid input JSON: {exc.msg}") from None
        if not isinstance(body, dict):
            raise _BadRequest("VALIDATION_ERROR", "Invalid input JSON: expected an object")
        return body

    # --- owners ----------------------------------------------------------------------------

    def owners(self, request: Request) -> Response:
        limit = _int(request.args.get("limit"), 100, "limit")
        if not 1 <= limit <= 500:
            raise _BadRequest("VALIDATION_ERROR", "limit must be between 1 and 500")
        archived = request.args.get("archived", "false").lower() == "true"
        email = request.args.get("email")
        with self.portal.lock:
            owners = [
                dict(o)
                for o in self.portal.owners.values()
                if o["archived"] == archived and (email is None or o["email"] == email)
            ]
        start = _int(request.args.get("after"), 0, "after")
        page = owners[start : start + limit]
        body: dict[str, Any] = {"results": page}
        if start + limit < len(owners):
            after = str(start + limit)
            body["paging"] = {"next": {"after": after, "link": f"{request.base_url}?after={after}"}}
        return _json(body)

    def owner(self, request: Request, owner_id: str) -> Response:
        owner = self.portal.owners.get(owner_id)
        if owner is None:
            return _error(404, "OBJECT_NOT_FOUND", f"No owner with id {owner_id}")
        return _json(owner)

    # --- objects ---------------------------------------------------------------------------

    @staticmethod
    def _requested(request: Request) -> list[str] | None:
        names: list[str] = []
        for value in request.args.getlist("properties"):
            names.extend(p.strip() for p in value.split(",") if p.strip())
        return names or None

    @staticmethod
    def _record_json(
        object_type: str, record: dict[str, Any], properties: list[str] | None
    ) -> dict[str, Any]:
        props = record["properties"]
        defaults = ["hs_object_id", CREATED[object_type], LAST_MODIFIED[object_type]]
        names = defaults + [p for p in (properties or []) if p not in defaults]
        out = {
            "id": record["id"],
            "properties": {n: props.get(n) for n in names},
            "createdAt": hubspot_time(record["createdAt"]),
            "updatedAt": hubspot_time(record["updatedAt"]),
            "archived": "archivedAt" in record,
        }
        if "archivedAt" in record:
            out["archivedAt"] = hubspot_time(record["archivedAt"])
        return out

    def get_page(self, request: Request, object_type: str) -> Response:
        limit = _int(request.args.get("limit"), 10, "limit")
        if not 1 <= limit <= 100:
            raise _BadRequest("VALIDATION_ERROR", "limit must be between 1 and 100")
        after = _int(request.args.get("after"), 0, "after")
        properties = self._requested(request)
        with self.portal.lock:
            records = sorted(
                (r for r in self.portal.objects[object_type].values() if int(r["id"]) >= after),
                key=lambda r: int(r["id"]),
            )
            page = [self._record_json(object_type, r, properties) for r in records[: limit + 1]]
        body: dict[str, Any] = {"results": page[:limit]}
        if len(page) > limit:
            nxt = page[limit]["id"]
            body["paging"] = {"next": {"after": nxt, "link": f"{request.base_url}?after={nxt}"}}
        return _json(body)

    def get_one(self, request: Request, object_type: str, record_id: str) -> Response:
        id_property = request.args.get("idProperty", "hs_object_id")
        found = self.portal.find(object_type, id_property, record_id)
        record = None if found is None else self.portal.objects[object_type].get(found)
        if record is None:
            return _error(
                404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric."
            )
        return _json(self._record_json(object_type, record, self._requested(request)))

    # --- account, token, properties ---------------------------------------------------------

    def account_details(self, request: Request) -> Response:
        return _json(self.portal.account_details())

    def token_info(self, request: Request) -> Response:
        """The private app token's scopes (``POST /oauth/v2/private-apps/get/access-token-info``
        with ``{"tokenKey": ...}``, https://developers.hubspot.com/docs/api/private-apps)."""
        body = self._body(request)
        token = str(body.get("tokenKey") or "")
        scopes = self.portal.token_scopes.get(token)
        if scopes is None:
            return _error(404, "OBJECT_NOT_FOUND", "The access token was not found.")
        return _json(
            {
                "userId": 1_000_001,
                "hubId": self.portal.portal_id,
                "appId": 2_000_001,
                "scopes": list(scopes),
            }
        )

    def properties(self, request: Request, object_type: str) -> Response:
        """Every property of an object type (``GET /crm/v3/properties/{objectType}``,
        https://developers.hubspot.com/docs/api/crm/properties)."""
        return _json(
            {
                "results": [
                    property_definition(object_type, name, kind)
                    for name, kind in sorted(PROPERTIES[object_type].items())
                ]
            }
        )

    def gdpr_delete(self, request: Request, object_type: str) -> Response:
        """Permanently delete a contact (``POST /crm/v3/objects/contacts/gdpr-delete``,
        https://developers.hubspot.com/docs/api/crm/contacts): purged, not in the bin."""
        body = self._body(request)
        ident = str(body.get("objectId") or "")
        id_property = str(body.get("idProperty") or "hs_object_id")
        found = self.portal.find(object_type, id_property, ident) or ident
        try:
            self.portal.privacy_delete(object_type, found)
        except RecordError as exc:
            return _error(exc.status, exc.category, exc.message)
        return Response(status=204)

    def search(self, request: Request, object_type: str) -> Response:
        raw = request.get_data(as_text=True) or ""
        if len(raw) > MAX_SEARCH_BODY:
            raise _BadRequest(
                "VALIDATION_ERROR",
                f"There was a problem with the request: the search request body has "
                f"{len(raw)} characters; the limit is {MAX_SEARCH_BODY}",
            )
        body = self._body(request)
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise _BadRequest(
                "VALIDATION_ERROR", f"limit must be between 1 and {MAX_SEARCH_LIMIT}, got {limit}"
            )
        after = _int(body.get("after"), 0, "after")
        if after >= SEARCH_RESULT_CAP:
            raise _BadRequest(
                "VALIDATION_ERROR",
                f"There was a problem with the request: paging past {SEARCH_RESULT_CAP} "
                "results is not supported (after must be less than 10000)",
            )
        try:
            matches, sorts = compile_search(object_type, body)
        except SearchError as exc:
            raise _BadRequest("VALIDATION_ERROR", str(exc)) from None
        properties = body.get("properties") or None
        schema = PROPERTIES[object_type]
        with self.portal.lock:
            shown = (self.portal.searchable(r) for r in self.portal.objects[object_type].values())
            rows = [r for r in shown if r is not None and matches(r)]
            rows.sort(key=lambda r: int(r["id"]))
            if sorts:
                # records equal under the one sort rule come in no documented order
                # (https://developers.hubspot.com/docs/api/crm/search, Sorting): the
                # emulator orders them by a hash of their id, never by the id itself
                rows.sort(key=lambda r: zlib.crc32(f"tie:{r['id']}".encode()))
            for name, descending in reversed(sorts):
                kind = schema[name]

                def key(r: dict[str, Any], name: str = name, kind: str = kind) -> tuple[int, Any]:
                    value = _typed(kind, r["properties"].get(name))
                    return (0, 0) if value is None else (1, value)

                rows.sort(key=key, reverse=descending)
            total = len(rows)
            page = [
                self._record_json(object_type, r, properties) for r in rows[after : after + limit]
            ]
        reply: dict[str, Any] = {"total": total, "results": page}
        if after + limit < total:
            reply["paging"] = {"next": {"after": str(after + limit)}}
        return _json(reply)

    # --- batch -----------------------------------------------------------------------------
    #
    # The write rules, from HubSpot's documents:
    # - Batch update and upsert are all-or-nothing: one invalid input fails the whole batch
    #   with HubSpot's error body and nothing is written. Multi-status (207) partial results
    #   exist only for the batch *create* endpoints, and only when every input carries an
    #   ``objectWriteTraceId``: "207 Multi-Status: Returned when there are different statuses
    #   (e.g., errors and successes), which occurs when you've enabled multi-status error
    #   handling for the object API batch create endpoints" and "For the object APIs' batch
    #   create endpoints, you can enable multi status responses that include partial
    #   failures ... include a unique objectWriteTraceId value for each input"; each error
    #   names its input in ``context.objectWriteTraceId`` and each result echoes its
    #   ``objectWriteTraceId`` (HubSpot, "Error handling", Multi-status errors,
    #   https://developers.hubspot.com/docs/api-reference/error-handling).
    # - Results come in no promised order: the batch reference pages promise none, and
    #   HubSpot's SDK maintainers answered a request for input order with "There is no way
    #   to do it. The issue on API side we can't fix it" (HubSpot/hubspot-api-nodejs#190,
    #   "Batch Create results should be in the same order as the inputs"). So results are
    #   shuffled unless ``faults.shuffle_results`` is off.
    # - A batch reply's ``status`` is one of PENDING, PROCESSING, CANCELED, COMPLETE (the
    #   BatchResponseSimplePublicObject schema of the CRM objects API): a reply can say
    #   PROCESSING without results (``faults.processing_replies``).
    # - Batch archive answers 204 with no body ("Archive a batch of objects by ID": "This
    #   response has no body data", https://developers.hubspot.com/docs/api-reference/
    #   latest/crm/objects/custom-objects/batch/delete-custom-objects).

    def _inputs(self, request: Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        body = self._body(request)
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise _BadRequest("VALIDATION_ERROR", "inputs is required")
        if len(inputs) > MAX_BATCH:
            raise _BadRequest(
                "VALIDATION_ERROR",
                f"Batch input exceeds the limit of {MAX_BATCH} inputs (got {len(inputs)})",
            )
        return body, [i if isinstance(i, dict) else {} for i in inputs]

    def _batch_reply(
        self,
        results: list[tuple[set[str], dict[str, Any]]],
        errors: list[dict[str, Any]],
        ok_status: int,
        started: datetime,
    ) -> Response:
        """A batch reply: results (each with the names that identify its input, for the
        ``omit_from_replies`` fault) in no particular order, and the 207's errors."""
        faults = self.portal.faults
        status = "COMPLETE"
        shown = [r for names, r in results if not names & faults.omit_from_replies]
        if faults.processing_replies > 0:
            faults.processing_replies -= 1
            status, shown, errors = "PROCESSING", [], []
        if faults.shuffle_results:
            faults.order_rng.shuffle(shown)
        body: dict[str, Any] = {
            "status": status,
            "results": shown,
            "startedAt": hubspot_time(started),
            "completedAt": hubspot_time(self.portal.clock()),
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return _json(body, 207)
        return _json(body, ok_status)

    @staticmethod
    def _input_error(exc: RecordError, context: dict[str, list[str]]) -> dict[str, Any]:
        return {
            "status": "error",
            "category": exc.category,
            "message": exc.message,
            "context": context,
            "errors": [],
            "links": {},
        }

    @staticmethod
    def _refused(exc: RecordError) -> Response:
        """The whole batch refused for one input: HubSpot's error body, nothing written."""
        status = exc.status if exc.status in (400, 404, 409) else 400
        return _error(status, exc.category, exc.message)

    def _failing(self, *keys: str | None) -> None:
        failing = self.portal.faults.record_fault(*keys)
        if failing:
            key, category = failing
            raise RecordError(category, f"record {key} was rejected ({category})")

    @staticmethod
    def _unique_once(seen: set[tuple[str, str]], object_type: str, props: dict[str, Any]) -> None:
        """Two inputs of one batch may not claim the same unique value."""
        for name in UNIQUE_PROPERTIES:
            value = props.get(name)
            if value:
                if (name, str(value)) in seen:
                    raise RecordError(
                        "CONFLICT",
                        f"Duplicate {name} {value} in batch input for {object_type}",
                        409,
                    )
                seen.add((name, str(value)))

    def batch_read(self, request: Request, object_type: str) -> Response:
        started = self.portal.clock()
        body, inputs = self._inputs(request)
        id_property = str(body.get("idProperty") or "hs_object_id")
        properties = body.get("properties") or None
        # archived=true: only records in the recycling bin (by id), as HubSpot's
        archived = request.args.get("archived", "false").lower() == "true"
        results, missing = [], []
        with self.portal.lock:
            for item in inputs:
                ident = str(item.get("id") or "")
                if archived:
                    record = self.portal.archived[object_type].get(ident)
                    if record is None:
                        missing.append(ident)
                    else:
                        results.append(self._record_json(object_type, record, properties))
                    continue
                found = self.portal.find(object_type, id_property, ident)
                if found is None:
                    missing.append(ident)
                    continue
                record = self.portal.objects[object_type][found]
                results.append(self._record_json(object_type, record, properties))
        errors = []
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {object_type} objects, they may be deleted "
                    "or not exist. Check that ids are valid.",
                    "context": {"ids": missing},
                    "errors": [],
                    "links": {},
                }
            )
        body_out: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": hubspot_time(started),
            "completedAt": hubspot_time(self.portal.clock()),
        }
        if errors:
            body_out["numErrors"] = len(errors)
            body_out["errors"] = errors
            return _json(body_out, 207)
        return _json(body_out, 200)

    def archive(self, request: Request, object_type: str, record_id: str) -> Response:
        try:
            self.portal.archive(object_type, record_id)
        except RecordError as exc:
            return _error(exc.status, exc.category, exc.message)
        return Response(status=204)

    def batch_archive(self, request: Request, object_type: str) -> Response:
        """Move the named records to the recycling bin; 204, no body (see above)."""
        _, inputs = self._inputs(request)
        with self.portal.lock:
            for item in inputs:
                ident = str(item.get("id") or "")
                if ident in self.portal.objects[object_type]:
                    self.portal.archive(object_type, ident)
        return Response(status=204)

    def _create_json(self, object_type: str, record_id: str, sent: list[str]) -> dict[str, Any]:
        record = self.portal.objects[object_type][record_id]
        return self._record_json(object_type, record, sent)

    def create_one(self, request: Request, object_type: str) -> Response:
        """``POST /crm/v3/objects/{objectType}``: one record, 201 with it; an invalid input
        is a 400 (409 for a taken unique value) with HubSpot's error body (HubSpot, "CRM
        objects: Create", https://developers.hubspot.com/docs/api-reference/legacy/crm/
        objects/objects/create-object)."""
        props = self._body(request).get("properties") or {}
        with self.portal.lock:
            try:
                self._failing(props.get("spe_key"))
                props = self.portal.api_properties(object_type, props)
                self.portal.check_write(object_type, props, None)
                record_id = self.portal.create(object_type, props)
            except RecordError as exc:
                return self._refused(exc)
            return _json(self._create_json(object_type, record_id, list(props)), 201)

    def update_one(self, request: Request, object_type: str, record_id: str) -> Response:
        """``PATCH /crm/v3/objects/{objectType}/{objectId}`` (``idProperty`` names a unique
        property instead of the id): 200 with the record, 404 when there is none (HubSpot,
        "CRM objects: Update", https://developers.hubspot.com/docs/api-reference/legacy/
        crm/objects/objects/update-object)."""
        props = self._body(request).get("properties") or {}
        id_property = request.args.get("idProperty", "hs_object_id")
        with self.portal.lock:
            found = self.portal.find(object_type, id_property, record_id)
            if found is None:
                return _error(
                    404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric."
                )
            try:
                self._failing(found, props.get("spe_key"))
                self.portal.update(object_type, found, props)
            except RecordError as exc:
                return self._refused(exc)
            return _json(self._create_json(object_type, found, list(props)))

    def batch_create(self, request: Request, object_type: str) -> Response:
        started = self.portal.clock()
        _, inputs = self._inputs(request)
        traces = [str(i.get("objectWriteTraceId") or "") for i in inputs]
        multi_status = bool(inputs) and all(traces)
        results: list[tuple[set[str], dict[str, Any]]] = []
        errors = []
        with self.portal.lock:
            if not multi_status:  # all or nothing: validate every input, then write
                seen: set[tuple[str, str]] = set()
                try:
                    for item in inputs:
                        props = self.portal.api_properties(
                            object_type, item.get("properties") or {}
                        )
                        self._failing(props.get("spe_key"))
                        self.portal.check_write(object_type, props, None)
                        self._unique_once(seen, object_type, props)
                except RecordError as exc:
                    return self._refused(exc)
            for item, trace in zip(inputs, traces, strict=True):
                props = self.portal.api_properties(object_type, item.get("properties") or {})
                try:
                    self._failing(props.get("spe_key"))
                    self.portal.check_write(object_type, props, None)
                    record_id = self.portal.create(object_type, props)
                except RecordError as exc:  # only with trace ids on every input
                    errors.append(self._input_error(exc, {"objectWriteTraceId": [trace]}))
                    continue
                out = self._create_json(object_type, record_id, list(props))
                if trace:
                    out["objectWriteTraceId"] = trace
                names = {record_id, trace, str(props.get("spe_key") or "")} - {""}
                results.append((names, out))
        return self._batch_reply(results, errors, 201, started)

    def batch_update(self, request: Request, object_type: str) -> Response:
        started = self.portal.clock()
        _, inputs = self._inputs(request)
        ids = [str(i.get("id") or "") for i in inputs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise _BadRequest(
                "VALIDATION_ERROR", f"Duplicate IDs found in batch input: {duplicates}"
            )
        results: list[tuple[set[str], dict[str, Any]]] = []
        with self.portal.lock:
            planned: list[tuple[str, dict[str, Any]]] = []
            seen: set[tuple[str, str]] = set()
            try:  # all or nothing: validate every input, then write
                for item in inputs:
                    props = item.get("properties") or {}
                    ident = str(item.get("id") or "")
                    self._failing(ident, props.get("spe_key"))
                    id_property = str(item.get("idProperty") or "hs_object_id")
                    found = self.portal.find(object_type, id_property, ident)
                    if found is None:
                        raise RecordError(
                            "OBJECT_NOT_FOUND", f"Object not found. objectId {ident} is not valid."
                        )
                    self.portal.check_write(object_type, props, found)
                    self._unique_once(seen, object_type, props)
                    planned.append((found, props))
            except RecordError as exc:
                return self._refused(exc)
            for found, props in planned:
                self.portal.update(object_type, found, props)
                out = self._create_json(object_type, found, list(props))
                names = {found, str(props.get("spe_key") or "")} - {""}
                results.append((names, out))
        return self._batch_reply(results, [], 200, started)

    def batch_upsert(self, request: Request, object_type: str) -> Response:
        """Create or update by a unique ``idProperty``. Results echo the properties the
        input sent (send the unique property in ``properties`` to have it echoed) and
        ``new``; as with update, one invalid input fails the whole batch."""
        started = self.portal.clock()
        _, inputs = self._inputs(request)
        results: list[tuple[set[str], dict[str, Any]]] = []
        with self.portal.lock:
            planned: list[tuple[str, str, dict[str, Any]]] = []
            seen: set[tuple[str, str]] = set()
            try:  # all or nothing: validate every input, then write
                for item in inputs:
                    props = item.get("properties") or {}
                    ident = str(item.get("id") or "")
                    id_property = str(item.get("idProperty") or "")
                    if not id_property or not ident:
                        raise RecordError(
                            "VALIDATION_ERROR", "each upsert input needs id and idProperty"
                        )
                    if id_property not in UNIQUE_PROPERTIES:
                        raise RecordError(
                            "VALIDATION_ERROR",
                            f"Unable to perform update/upsert by non-unique {object_type} "
                            f"property {id_property}",
                        )
                    self._failing(ident)
                    existing = self.portal.find(object_type, id_property, ident)
                    full = {**props, id_property: ident}
                    if existing is None:
                        full = self.portal.api_properties(object_type, full)
                    self.portal.check_write(object_type, full, existing)
                    self._unique_once(seen, object_type, full)
                    planned.append((id_property, ident, props))
            except RecordError as exc:
                return self._refused(exc)
            for id_property, ident, props in planned:
                values = props
                if self.portal.find(object_type, id_property, ident) is None:
                    values = self.portal.api_properties(object_type, props)
                record_id, created = self.portal.upsert(object_type, id_property, ident, values)
                out = self._create_json(object_type, record_id, list(props))
                out["new"] = created
                results.append(({record_id, ident}, out))
        return self._batch_reply(results, [], 200, started)


def _int(value: Any, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _BadRequest("VALIDATION_ERROR", f"{name} must be an integer, got {value!r}") from None


class _BadRequest(Exception):
    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category, self.message = category, message
