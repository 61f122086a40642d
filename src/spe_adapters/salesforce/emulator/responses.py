"""Request parsing and replies in Salesforce's documented JSON shapes."""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from spe_adapters.emulator_kit import KitApp, RequestLog
from spe_adapters.salesforce.emulator import soql
from spe_adapters.salesforce.emulator.models import (
    EXTERNAL_IDS,
    FIELD_LENGTHS,
    FIELD_TYPES,
    LABELS,
    PREFIXES,
    REFERENCES,
    SYSTEM_FIELDS,
    SYSTEM_TYPES,
    TEXT_LENGTHS,
    Org,
    RecordError,
    RequestError,
    canonical_field,
    canonical_object,
    id18,
    salesforce_time,
)

__all__ = ["MAX_COLLECTION", "EmulatorApp", "RequestLog"]

# REST API Developer Guide, sObject Collections: "The list can contain up to 200 objects."
MAX_COLLECTION = 200
URLS = Map(
    [
        Rule("/services/oauth2/token", endpoint="token", methods=["POST"]),
        Rule("/services/data/", endpoint="versions", methods=["GET"]),
        Rule("/services/data/v<version>/limits", endpoint="limits", methods=["GET"]),
        Rule("/services/data/v<version>/limits/", endpoint="limits", methods=["GET"]),
        Rule("/services/data/v<version>/query", endpoint="query", methods=["GET"]),
        Rule("/services/data/v<version>/query/", endpoint="query", methods=["GET"]),
        Rule("/services/data/v<version>/query/<cursor>", endpoint="query_more", methods=["GET"]),
        Rule("/services/data/v<version>/queryAll", endpoint="query_all", methods=["GET"]),
        Rule("/services/data/v<version>/queryAll/", endpoint="query_all", methods=["GET"]),
        Rule("/services/data/v<version>/queryAll/<cursor>", endpoint="query_more", methods=["GET"]),
        Rule("/services/data/v<version>/sobjects", endpoint="global_describe", methods=["GET"]),
        Rule("/services/data/v<version>/sobjects/", endpoint="global_describe", methods=["GET"]),
        Rule(
            "/services/data/v<version>/sobjects/<sobject>/describe",
            endpoint="describe",
            methods=["GET"],
        ),
        Rule(
            "/services/data/v<version>/sobjects/<sobject>/describe/",
            endpoint="describe",
            methods=["GET"],
        ),
        Rule("/services/data/v<version>/sobjects/<sobject>/", endpoint="create", methods=["POST"]),
        Rule(
            "/services/data/v<version>/sobjects/<sobject>/<record_id>",
            endpoint="record",
            methods=["GET", "PATCH", "DELETE"],
        ),
        Rule(
            "/services/data/v<version>/sobjects/<sobject>/<field>/<path:value>",
            endpoint="by_external_id",
            methods=["GET", "PATCH"],
        ),
        Rule(
            "/services/data/v<version>/composite/sobjects",
            endpoint="collection",
            methods=["POST", "PATCH"],
        ),
        Rule(
            "/services/data/v<version>/composite/sobjects/<sobject>",
            endpoint="retrieve_records",
            methods=["GET", "POST"],
        ),
        Rule(
            "/services/data/v<version>/composite/sobjects/<sobject>/<field>",
            endpoint="collection_upsert",
            methods=["PATCH"],
        ),
    ]
)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json", headers=headers)


def _error(status: int, code: str, message: str) -> Response:
    return _json([{"message": message, "errorCode": code}], status)


def _sort_key(name: str, record: dict[str, Any]) -> Any:
    value = soql.value_of(record, name)
    return value.lower() if isinstance(value, str) else value


def _out(value: Any) -> Any:
    # REST API Developer Guide, Valid Date and DateTime Formats: dateTime values come back
    # as 2026-01-05T08:00:00.000+0000, dates as 2026-01-05
    if isinstance(value, datetime):
        return salesforce_time(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "picklist": "xsd:string",
    "textarea": "xsd:string",
    "boolean": "xsd:boolean",
    "double": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}


def _label(name: str) -> str:
    base = name.removesuffix("__c").removeprefix("SPE_").replace("_", " ")
    if base.endswith("Id") and len(base) > 2:
        base = base[:-2] + " ID"
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", base)


def _describe_field(
    sobject: str, name: str, kind: str, writable: bool, required: bool
) -> dict[str, Any]:
    """One field as describe reports it (SOAP API Developer Guide, DescribeSObjectResult
    Field; the types are the SOAP API Field Types: IsDeleted is a boolean, the audit fields
    dateTime). ``nillable`` is false for required fields and for Id and the system fields."""
    system = name in SYSTEM_FIELDS or name == "Id"
    reference = REFERENCES.get(name) if kind == "reference" else None
    length = FIELD_LENGTHS.get((sobject, name), TEXT_LENGTHS.get(kind, 0))
    return {
        "name": name,
        "label": "Record ID" if name == "Id" else _label(name),
        "type": kind,
        "soapType": _SOAP_TYPES[kind],
        "length": length,
        "byteLength": length * 3,
        "precision": 18 if kind == "double" else 0,
        "scale": 15 if kind == "double" else 0,
        "digits": 0,
        "defaultValue": False if kind == "boolean" and not system else None,
        "defaultedOnCreate": system or kind == "boolean",
        "createable": writable,
        "updateable": writable,
        "nillable": not required and not system and kind != "boolean",
        "custom": name.endswith("__c"),
        "externalId": name in EXTERNAL_IDS,
        "idLookup": name == "Id" or name in EXTERNAL_IDS,
        "unique": name in EXTERNAL_IDS,
        "caseSensitive": False,
        "calculated": False,
        "autoNumber": False,
        "filterable": kind != "textarea",
        "sortable": kind != "textarea",
        "groupable": kind not in ("textarea", "double", "datetime"),
        "referenceTo": [reference[1]] if reference else [],
        "relationshipName": reference[0] if reference else None,
        "picklistValues": [],
    }


_VERSION = re.compile(r"/services/data/(v\d+\.\d+)/")


def _version(request: Request) -> str:
    """The API version the client called (``v59.0``): Salesforce's URLs in the reply
    (attributes.url, nextRecordsUrl) name the version called."""
    match = _VERSION.match(request.path)
    return match.group(1) if match else "v59.0"


def _api(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Every 4xx is a JSON error body (REST API Developer Guide, Status Codes and Error
    Responses: ``[{"message": ..., "errorCode": ...}]``), never an HTML page: a body that
    is not JSON is a 400 JSON_PARSER_ERROR, a request-level error a 400 with its code."""

    @functools.wraps(handler)
    def wrapped(self: EmulatorApp, request: Request, **args: Any) -> Response:
        try:
            return handler(self, request, **args)
        except _BadRequest as exc:
            return _error(400, exc.code, exc.message)
        except RequestError as exc:
            body: dict[str, Any] = {"message": exc.message, "errorCode": exc.code}
            if exc.fields:
                body["fields"] = exc.fields
            return _json([body], 400)

    return wrapped


class EmulatorApp(KitApp):
    """The WSGI application behind the emulator's server (on the emulator kit: request
    log, faults and the ``/__emulator/`` admin routes are the kit's)."""

    urls = URLS

    def __init__(self, org: Org) -> None:
        super().__init__(org)
        self.org = org

    # --- plumbing ------------------------------------------------------------------------

    def not_found(self, request: Request) -> Response:
        return _error(404, "NOT_FOUND", "The requested resource does not exist")

    def http_error(self, exc: HTTPException) -> Response:
        return _error(exc.code or 400, "METHOD_NOT_ALLOWED", exc.description or "")

    def seed(self, options: dict[str, Any]) -> Any:
        return self.org.seed(int(options.get("seed", 7)), leads=int(options.get("leads", 300)))

    def set_faults(self, options: dict[str, Any]) -> None:
        """The kit's fault settings, and ``expire_sessions``: every access token expires."""
        super().set_faults(options)
        if options.get("expire_sessions"):
            self.org.expire_sessions()

    def dispatch(self, request: Request, endpoint: str, args: dict[str, Any]) -> Response:
        if endpoint in ("token", "versions"):
            handler = getattr(self, endpoint)
            result: Response = handler(request, **args)
            return result
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        fault = self.org.faults.draw(write=endpoint.startswith("collection"))
        self.org.faults.delay()
        if fault == 401 or not self.org.session_valid(token):
            return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        with self.org.lock:
            self.org.api_used += 1
            used, limit = self.org.api_used, self.org.daily_api_limit
        if fault == 403 or used > limit:
            return _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        if fault is not None:
            return _error(fault, "SERVER_UNAVAILABLE", "Service temporarily unavailable")
        args.pop("version", None)
        response: Response = getattr(self, endpoint)(request, **args)
        response.headers["Sforce-Limit-Info"] = f"api-usage={used}/{limit}"
        return response

    def _body(self, request: Request) -> Any:
        try:
            return json.loads(request.get_data(as_text=True) or "null")
        except json.JSONDecodeError as exc:
            raise _BadRequest("JSON_PARSER_ERROR", f"Unexpected character: {exc.msg}") from None

    # --- auth ------------------------------------------------------------------------------

    # OAuth token endpoint, /services/oauth2/token. Rules from Salesforce Help:
    # "OAuth 2.0 Username-Password Flow for Special Scenarios", "OAuth 2.0 JWT Bearer
    # Flow for Server-to-Server Integration" and "OAuth 2.0 Client Credentials Flow for
    # Server-to-Server Integration"; refusals are HTTP 400 with an OAuth error body
    # {"error": ..., "error_description": ...}.
    JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

    def token(self, request: Request) -> Response:
        form = request.form
        grant = form.get("grant_type")
        if grant == "password":
            # username-password flow: the consumer key (client_id) and the user's password
            # (with the security token appended) are required
            username = form.get("username", "")
            ok = self.org.credentials.get(username) == form.get("password") and bool(
                form.get("client_id")
            )
            refusal = None if ok else ("invalid_grant", "authentication failure")
        elif grant == self.JWT_GRANT:
            refusal = self._jwt_refusal(str(form.get("assertion", "")))
        elif grant == "client_credentials":
            refusal = self._client_credentials_refusal(request)
        else:
            refusal = ("unsupported_grant_type", "grant type not supported")
        if refusal is not None:
            return _json({"error": refusal[0], "error_description": refusal[1]}, 400)
        base = request.host_url.rstrip("/")
        body = {
            "access_token": self.org.new_session(),
            "instance_url": base,
            "id": f"{base}/id/00D000000000001AAA/005000000000001AAA",
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "signature": "emulator",
        }
        if grant == "client_credentials":
            # client credentials flow: the response has no refresh token; a new token is
            # requested with the same credentials when the session times out
            body["scope"] = "api"
        return _json(body)

    def _jwt_refusal(self, assertion: str) -> tuple[str, str] | None:
        """Why an RS256 assertion is refused (None: it is accepted).

        JWT Bearer Flow: ``iss`` is the connected app's consumer key, the signature is
        checked against the certificate uploaded to the app, ``sub`` is the username,
        ``exp`` is required, and ``aud`` must be https://login.salesforce.com (production),
        https://test.salesforce.com (sandbox) or an Experience Cloud site URL, never the
        org's My Domain or instance host ("audience is invalid").
        """
        import jwt

        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return "invalid_grant", "invalid assertion"
        key = self.org.jwt_keys.get(str(claims.get("iss")))
        if key is None:
            return "invalid_client_id", "client identifier invalid"
        audiences = [
            "https://test.salesforce.com" if self.org.sandbox else ("https://login.salesforce.com")
        ]
        audiences += sorted(u.rstrip("/") for u in self.org.community_urls)
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                audience=audiences,
                # exp is checked below: Salesforce also takes it as a numeric string, the
                # form simple-salesforce's own JWT login sends
                options={"require": ["exp", "aud", "sub", "iss"], "verify_exp": False},
            )
        except jwt.InvalidAudienceError:
            return "invalid_grant", "audience is invalid"
        except jwt.PyJWTError:
            return "invalid_grant", "invalid assertion"
        try:
            expires = float(claims["exp"])
        except (TypeError, ValueError):
            return "invalid_grant", "invalid assertion"
        if expires <= time.time():
            return "invalid_grant", "expired authorization code"
        if str(claims.get("sub")) not in self.org.credentials:
            return "invalid_grant", "user hasn't approved this consumer"
        return None

    def _client_credentials_refusal(self, request: Request) -> tuple[str, str] | None:
        """Why a client credentials request is refused (None: it is accepted).

        Client Credentials Flow: the consumer key and secret come as ``client_id`` and
        ``client_secret`` in the body or in an HTTP Basic Authorization header; the
        app must have the flow enabled with a Run As user ("no client credentials user
        enabled" otherwise); the request goes to the org's My Domain (the emulator's
        host is the org's own, so it stands for one).
        """
        client_id = request.form.get("client_id")
        secret = request.form.get("client_secret")
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            client_id, secret = auth.username, auth.password
        app = self.org.client_apps.get(str(client_id))
        if app is None:
            return "invalid_client_id", "client identifier invalid"
        if secret != app[0]:
            return "invalid_client", "invalid client credentials"
        if app[1] is None or app[1] not in self.org.credentials:
            return "invalid_grant", "no client credentials user enabled"
        return None

    # --- the REST API ------------------------------------------------------------------------

    def versions(self, request: Request) -> Response:
        return _json([{"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"}])

    @_api
    def limits(self, request: Request) -> Response:
        """REST API Developer Guide, Limits: each key has ``Max`` and ``Remaining``."""
        used = self.org.api_used
        fixed = {
            "ConcurrentAsyncGetReportInstances": 200,
            "ConcurrentSyncReportRuns": 20,
            "DailyAsyncApexExecutions": 250000,
            "DailyBulkApiBatches": 15000,
            "DailyBulkV2QueryFileStorageMB": 976562,
            "DailyBulkV2QueryJobs": 10000,
            "DailyDurableGenericStreamingApiEvents": 10000,
            "DailyDurableStreamingApiEvents": 10000,
            "DailyGenericStreamingApiEvents": 10000,
            "DailyStandardVolumePlatformEvents": 10000,
            "DailyStreamingApiEvents": 10000,
            "DailyWorkflowEmails": 1000,
            "DataStorageMB": 1024,
            "FileStorageMB": 1024,
            "HourlyAsyncReportRuns": 1200,
            "HourlyDashboardRefreshes": 200,
            "HourlyDashboardResults": 5000,
            "HourlyDashboardStatuses": 999999999,
            "HourlyODataCallout": 10000,
            "HourlySyncReportRuns": 500,
            "HourlyTimeBasedWorkflow": 50,
            "MassEmail": 10,
            "SingleEmail": 15,
            "StreamingApiConcurrentClients": 20,
        }
        body: dict[str, Any] = {
            "DailyApiRequests": {
                "Max": self.org.daily_api_limit,
                "Remaining": max(0, self.org.daily_api_limit - used),
            }
        }
        body.update({k: {"Max": v, "Remaining": v} for k, v in fixed.items()})
        return _json(dict(sorted(body.items())))

    @_api
    def global_describe(self, request: Request) -> Response:
        """REST API Developer Guide, Describe Global: the objects and their basic metadata."""
        version = _version(request)
        return _json(
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [
                    {
                        "name": name,
                        "label": LABELS[name][0],
                        "labelPlural": LABELS[name][1],
                        "keyPrefix": PREFIXES[name],
                        "custom": False,
                        "createable": True,
                        "updateable": True,
                        "deletable": True,
                        "queryable": True,
                        "urls": {
                            "sobject": f"/services/data/{version}/sobjects/{name}",
                            "describe": f"/services/data/{version}/sobjects/{name}/describe",
                            "rowTemplate": f"/services/data/{version}/sobjects/{name}/{{ID}}",
                        },
                    }
                    for name in FIELD_TYPES
                ],
            }
        )

    @_api
    def describe(self, request: Request, sobject: str) -> Response:
        """REST API Developer Guide, sObject Describe: the object's metadata and every
        field's (SOAP API Developer Guide, DescribeSObjectResult and Field)."""
        name = canonical_object(sobject)
        if name is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        base = f"/services/data/{_version(request)}/sobjects/{name}"
        fields = [
            _describe_field(name, n, t, w, r) for n, (t, w, r) in FIELD_TYPES[name].items()
        ] + [_describe_field(name, n, t, False, False) for n, t in SYSTEM_TYPES.items()]
        children = [
            {
                "cascadeDelete": False,
                "childSObject": child,
                "deprecatedAndHidden": False,
                "field": ref,
                "relationshipName": LABELS[child][1] if ref != "OwnerId" else None,
                "restrictedDelete": False,
            }
            for child, child_fields in FIELD_TYPES.items()
            for ref in child_fields
            if ref in REFERENCES and REFERENCES[ref][1] == name
        ]
        label, plural = LABELS[name]
        return _json(
            {
                "name": name,
                "label": label,
                "labelPlural": plural,
                "keyPrefix": PREFIXES[name],
                "custom": False,
                "createable": True,
                "updateable": True,
                "deletable": True,
                "queryable": True,
                "retrieveable": True,
                "searchable": True,
                "undeletable": True,
                "childRelationships": children,
                "fields": fields,
                "urls": {
                    "sobject": base,
                    "describe": f"{base}/describe",
                    "rowTemplate": f"{base}/{{ID}}",
                },
            }
        )

    def _record_json(
        self, sobject: str, record: dict[str, Any], fields: Any, version: str = "v59.0"
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": sobject,
                "url": f"/services/data/{version}/sobjects/{sobject}/{record['Id']}",
            }
        }
        for name in fields:
            if "." in name:
                self._nested(out, sobject, record, name, version)
            else:
                out[name] = _out(record.get(name))
        return out

    def _nested(
        self, out: dict[str, Any], sobject: str, record: dict[str, Any], path: str, version: str
    ) -> None:
        """A parent's field as Salesforce nests it: ``"Owner": {"attributes": ..., "Name":
        ...}``, or ``"Owner": null`` when there is no parent (Relationship Queries)."""
        relationship, _, rest = path.partition(".")
        parent = record.get(relationship)
        if parent is None:
            out.setdefault(relationship, None)
            return
        target = next(t for r, t in REFERENCES.values() if r == relationship)
        node = out.get(relationship)
        if node is None:
            node = out[relationship] = {
                "attributes": {
                    "type": target,
                    "url": f"/services/data/{version}/sobjects/{target}/{parent['Id']}",
                }
            }
        if "." in rest:
            self._nested(node, target, parent, rest, version)
        else:
            node[rest] = _out(parent.get(rest))

    def _with_parents(self, sobject: str, record: dict[str, Any], depth: int = 2) -> dict[str, Any]:
        out = dict(record)
        if depth == 0:
            return out
        for ref, (relationship, target) in REFERENCES.items():
            if ref in FIELD_TYPES[sobject]:
                parent = self.org.get(target, str(record.get(ref) or ""))
                out[relationship] = (
                    None if parent is None else self._with_parents(target, parent, depth - 1)
                )
        return out

    @_api
    def query_all(self, request: Request) -> Response:
        """queryAll: the query, with the recycle bin's records too (IsDeleted true);
        its nextRecordsUrl says /query/ yet goes on with the same rows, as Salesforce's."""
        return self._query(request, include_deleted=True)

    @_api
    def query(self, request: Request) -> Response:
        return self._query(request, include_deleted=False)

    def _query(self, request: Request, include_deleted: bool) -> Response:
        text = request.args.get("q", "")
        try:
            parsed = soql.parse(text)
        except soql.SoqlError as exc:
            return _error(400, exc.code, exc.message_for(text))
        now = self.org.clock()
        nested = any("." in f for f in parsed.referenced)
        with self.org.lock:
            source = list(self.org.records[parsed.sobject].values())
            if include_deleted:
                # REST API Developer Guide, QueryAll: deleted records (IsDeleted true) too
                source += self.org.deleted[parsed.sobject].values()
            if nested:
                source = [self._with_parents(parsed.sobject, r) for r in source]
            rows = [dict(r) for r in source if parsed.matches(r, now)]
        for name, descending, nulls_last in reversed(parsed.order):
            present = [r for r in rows if soql.value_of(r, name) is not None]
            missing = [r for r in rows if soql.value_of(r, name) is None]
            present.sort(key=functools.partial(_sort_key, name), reverse=descending)
            rows = present + missing if nulls_last else missing + present
        rows = rows[parsed.offset :]
        if parsed.limit is not None:
            rows = rows[: parsed.limit]
        if parsed.count_only:
            return _json({"totalSize": len(rows), "done": True, "records": []})
        version = _version(request)
        out = [self._record_json(parsed.sobject, r, parsed.fields, version) for r in rows]
        return self._page(request, out, 0)

    def _batch_size(self, request: Request) -> int:
        """REST API Developer Guide, Query Options Header: ``batchSize`` from 200 to 2,000
        (the default); Salesforce may return more or fewer, the emulator clamps."""
        options = request.headers.get("Sforce-Query-Options", "")
        for part in options.split(","):
            key, _, value = part.partition("=")
            if key.strip() == "batchSize" and value.strip().isdigit():
                return max(200, min(2000, int(value)))
        return 2000

    def _page(self, request: Request, rows: list[dict[str, Any]], offset: int) -> Response:
        size = self._batch_size(request)
        page = rows[offset : offset + size]
        body: dict[str, Any] = {
            "totalSize": len(rows),
            "done": offset + size >= len(rows),
            "records": page,
        }
        if not body["done"]:
            with self.org.lock:
                cursor = f"01g{next(self.org._cursor_ids):015d}"
                self.org.cursors[cursor] = rows
            version = _version(request)
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{cursor}-{offset + size}"
        return _json(body)

    @_api
    def query_more(self, request: Request, cursor: str) -> Response:
        name, _, offset = cursor.rpartition("-")
        rows = self.org.cursors.get(name)
        if rows is None or not offset.isdigit():
            return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(request, rows, int(offset))

    @_api
    def create(self, request: Request, sobject: str) -> Response:
        """REST API Developer Guide, sObject Basic Information (POST): 201 with the Id."""
        name = canonical_object(sobject)
        if name is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        body = self._body(request)
        try:
            record_id = self.org.create(name, body if body is not None else {})
        except RequestError:
            raise
        except RecordError as exc:
            return _json(
                [{"message": exc.message, "errorCode": exc.code, "fields": exc.fields}], 400
            )
        return _json({"id": record_id, "success": True, "errors": []}, 201)

    @_api
    def record(self, request: Request, sobject: str, record_id: str) -> Response:
        """REST API Developer Guide, sObject Rows: GET (every field, or ``?fields=``),
        PATCH (204), DELETE (204); 404 NOT_FOUND for an Id that names no record."""
        name = canonical_object(sobject)
        if name is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        full_id = id18(record_id)
        if request.method == "GET":
            record = self.org.get(name, full_id or record_id)
            if record is None:
                if full_id is not None and full_id in self.org.deleted[name]:
                    return _json(
                        [
                            {
                                "message": "entity is deleted",
                                "errorCode": "ENTITY_IS_DELETED",
                                "fields": [],
                            }
                        ],
                        404,
                    )
                return _error(404, "NOT_FOUND", "The requested resource does not exist")
            wanted = request.args.get("fields")
            if wanted:
                fields = []
                for raw in wanted.split(","):
                    field = canonical_field(name, raw.strip())
                    if field is None:
                        return _error(
                            400,
                            "INVALID_FIELD",
                            f"No such column '{raw.strip()}' on sobject of type {name}",
                        )
                    fields.append(field)
            else:
                # every field, null where unset
                fields = [*FIELD_TYPES[name], *SYSTEM_FIELDS]
            return _json(self._record_json(name, record, fields, _version(request)))
        if request.method == "DELETE":
            try:
                self.org.delete(name, record_id)
            except RecordError as exc:
                return _json([{"message": exc.message, "errorCode": exc.code, "fields": []}], 404)
            return Response(status=204)
        body = self._body(request)
        with self.org.lock:
            if full_id is None or (
                full_id not in self.org.records[name] and full_id not in self.org.deleted[name]
            ):
                # sObject Rows: an Id that names no record of this object is a 404
                return _error(404, "NOT_FOUND", "The requested resource does not exist")
            if full_id in self.org.deleted[name]:
                return _json(
                    [
                        {
                            "message": "entity is deleted",
                            "errorCode": "ENTITY_IS_DELETED",
                            "fields": [],
                        }
                    ],
                    404,
                )
            try:
                self.org.update(name, full_id, body if body is not None else {})
            except RequestError:
                raise
            except RecordError as exc:
                return _json(
                    [{"message": exc.message, "errorCode": exc.code, "fields": exc.fields}], 400
                )
        return Response(status=204)

    @_api
    def by_external_id(self, request: Request, sobject: str, field: str, value: str) -> Response:
        """REST API Developer Guide, sObject Rows by External ID and Insert or Update (Upsert)
        a Record Using an External ID: GET the record; PATCH creates it (201) or updates it
        (200), answering ``{"id", "success", "errors", "created"}``."""
        name = canonical_object(sobject)
        key = canonical_field(name, field) if name is not None else None
        if name is None or key not in EXTERNAL_IDS:
            return _error(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field}",
            )
        if request.method == "GET":
            record_id = self.org.by_external.get((name, key, value.lower()))
            record = self.org.get(name, record_id) if record_id else None
            if record is None:
                return _error(404, "NOT_FOUND", "The requested resource does not exist")
            fields = [*FIELD_TYPES[name], *SYSTEM_FIELDS]
            return _json(self._record_json(name, record, fields, _version(request)))
        body = self._body(request)
        if not isinstance(body, dict):
            raise _BadRequest("JSON_PARSER_ERROR", "the body must be a JSON object")
        values = self.org.validate(name, body)
        if key in values and values[key] != value:
            raise _BadRequest(
                "INVALID_FIELD", f"The external ID field {key} in the body doesn't match the URL"
            )
        values.pop(key, None)
        try:
            record_id, created = self.org.upsert(name, key, value, values)
        except RequestError:
            raise
        except RecordError as exc:
            return _json(
                [{"message": exc.message, "errorCode": exc.code, "fields": exc.fields}], 400
            )
        return _json(
            {"id": record_id, "success": True, "errors": [], "created": created},
            201 if created else 200,
        )

    @_api
    def retrieve_records(self, request: Request, sobject: str) -> Response:
        """REST API Developer Guide, Get Records Using sObject Collections: ``ids`` and
        ``fields`` (both required) in the query string (GET) or the body (POST); the
        records in the order of the Ids, null for an Id that names no record."""
        name = canonical_object(sobject)
        if name is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        if request.method == "POST":
            body = self._body(request) or {}
            if not isinstance(body, dict):
                raise _BadRequest("JSON_PARSER_ERROR", "the body must be a JSON object")
            ids, wanted = body.get("ids"), body.get("fields")
        else:
            ids = [i for i in request.args.get("ids", "").split(",") if i]
            wanted = [f for f in request.args.get("fields", "").split(",") if f]
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise _BadRequest("MISSING_ARGUMENT", "ids is required")
        if not isinstance(wanted, list) or not wanted:
            raise _BadRequest("MISSING_ARGUMENT", "fields is required")
        # "The request retrieves up to 2,000 records" (POST; a GET URL holds about 800 Ids)
        if len(ids) > 2000:
            raise _BadRequest("EXCEEDED_ID_LIMIT", "Maximum number of ids is 2000")
        fields = []
        for raw in wanted:
            field = canonical_field(name, str(raw).strip())
            if field is None:
                raise _BadRequest(
                    "INVALID_FIELD", f"No such column '{raw}' on sobject of type {name}"
                )
            fields.append(field)
        out: list[dict[str, Any] | None] = []
        version = _version(request)
        for raw_id in ids:
            # "if a passed ID is invalid, the array returns null for that object"
            full_id = id18(raw_id)
            valid = full_id is not None and full_id.startswith(PREFIXES[name])
            record = self.org.get(name, full_id) if valid and full_id else None
            out.append(None if record is None else self._record_json(name, record, fields, version))
        return _json(out)

    def _collection_body(self, request: Request) -> tuple[bool, list[dict[str, Any]]]:
        body = self._body(request) or {}
        if not isinstance(body, dict):
            raise _BadRequest("JSON_PARSER_ERROR", "the body must be a JSON object")
        records = body.get("records")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise _BadRequest("INVALID_FIELD", "records is required")
        if len(records) > MAX_COLLECTION:
            raise _BadRequest(
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_COLLECTION} "
                "records into this call",
            )
        return bool(body.get("allOrNone", False)), records

    def _fail_record(self, record: dict[str, Any], field: str | None = None) -> None:
        failing = self.org.faults.record_fault(
            record.get("Id"), record.get(field) if field else None
        )
        if failing:
            code = failing[1]
            raise RecordError(
                code,
                "unable to obtain exclusive access to this record"
                if code == "UNABLE_TO_LOCK_ROW"
                else "record rejected",
            )

    def _validate_all(self, records: list[dict[str, Any]], sobject: str | None) -> None:
        """sObject Collections: an unknown field or a value that does not deserialize fails
        the whole request with 400 (the request is not well formed), before any record is
        written; per-record results are for records that are well formed."""
        for record in records:
            attributes = record.get("attributes")
            written = attributes.get("type") if isinstance(attributes, dict) else None
            if sobject is None and not written:
                # "Each object must contain an attributes map. The map must contain a value
                # for type."
                raise _BadRequest("INVALID_TYPE", "Must send a concrete entity type.")
            name = sobject or canonical_object(str(written))
            if name is not None:
                self.org.validate(name, record)

    def _refuse_poisoned(self, records: list[dict[str, Any]]) -> None:
        """Fault ``refused_in_request``: a record holding a value that does not
        deserialize. REST API Developer Guide, "sObject Collections" and "Status Codes
        and Error Responses": such a value is an error in the request itself, so the
        whole request fails with HTTP 400 JSON_PARSER_ERROR before any record is
        written, not a per-record result."""
        for record in records:
            keys = [v for k, v in record.items() if k.lower() == "id" or k in EXTERNAL_IDS]
            refused = self.org.faults.refused(*keys)
            if refused is not None:
                raise _BadRequest(
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of the record {refused}: "
                    "unexpected token VALUE_STRING",
                )

    @_api
    def collection(self, request: Request) -> Response:
        """REST API Developer Guide, Create / Update Records Using sObject Collections."""
        all_or_none, records = self._collection_body(request)
        self._validate_all(records, None)
        self._refuse_poisoned(records)
        results: list[dict[str, Any]] = []
        with self.org.lock:
            snapshot = self.org.snapshot() if all_or_none else None
            for record in records:
                written = str((record.get("attributes") or {}).get("type", ""))
                sobject = canonical_object(written) or written
                given = next((v for k, v in record.items() if k.lower() == "id"), None)
                try:
                    self._fail_record(record)
                    if request.method == "POST":
                        # Create Records Using sObject Collections: "don't set the id field"
                        if given is not None:
                            raise RecordError(
                                "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"]
                            )
                        record_id = self.org.create(sobject, record)
                        results.append(
                            {"id": record_id, "success": True, "errors": [], "_created": True}
                        )
                    else:
                        # Update Records Using sObject Collections: "Each object must
                        # contain an id field with a valid ID value."
                        if given is None:
                            raise RecordError(
                                "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"]
                            )
                        record_id = (
                            self.org.resolve_id(sobject, given) if sobject in FIELD_TYPES else ""
                        )
                        self.org.update(sobject, record_id, record)
                        results.append({"id": record_id, "success": True, "errors": []})
                except RecordError as exc:
                    # documented failures carry no id
                    results.append({"success": False, "errors": [exc.as_dict()]})
            if snapshot is not None and not all(r["success"] for r in results):
                self.org.restore(snapshot)
        return _json(self._all_or_none(all_or_none, results))

    @_api
    def collection_upsert(self, request: Request, sobject: str, field: str) -> Response:
        """REST API Developer Guide, Upsert Records Using sObject Collections."""
        name = canonical_object(sobject)
        if name is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        key = canonical_field(name, field)
        if key not in EXTERNAL_IDS:
            raise _BadRequest(
                "INVALID_FIELD",
                f"Provided external ID field does not exist or is not accessible: {field}",
            )
        all_or_none, records = self._collection_body(request)
        self._validate_all(records, name)
        self._refuse_poisoned(records)
        results: list[dict[str, Any]] = []
        with self.org.lock:
            snapshot = self.org.snapshot() if all_or_none else None
            for record in records:
                try:
                    clean = {canonical_field(name, k) or k: v for k, v in record.items()}
                    self._fail_record(clean, key)
                    value = clean.get(key)
                    if not value:
                        raise RecordError(
                            "REQUIRED_FIELD_MISSING",
                            f"Required fields are missing: [{key}]",
                            [key],
                        )
                    fields = {k: v for k, v in clean.items() if k != key}
                    record_id, created = self.org.upsert(name, key, str(value), fields)
                    results.append(
                        {
                            "id": record_id,
                            "success": True,
                            "errors": [],
                            "created": created,
                            "_created": created,
                        }
                    )
                except RecordError as exc:
                    results.append({"success": False, "errors": [exc.as_dict()], "created": False})
            if snapshot is not None and not all(r["success"] for r in results):
                self.org.restore(snapshot)
        return _json(self._all_or_none(all_or_none, results))

    @staticmethod
    def _all_or_none(all_or_none: bool, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """With allOrNone true and a failure, every record is rolled back: a record that
        would have succeeded answers ALL_OR_NONE_OPERATION_ROLLED_BACK, with its Id only if
        the record exists (an update), not if its creation was rolled back (REST API
        Developer Guide, sObject Collections examples)."""
        if not all_or_none or all(r["success"] for r in results):
            return [{k: v for k, v in r.items() if k != "_created"} for r in results]
        out = []
        for r in results:
            if r["success"]:
                rolled: dict[str, Any] = {} if r.get("_created") else {"id": r["id"]}
                if "created" in r:
                    rolled["created"] = False
                out.append(
                    {
                        **rolled,
                        "success": False,
                        "errors": [
                            {
                                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                "message": "Record rolled back because not all records were "
                                "valid and the request was using AllOrNone header",
                                "fields": [],
                            }
                        ],
                    }
                )
            else:
                out.append(r)
        return out


# JSON types a field of each kind takes in a request body; anything else fails the
# whole request while the body is read (REST API Developer Guide, "sObject
# Collections": errors in the request itself, such as an unknown field or a value
# that cannot be deserialized, return HTTP 400 with an error array, not per-record
# results; "Status Codes and Error Responses": JSON_PARSER_ERROR, INVALID_FIELD)
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "boolean": (bool,),
    "double": (int, float),
    "int": (int,),
    "datetime": (str,),
    "date": (str,),
}


class _BadRequest(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message
